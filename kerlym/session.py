"""The training session: what ``kerlym``, ``--seeds``/``--tune`` and ``Agent.learn`` all run.

One function, :func:`train`, takes a built agent and the run's settings and
does, in order: restore a checkpoint (trimming ``progress.csv`` to it), or on a
new run start from a saved run's weights (``--trained-agent``), write
``config.json``, choose the sinks (console, progress bar, ``progress.csv``,
the live plot, TensorBoard), run the :class:`~kerlym.runner.Runner`, and end
with a greedy evaluation of the weights ``--play`` would use, written to
``evaluation.json``. The three front doors differ only in what they pass.

This module imports no agent: an agent hands itself to :func:`train` from
``Agent.learn``, and the command and the sweep build theirs with
:func:`kerlym.make.make` first.
"""

from __future__ import annotations

import numbers
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

from kerlym import checkpoints, runs
from kerlym import config as C
from kerlym._io import end_deferral, first_line, native_stderr_silenced
from kerlym.checkpoints import evaluation_record, weights_label, write_evaluation

TRAINED_AGENT = "trained_agent.json"  # a run started from another run's weights: which ones (--trained-agent)


class Outcome(NamedTuple):
    """What a training session ended with.

    Attributes:
        episodes: the agent's per-episode rows (all of the run's, a resumed run's earlier ones too).
        evaluation: the final greedy evaluation (:func:`kerlym.checkpoints.evaluation_record`'s dict), or
            ``None`` when training was interrupted or ``final_evaluation`` is off.
        interrupted: a signal (Ctrl-C) or ``request_stop`` ended training before its budget.
        checkpoint: the last checkpoint written (``None`` without a run folder).
    """

    episodes: list[dict]
    evaluation: dict | None
    interrupted: bool
    checkpoint: str | None


def restore(agent, checkpoint: str, run_dir: str) -> None:
    """Load ``checkpoint`` into ``agent`` and keep exactly the ``progress.csv`` rows it had counted.

    The checkpoint was written after its step's episodes were counted, so the
    rows up to its step and episode are kept and later ones dropped (they will
    be run again).
    """
    from kerlym.stats import truncate_progress

    with native_stderr_silenced():
        checkpoints.restore_checkpoint(checkpoint, agent)
    if agent.pool is not None and agent.in_flight is None:  # self-play resumes exactly from the games it saved
        print(
            f"kerlym: note: {checkpoint} holds no games in progress (written before 2026-12-07 or after an error); "
            "each env starts a new game, so the run differs from an uninterrupted one",
            file=sys.stderr,
        )
    rows, note = truncate_progress(
        os.path.join(run_dir, runs.PROGRESS), until_step=agent.total_steps, until_episode=agent.episode
    )
    if note:
        print(f"kerlym: note: {note}", file=sys.stderr)
    missing = agent.episode - len({row["episode"] for row in rows})
    if missing > 0:  # an emptied or deleted progress.csv: training goes on, but those rows are gone
        print(
            f"kerlym: note: {os.path.join(run_dir, runs.PROGRESS)} lacks {missing} of the checkpoint's "
            f"{agent.episode} episode rows; the plots and statistics start from the rows it has",
            file=sys.stderr,
        )
    agent.episodes = rows


