"""Atari env copies alone: ale-py's ``AtariVectorEnv`` against EnvPool (``--vector_env envpool``), steps/s.

    python benchmarks/atari_envs.py                          # PongNoFrameskip-v4, N = 1 and 8, 6 rounds of 2 s
    python benchmarks/atari_envs.py --envs 8 16 --rounds 3 --seconds 1

Both give the atari preprocessor's frames (frame skip 4 with max-pool, 84x84 grayscale, no-op starts) to
kerlym's vector-env interface, same-step autoreset included; random actions, no agent. The two step in
turn, ``--seconds`` each, ``--rounds`` times, so that other work on the machine falls on both; printed:
each round's steps/s and the median, and the median ratio EnvPool / ale-py.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def rate(envs, n: int, seconds: float, rng) -> float:
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        envs.step(rng.integers(0, 6, n))
        steps += n
    return steps / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="PongNoFrameskip-v4")
    p.add_argument("--envs", type=int, nargs="+", default=[1, 8], help="env copies")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds of each side per round")
    args = p.parse_args(argv)

    from kerlym import preproc
    from kerlym.envs import register_atari
    from kerlym.envs.envpool_atari import EnvPoolVectorEnv

    register_atari(args.env)
    for n in args.envs:
        sides = {"ale-py": preproc.atari_vector_env(args.env, n), "envpool": EnvPoolVectorEnv(args.env, n)}
        for envs in sides.values():
            envs.reset(seed=0)
        rng, rates = np.random.default_rng(0), {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, envs in sides.items():
                rates[name].append(rate(envs, n, args.seconds, rng))
        for name, envs in sides.items():
            envs.close()
            listed = ", ".join(f"{r:.0f}" for r in rates[name])
            print(f"N={n} {name}: {listed} (median {np.median(rates[name]):.0f})")
        ratios = np.array(rates["envpool"]) / np.array(rates["ale-py"])
        listed = ", ".join(f"{x:.2f}" for x in ratios)
        print(f"N={n} envpool / ale-py: median {np.median(ratios):.2f}x (rounds {listed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
