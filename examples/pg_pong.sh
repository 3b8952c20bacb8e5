#!/usr/bin/env bash
# Policy gradient on Pong from pixels, after Karpathy's gist: 80x80 binary frames
# (karpathy preprocessor), difference frames, a 200-unit policy network, RMSprop 1e-3,
# and the return reset at every point (on by default for Pong). Learning is slow on a CPU:
# see benchmarks/README.md for how far it gets.
exec kerlym -e Pong-v0 -a pg -n karpathy_simple_pgnet -E karpathy -i -t 1 -o 0 -r 1e-3 -P -F 10 "$@"
