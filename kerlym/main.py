"""The ``kerlym`` command: train, resume, watch and evaluate agents on Gymnasium environments.

The flags are generated from the typed configs in :mod:`kerlym.config`, keeping
the original KeRLym's spellings and defaults. Start-up imports only the standard
library, so ``--help``, ``--version`` and argument errors answer at once;
Gymnasium, Keras and matplotlib are imported when a run actually starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from dataclasses import MISSING, fields

from kerlym import config as C
from kerlym.runs import first_line

WEIGHTS = ("online", "average", "best")
# --format: (file or folder name under RUN_DIR/export/ after the weights' name, Keras's export format; None: .keras)
EXPORT_FORMATS = {
    "keras": (".keras", None),
    "saved_model": ("_saved_model", "tf_saved_model"),
    "onnx": (".onnx", "onnx"),
    "litert": (".tflite", "litert"),
}
ONNX_INSTALL = 'pip install "kerlym[export]" (tf2onnx, onnx, onnxruntime)'


class UsageError(Exception):
    """Bad input: reported as one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


# Fields whose flag is an on/off switch that only turns on, as in the original.
_SWITCHES = ("difference_obs",)
_SHOWN_DEFAULTS = {
    "modelfactory": "simple_dnn; karpathy_simple_pgnet for -a pg",
    "optimizer": "the network's own",
    "loss": "the network's own",
}
_TYPES = {"int": int, "float": float, "str": str}
# Where each flag's help and metadata come from: the first class that has the field, in this order.
_FLAG_CLASSES = (C.RunConfig, C.AgentConfig, C.DQNConfig, C.PGConfig, C.ActorCriticConfig, C.PPOConfig)


def _flag_fields() -> dict:
    """Every field that has a flag, by name: its first definition in ``_FLAG_CLASSES``."""
    out = {}
    for cls in _FLAG_CLASSES:
        for f in fields(cls):
            if f.metadata.get("flags") and f.name not in out:
                out[f.name] = f
    return out


def _agents_and_defaults(f) -> tuple[str, str]:
    """Which agents use a field ("": every agent, or a run field), and its shown default, per agent where they differ.

    E.g. ``("", "[2] (a2c, a3c, ppo: 1)")`` for ``-t`` or ``("dqn, ddqn: ", "[0.1]")`` for ``-p``.
    """
    if f.name in C.field_names(C.RunConfig):
        cli_default = f.metadata.get("cli_default", MISSING)
        return "", f"[{_SHOWN_DEFAULTS.get(f.name, f.default if cli_default is MISSING else cli_default)}]"
    by_default: dict = {}
    for agent, cls in C.AGENT_CONFIGS.items():
        if f.name in C.field_names(cls):
            by_default.setdefault(str(C.defaults(cls, cli=True)[f.name]), []).append(agent)
    users = [a for agents in by_default.values() for a in agents]
    prefix = "" if len(users) == len(C.AGENT_CONFIGS) else f"{', '.join(a for a in C.AGENT_CONFIGS if a in users)}: "
    if f.name in _SHOWN_DEFAULTS:
        return prefix, f"[{_SHOWN_DEFAULTS[f.name]}]"
    main, *others = sorted(by_default, key=lambda d: -len(by_default[d]))  # the most agents' default first
    rest = "; ".join(f"{', '.join(by_default[d])}: {d}" for d in others)
    return prefix, f"[{main}]" + (f" ({rest})" if rest else "")


