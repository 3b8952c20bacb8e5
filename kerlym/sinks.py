"""Where a run's rows go: the console, ``progress.csv`` and the live plot.

A sink is any object with ``on_episode(runner, row)``; it may also have
``on_tick(runner)`` (about every 100 env steps), ``on_eval(runner, mean, std,
best)`` and ``close()``. :class:`kerlym.runner.Runner` calls them in order.
"""

from __future__ import annotations

import math
import os
import time


def status(runner) -> str:
    """One line: steps, speed, epsilon (DQN) and the mean return of the last 100 episodes."""
    agent = runner.agent
    recent = [r["reward"] for r in agent.episodes[-100:]]
    mean = sum(recent) / len(recent) if recent else float("nan")
    eps = getattr(agent, "epsilon", None)
    eps_text = f"  epsilon {eps:.3f}" if eps is not None else ""
    return f"{agent.total_steps} steps  {runner.speed():.0f} steps/s{eps_text}  mean reward (last 100) {mean:.2f}"


class Console:
    """A line per episode (or, ``quiet``, a status line every 10 s), and each evaluation's result."""

    def __init__(self, quiet: bool = False, every_seconds: float = 10.0):
        self.quiet = quiet
        self.every = every_seconds
        self.last = time.perf_counter()

    def on_episode(self, runner, row) -> None:
        if self.quiet:
            return
        # No update in the episode: say so rather than print a NaN loss.
        loss = "  no update" if math.isnan(row["loss"]) else f"Loss {row['loss']:8.4g}"
        print(
            f" * Episode {row['episode']:08d}  Frame {row['length']:6d}  Reward {row['reward']:9.2f}  {loss:>13}  "
            f"| {status(runner)}",
            flush=True,
        )

    def on_tick(self, runner) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            print(f"   ... {status(runner)}", flush=True)

    def on_eval(self, runner, mean, std, best) -> None:
        note = "  (best so far: saved best.keras)" if best else ""
        print(f"   eval at {runner.agent.total_steps} steps: {mean:.2f} ± {std:.2f}{note}", flush=True)


class ProgressFile:
    """Appends each episode's row to the run's ``progress.csv``."""

    def __init__(self, run_dir: str):
        from kerlym import runs
        from kerlym.stats import ProgressCSV

        self.csv = ProgressCSV(os.path.join(run_dir, runs.PROGRESS))

    def on_episode(self, runner, row) -> None:
        self.csv.write(row)

    def close(self) -> None:
        self.csv.close()


class LivePlot:
    """The original's 2x2 figure, redrawn every ``plot_rate`` episodes and saved as ``training.png``."""

    def __init__(self, run_dir: str, agent_name: str, env_id: str, plot_rate: int, rows: list[dict], values=True):
        from kerlym import runs
        from kerlym.plots import TrainingPlot

        self.rows, self.rate = rows, plot_rate  # the agent's own list of rows: it grows as episodes end
        self.plot = TrainingPlot(
            agent_name, env_id, os.path.join(run_dir, runs.PLOT), plot_rate, live=True, values=values
        )
        self.plot.update(rows)

    def on_episode(self, runner, row) -> None:
        if row["episode"] % self.rate == 0:
            self.plot.update(self.rows)

    def close(self) -> None:
        self.plot.update(self.rows)
        self.plot.close()
