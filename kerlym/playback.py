"""A saved agent without training: ``--play`` (greedy episodes) and ``--export`` (the greedy network, for
inference outside kerlym), for the command and the Python API alike.

Bad input (weights a run does not have, a format this backend cannot write)
raises :class:`~kerlym.config.ConfigError` with a one-line message.
"""

from __future__ import annotations

import os
import signal

from kerlym import config as C
from kerlym import runs
from kerlym._io import (
    deferred_signals,
    end_deferral,
    first_line,
    install_hint,
    native_stderr_silenced,
    os_error,
    reason,
    remove,
    temporary_path,
)
from kerlym.checkpoints import WEIGHTS, pick_weights  # noqa: F401 (their names here before 2026-12-07)
from kerlym.envs import is_two_player
from kerlym.make import make

# --format: (file or folder name under RUN_DIR/export/ after the weights' name, Keras's export format; None: .keras)
EXPORT_FORMATS = {
    "keras": (".keras", None),
    "saved_model": ("_saved_model", "tf_saved_model"),
    "onnx": (".onnx", "onnx"),
    "litert": (".tflite", "litert"),
}


def _agent_with(run: C.RunConfig, cfg: C.AgentConfig, weights: list, source: str):
    """An agent built with the run's settings whose greedy network holds ``weights``."""
    with native_stderr_silenced():
        agent = make(run, cfg)
        try:
            agent.greedy_model.set_weights(weights)
        except ValueError as e:
            raise runs.CheckpointError(f"{source} does not match this agent's network: {first_line(e)}") from None
    return agent


def play(
    run: C.RunConfig,
    cfg: C.AgentConfig,
    run_dir: str,
    which: str | None = None,
    seed: int | None = None,
) -> int:
    """Greedy episodes with a saved agent; no training. With ``-S`` the evaluation's results bundle is written."""
    import numpy as np

    with native_stderr_silenced():  # Keras's start-up logs, when a .keras file is loaded
        weights, source = pick_weights(run_dir, which, getattr(cfg, "ema_steps", None) is not None)
    print(f"playing with the {source}")
    agent = _agent_with(run, cfg, weights, source)
    stopped = deferred_signals()  # the command's Ctrl-C while the agent was built
    end_deferral()  # from here a Ctrl-C ends the episodes (the command says so in one line)
    if stopped:
        agent.close()
        raise KeyboardInterrupt
    searched = f", PUCT search of {run.search}" if run.search else ""
    played = {}  # the finished episodes' returns, by opponent (None: the env's own)
    try:
        if run.eval_opponents:
            returns, opponents = _play_opponents(agent, run, seed, searched, played)
        else:
            returns, opponents = _play_episodes(agent, run, seed, played, None), None
            print(
                f"mean reward {np.mean(returns):.2f} ± {np.std(returns):.2f} over {len(returns)} episodes "
                f"({source}{searched})"
            )
            if is_two_player(agent.env):
                from kerlym.stats import game_results, game_results_text

                print(f"games: {game_results_text(game_results(returns))}")
    except KeyboardInterrupt:
        unwritten = "; no results bundle was written" if run.submit else ""  # a partial one would look complete
        message = f"interrupted: {partial_results(played, run.eval_episodes, agent.env)}{unwritten}"
        agent.close()
        raise Interrupted(message) from None
    from kerlym.checkpoints import evaluation_record
    from kerlym.stats import read_progress

    agent.episodes = read_progress(os.path.join(run_dir, runs.PROGRESS))  # the training episodes, for the bundle
    agent.total_steps = int(agent.episodes[-1]["total_steps"]) if agent.episodes else 0  # the weights' step count
    evaluation = evaluation_record(run, agent, returns, source, opponents=opponents)
    if run.submit:
        from kerlym.bundle import write_bundle

        print(f"results bundle: {write_bundle(run, run_dir, agent, None, evaluation=evaluation)}")
    else:
        print(_save_play(run_dir, evaluation))
    agent.close()
    return 0


PLAYS = "plays"  # RUN_DIR/plays/<UTC time>/evaluation.json: each --play's results, beside the run's own evaluation


