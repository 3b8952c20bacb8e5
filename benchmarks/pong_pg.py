"""Policy gradient on Pong from pixels: how far it gets on this CPU.

    KERAS_BACKEND=jax python benchmarks/pong_pg.py --minutes 55          # train, then summarise
    python benchmarks/pong_pg.py --run runs/Pong-v0-pg-...               # summarise an existing run

Training is ``examples/pg_pong.sh`` (Karpathy's setup: 80x80 binary difference
frames, a 200-unit policy network, RMSprop 1e-3, the return reset at each
point) stopped with Ctrl-C (SIGINT) after the time budget, which checkpoints the
run. The summary reports Karpathy's running reward (an exponential average,
0.99 per episode, started at -21) and writes the curve to
``benchmarks/results/pong_pg.png``.
"""

import argparse
import csv
import os
import signal
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def train(minutes: float, outdir: str, seed: int) -> str:
    script = os.path.join(HERE, "..", "examples", "pg_pong.sh")
    proc = subprocess.Popen(
        ["bash", script, "--seed", str(seed), "-q", "--outdir", outdir, "--checkpoint_every", "100000"],
        start_new_session=True,
    )
    try:
        proc.wait(timeout=minutes * 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # the CLI saves a checkpoint and exits 0
        proc.wait()
    runs = sorted(os.path.join(outdir, d) for d in os.listdir(outdir) if d.startswith("Pong-v0-pg-"))
    return runs[-1]


def summarise(run: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(os.path.join(run, "progress.csv")) as f:
        rows = list(csv.DictReader(f))
    rewards = np.array([float(r["reward"]) for r in rows])
    frames = np.array([int(r["total_steps"]) for r in rows])
    running, value = np.empty(len(rewards)), -21.0
    for i, r in enumerate(rewards):
        value = 0.99 * value + 0.01 * r
        running[i] = value
    hours = float(rows[-1]["wall_time"]) / 3600
    print(f"run: {run}")
    print(f"episodes {len(rows)}, agent steps {frames[-1]:,} (Pong-v0 repeats each for 2-4 frames), {hours:.2f} h")
    for lo in range(0, len(rewards), max(1, len(rewards) // 8)):
        hi = min(len(rewards), lo + max(1, len(rewards) // 8))
        print(
            f"  episodes {lo + 1:5d}-{hi:5d}: mean reward {rewards[lo:hi].mean():6.2f}, running {running[hi - 1]:6.2f}"
        )
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(frames, rewards, ".", markersize=2, alpha=0.4, label="episode reward")
    ax.plot(frames, running, label="running reward (0.99 EMA)")
    ax.set(title=f"PG on Pong-v0 from pixels ({hours:.1f} h on 2 CPU cores)", xlabel="agent steps", ylabel="reward")
    ax.legend()
    fig.tight_layout()
    out = os.path.join(HERE, "results", "pong_pg.png")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"curve: {out}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="summarise this existing run folder instead of training")
    p.add_argument("--minutes", type=float, default=55.0)
    p.add_argument("--outdir", default="runs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    summarise(args.run or train(args.minutes, args.outdir, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
