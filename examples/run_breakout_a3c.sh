#!/usr/bin/env bash
# The original KeRLym's A3C example on Breakout, with its settings: the atari preprocessor,
# difference frames (-i), live plots (-P) and 16 env copies (-c 16). -a a3c runs the synchronous
# learner (A2C); the original's simple_cnn becomes actor_critic_cnn, the shared Nature-CNN trunk.
exec kerlym -e Breakout-v0 -a a3c -n actor_critic_cnn -E atari -i -P -c 16 "$@"