def default_sinks(
    agent,
    run: C.RunConfig,
    run_dir: str | None,
    tensorboard_dir: str | None = None,
    settings: dict | None = None,
    console: bool = True,
    group: str | None = None,
) -> list:
    """The sinks a run's settings ask for: console and progress bar, ``progress.csv``, the live plot, TensorBoard,
    MLflow and Weights & Biases (:mod:`kerlym.tracking`, imported only when asked for).

    Args:
        agent: the agent (its metric names give ``progress.csv``'s extra columns, and the plot's panels).
        run: ``quiet``, ``steps``/``episodes`` (the bar), ``plots``/``plot_rate``, ``tensorboard``.
        run_dir: where ``progress.csv`` and ``training.png`` go (``None``: no file but the plot, in ``.``).
        tensorboard_dir: the event files' folder (default ``run_dir/tensorboard``).
        settings: written once into TensorBoard as text; MLflow's params and the W&B run's config.
        console: print to the console (episode lines or, ``quiet``, a status line; a progress bar in a terminal).
        group: a sweep's name: its runs share one MLflow experiment and one W&B group.
    """
    from kerlym import sinks

    out: list = []
    if console:
        bar = sinks.progress_bar(run.steps, run.episodes, agent)
        out += [sinks.Console(quiet=run.quiet, bar=bar)] + ([bar] if bar is not None else [])
    if run_dir is not None:
        out.append(sinks.ProgressFile(run_dir, sinks.extra_columns(agent)))
    if run.tensorboard:
        out.append(sinks.TensorBoard(tensorboard_dir or os.path.join(run_dir or ".", "tensorboard"), settings))
    if run.plots:
        out.append(sinks.LivePlot(run_dir or ".", agent, run.env, run.plot_rate))
    if run.mlflow or run.wandb:  # after the plot: at the end, training.png is complete when they log it
        from kerlym import tracking

        name = os.path.basename(os.path.normpath(run_dir)) if run_dir else None
        if run.mlflow:
            out.append(tracking.MLflow(tracking.mlflow_uri(run.mlflow), run_dir, settings or {}, name, group))
        if run.wandb:
            out.append(tracking.WandB(run_dir, settings or {}, name, group))
    return out