def _add_flags(groups: dict) -> None:
    """One flag per config field, in the ``--help`` group its ``topic`` names, with its default(s) in brackets."""
    for f in _flag_fields().values():
        flags = f.metadata["flags"]
        names = _choices(f)
        listed = f": {', '.join(names)}" if names else ""
        prefix, shown = _agents_and_defaults(f)
        kw = {"dest": f.name, "default": None, "help": f"{prefix}{f.metadata['help']}{listed} {shown}"}
        kind = str(f.type).split("|")[0].strip()
        if f.metadata.get("cli_nargs"):
            kw["nargs"] = f.metadata["cli_nargs"]
        elif f.metadata.get("cli_type") == "01":
            kw.update(type=int, choices=(0, 1))
        elif kind == "bool":
            kw["action"] = "store_true" if f.name in _SWITCHES else argparse.BooleanOptionalAction
        else:
            kw["type"] = _TYPES[kind]
        if kind != "bool":
            kw["metavar"] = f.metadata.get("metavar", f.name.upper())
        groups[f.metadata["topic"]].add_argument(*flags, **kw)


def _choices(f) -> tuple[str, ...]:
    """The names a field takes, listed in its help."""
    if f.name == "agent":
        return tuple(C.AGENT_CONFIGS)
    if f.name == "modelfactory":
        from kerlym import networks  # light: Keras is imported only when a network is built

        return tuple(networks.NETWORKS)
    return tuple(f.metadata.get("choices", ()))


def build_parser() -> argparse.ArgumentParser:
    from kerlym import __version__, sweep

    p = _Parser(
        prog="kerlym",
        description="Train Keras deep RL agents (DQN, double DQN, policy gradient, A2C/A3C, PPO) on Gymnasium "
        "environments. A flag whose help starts with agent names (e.g. 'dqn, ddqn:') is used by those agents only; "
        "the brackets give its default, and the parentheses the agents whose default differs.",
        epilog="Example: kerlym -e CartPole-v1 -a ddqn --preset -P",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=34),
    )
    groups = {topic: p.add_argument_group(title) for topic, title in C.TOPICS.items()}
    groups["agent"].add_argument(
        "--preset",
        nargs="?",
        const=True,
        default=False,
        metavar="FILE",
        help="Use kerlym's tuned settings for this env and agent, or those in FILE (JSON/YAML) (flags override)",
    )
    _add_flags(groups)
    groups["run control"].add_argument(
        "--resume", metavar="RUN_DIR", help="Continue the run in RUN_DIR from its last checkpoint"
    )
    played = p.add_argument_group("play and export a saved agent")
    played.add_argument("--play", metavar="RUN_DIR", help="Watch/evaluate the saved agent in RUN_DIR without training")
    played.add_argument("--best", action="store_true", help="With --play or --export: use best.keras (--weights best)")
    played.add_argument(
        "--weights",
        choices=WEIGHTS,
        help="With --play or --export: the latest checkpoint's online network, its weight average (runs with "
        "--ema), or best.keras (see --eval_every) [the average where there is one, else online]",
    )
    played.add_argument(
        "--export",
        metavar="RUN_DIR",
        help="Write the saved agent's greedy policy network under RUN_DIR/export/ for inference outside kerlym",
    )
    played.add_argument(
        "--format",
        choices=tuple(EXPORT_FORMATS),
        default="saved_model",
        help='With --export: a .keras file, a TensorFlow SavedModel, ONNX (pip install ".[export]") or LiteRT '
        "(.tflite; TensorFlow or torch backend) [saved_model]",
    )
    sweep.add_flags(p)
    p.add_argument("--version", action="version", version=f"kerlym {__version__}")
    return p


# -- configuration -----------------------------------------------------------
def given_settings(args: argparse.Namespace) -> dict:
    """The settings the user typed (None: not given)."""
    skip = ("resume", "play", "best", "weights", "export", "format", "preset", "seeds", "ray", "tune", "trials")
    values = {k: v for k, v in vars(args).items() if v is not None and k not in skip}
    if "reset_on_score" in values:
        values["reset_on_score"] = bool(values["reset_on_score"])
    if "env_kwargs" in values:
        values["env_kwargs"] = parse_kwargs(values["env_kwargs"])
    if "gym_packages" in values:
        values["gym_packages"] = list(values["gym_packages"])
    return values


def parse_kwargs(items: list[str]) -> dict:
    """``--env-kwargs`` words as a dict (:func:`kerlym.config.parse_settings`)."""
    try:
        return C.parse_settings(items)
    except C.ConfigError as e:
        raise UsageError(f"--env-kwargs: {e}") from None


