"""How fast a CartPole DQN update can run on this CPU: what the second core adds to small matrix products.

    KERAS_BACKEND=jax python benchmarks/cpu_floor.py
    python benchmarks/cpu_floor.py                        # TensorFlow (XLA)

The CartPole preset's update is 128 gradient steps on minibatches of 64 through a
4-256-256-2 MLP: its matrix products are 64 x 256 by 256 x 256, which are too small
for XLA's CPU backend to split over threads. This script measures, each in its own
subprocess, once with both cores and once pinned to one core (``os.sched_setaffinity``):

* ``matmul``: a chain of 50 products ``tanh(x @ w)`` of a ``rows x 256`` by ``256 x 256``
  in one compiled call, per product: microseconds and GFLOP/s, for 64 to 1024 rows;
* ``update``: one D2QN update of the CartPole preset (``agent.update()`` on a filled replay
  memory, median of 30), and its rate in GFLOP/s: about 21.5 M multiply-adds a gradient step
  (forward passes of the online network on the states and next states, the backward pass,
  the target network's share of its one product over the whole update).

With the 191 updates a 50k-step run makes, the update time is a floor under the run's
training time that no change to the loop around it can lower.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

MARK = "CPU-FLOOR "
HERE = os.path.dirname(os.path.abspath(__file__))
# Multiply-adds of one D2QN gradient step of the CartPole preset (batch 64, zoo_mlp 4-256-256-2).
MLP_MACS = 4 * 256 + 256 * 256 + 256 * 2
STEP_MACS = 64 * MLP_MACS * 5  # online on s and s', backward (twice the forward), target on s'


def matmul_rates(rows_list, chain: int = 50, repeats: int = 20) -> dict:
    import keras
    import numpy as np

    backend = keras.backend.backend()
    out = {}
    for rows in rows_list:
        x = np.ones((rows, 256), np.float32) * 0.01
        w = np.ones((256, 256), np.float32) * 0.01
        if backend == "jax":
            import jax
            import jax.numpy as jnp

            def chained(x, w):
                return jax.lax.fori_loop(0, chain, lambda _, c: jnp.tanh(c @ w), x)

            f = jax.jit(chained)
            f(x, w).block_until_ready()
            t = time.perf_counter()
            for _ in range(repeats):
                r = f(x, w)
            r.block_until_ready()
        else:
            import tensorflow as tf

            @tf.function(jit_compile=True)
            def f(x, w):
                return tf.while_loop(lambda i, c: i < chain, lambda i, c: (i + 1, tf.tanh(c @ w)), (0, x))[1]

            x, w = tf.constant(x), tf.constant(w)
            f(x, w).numpy()
            t = time.perf_counter()
            for _ in range(repeats):
                r = f(x, w)
            r.numpy()
        us = (time.perf_counter() - t) / (repeats * chain) * 1e6
        out[rows] = {"us": us, "gflops": 2 * rows * 256 * 256 / us / 1e3}
    return out


def update_time(repeats: int = 30) -> dict:
    import numpy as np

    sys.path.insert(0, HERE)
    from speed import kerlym_cli_agent

    agent = kerlym_cli_agent("ddqn", 0)
    agent.learn(max_steps=3000)  # fills the memory; the first updates compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        agent.update()
        times.append(time.perf_counter() - t)
    ms = float(np.median(times)) * 1e3
    steps = agent.update_nsamp // agent.batch_size
    return {"ms": ms, "steps": steps, "gflops": 2 * STEP_MACS * steps / (ms / 1e3) / 1e9}


def worker(cores: list[int], rows_list: list[int]) -> None:
    os.sched_setaffinity(0, cores)  # before any thread pool starts, so every thread inherits it
    import keras

    print(MARK + json.dumps({"backend": keras.backend.backend(), "cores": cores, "matmul": matmul_rates(rows_list)}))
    print(MARK + json.dumps({"update": update_time()}), flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[64, 128, 256, 1024])
    p.add_argument("--worker", type=int, nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker, args.rows)
        return 0
    all_cores = sorted(os.sched_getaffinity(0))
    results = {}
    for cores in (all_cores, all_cores[:1]):
        cmd = [sys.executable, __file__, "--worker", *map(str, cores), "--rows", *map(str, args.rows)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        found = [json.loads(line[len(MARK) :]) for line in out.splitlines() if line.startswith(MARK)]
        results[len(cores)] = {k: v for part in found for k, v in part.items()}
    backend = results[len(all_cores)]["backend"]
    n = len(all_cores)
    print(f"backend {backend}; {n} cores against 1\n")
    print(f"| product | {n} cores: us (GFLOP/s) | 1 core: us (GFLOP/s) | speed-up |")
    print("| --- | --- | --- | --- |")
    for rows in map(str, args.rows):
        a, b = results[n]["matmul"][rows], results[1]["matmul"][rows]
        print(
            f"| {rows} x 256 @ 256 x 256 | {a['us']:.1f} ({a['gflops']:.0f}) | {b['us']:.1f} ({b['gflops']:.0f}) | "
            f"{b['us'] / a['us']:.2f}x |"
        )
    a, b = results[n]["update"], results[1]["update"]
    print(
        f"| CartPole D2QN update, {a['steps']} steps of batch 64 | {a['ms']:.1f} ms ({a['gflops']:.0f}) | "
        f"{b['ms']:.1f} ms ({b['gflops']:.0f}) | {b['ms'] / a['ms']:.2f}x |"
    )
    print(f"\n191 updates (a 50k-step run): {191 * a['ms'] / 1e3:.1f} s on {n} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