def train(
    agent,
    run: C.RunConfig,
    run_dir: str | None = None,
    *,
    resume_from: str | None = None,
    extra_sinks=(),
    signals=(signal.SIGINT, signal.SIGTERM),
    callback: Callable | None = None,
    step_callback: Callable | None = None,
    submit_stats: list | None = None,
    tensorboard_dir: str | None = None,
    console: bool = True,
    verbose: bool = True,
    final_evaluation: bool = True,
    group: str | None = None,
    train_nothing: bool = False,
) -> Outcome:
    """Run one training session of ``agent`` until ``run.steps`` or ``run.episodes`` in total, then evaluate it.

    Args:
        agent: a built agent (:func:`kerlym.make.make`, or the agent whose ``learn`` called this).
        run: the run's config: the budget (totals, so a resumed run trains what is left), the checkpoint and
            evaluation schedule, ``eval_episodes`` for the final greedy evaluation, the sinks wanted,
            ``submit`` for the ``-S`` bundle.
        run_dir: the run folder, which the caller has locked (``None``: nothing is written; ``Agent.learn``).
        resume_from: a checkpoint folder to restore first.
        extra_sinks: sinks added to :func:`default_sinks`' (a sweep's reporter to Ray Tune).
        signals: the signals that stop training after the current step (and save, with a run folder).
        callback: ``callback(agent, row)`` after each episode; ``True`` stops training.
        step_callback: ``step_callback(agent)`` about every 100 env steps.
        submit_stats: Gymnasium's ``RecordEpisodeStatistics`` wrappers of the training env (``-S``).
        tensorboard_dir: where TensorBoard's event files go (default ``run_dir/tensorboard``).
        console: episode lines or status lines on the console (see :func:`default_sinks`).
        verbose: print the session's own lines (run folder, how it ended, the evaluation).
        final_evaluation: end with a greedy evaluation of ``run.eval_episodes`` episodes (unless interrupted).
        group: a sweep's name: its runs share one MLflow experiment and one W&B group (``run.mlflow``, ``run.wandb``).
        train_nothing: take no step whatever the budget, then evaluate (``Agent.learn(0)``).

    Returns:
        The :class:`Outcome`.

    Raises:
        kerlym.runner.NonFiniteLoss: an update's loss was NaN or inf; checkpoints before it are kept.
        CheckpointError: a run folder file could not be read or written (one line).
    """
    from kerlym.runner import Runner

    say = print if verbose else (lambda *a, **k: None)
    if resume_from is not None:
        restore(agent, resume_from, run_dir)
        say(f"resumed {run_dir} at step {agent.total_steps}, episode {agent.episode}")
    settings = {**C.to_dict(run), **C.to_dict(agent.config)}
    if run.trained_agent and resume_from is None and agent.total_steps == 0:  # a new run from a saved one's weights
        _start_from(agent, run, run_dir, say)
    if run.pretrain and resume_from is None:  # a resumed run's weights are the checkpoint's, pretrained or not
        _pretrain(agent, run, run_dir, say)  # before the config: a Ctrl-C in it leaves no run folder behind
    if run_dir is not None:
        runs.write_config(run_dir, settings)
        say(f"run folder: {run_dir}")
    note = opponent_note(agent, run) if resume_from is None and not run.quiet else None
    if note and verbose:
        print(f"kerlym: note: {note}", file=sys.stderr, flush=True)
    wall_before = float(agent.episodes[-1].get("wall_time", 0.0)) if agent.episodes else 0.0
    t0 = time.perf_counter()
    outputs = default_sinks(agent, run, run_dir, tensorboard_dir, settings, console, group) + list(extra_sinks)
    trackers = [sink for sink in outputs if hasattr(sink, "finish")]  # MLflow, W&B: ended after the evaluation
    for tracker in trackers:
        say(tracker.where)
    evaluation, status = None, "FAILED"
    try:
        runner = Runner(
            agent,
            run_dir,
            outputs,
            checkpoint_every=run.checkpoint_every,
            eval_every=run.eval_every,
            eval_episodes=run.eval_episodes,
            search=run.search,
            save_memory=run.save_memory,
            signals=signals,
            eval_opponents=run.eval_opponents,
            opponent_env=opponent_env_maker(agent, run) if run.eval_opponents else None,
        )
        steps_left = 0 if train_nothing else None if run.steps is None else max(0, run.steps - agent.total_steps)
        episodes_left = None if run.episodes is None else max(0, run.episodes - agent.episode)
        runner.run(
            max_steps=steps_left,
            max_episodes=episodes_left,
            callback=callback,
            step_callback=step_callback,
            final_evaluation=final_evaluation,
        )
        end_deferral()  # from here a Ctrl-C interrupts as usual (the results bundle takes it)
        interrupted = bool(runner.interrupted)
        _report_actors(runner.actor_summary, say)
        if run_dir is not None:
            if interrupted:
                say(f"\ninterrupted at step {agent.total_steps}: checkpoint saved in {runner.last_checkpoint}")
                say(f"continue with: kerlym --resume {run_dir}")
            else:
                say(f"finished at step {agent.total_steps}; checkpoint saved in {runner.last_checkpoint}")
            if run.plots:
                say(f"plot: {os.path.join(run_dir, runs.PLOT)}")
        if runner.last_evaluation is not None and runner.last_evaluation[0] == agent.total_steps and not interrupted:
            evaluation = _final_evaluation(runner, run, run_dir, wall_before + time.perf_counter() - t0)
            say(
                f"evaluation: {evaluation['mean']:.2f} ± {evaluation['std']:.2f} over {evaluation['episodes']} greedy "
                f"episodes (weights: {evaluation['weights']})"
            )
            from kerlym.stats import game_results_text

            for name, games in (evaluation.get("opponents") or {}).items():
                say(f"games against {name}: {game_results_text(games)}")
            if "wins" in evaluation and "opponents" not in evaluation:
                say(f"games: {game_results_text(evaluation)}")
        status = "KILLED" if interrupted else "FINISHED"
    finally:
        for tracker in trackers:
            tracker.finish(agent, run_dir, settings, evaluation, status)
    if run.submit and run_dir is not None:  # after Ctrl-C too: the bundle of what was trained so far
        from kerlym.bundle import write_bundle

        try:
            say(f"results bundle: {write_bundle(run, run_dir, agent, submit_stats, evaluation=evaluation)}")
        except KeyboardInterrupt:  # a second Ctrl-C: the checkpoint is safe; only the bundle is cut short
            print("\nkerlym: note: results bundle not finished (interrupted again)", file=sys.stderr)
    return Outcome(agent.episodes, evaluation, interrupted, runner.last_checkpoint)