def resolve(args: argparse.Namespace) -> tuple[C.RunConfig, C.AgentConfig, list[str]]:
    """The command's defaults, then the preset, then the flags the user gave; and notes for the user."""
    from kerlym.make import configure

    given = given_settings(args)
    agent = given.get("agent", _preset_agent(args.preset) or C.RunConfig.agent)
    if agent not in C.AGENT_CONFIGS:
        raise UsageError(f"unknown agent {agent!r}; choose one of: {', '.join(C.AGENT_CONFIGS)}")
    notes = []
    _, _, unused = C.split(given, agent)
    if unused:
        notes.append(f"-a {agent} does not use {', '.join(C.flag(k) for k in unused)}; ignored")
    given = {k: v for k, v in given.items() if k not in unused}
    try:
        run, cfg = configure(cli_defaults=True, preset=args.preset, **given)
    except C.ConfigError as e:
        raise UsageError(str(e)) from None
    if not args.preset:
        from kerlym import presets

        if (run.env, run.agent) in presets.PRESETS:
            notes.append(f"kerlym has tuned settings for -e {run.env} -a {run.agent}; add --preset to use them")
    return run, cfg, notes


def _preset_agent(preset) -> str | None:
    """The agent a preset file names, if any (a file's settings are checked against that agent's config)."""
    from kerlym import presets

    try:
        return presets.read_file(preset).get("agent") if isinstance(preset, str) else None
    except C.ConfigError as e:
        raise UsageError(str(e)) from None


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def check_settings(run: C.RunConfig, cfg: C.AgentConfig) -> None:
    """What needs no environment: display, network names."""
    if run.render and not _has_display():
        raise UsageError("--render needs a display, and none was found (DISPLAY is unset); use -S to record videos")


def check_env_id(run: C.RunConfig) -> None:
    import difflib

    import gymnasium as gym

    from kerlym.envs import import_env_modules, register_atari

    try:
        import_env_modules(run.env, run.gym_packages)
    except ImportError as e:
        raise UsageError(str(e)) from None
    env_id = run.env.split(":")[-1]
    register_atari(env_id)
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"unknown environment {env_id!r}{hint}")


def check_env(run: C.RunConfig, cfg: C.AgentConfig) -> None:
    from kerlym.make import check_env as probe

    try:
        probe(run, cfg)
    except C.ConfigError as e:
        raise UsageError(str(e)) from None


def config_dict(run: C.RunConfig, cfg: C.AgentConfig) -> dict:
    """What config.json holds: every field of the run and of the agent, by name."""
    return {**C.to_dict(run), **C.to_dict(cfg)}


def saved_configs(run_dir: str, overrides: dict) -> tuple[C.RunConfig, C.AgentConfig]:
    """A saved run's configs with ``overrides`` (:func:`kerlym.make.saved_configs`); bad values are usage errors."""
    from kerlym.make import saved_configs as read

    try:
        return read(run_dir, overrides)
    except C.ConfigError as e:
        raise UsageError(str(e)) from None


def check_fixed_settings(args: argparse.Namespace, run: C.RunConfig, cfg: C.AgentConfig) -> None:
    """With --resume or --play, a setting the run fixed (not in RUNTIME_FIELDS) may be repeated, not changed."""
    saved = config_dict(run, cfg)
    for key, value in given_settings(args).items():
        if key in C.RUNTIME_FIELDS or key == "outdir" or (key == "seed" and args.play):
            continue  # --seed with --play seeds the evaluation episodes
        same = value == saved.get(key) or (key == "ema_steps" and value == 0 and saved.get(key) is None)
        if key in saved and not same:
            changeable = ", ".join(C.flag(k).split("/")[-1] for k in C.RUNTIME_FIELDS)
            raise UsageError(
                f"{C.flag(key)} {value} differs from this run's {key} ({saved.get(key)}); a saved run "
                f"keeps its settings, except {changeable}"
            )


