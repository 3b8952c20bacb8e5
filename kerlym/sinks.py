"""Where a run's rows go: the console, a progress bar, ``progress.csv``, the live plot and TensorBoard.

(MLflow and Weights & Biases are sinks too, in :mod:`kerlym.tracking`.)

A sink is any object with ``on_episode(runner, row)``; it may also have
``on_tick(runner)`` (about every 100 env steps), ``on_update(runner, losses)``
(after each step or episode end in which the network was trained, with the new
losses), ``on_eval(runner, mean, std, best)``, ``on_games(runner, games)`` (with
``--eval_opponents``: each opponent's results, :func:`kerlym.stats.opponent_results`)
and ``close()``.
:class:`kerlym.runner.Runner` calls them in order.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

# Printed once above the first episode line: what each column is.
HEADER = (
    "   Episode: its number  Frame: its steps  Reward: its return  "
    "Loss: mean over its updates ('no update': nothing was trained)\n"
    "   | total env steps, steps/s, epsilon (DQN), mean return of the last 100 episodes"
)


def status(runner) -> str:
    """One line: steps, speed, epsilon (DQN) and the mean return of the last 100 episodes."""
    agent = runner.agent
    recent = [r["reward"] for r in agent.episodes[-100:]]
    mean = sum(recent) / len(recent) if recent else float("nan")
    eps = agent.epsilon
    eps_text = f"  epsilon {eps:.3f}" if eps is not None else ""
    return f"{agent.total_steps} steps  {runner.speed():.0f} steps/s{eps_text}  mean reward (last 100) {mean:.2f}"


def episode_line(row, runner) -> str:
    """An episode's console line; an episode without an update says so rather than print a NaN loss."""
    loss = "  no update" if math.isnan(row["loss"]) else f"Loss {row['loss']:8.4g}"
    return (
        f" * Episode {row['episode']:08d}  Frame {row['length']:6d}  Reward {row['reward']:9.2f}  {loss:>13}  "
        f"| {status(runner)}"
    )


