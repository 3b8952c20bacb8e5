#!/usr/bin/env bash
# The original KeRLym's Pong demo: DQN on Pong from pixels with simple_cnn, the
# Atari preprocessing, difference frames and live plots. Runs from any directory;
# extra flags are passed on (e.g. --steps 1000000, --seed 0, -a ddqn).
#
# Differences from the 2016 script, each because the original no longer works:
#  - epsilon anneals 1.0 -> 0.1 over 1M steps (--exploration_steps); the original's
#    per-episode decay of 1e-6 left epsilon at ~1.0 for the whole run;
#  - the original's four actor threads (-c 4) are four emulators in ale-py's
#    AtariVectorEnv, stepping in C++ threads and feeding the one learner;
#  - -R (render) is added only when there is a display.
# For settings that learn Pong within a few CPU hours, use the preset instead:
#   kerlym -e PongNoFrameskip-v4 -a dqn --preset -P   (see benchmarks/README.md)
set -euo pipefail
render=()
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then render=(--render); fi
exec kerlym --env Pong-v0 \
       --net simple_cnn \
       --agent dqn \
       --epsilon 1.0 \
       --exploration_steps 1000000 \
       --epsilon_min 0.1 \
       --num_frames 1 \
       --dropout 0 \
       --preprocessor atari \
       --learning_rate 1e-4 \
       --difference \
       --plots \
       --plot_rate 10 \
       --concurrency 4 \
       "${render[@]}" "$@"