def _start_from(agent, run: C.RunConfig, run_dir: str | None, say) -> None:
    """``--trained-agent RUN_DIR``: the new agent's networks start from the weights of the saved run (those
    ``--play`` uses, or ``--weights``'s), which ``trained_agent.json`` in the new run folder names.

    Raises:
        CheckpointError: the saved run, its checkpoint or model is unreadable, or its network is not this agent's.
        kerlym.config.ConfigError: ``--weights average`` of a run without a weight average.
    """
    import json

    source = run.trained_agent
    saved = runs.read_config(source)
    averaged = isinstance(saved, dict) and saved.get("ema_steps") is not None
    with native_stderr_silenced():  # Keras's start-up logs, when a .keras file is loaded
        weights, phrase = checkpoints.pick_weights(source, run.trained_weights, averaged)
    try:
        agent.start_from(weights)
    except ValueError as e:
        raise checkpoints.CheckpointError(
            f"--trained-agent: the {phrase} does not fit this agent's network (built with the same -a, network, "
            f"--net-kwargs and observation settings?): {first_line(e)}"
        ) from None
    say(f"starting from the {phrase}")
    if run_dir is not None:
        from kerlym._io import atomic_write

        record = {"trained_agent": os.path.abspath(source), "weights": phrase}
        atomic_write(os.path.join(run_dir, TRAINED_AGENT), json.dumps(record, indent=2, sort_keys=True) + "\n")


def _pretrain(agent, run: C.RunConfig, run_dir: str | None, say) -> None:
    """``--pretrain``: behaviour cloning into the agent's network (:mod:`kerlym.pretrain`), recorded in
    ``pretrain.json`` in the run folder."""
    import json

    from kerlym.pretrain import RECORD, pretrain

    summary = pretrain(agent, run.pretrain, run.pretrain_epochs, say=say)
    if run_dir is not None:
        from kerlym._io import atomic_write

        atomic_write(os.path.join(run_dir, RECORD), json.dumps(summary, indent=2, sort_keys=True) + "\n")


def learn(
    agent,
    max_steps: int | None = None,
    max_episodes: int | None = None,
    callback: Callable | None = None,
    step_callback: Callable | None = None,
    verbose: int = 1,
    tensorboard: bool | str = False,
    eval_episodes: int | None = None,
    total_timesteps: int | None = None,
    mlflow: bool | str = False,
    wandb: bool = False,
) -> list[dict]:
    """:meth:`kerlym.agents.base.Agent.learn`: the session of an agent without a run folder."""
    for name, value in (
        ("max_steps", max_steps),
        ("max_episodes", max_episodes),
        ("total_timesteps", total_timesteps),
        ("eval_episodes", eval_episodes),
    ):
        if value is None:
            continue
        integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not integer or value < 0:  # 0 trains nothing (then evaluates), as Stable-Baselines3 allows
            error = C.ConfigError if integer else C.ConfigTypeError
            raise error(f"learn(): {name} must be an integer, 0 or more, got {value!r}")
    if total_timesteps is not None:
        if max_steps is not None:
            raise TypeError("give max_steps or total_timesteps (Stable-Baselines3's name for it), not both")
        max_steps = total_timesteps
    env_id = agent.env_id() or type(agent.env.unwrapped).__name__
    run = agent.run_config or C.RunConfig(env=env_id, agent=agent.name)
    train_nothing = max_steps == 0 or max_episodes == 0  # a total of 0 is no --steps a run may have: not set below
    if (max_steps is not None or max_episodes is not None) and not train_nothing:
        steps = None if max_steps is None else agent.total_steps + max_steps
        episodes = None if max_episodes is None else agent.episode + max_episodes
        run = C.replace(run, steps=steps, episodes=episodes)
    changes = {"quiet": False, "plots": agent.enable_plots, "tensorboard": bool(tensorboard), "submit": False}
    if mlflow or wandb:
        from kerlym import tracking

        tracking.check_installed(mlflow, wandb)
        changes.update(mlflow=tracking.mlflow_uri(mlflow), wandb=bool(wandb))
    else:
        changes.update(mlflow=None, wandb=False)
    run = C.replace(run, **changes, **({} if not eval_episodes else {"eval_episodes": eval_episodes}))
    log_dir = None
    if tensorboard:
        from kerlym import runs

        if isinstance(tensorboard, str):
            log_dir = view = tensorboard
        else:
            log_dir = os.path.join(runs.new_run_dir("runs", env_id.replace(":", "_"), agent.name), "tensorboard")
            view = "runs"
        if verbose:
            print(f"TensorBoard: {log_dir}  (view: tensorboard --logdir {view})")
    outcome = train(
        agent,
        run,
        signals=(signal.SIGINT,),
        callback=callback,
        step_callback=step_callback,
        tensorboard_dir=log_dir,
        console=bool(verbose),
        verbose=bool(verbose),
        final_evaluation=eval_episodes != 0,
        train_nothing=train_nothing,
    )
    return outcome.episodes