def weights_choice(args: argparse.Namespace) -> str | None:
    """``--weights`` (``--best`` is ``--weights best``); both go with --play or --export only."""
    which = args.weights
    if args.best:
        if which not in (None, "best"):
            raise UsageError(f"--best and --weights {which} disagree; give one")
        which = "best"
    if which and not (args.play or args.export):
        raise UsageError(f"{'--best' if args.best else '--weights'} goes with --play or --export")
    if args.format != "saved_model" and not args.export:
        raise UsageError("--format goes with --export")
    return which


# -- running -----------------------------------------------------------------
def train(run: C.RunConfig, cfg: C.AgentConfig, run_dir: str, resume_from: str | None) -> int:
    from kerlym import runs, sinks
    from kerlym.make import make
    from kerlym.runner import NonFiniteLoss, Runner
    from kerlym.stats import truncate_progress

    stats_envs: list | None = [] if run.submit else None
    with native_stderr_silenced():
        agent = make(run, cfg, submit_stats=stats_envs)
    if resume_from:
        with native_stderr_silenced():
            runs.restore_checkpoint(resume_from, agent)
        # The checkpoint was written after its step's episodes were counted: keep exactly those rows
        # (episodes after it will be run again).
        progress = os.path.join(run_dir, runs.PROGRESS)
        rows, note = truncate_progress(progress, until_step=agent.total_steps, until_episode=agent.episode)
        if note:
            print(f"kerlym: note: {note}", file=sys.stderr)
        agent.episodes = rows
        print(f"resumed {run_dir} at step {agent.total_steps}, episode {agent.episode}")
    runs.write_config(run_dir, config_dict(run, cfg))
    print(f"run folder: {run_dir}")
    bar = sinks.progress_bar(run.steps, run.episodes, agent)
    outputs = [sinks.Console(quiet=run.quiet, bar=bar), sinks.ProgressFile(run_dir, sinks.extra_columns(agent))]
    if bar is not None:
        outputs.append(bar)
    if run.tensorboard:
        outputs.append(sinks.TensorBoard(os.path.join(run_dir, "tensorboard"), config_dict(run, cfg)))
    if run.plots:
        outputs.append(
            sinks.LivePlot(
                run_dir,
                run.agent,
                run.env,
                run.plot_rate,
                agent.episodes,
                values=run.agent != "pg",
                actor_critic=issubclass(C.AGENT_CONFIGS[run.agent], C.ActorCriticConfig),
            )
        )
    runner = Runner(
        agent,
        run_dir,
        outputs,
        checkpoint_every=run.checkpoint_every,
        eval_every=run.eval_every,
        eval_episodes=run.eval_episodes,
        save_memory=run.save_memory,
    )
    steps_left = None if run.steps is None else max(0, run.steps - agent.total_steps)
    episodes_left = None if run.episodes is None else max(0, run.episodes - agent.episode)
    try:
        runner.run(max_steps=steps_left, max_episodes=episodes_left)
    except NonFiniteLoss as e:
        raise UsageError(f"{e}; checkpoints before it are kept in {run_dir}") from None
    path = runner.last_checkpoint
    if runner.actor_summary:
        a = runner.actor_summary
        restarts = f", {a['restarts']} restarted" if a.get("restarts") else ""
        print(
            f"{a['actors']}: {a['steps']} steps, {a['weight_pushes']} weight pushes{restarts}; the actions' weights "
            f"were {a['lag_mean']:.2f} updates old on average (at most {a['lag_max']})"
        )
    if runner.interrupted:
        print(f"\ninterrupted at step {agent.total_steps}: checkpoint saved in {path}")
        print(f"continue with: kerlym --resume {run_dir}")
    else:
        print(f"finished at step {agent.total_steps}; checkpoint saved in {path}")
    if run.plots:
        print(f"plot: {os.path.join(run_dir, runs.PLOT)}")
    if run.submit:  # after Ctrl-C too: the bundle of what was trained so far
        try:
            print(f"results bundle: {write_submission(run, run_dir, agent, stats_envs)}")
        except KeyboardInterrupt:  # a second Ctrl-C: the checkpoint is safe; only the bundle is cut short
            print("\nkerlym: note: results bundle not finished (interrupted again)", file=sys.stderr)
    agent.close()
    return 0


