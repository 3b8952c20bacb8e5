"""Per-backend steps: microseconds per act and per update of kerlym.backend, against an earlier implementation.

    git show 1296d15:kerlym/compiled.py > /tmp/compiled_1296d15.py
    python benchmarks/steps.py --old /tmp/compiled_1296d15.py --backends tensorflow jax --rounds 30

Each backend runs in its own subprocess (the Keras backend is fixed at import), JAX once with
asynchronous CPU dispatch on and once off (``--jax-async``; kerlym leaves JAX's default, on).
Inside it, both implementations drive the CartPole D2QN preset's network (``zoo_mlp``, Adam,
Huber, batch 64; one copy each) on the same inputs, in alternating timed blocks, so that
whatever else the machine runs slows both alike. Rows:

* ``act``: the compiled act on one state (greedy action and Q-values);
* ``act: direct vs public call`` (TensorFlow, new only): the act through ``direct_call``
  against TensorFlow's public concrete-function call;
* ``epsilon-greedy act``: ``DQN.act`` at epsilon 0.04 (training's final epsilon), against
  the earlier DQN's two NumPy draws per call around the earlier compiled act;
* ``update 128``: one update of the preset, 128 minibatch steps of 64;
* ``update 1``: one update of a single minibatch of 64 (CleanRL's one gradient step).

With ``--loop OLD_TREE NEW_TREE`` (kerlym source trees) it times whole training loops instead:
µs per env step of CartPole D2QN at CleanRL's cadence (one gradient step of 64 every 10 env
steps, epsilon 0.04, 10,000 steps after 2,000 of warm-up), one subprocess per tree and JAX
dispatch setting, alternating round by round:

    mkdir /tmp/oldref && git archive 1296d15 | tar -x -C /tmp/oldref
    python benchmarks/steps.py --loop /tmp/oldref . --rounds 5

Prints, per row, the median over rounds of each block's mean µs per call, and the median of
the per-round ratios second / first (below 1: the second is faster). Without ``--old`` only
the new side of the old-against-new rows is timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np


def block(fn, calls: int) -> float:
    """Mean microseconds per call of ``fn()`` over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def load_old(path: str):
    spec = importlib.util.spec_from_file_location("old_compiled", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(old_path: str | None):
    """The preset agent (memory filled with random transitions) and ``{row: (old fn or None, new fn, calls)}``."""
    from kerlym import networks
    from kerlym.agents import D2QN
    from kerlym.backend import build_steps

    kw = dict(modelfactory=networks.zoo_mlp, dropout=0.0, optimizer="adam", loss="huber", learning_rate=2.3e-3)
    agent = D2QN("CartPole-v1", seed=0, epsilon=0.04, batch_size=64, update_nsamp=128 * 64, **kw)
    rng = np.random.default_rng(0)
    agent.begin_episode(rng.normal(size=4).astype(np.float32))
    for _ in range(10_000):
        frame = rng.normal(size=4).astype(np.float32)
        agent.observe(0, None, int(rng.integers(2)), 1.0, bool(rng.random() < 0.05), False, frame)
    x = rng.normal(size=(1, 4)).astype(np.float32)
    big = agent.sample_update()
    one = tuple(b[:1] for b in big)
    new_update = agent.steps.update
    rows = {
        "act": [None, lambda: agent.steps.act(x), 2000],
        "epsilon-greedy act": [None, lambda: agent.act(x), 2000],
        "update 128": [None, lambda: new_update(big), 2],
        "update 1": [None, lambda: new_update(one), 200],
    }
    import keras

    if keras.backend.backend() == "tensorflow":
        from kerlym.backend import tensorflow as tf_backend

        public = build_steps(agent.build_model(), agent.q_loss)
        fast, tf_backend.direct_call = tf_backend.direct_call, lambda fn: None
        public.act(x)  # traced and cached without the direct call
        tf_backend.direct_call = fast
        rows["act: direct vs public call"] = [lambda: agent.steps.act(x), lambda: public.act(x), 2000]
    if old_path:
        old_module = load_old(old_path)
        model, target = agent.build_model(), agent.build_model()
        model.set_weights(agent.model.get_weights())
        target.set_weights(agent.target_model.get_weights())

        def old_loss(online, target, batch):  # the same loss; the earlier class looked the target up by index
            return agent.q_loss(online, batch, target(batch[3]))

        old = old_module.Compiled(model, old_loss, target=target, target_input=3)
        old_rng = np.random.default_rng(1)

        def old_epsilon_greedy(states):  # DQN.act as of 1296d15
            n = len(states)
            random = old_rng.random(n) < agent.epsilon
            actions = old_rng.integers(agent.num_actions, size=n)
            if random.all():
                return actions, None
            greedy, q = old.act(states)
            return np.where(random, actions, greedy), q

        rows["act"][0] = lambda: old.act(x)
        rows["epsilon-greedy act"][0] = lambda: old_epsilon_greedy(x)
        rows["update 128"][0] = lambda: old.update(*big)
        rows["update 1"][0] = lambda: old.update(*one)
    return rows


def loop_worker(steps: int) -> float:
    """µs per env step of a D2QN CartPole run, updating one minibatch every 10 steps."""
    from kerlym import networks
    from kerlym.agents import D2QN

    kw = dict(modelfactory=networks.zoo_mlp, dropout=0.0, optimizer="adam", loss="huber", learning_rate=2.3e-3)
    agent = D2QN("CartPole-v1", seed=0, epsilon=0.04, batch_size=64, update_nsamp=64, update_freq=10, **kw)
    agent.learning_starts = 1000
    agent.learn(max_steps=2000)
    start = time.perf_counter()
    agent.learn(max_steps=steps)
    return (time.perf_counter() - start) / steps * 1e6


def loop(trees: list[str], backends: list[str], settings: list[int], rounds: int, steps: int) -> None:
    for backend in backends:
        variants = []
        for tree in trees:
            for setting in settings if backend == "jax" else [None]:
                env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": os.path.abspath(tree)}
                label = tree
                if setting is not None:
                    env["JAX_CPU_ENABLE_ASYNC_DISPATCH"] = str(setting)
                    label += f", async dispatch {'on' if setting else 'off'}"
                variants.append((label, env))
        times = {label: [] for label, _ in variants}
        for _ in range(rounds):
            for label, env in variants:
                cmd = [sys.executable, os.path.abspath(__file__), "--loop-worker", str(steps)]
                run = subprocess.run(cmd, env=env, cwd="/", capture_output=True, text=True, check=True)
                times[label].append(float(run.stdout.strip().splitlines()[-1]))
        first = np.array(times[variants[0][0]])
        print(f"{backend}: µs per env step, median of {rounds} rounds (ratio to the first row, per round)")
        for label, t in times.items():
            print(f"  {label:<45} {np.median(t):>8.1f}   ratio {np.median(np.array(t) / first):.2f}   {t}")


def worker(old_path: str | None, rounds: int) -> dict:
    rows = build(old_path)
    out = {}
    for name, (old, new, calls) in rows.items():
        for fn in (old, new):
            if fn is not None:
                for _ in range(3):  # compile, warm up
                    fn()
        times = {"old": [], "new": []}
        for _ in range(rounds):
            if old is not None:
                times["old"].append(block(old, calls))
            times["new"].append(block(new, calls))
        out[name] = times
    return out


def report(label: str, result: dict) -> None:
    print(label)
    for name, times in result.items():
        new = np.median(times["new"])
        if times["old"]:
            old = np.median(times["old"])
            ratio = np.median(np.array(times["new"]) / np.array(times["old"]))
            print(f"  {name:<28} {old:>10.1f} µs {new:>10.1f} µs   ratio {ratio:.2f}")
        else:
            print(f"  {name:<28} {'':>13} {new:>10.1f} µs")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", help="an earlier kerlym/compiled.py to compare with")
    p.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    p.add_argument("--jax-async", nargs="+", type=int, default=[1, 0], help="JAX's CPU async dispatch settings")
    p.add_argument("--rounds", type=int, default=30, help="timed blocks per row and side")
    p.add_argument("--loop", nargs="+", metavar="TREE", help="time training loops of these kerlym source trees")
    p.add_argument("--loop-steps", type=int, default=10_000)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--loop-worker", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.old, args.rounds)))
        return 0
    if args.loop_worker:
        print(loop_worker(args.loop_worker))
        return 0
    if args.loop:
        loop(args.loop, args.backends, args.jax_async, args.rounds, args.loop_steps)
        return 0
    for backend in args.backends:
        for setting in args.jax_async if backend == "jax" else [None]:
            env = {**os.environ, "KERAS_BACKEND": backend}
            label = backend
            if setting is not None:
                env["JAX_CPU_ENABLE_ASYNC_DISPATCH"] = str(setting)
                label += f", async dispatch {'on' if setting else 'off'}"
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--rounds", str(args.rounds)]
            cmd += ["--old", os.path.abspath(args.old)] if args.old else []
            run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            report(label, json.loads(run.stdout.strip().splitlines()[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