def _final_evaluation(runner, run: C.RunConfig, run_dir: str | None, wall_time: float) -> dict:
    """The record of the runner's greedy evaluation at the end of training, written to the run folder."""
    agent = runner.agent
    record = evaluation_record(
        run, agent, runner.last_evaluation[1], weights_label(agent), wall_time, opponents=runner.last_games
    )
    if run_dir is not None:
        write_evaluation(run_dir, record)
    return record


def opponent_note(agent, run: C.RunConfig) -> str | None:
    """What a newcomer should know at the start of a two-player game against a strong fixed opponent.

    ``kerlym -e Go9x9-v0`` plays GnuGo, which beats an untrained agent every game, so the rewards never move;
    the line names the opponent and the ways to a run that learns (against GnuGo, cloning its own games too).
    ``None`` for other envs, a random opponent, self-play, and an agent that starts from trained weights
    (``--pretrain``, ``--trained-agent``).
    """
    from kerlym.envs import is_two_player
    from kerlym.envs.go_opponents import opponent_text, parse_opponent

    game = getattr(agent.env, "unwrapped", agent.env)
    name = getattr(game, "opponent_name", None)
    if not is_two_player(game) or getattr(agent.config, "self_play", None) is not None or not isinstance(name, str):
        return None
    if run.pretrain or run.trained_agent:
        return None
    try:
        kind, _ = parse_opponent(name)
    except ValueError:  # not a fixed opponent (self-play's "self")
        return None
    if kind == "random":
        return None
    from kerlym.presets import PRESETS

    loses = "every game against it (reward -1 each episode)" if kind == "gnugo" else "most games against it"
    if (run.env, run.agent) in PRESETS:
        easier = "--preset (kerlym's settings, against random moves)"
    else:
        easier = "--env-kwargs opponent=random (an opponent it can beat)"
    ways = [easier, f"--self-play (-e {run.env} against snapshots of itself)"]
    if kind == "gnugo":
        ways.append("-a ppo -n actor_critic_board -t 1 --env-kwargs planes=mover --pretrain gnugo:0:1200 (GnuGo's own "
                    "games cloned first, benchmarks/README.md)")  # fmt: skip
    return (
        f"{run.env} plays {opponent_text(name)} (opponent {name}), and an untrained agent loses {loses}; "
        f"for a run that learns: {', '.join(ways[:-1])}, or {ways[-1]}"
    )


def opponent_env_maker(agent, run: C.RunConfig) -> Callable:
    """``make(opponent)`` -> a new env of the run's game against ``opponent``, the agent's seat alternating,
    with the agent's preprocessor: what evaluations with ``--eval_opponents`` play on."""
    from kerlym import preproc
    from kerlym.envs import evaluation_env_kwargs, make_env

    def make(opponent: str):
        kwargs = {k: v for k, v in (run.env_kwargs or {}).items() if k != "render_mode"}
        kwargs.update(evaluation_env_kwargs(agent.env, opponent))
        return preproc.apply(make_env(run.env, None, kwargs, run.gym_packages), agent.preprocessor)

    return make


def _report_actors(summary: dict | None, say) -> None:
    if summary:
        restarts = f", {summary['restarts']} restarted" if summary.get("restarts") else ""
        say(
            f"{summary['actors']}: {summary['steps']} steps, {summary['weight_pushes']} weight pushes{restarts}; "
            f"the actions' weights were {summary['lag_mean']:.2f} updates old on average (at most "
            f"{summary['lag_max']})"
        )


def non_finite_message(error: BaseException, run_dir: str | None) -> str:
    """The one line a NaN loss ends a run with."""
    kept = f"; checkpoints before it are kept in {run_dir}" if run_dir else ""
    return f"{first_line(error)}{kept}"


def failure_message(error: BaseException, run_dir: str | None) -> str:
    """The one line a run that the machine failed ends with: what failed, the checkpoint kept, how to go on."""
    if run_dir is None:
        return first_line(error)
    try:
        kept = f"; checkpoint kept: {checkpoints.latest_checkpoint(run_dir)}"
    except checkpoints.CheckpointError:
        kept = ""
    return f"{first_line(error)}{kept}; continue with: kerlym --resume {run_dir}"
