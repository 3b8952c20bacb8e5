"""The fused JAX path and the Gymnasium path train the same PPO: greedy returns over seeds, side by side.

    KERAS_BACKEND=jax python benchmarks/fused_maths.py --seeds 0 1 2 3 4     # results/fused_maths.json

For each seed, two fresh processes on Keras's JAX backend (who goes first alternates): PPO with
kerlym's CartPole-v1 preset, ``kerlym.make(ENV, "ppo", preset=True, cli_defaults=True, seed=S)``,
on ``gymnax:CartPole-v1`` (the fused path: rollouts, GAE and the minibatch epochs compiled in
chunks) and on Gymnasium's ``CartPole-v1`` (the step loop), each ``learn``-ing ``--steps`` env
steps and then playing ``--episodes`` greedy episodes (``agent.evaluate``, seeds 10000 + S, ...;
the fused agent on gymnax's CartPole, the other on Gymnasium's, both ending episodes at 500 steps).

The two paths share the settings, the network, the loss (``PPO.loss_fn``) and the acting
(``act_fn``), but not their random numbers (JAX keys against NumPy's generator), so a seed's two
runs differ; what should agree is the distribution over seeds. Printed and saved: each path's
mean ± std over the seeds of the per-seed greedy mean and of the last 10 training episodes' mean
return, and the difference of the greedy means with its standard error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

MARK = "FUSED-MATHS "
PATHS = {"fused": "gymnax:CartPole-v1", "gymnasium": "CartPole-v1"}


def train_and_play(env_id: str, seed: int, steps: int, episodes: int) -> dict:
    """One run: the preset's PPO on ``env_id`` for ``steps`` steps, then ``episodes`` greedy episodes."""
    import kerlym

    start = time.perf_counter()
    agent = kerlym.make(env_id, "ppo", preset=True, cli_defaults=True, seed=seed)
    rows = agent.learn(max_steps=steps, verbose=0, eval_episodes=0)
    returns = agent.evaluate(episodes, seed=10_000 + seed)
    agent.close()
    train = float(np.mean([r["reward"] for r in rows[-10:]])) if rows else float("nan")
    return {
        "steps": agent.total_steps,
        "greedy": float(np.mean(returns)),
        "greedy_returns": [float(r) for r in returns],
        "train_return": train,
        "seconds": time.perf_counter() - start,
    }


def run(path: str, seed: int, steps: int, episodes: int) -> dict:
    """:func:`train_and_play` in a fresh process on Keras's JAX backend; its row (or one with ``error``)."""
    row = {"path": path, "env": PATHS[path], "seed": seed}
    print(f"-- {path} ({PATHS[path]}), seed {seed} ...", end=" ", flush=True)
    spec = json.dumps({"env_id": PATHS[path], "seed": seed, "steps": steps, "episodes": episodes})
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", spec], env=env, capture_output=True)
    lines = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith(MARK)]
    if proc.returncode == 0 and lines:
        row.update(json.loads(lines[-1][len(MARK) :]))
        print(f"greedy {row['greedy']:.1f}, training {row['train_return']:.1f}, {row['seconds']:.0f} s", flush=True)
    else:
        row["error"] = (proc.stderr.decode().strip().splitlines() or ["no output"])[-1]
        print("FAILED: " + row["error"], flush=True)
    return row


def summarise(rows: list[dict]) -> list[str]:
    """Each path's mean ± std over seeds (greedy and training returns), and fused minus Gymnasium with its SE."""
    lines = ["| path | seeds | greedy return, mean ± std over seeds | last 10 training episodes | per seed (greedy) |"]
    lines.append("| --- | --- | --- | --- | --- |")
    greedy = {}
    for path in PATHS:
        rs = [r for r in rows if r["path"] == path and "error" not in r]
        if not rs:
            continue
        g, t = np.array([r["greedy"] for r in rs]), np.array([r["train_return"] for r in rs])
        greedy[path] = g
        per = ", ".join(f"{x:.1f}" for x in g)
        lines.append(
            f"| {path} ({PATHS[path]}) | {len(rs)} | {g.mean():.1f} ± {g.std():.1f} | {t.mean():.1f} ± {t.std():.1f} | "
            f"{per} |"
        )
    if len(greedy) == 2 and min(len(g) for g in greedy.values()) > 1:
        a, b = greedy["fused"], greedy["gymnasium"]
        se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        lines.append(f"fused - gymnasium greedy mean: {a.mean() - b.mean():+.1f} (standard error {se:.1f})")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--steps", type=int, default=100_000, help="env steps per run (the preset's 100k)")
    p.add_argument("--episodes", type=int, default=20, help="greedy episodes per run")
    p.add_argument(
        "--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "fused_maths.json")
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(MARK + json.dumps(train_and_play(**json.loads(args.worker))), flush=True)
        return 0
    rows = []
    for i, seed in enumerate(args.seeds):
        order = list(PATHS) if i % 2 == 0 else list(PATHS)[::-1]  # a drift in the machine falls on both
        rows += [run(path, seed, args.steps, args.episodes) for path in order]
    lines = summarise(rows)
    print("\n".join(["", *lines]))
    from speed import write_rows  # benchmarks/ is the script's folder, on sys.path

    return write_rows(args, rows)


if __name__ == "__main__":
    raise SystemExit(main())