class Console:
    """A line per episode (or, ``quiet``, a status line every 10 s), and each evaluation's result.

    Args:
        quiet: no episode lines; a status line every ``every_seconds`` instead (none with a ``bar``).
        bar: a :class:`ProgressBar` that lines are written above, so they never break it.
    """

    def __init__(self, quiet: bool = False, every_seconds: float = 10.0, bar: ProgressBar | None = None):
        self.quiet = quiet
        self.every = every_seconds
        self.bar = bar
        self.last = time.perf_counter()
        self.header_shown = False

    def _print(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def on_episode(self, runner, row) -> None:
        if self.quiet:
            return
        if not self.header_shown:
            self.header_shown = True
            self._print(HEADER)
        self._print(episode_line(row, runner))

    def on_tick(self, runner) -> None:
        now = time.perf_counter()
        if self.quiet and self.bar is None and now - self.last >= self.every:
            self.last = now
            self._print(f"   ... {status(runner)}")

    def on_eval(self, runner, mean, std, best) -> None:
        note = "  (best so far: saved best.keras)" if best else ""
        against = f" against {runner.eval_opponents[0]}" if runner.eval_opponents else ""
        self._print(f"   eval at {runner.agent.total_steps} steps{against}: {mean:.2f} ± {std:.2f}{note}")

    def on_games(self, runner, games) -> None:
        from kerlym.stats import game_results_text

        for name, results in games.items():
            step = runner.agent.total_steps
            self._print(f"   eval at {step} steps, games against {name}: {game_results_text(results)}")


class ProgressBar:
    """A tqdm bar with an ETA over a bounded run: steps/s, epsilon and the recent mean return beside it.

    Args:
        total: the run's bound, in env steps or (``unit="episodes"``) episodes, counted from 0.
        done: how much of ``total`` was done before (a resumed run).
        unit: ``"steps"`` or ``"episodes"``.
        file: the stream the bar is drawn on (tqdm's default, stderr, when ``None``).
    """

    def __init__(self, total: int, done: int = 0, unit: str = "steps", file=None):
        from tqdm import tqdm

        self.unit = unit
        self.file = file  # tqdm's own default (stderr) when None
        self.bar = tqdm(
            total=total, initial=min(done, total), unit=unit[:-1], dynamic_ncols=True, leave=True, file=file
        )

    def write(self, text: str) -> None:
        """Print a line above the bar (to stdout; the bar's own stream when one was given)."""
        self.bar.write(text, file=self.file)

    def _advance(self, runner) -> None:
        agent = runner.agent
        now = agent.total_steps if self.unit == "steps" else agent.episode
        if now > self.bar.n:
            self.bar.update(min(now, self.bar.total) - self.bar.n)
        recent = [r["reward"] for r in agent.episodes[-100:]]
        post = {} if self.unit == "steps" else {"steps/s": f"{runner.speed():.0f}"}  # tqdm's own rate is steps/s
        if agent.epsilon is not None:
            post["eps"] = f"{agent.epsilon:.3f}"
        if recent:
            post["return(100)"] = f"{sum(recent) / len(recent):.2f}"
        self.bar.set_postfix(post, refresh=False)

    def on_episode(self, runner, row) -> None:
        self._advance(runner)

    def on_tick(self, runner) -> None:
        self._advance(runner)

    def close(self) -> None:
        self.bar.close()


def progress_bar(steps: int | None, episodes: int | None, agent, stream=None) -> ProgressBar | None:
    """A :class:`ProgressBar` when the run is bounded and ``stream`` (stdout) is a terminal, else ``None``.

    ``steps`` and ``episodes`` are the run's totals (a resumed run has done part of them already);
    a bound in steps wins when both are given. Logs and CI (no terminal) get no bar.
    """
    stream = sys.stdout if stream is None else stream
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    if steps is not None:
        return ProgressBar(steps, agent.total_steps, "steps")
    if episodes is not None:
        return ProgressBar(episodes, agent.episode, "episodes")
    return None


def extra_columns(agent) -> tuple[str, ...]:
    """The columns of ``agent``'s episode rows after the common ones: its ``metric_names``, and with actors
    (``--actors process`` or ``ray``) ``weight_lag``, the mean age in learner updates of the weights that acted."""
    extra = tuple(agent.metric_names)
    return extra + (("weight_lag",) if agent.config.actors != "local" else ())


class ProgressFile:
    """Appends each episode's row to the run's ``progress.csv``, with the ``extra`` columns the agent's rows carry."""

    def __init__(self, run_dir: str, extra=()):
        from kerlym import runs
        from kerlym.stats import ProgressCSV

        self.csv = ProgressCSV(os.path.join(run_dir, runs.PROGRESS), extra)

    def on_episode(self, runner, row) -> None:
        self.csv.write(row)

    def close(self) -> None:
        self.csv.close()


class LivePlot:
    """The original's 2x2 figure (2x3 for agents with metrics of their own, the actor-critic agents), redrawn
    every ``plot_rate`` episodes and saved as ``training.png``.

    Args:
        folder: where ``training.png`` goes.
        agent: the agent: its rows are drawn, its ``value_estimates`` and ``metric_names`` choose the panels.
        env_id: the env's name, in the title.
        plot_rate: episodes between redraws, and the bin size.
    """

    def __init__(self, folder: str, agent, env_id: str, plot_rate: int):
        from kerlym import runs
        from kerlym.plots import TrainingPlot

        self.agent, self.rate = agent, plot_rate
        path = os.path.join(folder, runs.PLOT)
        self.plot = TrainingPlot(
            agent.name,
            env_id,
            path,
            plot_rate,
            live=True,
            values=agent.value_estimates,
            actor_critic=bool(agent.metric_names),
        )
        if agent.episodes:  # a resumed run
            self._earlier_win_rates(os.path.join(folder, runs.EVALUATIONS))
        self.plot.update(agent.episodes)

    def _earlier_win_rates(self, path: str) -> None:
        """A resumed run's win rates so far (``evaluations.csv`` with ``--eval_opponents``), each at the episode
        count its evaluation was made at."""
        import csv

        try:
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("opponent") and r.get("win_rate_hi")]
        except OSError:
            return
        for row in rows:
            try:
                step, rate = int(row["total_steps"]), float(row["win_rate"])
                low, high = float(row["win_rate_lo"]), float(row["win_rate_hi"])
            except ValueError:  # a cut row: the plot goes without it
                continue
            episode = sum(1 for r in self.agent.episodes if r["total_steps"] <= step)
            self.plot.add_win_rates(episode, {row["opponent"]: {"win_rate": rate, "win_rate_95": [low, high]}})

    def on_episode(self, runner, row) -> None:
        if row["episode"] % self.rate == 0:
            self.plot.update(self.agent.episodes)

    def on_games(self, runner, games) -> None:
        """An evaluation's win rate against each opponent (``--eval_opponents``): a line per opponent."""
        self.plot.add_win_rates(runner.agent.episode, games)
        self.plot.update(self.agent.episodes)

    def close(self) -> None:
        self.plot.update(self.agent.episodes)
        self.plot.close()