def ray_actors(cfg: C.AgentConfig, address: str) -> C.AgentConfig:
    """``cfg`` with ``actors="ray"``; Ray (started by :class:`kerlym.actors.RayActors`) joins ``address`` if given."""
    import importlib.util

    from kerlym.sweep import INSTALL

    if importlib.util.find_spec("ray") is None:
        raise UsageError(f"-c N --ray runs the envs as Ray actors and needs Ray: {INSTALL}")
    if address != "local":
        os.environ["RAY_ADDRESS"] = address
    return C.replace(cfg, actors="ray")


def pick_weights(run_dir: str, which: str | None, cfg: C.AgentConfig) -> tuple[list, str]:
    """The weights ``--play``/``--export`` use and a phrase naming them, e.g. ``weight average of PATH``.

    Args:
        run_dir: the run folder.
        which: ``"online"``, ``"average"``, ``"best"`` or ``None`` (the average where the checkpoint has one, else
            the online network: what evaluations during training used).
        cfg: the run's agent config (``ema_steps`` says whether it keeps an average).
    """
    from kerlym import runs

    if which == "best":
        path = runs.best_model(run_dir)
        return runs.load_model(path).get_weights(), f"best.keras of {run_dir}"
    if which == "average" and getattr(cfg, "ema_steps", None) is None:
        raise UsageError("--weights average needs a run trained with --ema (a weight average); use online or best")
    checkpoint = runs.latest_checkpoint(run_dir)
    if which == "online":
        return runs.load_model(os.path.join(checkpoint, runs.MODEL)).get_weights(), f"online network of {checkpoint}"
    weights = runs.greedy_weights(checkpoint)  # the average where the checkpoint holds one, else model.keras
    if not _has_average(checkpoint):
        if which == "average":
            raise UsageError(f"{checkpoint} holds no weight average yet (saved before the first update); use online")
        return weights, f"online network of {checkpoint}"
    return weights, f"weight average of {checkpoint}"


def _has_average(checkpoint: str) -> bool:
    """Whether a checkpoint holds a weight average (``ema/*`` arrays; :func:`kerlym.runs.greedy_weights` read them)."""
    import numpy as np

    from kerlym import runs

    with np.load(os.path.join(checkpoint, runs.ARRAYS)) as npz:
        return any(k.startswith("ema/") for k in npz.files)


