"""Time one PPO update of the Pong preset's rollout (1024 frames, 4 epochs of minibatches of 256) on this backend.

    KERAS_BACKEND=tensorflow python benchmarks/ppo_update.py        # as kerlym runs it: no XLA on a CPU
    KERAS_BACKEND=tensorflow python benchmarks/ppo_update.py --xla  # the same update XLA-compiled
    KERAS_BACKEND=jax python benchmarks/ppo_update.py               # JAX (always XLA)

The rollout is random frames and targets: only the time matters. Prints the first update (which
compiles) and the mean of ``--repeats`` more, and the compiled act's time for the 8 envs' states.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--xla", action="store_true", help="TensorFlow: XLA-compile the update")
    args = p.parse_args(argv)

    import kerlym
    from kerlym.agents.actor_critic import Rollout

    agent = kerlym.make("PongNoFrameskip-v4", "ppo", preset=True, cli_defaults=True, seed=0)
    if args.xla:
        agent.steps._update.uses_xla = True
    size = agent.n_steps * agent.concurrency
    rng = np.random.default_rng(0)
    states = rng.integers(0, 255, (size, agent.input_dim)).astype(agent.state_dtype)
    actions = rng.integers(0, agent.num_actions, size).astype(np.int32)
    normal = [rng.standard_normal(size).astype(np.float32) for _ in range(2)]
    rollout = Rollout(states, actions, np.full(size, -1.8, np.float32), np.zeros(size, np.float32), *normal)
    start = time.perf_counter()
    agent.update(rollout)
    print(f"first update (compiles): {time.perf_counter() - start:.2f} s", flush=True)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        agent.update(rollout)
        times.append(time.perf_counter() - start)
    print(f"update of {size} frames: {np.mean(times):.2f} s (mean of {len(times)})", flush=True)
    agent.act(states[: agent.concurrency])
    start = time.perf_counter()
    for _ in range(20):
        agent.act(states[: agent.concurrency])
    print(f"act for {agent.concurrency} envs: {(time.perf_counter() - start) / 20 * 1e3:.1f} ms", flush=True)
    agent.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
