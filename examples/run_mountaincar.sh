#!/usr/bin/env bash
# Double DQN on MountainCar-v0 with the tuned preset (RL Zoo's DQN settings, 120k steps).
exec kerlym -e MountainCar-v0 -a ddqn --preset -P "$@"
