#!/usr/bin/env bash
# Double DQN on Space Invaders from pixels with the Nature DQN network (settings as run_breakout.sh).
exec kerlym -e SpaceInvaders-v0 -a ddqn -n nature_cnn -E atari -t 4 -o 0 \
       -p 1.0 -s 0.01 --exploration_steps 1000000 -f 4 -u 32 -b 32 -m 100000 \
       --target_update 1000 --learning_starts 100000 -r 1e-4 --optimizer adam --loss huber \
       -P -F 10 "$@"
