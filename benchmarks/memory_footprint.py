"""Replay memory footprint with Atari-sized frames.

    python benchmarks/memory_footprint.py [--frames 1000000]

Fills a ReplayMemory of 84x84x1 uint8 frames (4-frame states) through its
public API and reports the resident memory the process grew by, next to what
naive storage (state and next state side by side) would need.
"""

import argparse
import resource
import time

import numpy as np

from kerlym.memory import ReplayMemory


def rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    args = parser.parse_args()
    n, shape, nframes = args.frames, (84, 84, 1), 4
    before = rss_gb()
    mem = ReplayMemory(n, shape, dtype=np.uint8, nframes=nframes)
    frame = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    t = time.perf_counter()
    mem.start_episode(frame)
    for i in range(n):
        mem.add(i % 6, 0.0, False, frame)
    fill_s = time.perf_counter() - t
    batch = mem.sample(32, np.random.default_rng(0))
    grown = rss_gb() - before
    naive_uint8 = n * 2 * nframes * np.prod(shape) / 1e9
    naive_float32 = naive_uint8 * 4
    print(f"frames: {n:,} of {shape} uint8, states of {nframes} frames ({batch.states.shape[1]:,} values)")
    print(f"ReplayMemory.nbytes: {mem.nbytes / 1e9:.2f} GB; process grew by {grown:.2f} GB (RSS)")
    print(f"naive (s, s') storage: {naive_uint8:.1f} GB as uint8, {naive_float32:.1f} GB as float32")
    print(f"fill: {n / fill_s:,.0f} inserts/s")


if __name__ == "__main__":
    main()
