"""A sweep's summary: ``summary.csv``, ``summary.md`` and ``curve.png`` from its runs' ``evaluation.json``."""

from __future__ import annotations

import json
import math
import os

from kerlym import runs
from kerlym.checkpoints import read_evaluation

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
CURVE = "curve.png"


def smoothed_curve(rows: list[dict], window: int = 10):
    """Steps at each episode's end and the mean return of the last ``window`` episodes there."""
    import numpy as np

    steps = np.array([r["total_steps"] for r in rows], dtype=np.float64)
    rewards = np.array([r["reward"] for r in rows], dtype=np.float64)
    cumsum = np.concatenate([[0.0], np.cumsum(rewards)])
    idx = np.arange(1, len(rewards) + 1)
    start = np.maximum(idx - window, 0)
    return steps, (cumsum[idx] - cumsum[start]) / (idx - start)


def mean_curve(curves: list[tuple], points: int = 100):
    """Mean and std across runs of ``(steps, values)`` curves, interpolated on a common step grid.

    The grid spans the steps every run covers: from the latest first point to the earliest last point.
    """
    import numpy as np

    lo, hi = max(c[0][0] for c in curves), min(c[0][-1] for c in curves)
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([hi])
    values = np.array([np.interp(grid, s, v) for s, v in curves])
    return grid, values.mean(axis=0), values.std(axis=0)


def summarize(sweep_dir: str, folders: dict, label: str = "seed", params: dict | None = None) -> list[dict]:
    """Write ``summary.csv``, ``summary.md`` and ``curve.png`` for the finished runs in ``folders``.

    Args:
        sweep_dir: the sweep folder.
        folders: label (a seed, a trial id) -> run folder.
        label: the first column's name.
        params: label -> the searched settings of that run (``--tune``), added as columns.

    Returns:
        The summary's rows (runs without an ``evaluation.json`` are left out).
    """
    import csv

    from kerlym.stats import read_progress

    params = params or {}
    names = sorted({k for p in params.values() for k in p})
    rows, curves = [], {}
    for key, folder in folders.items():
        ev = read_evaluation(folder)
        status = "finished"
        if ev is None and params:  # a --tune trial that ASHA stopped early: its last evaluation
            ev, status = _last_evaluation(folder), "stopped"
        if ev is None:
            continue
        rows.append(
            {
                label: key,
                **({"status": status} if params else {}),
                **{n: params.get(key, {}).get(n) for n in names},
                "eval_mean": ev["mean"],
                "eval_std": ev["std"],
                "eval_episodes": ev["episodes"],
                "steps": ev["total_steps"],
                "wall_s": round(ev["wall_time"], 1),
            }
        )
        progress = read_progress(os.path.join(folder, runs.PROGRESS))
        if progress:
            curves[key] = smoothed_curve(progress)
    if not rows:
        return rows
    with open(os.path.join(sweep_dir, SUMMARY_CSV), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    table = markdown_table(rows, label)
    with open(os.path.join(sweep_dir, SUMMARY_MD), "w") as f:
        f.write(table + "\n")
    if curves:
        plot_curves(os.path.join(sweep_dir, CURVE), curves, label, mean=label == "seed")
    return rows


def _last_evaluation(run_dir: str) -> dict | None:
    """A run's last row of ``evaluations.csv`` in ``evaluation.json``'s form (``None`` if it has none)."""
    from kerlym.stats import read_progress

    try:
        with open(os.path.join(run_dir, runs.EVALUATIONS)) as f:
            lines = f.read().strip().splitlines()
        last = lines[-1].split(",")
        if "opponent" in lines[0].split(","):  # --eval_opponents: the last evaluation's first row, the first opponent
            step = last[0]
            last = next(line for line in lines[1:] if line.split(",")[0] == step).split(",")
        step, mean, std = int(last[0]), float(last[1]), float(last[2])
    except (OSError, IndexError, ValueError):  # no evaluation yet (only the header, or no file)
        return None
    with open(os.path.join(run_dir, runs.CONFIG)) as f:
        episodes = json.load(f)["eval_episodes"]
    rows = read_progress(os.path.join(run_dir, runs.PROGRESS), until_step=step)
    wall = rows[-1]["wall_time"] if rows else math.nan
    return {"mean": mean, "std": std, "episodes": episodes, "total_steps": step, "wall_time": wall}


def markdown_table(rows: list[dict], label: str = "seed") -> str:
    """Each run's greedy evaluation as a markdown table, and the mean ± std over runs."""
    import numpy as np

    head = [k for k in rows[0] if k not in ("eval_mean", "eval_std", "eval_episodes")]
    finished = [r for r in rows if r.get("status", "finished") == "finished"]
    lines = [
        "| " + " | ".join(head[:1] + ["greedy return"] + head[1:]) + " |",
        "|" + "---|" * (len(head) + 1),
    ]
    for r in rows:
        ret = f"{r['eval_mean']:.2f} ± {r['eval_std']:.2f} ({r['eval_episodes']} ep.)"
        cells = [str(r[head[0]]), ret] + [_cell(r[k]) for k in head[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    if finished:
        means = np.array([r["eval_mean"] for r in finished])
        which = "finished " if "status" in rows[0] else ""
        lines.append(f"\nmean over {len(finished)} {which}{label}s: {means.mean():.2f} ± {means.std():.2f}")
    return "\n".join(lines)


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot_curves(path: str, curves: dict, label: str, mean: bool = True) -> None:
    """The learning curves (mean return of the last 10 episodes vs env steps): mean ± std across runs, or each."""
    from kerlym.plots import _pyplot

    plt = _pyplot(live=False)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if mean:
        grid, m, s = mean_curve(list(curves.values()))
        ax.fill_between(grid, m - s, m + s, alpha=0.3, label="±1 std across seeds")
        ax.plot(grid, m, label=f"mean of {len(curves)} seeds")
    else:
        for key, (steps, values) in curves.items():
            ax.plot(steps, values, linewidth=1, label=f"{label} {key}")
    ax.set(xlabel="env steps", ylabel="episode return (mean of last 10)", title="Learning curves")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