class TensorBoard:
    """TensorBoard event files in ``log_dir``, written with ``tf.summary`` on every Keras backend.

    Per episode: ``episode/reward``, ``episode/length``, ``episode/max_q`` and ``episode/min_q``
    (the mean over its steps, DQN) and ``episode/epsilon``. Per update, batched to about every
    100 env steps: ``train/loss`` (the mean of the losses since the last write) and ``train/updates``;
    with each tick ``train/epsilon`` and ``time/steps_per_second``. Each evaluation:
    ``eval/mean_return`` and ``eval/std_return``, and with ``--eval_opponents`` per opponent
    ``eval/win_rate/OPPONENT`` (``:`` written ``_``: ``eval/win_rate/mcts_200``). The x axis is env
    steps. ``config`` is written once as text (``config``).

    Args:
        log_dir: the folder the event files go in (``<run_dir>/tensorboard`` for the command).
        config: the run's settings, written as JSON text.
    """

    def __init__(self, log_dir: str, config: dict | None = None):
        import keras
        import tensorflow as tf

        if keras.backend.backend() != "tensorflow":
            try:  # TensorFlow only writes files here: keep it off the accelerator the backend uses
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError:  # already initialized by someone else
                pass
        self.tf = tf
        self.log_dir = log_dir
        self.writer = tf.summary.create_file_writer(log_dir)
        self.losses: list[float] = []
        self.step = 0  # the newest env step written, for losses still pending at close
        if config is not None:
            text = json.dumps(config, indent=2, sort_keys=True, default=str)
            self._write(lambda: tf.summary.text("config", "```\n" + text + "\n```", step=0))

    def _write(self, fn) -> None:
        with self.writer.as_default():
            fn()

    def _scalars(self, values: dict, step: int) -> None:
        with self.writer.as_default():
            for name, value in values.items():
                if value is not None and math.isfinite(value):
                    self.tf.summary.scalar(name, value, step=step)

    def on_episode(self, runner, row) -> None:
        keys = ("reward", "length", "max_q", "min_q", "epsilon")
        self.step = row["total_steps"]
        self._scalars({f"episode/{k}": float(row[k]) for k in keys if k in row}, self.step)

    def on_update(self, runner, losses) -> None:
        self.losses.extend(losses)

    def on_tick(self, runner) -> None:
        agent = runner.agent
        values = {"time/steps_per_second": runner.speed(), "train/updates": float(agent.updates)}
        if agent.epsilon is not None:
            values["train/epsilon"] = float(agent.epsilon)
        if self.losses:
            values["train/loss"] = sum(self.losses) / len(self.losses)
            self.losses = []
        self.step = agent.total_steps
        self._scalars(values, self.step)

    def on_eval(self, runner, mean, std, best) -> None:
        self._scalars({"eval/mean_return": mean, "eval/std_return": std}, runner.agent.total_steps)

    def on_games(self, runner, games) -> None:
        rates = {f"eval/win_rate/{name.replace(':', '_')}": g["win_rate"] for name, g in games.items()}
        self._scalars(rates, runner.agent.total_steps)

    def close(self) -> None:
        if self.losses:
            self._scalars({"train/loss": sum(self.losses) / len(self.losses)}, self.step)
            self.losses = []
        self.writer.flush()
        self.writer.close()
