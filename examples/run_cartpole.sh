#!/usr/bin/env bash
# Double DQN on CartPole-v1 with the tuned preset (RL Zoo's DQN settings); solves in ~50k steps.
exec kerlym -e CartPole-v1 -a ddqn --preset -P "$@"