def _save_play(run_dir: str, evaluation: dict) -> str:
    """``--play``'s results as ``evaluation.json`` (the run's schema) in a new ``RUN_DIR/plays/<UTC time>`` folder,
    so the run's own final evaluation and earlier plays are kept; the line saying where, or why it was not saved
    (a run folder the user cannot write to still plays)."""
    import time

    from kerlym.checkpoints import write_evaluation

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    folder, n = os.path.join(run_dir, PLAYS, stamp), 1
    while os.path.exists(folder):  # two plays in one second
        folder, n = os.path.join(run_dir, PLAYS, f"{stamp}-{n}"), n + 1
    try:
        os.makedirs(folder)
        return f"evaluation: {write_evaluation(folder, evaluation)}"
    except (OSError, runs.CheckpointError) as e:
        return f"evaluation not saved: {reason(e) if isinstance(e, OSError) else e}"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped ``--play``; the message (one line) gives the finished episodes' results."""

    signum = signal.SIGINT


def _play_episodes(agent, run: C.RunConfig, seed: int | None, played: dict, name: str | None, env=None):
    """``run.eval_episodes`` greedy episodes, each printed as it ends and kept in ``played[name]``; their returns.

    In a two-player game each line adds the games' wins, draws and losses so far.
    """
    from kerlym.stats import game_results

    finished = played.setdefault(name, [])
    two_player = is_two_player(agent.env)

    def report(i: int, total: float) -> None:
        finished.append(total)
        line = f" * Episode {i + 1}: reward {total:.2f}"
        if two_player:
            games = game_results(finished)
            line += f" (wins {games['wins']}, draws {games['draws']}, losses {games['losses']})"
        print(line, flush=True)

    return agent.evaluate(run.eval_episodes, env=env, seed=seed, search=run.search, on_episode=report)


def partial_results(played: dict, episodes: int, env) -> str:
    """The finished episodes of an interrupted ``--play``, in one line: how many of ``episodes``, their mean reward
    and, in a two-player game, wins, draws, losses and the win rate's Wilson interval (per opponent, where named)."""
    import numpy as np

    from kerlym.stats import game_results, game_results_text

    parts = []
    for name, returns in played.items():
        against = f"against {name}: " if name is not None else ""
        if not returns:
            parts.append(f"{against}no episode finished of {episodes}")
            continue
        text = f"{against}{len(returns)} of {episodes} episodes finished, mean reward {np.mean(returns):.2f}"
        if is_two_player(env):
            text += f"; {game_results_text(game_results(returns))}"
        parts.append(text)
    return "; ".join(parts) or f"no episode finished of {episodes}"


def _play_opponents(agent, run: C.RunConfig, seed: int | None, searched: str, played: dict):
    """``--play --eval_opponents``: ``eval_episodes`` games against each opponent, seats alternating.

    Returns the first opponent's returns and :func:`kerlym.stats.opponent_results` by opponent.
    """
    from kerlym.session import opponent_env_maker
    from kerlym.stats import game_results_text, opponent_results

    make_opponent_env = opponent_env_maker(agent, run)
    for name in run.eval_opponents:
        env = make_opponent_env(name)
        try:
            returns = _play_episodes(agent, run, seed, played, name, env=env)
        finally:
            env.close()
        print(f"games against {name}{searched}: {game_results_text(opponent_results(returns))}")
    return played[run.eval_opponents[0]], {name: opponent_results(r) for name, r in played.items()}


def input_description(agent, model) -> str:
    """What an exported network takes and gives, for the user who feeds it outside kerlym."""
    shape = "x".join(str(n) for n in agent.frame_shape)
    pre = agent.config.preprocessor if isinstance(agent.config.preprocessor, str) else "the run's"
    if agent.nframes > 1:
        frames = f"the last {agent.nframes} observations (oldest first; before an episode's start its first repeats)"
        how = "each flattened in C order, then concatenated"
    else:
        frames, how = "the observation", "flattened in C order"
    diff = ", each minus the one before it (zero at an episode's start)" if agent.difference_obs else ""
    return (
        f"input: {model.inputs[0].dtype} array [batch, {agent.input_dim}]: {frames}, of shape {shape} after the "
        f"{pre!r} preprocessor{diff}, {how}\n"
        f"output: {tuple(model.output_shape)}: {_output_description(agent)}"
    )


