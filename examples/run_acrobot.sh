#!/usr/bin/env bash
# Double DQN on Acrobot-v1 with the tuned preset (RL Zoo's DQN settings, 100k steps).
exec kerlym -e Acrobot-v1 -a ddqn --preset -P "$@"