def _agent_with(run: C.RunConfig, cfg: C.AgentConfig, weights: list, source: str):
    """An agent built with the run's settings whose greedy network holds ``weights``."""
    from kerlym import runs
    from kerlym.make import make

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
        weights, source = pick_weights(run_dir, which, cfg)
    print(f"playing with the {source}")
    agent = _agent_with(run, cfg, weights, source)
    returns = agent.evaluate(run.eval_episodes, seed=seed)
    for i, r in enumerate(returns):
        print(f" * Episode {i + 1}: reward {r:.2f}")
    print(f"mean reward {np.mean(returns):.2f} ± {np.std(returns):.2f} over {len(returns)} episodes ({source})")
    if run.submit:
        from kerlym import runs
        from kerlym.stats import read_progress

        agent.episodes = read_progress(os.path.join(run_dir, runs.PROGRESS))  # the training episodes, for the bundle
        print(f"results bundle: {write_submission(run, run_dir, agent, None, returns=returns, weights=source)}")
    agent.close()
    return 0


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
        raise UsageError(
            f"--format litert needs Keras's tensorflow or torch backend, not {backend}: "
            "run it with KERAS_BACKEND=tensorflow (the saved run loads on any backend)"
        )
    if backend == "torch" and importlib.util.find_spec("litert_torch") is None:
        raise UsageError("--format litert on Keras's torch backend needs litert-torch: pip install litert-torch")


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
            how = ONNX_INSTALL if backend == "tensorflow" else f"pip install {' '.join(missing)}"
            raise UsageError(f"--format onnx on Keras's {backend} backend needs {', '.join(missing)}: {how}")
    if keras_format == "litert":
        _check_litert()
    with native_stderr_silenced():  # Keras's start-up logs, when a .keras file is loaded
        weights, source = pick_weights(run_dir, which, cfg)
    agent = _agent_with(run, cfg, weights, source)
    model = agent.greedy_model
    name = which or ("average" if source.startswith("weight average") else "online")
    out = os.path.join(run_dir, "export")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name + suffix)
    with native_stderr_silenced():
        model(np.zeros((1, agent.input_dim), dtype=model.inputs[0].dtype))  # ONNX export needs a model called once
        if keras_format is None:
            model.save(path)
        else:
            try:
                model.export(path, format=keras_format, verbose=False)
            except (ValueError, ImportError) as e:  # a format this Keras, backend or converter cannot write
                raise UsageError(f"--format {fmt}: {first_line(e)}") from None
    print(f"exported the {source}")
    print(input_description(agent, model))
    print(path)
    agent.close()
    return 0


def write_submission(run, run_dir, agent, stats_envs, returns=None, weights: str | None = None) -> str:
    """The -S results bundle: episode statistics, a greedy evaluation and videos.

    Args:
        run: the run's config.
        run_dir: the run folder; the bundle goes in its ``submission`` folder.
        agent: the agent; its episode rows are the training's statistics where Gymnasium's
            RecordEpisodeStatistics did not see them all (a resumed run, ``-c N``, ``--play``).
        stats_envs: the RecordEpisodeStatistics wrappers of the training env, or ``None``.
        returns: the greedy evaluation's returns, if already run (``--play``); else one is run.
        weights: which weights were evaluated, recorded in ``evaluation.json``.
    """
    import numpy as np

    out = os.path.join(run_dir, "submission")
    os.makedirs(out, exist_ok=True)
    train_env = stats_envs[0] if stats_envs and agent.concurrency == 1 else None
    rows = [float(r["reward"]) for r in agent.episodes]
    seen = [float(x) for x in train_env.return_queue] if train_env is not None else []
    if train_env is not None and (len(seen) != len(rows) or not np.allclose(seen, rows)):
        train_env = None  # a resumed run: the wrapper saw only this session's episodes; the rows hold them all
    if train_env is not None:  # Gymnasium's RecordEpisodeStatistics around the env that trained
        episode_stats = {
            "source": "RecordEpisodeStatistics",
            "returns": [float(x) for x in train_env.return_queue],
            "lengths": [int(x) for x in train_env.length_queue],
            "times": [float(x) for x in train_env.time_queue],
        }
    else:  # -c N (copies step elsewhere), a resumed run, --play: the agent's own rows count the same episodes
        episode_stats = {
            "source": "kerlym episode rows",
            "returns": [float(r["reward"]) for r in agent.episodes],
            "lengths": [int(r["length"]) for r in agent.episodes],
            "times": [],  # episodes of different copies overlap in time
        }
    with open(os.path.join(out, "episode_statistics.json"), "w") as f:
        json.dump(episode_stats, f)
    video_note = _record_videos(run, agent, os.path.join(out, "videos"))
    if returns is None:
        returns = agent.evaluate(run.eval_episodes)
    evaluation = {
        "env": run.env,
        "agent": run.agent,
        "total_steps": agent.total_steps,
        "episodes": len(returns),
        "returns": returns.tolist(),
        "mean": float(np.mean(returns)),
        "std": float(np.std(returns)),
        "videos": video_note,
    }
    if weights is not None:
        evaluation["weights"] = weights
    with open(os.path.join(out, "evaluation.json"), "w") as f:
        json.dump(evaluation, f, indent=2)
    print(f"greedy evaluation over {len(returns)} episodes: {evaluation['mean']:.2f} ± {evaluation['std']:.2f}")
    return out