def _output_description(agent) -> str:
    a = agent.num_actions
    if not hasattr(agent, "split"):  # DQN's Q-values, PG's action preferences: one column per action
        return "one column per action; the greedy action is their argmax"
    if agent.continuous:
        return f"columns 0-{a - 1} the action's mean (the greedy action), {a}-{2 * a - 1} its log std, last the value"
    return f"columns 0-{a - 1} the policy's logits (the greedy action is their argmax), last the state's value"


def _check_litert() -> None:
    """LiteRT (.tflite) export is Keras 3's ``model.export(format="litert")``: TensorFlow's converter, or torch's."""
    import importlib.util

    with native_stderr_silenced():
        import keras

    backend = keras.config.backend()
    if backend not in ("tensorflow", "torch"):
        raise C.ConfigError(
            f"--format litert needs Keras's tensorflow or torch backend, not {backend}: "
            "run it with KERAS_BACKEND=tensorflow (the saved run loads on any backend)"
        )
    if backend == "torch" and importlib.util.find_spec("litert_torch") is None:
        raise C.ConfigError("--format litert on Keras's torch backend needs litert-torch: pip install litert-torch")


UNTOUCHED = " (the run and its checkpoints are untouched)"


def _export_folder(run_dir: str) -> str:
    """``run_dir/export``, made if needed and checked writable; a one-line CheckpointError otherwise."""
    out = os.path.join(run_dir, "export")
    if os.path.lexists(out) and not os.path.isdir(out):
        raise runs.CheckpointError(f"cannot export: {out} is a file, not a folder; move it away{UNTOUCHED}")
    try:
        os.makedirs(out, exist_ok=True)
        probe = temporary_path(os.path.join(out, "probe"))
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as e:
        raise runs.CheckpointError(f"cannot export to {out}: {reason(e)}{UNTOUCHED}") from None
    return out


def export(run: C.RunConfig, cfg: C.AgentConfig, run_dir: str, fmt: str, which: str | None = None) -> int:
    """Write the greedy network under ``RUN_DIR/export`` with Keras 3's ``model.export`` (or ``model.save``)."""
    import numpy as np

    suffix, keras_format = EXPORT_FORMATS[fmt]
    if keras_format == "onnx":
        import importlib.util

        with native_stderr_silenced():
            import keras

        backend = keras.config.backend()
        converter = {"tensorflow": "tf2onnx", "jax": "jax2onnx", "torch": "onnxscript"}.get(backend, "tf2onnx")
        missing = [m for m in (converter, "onnx") if importlib.util.find_spec(m) is None]
        if missing:
            how = f"pip install {' '.join(missing)}"
            if backend == "tensorflow":
                how = install_hint("export") + " (tf2onnx, onnx, onnxruntime)"
            raise C.ConfigError(f"--format onnx on Keras's {backend} backend needs {', '.join(missing)}: {how}")
    if keras_format == "litert":
        _check_litert()
    out = _export_folder(run_dir)  # before the agent is built: a folder that cannot be written is said at once
    with native_stderr_silenced():  # Keras's start-up logs, when a .keras file is loaded
        weights, source = pick_weights(run_dir, which, getattr(cfg, "ema_steps", None) is not None)
    agent = _agent_with(run, cfg, weights, source)
    model = agent.greedy_model
    name = which or ("average" if source.startswith("weight average") else "online")
    path = os.path.join(out, name + suffix)
    with native_stderr_silenced():
        model(np.zeros((1, agent.input_dim), dtype=model.inputs[0].dtype))  # ONNX export needs a model called once
        try:
            if keras_format is None:
                model.save(path)
            else:
                model.export(path, format=keras_format, verbose=False)
        except (ValueError, ImportError) as e:  # a format this Keras, backend or converter cannot write
            if os_error(e) is None:
                raise C.ConfigError(f"--format {fmt}: {first_line(e)}") from None
            raise runs.CheckpointError(f"cannot write {path}: {reason(os_error(e))}{UNTOUCHED}") from None
        except Exception as e:
            if os_error(e) is None:
                raise
            remove(path)  # a partial SavedModel folder or file
            raise runs.CheckpointError(f"cannot write {path}: {reason(os_error(e))}{UNTOUCHED}") from None
    print(f"exported the {source}")
    print(input_description(agent, model))
    print(path)
    agent.close()
    return 0