def _record_videos(run, agent, folder, episodes=3) -> str:
    import gymnasium as gym

    from kerlym import preproc
    from kerlym.envs import make_env

    env = None
    if not _has_display():
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame renders off-screen
    try:
        env = make_env(run.env, "rgb_array", run.env_kwargs, run.gym_packages)
        env = gym.wrappers.RecordVideo(env, folder, episode_trigger=lambda i: True, disable_logger=True)
        env = preproc.apply(env, agent.preprocessor)
        agent.evaluate(episodes, env=env)
    except Exception as e:  # no rgb_array rendering, a missing renderer or video writer
        msg = first_line(e)
        print(f"kerlym: note: no evaluation videos: {msg}", file=sys.stderr)
        return f"not recorded: {msg}"
    finally:
        if env is not None:
            env.close()
    return folder


@contextlib.contextmanager
def native_stderr_silenced():
    """Silence what native libraries write to stderr while Keras and the agent start up.

    TensorFlow's C++ start-up logs ("Could not find cuda drivers", CPU
    feature notes) ignore ``TF_CPP_MIN_LOG_LEVEL`` and would bury kerlym's
    own one-line messages. Python exceptions still surface normally: they
    are printed after the block has restored stderr.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        chosen = [f"--{k}" for k in ("resume", "play", "export") if getattr(args, k)]
        if len(chosen) > 1:
            raise UsageError(f"{' and '.join(chosen)} cannot be used together")
        saved_dir = args.resume or args.play or args.export
        from kerlym import sweep

        if args.resume and sweep.is_sweep(args.resume):
            return sweep.resume(args)
        if saved_dir:
            from kerlym import runs

            which = weights_choice(args)
            given = given_settings(args)
            overrides = {k: v for k, v in given.items() if k in C.RUNTIME_FIELDS}
            run, cfg = saved_configs(saved_dir, overrides)
            check_fixed_settings(args, run, cfg)
            check_settings(run, cfg)
            check_env(run, cfg)
            if args.play:  # reads only (but for -S's bundle): no lock, works on a read-only disk
                return play(run, cfg, saved_dir, which, seed=args.seed)
            if args.export:
                return export(run, cfg, saved_dir, args.format, which)
            runs.check_run_writable(saved_dir)
            with runs.lock_run(saved_dir):
                runs.remove_stale_temporaries(saved_dir)
                checkpoint, note = runs.resumable_checkpoint(saved_dir)
                if note:
                    print(f"kerlym: note: {note}", file=sys.stderr)
                return train(run, cfg, saved_dir, checkpoint)
        weights_choice(args)  # --best, --weights or --format without --play/--export: an error
        run, cfg, notes = resolve(args)
        check_settings(run, cfg)
        check_env_id(run)
        check_env(run, cfg)
        for note in notes:  # only once the input is known to be good, so an error stays one line
            print(f"kerlym: note: {note}", file=sys.stderr)
        if args.ray is not None and not (args.seeds or args.tune) and cfg.concurrency > 1:
            cfg = ray_actors(cfg, args.ray)  # -c N --ray: the N envs as Ray actors feeding this learner
            args.ray = None
        if sweep.wanted(args):  # --seeds, --tune: many runs under one sweep folder
            return sweep.run(args, run, cfg)
        from kerlym import runs

        runs.check_outdir_writable(run.outdir)
        # Every check above ran before the run folder exists, so bad input never leaves one behind.
        run_dir = runs.new_run_dir(run.outdir, run.env.replace(":", "_"), run.agent)
        with runs.lock_run(run_dir):
            return train(run, cfg, run_dir, None)
    except UsageError as e:
        print(f"kerlym: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from kerlym.runs import CheckpointError

        if isinstance(e, CheckpointError):
            print(f"kerlym: error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
