"""From the command's flags to the run's configs: defaults, then a preset, then the flags the user gave.

Also what a saved run lets change (``--resume``, ``--play``), the checks that need no model, and
``-c N --ray``. Every error is a :class:`~kerlym.config.ConfigError` with one line, which the command
prints as ``kerlym: error: ...`` before any run folder exists.
"""

from __future__ import annotations

import argparse
import os

from kerlym import config as C
from kerlym._io import install_hint
from kerlym.agents import AGENT_CONFIGS
from kerlym.bundle import has_display
from kerlym.make import configure, split_settings

# The command's flags that are not config fields.
# What --play may change besides C.RUNTIME_FIELDS: the episodes' seed and the opponents they play.
PLAY_MAY_CHANGE = ("seed", "env_kwargs", "eval_opponents")
COMMAND_FLAGS = ("resume", "play", "best", "weights", "export", "format", "preset", "seeds", "ray", "tune", "trials")


def given_settings(args: argparse.Namespace) -> dict:
    """The settings the user typed (None: not given)."""
    values = {k: v for k, v in vars(args).items() if v is not None and k not in COMMAND_FLAGS}
    if "reset_on_score" in values:
        values["reset_on_score"] = bool(values["reset_on_score"])
    for key in ("env_kwargs", "net_kwargs"):
        if key in values:
            values[key] = parse_kwargs(values[key], "--" + key.replace("_", "-"))
    if "gym_packages" in values:
        values["gym_packages"] = list(values["gym_packages"])
    if "eval_opponents" in values:
        values["eval_opponents"] = list(values["eval_opponents"])
    return values


def parse_kwargs(items: list[str], flag: str = "--env-kwargs") -> dict:
    """``--env-kwargs`` (or ``flag``'s, ``--net-kwargs``) words as a dict (:func:`kerlym.config.parse_settings`)."""
    try:
        return C.parse_settings(items)
    except C.ConfigError as e:
        raise C.ConfigError(f"{flag}: {e}") from None


def resolve(args: argparse.Namespace) -> tuple[C.RunConfig, C.AgentConfig, list[str]]:
    """The command's defaults, then the preset, then the flags the user gave; and notes for the user."""
    given = given_settings(args)
    agent = given.get("agent", _preset_agent(args.preset) or C.RunConfig.agent)
    if agent not in AGENT_CONFIGS:
        raise C.ConfigError(f"unknown agent {agent!r}; choose one of: {', '.join(AGENT_CONFIGS)}")
    notes = []
    _, _, unused = split_settings(given, agent)
    if unused:
        notes.append(f"-a {agent} does not use {', '.join(C.flag(k) for k in unused)}; ignored")
    given = {k: v for k, v in given.items() if k not in unused}
    run, cfg = configure(cli_defaults=True, preset=args.preset, **given)
    if not args.preset:
        from kerlym import presets

        if (run.env, run.agent) in presets.PRESETS:
            notes.append(f"kerlym has tuned settings for -e {run.env} -a {run.agent}; add --preset to use them")
    return run, cfg, notes


def _preset_agent(preset) -> str | None:
    """The agent a preset file names, if any (a file's settings are checked against that agent's config)."""
    from kerlym import presets

    return presets.read_file(preset).get("agent") if isinstance(preset, str) else None


def check_settings(run: C.RunConfig, cfg: C.AgentConfig) -> None:
    """What needs no environment: display, network names."""
    if run.render and not has_display():
        raise C.ConfigError("--render needs a display, and none was found (DISPLAY is unset); use -S to record videos")
    if (run.env_kwargs or {}).get("render_mode") == "human" and not has_display():
        raise C.ConfigError(
            "--env-kwargs render_mode=human opens a window and needs a display, and none was found (DISPLAY is "
            "unset); use -S to record videos"
        )


def check_tracking(run: C.RunConfig) -> C.RunConfig:
    """``run`` with ``--mlflow``'s URI made absolute (a sweep's Ray trials start elsewhere); refuse a tracking flag
    whose package is missing, naming the extra, or MLflow's folder store, before any run folder exists."""
    if not (run.mlflow or run.wandb):
        return run
    from kerlym import tracking

    tracking.check_installed(run.mlflow, run.wandb)
    return C.replace(run, mlflow=tracking.mlflow_uri(run.mlflow))


def check_env_id(run: C.RunConfig) -> None:
    """Import the modules ``-e MODULE:ENV_ID`` and ``--gym-packages`` name; refuse an unknown env id (did-you-mean)."""
    import difflib

    import gymnasium as gym

    from kerlym.envs import OPENSPIEL_PREFIX, gymnax_envs, import_env_modules, register_atari

    if gymnax_envs.is_gymnax(run.env):
        check_gymnax(run)
        return
    if run.env.startswith(OPENSPIEL_PREFIX):  # an OpenSpiel game: checked when check_env makes it
        return
    try:
        import_env_modules(run.env, run.gym_packages)
    except ImportError as e:
        raise C.ConfigError(str(e)) from None
    env_id = run.env.split(":")[-1]
    register_atari(env_id)
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise C.ConfigError(f"unknown environment {env_id!r}{hint}")




def check_gymnax(run: C.RunConfig) -> None:
    """``-e gymnax:ENV_ID``: JAX, gymnax and Keras on JAX, an env gymnax knows, PPO, A2C or DQN (the fused path)."""
    import difflib

    from kerlym.envs import gymnax_envs

    try:
        gymnax_envs.require(run.env)
    except (ImportError, RuntimeError) as e:
        raise C.ConfigError(str(e)) from None
    if run.agent not in ("ppo", "a2c", "a3c", "dqn", "ddqn"):
        agents = "-a ppo, a2c, dqn or ddqn (the fused JAX path)"
        raise C.ConfigError(f"-e {run.env} trains with {agents}, not -a {run.agent}")
    name = run.env[len(gymnax_envs.PREFIX) :]
    known = gymnax_envs.registered()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(gymnax_envs.PREFIX + c for c in close)}?" if close else ""
        raise C.ConfigError(f"gymnax has no env {name!r}{hint}")


def check_fixed_settings(args: argparse.Namespace, run: C.RunConfig, cfg: C.AgentConfig) -> None:
    """With --resume or --play, a setting the run fixed (not in RUNTIME_FIELDS) may be repeated, not changed."""
    saved = C.config_dict(run, cfg)
    for key, value in given_settings(args).items():
        if key in C.RUNTIME_FIELDS or key == "outdir" or (key in PLAY_MAY_CHANGE and args.play):
            continue  # --seed with --play seeds the evaluation episodes; --env-kwargs picks another opponent
        same = _as_saved(value) == _as_saved(saved.get(key))  # units=(64,64) is saved as a list
        same = same or (key == "ema_steps" and value == 0 and saved.get(key) is None)
        if key in saved and not same:
            changeable = ", ".join(C.flag(k).split("/")[-1] for k in C.RUNTIME_FIELDS)
            raise C.ConfigError(
                f"{C.flag(key)} {value} differs from this run's {key} ({saved.get(key)}); a saved run "
                f"keeps its settings, except {changeable}"
            )


def _as_saved(value):
    """``value`` as config.json gives it back (``--net-kwargs units=(64,64)`` is saved as a list)."""
    import json

    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return value


def weights_choice(args: argparse.Namespace) -> str | None:
    """``--weights`` (``--best`` is ``--weights best``); both go with --play, --export or --trained-agent only."""
    which = args.weights
    if args.best:
        if which not in (None, "best"):
            raise C.ConfigError(f"--best and --weights {which} disagree; give one")
        which = "best"
    if which and not (args.play or args.export or args.trained_agent):
        raise C.ConfigError(f"{'--best' if args.best else '--weights'} goes with --play, --export or --trained-agent")
    if args.format != "saved_model" and not args.export:
        raise C.ConfigError("--format goes with --export")
    return which


def check_trained_agent(run: C.RunConfig, which: str | None) -> C.RunConfig:
    """``--trained-agent RUN_DIR``: a run folder with the weights ``which`` names, before the new run's folder
    exists; ``run`` with the folder's absolute path (recorded in the new run's config) and ``which``."""
    from kerlym import checkpoints, runs

    if not run.trained_agent:
        if run.trained_weights:
            raise C.ConfigError("--trained-weights goes with --trained-agent")
        return run
    if which and run.trained_weights and which != run.trained_weights:
        raise C.ConfigError(f"--weights {which} and --trained-weights {run.trained_weights} disagree; give one")
    which = which or run.trained_weights
    path = os.path.abspath(run.trained_agent)
    runs.read_config(path)  # a folder that is no run says so
    if which == "best":
        checkpoints.best_model(path)
    else:
        checkpoints.latest_checkpoint(path)
    return C.replace(run, trained_agent=path, trained_weights=which)


def ray_actors(cfg: C.AgentConfig, address: str) -> C.AgentConfig:
    """``cfg`` with ``actors="ray"``; Ray (started by :class:`kerlym.ray_actors.RayActors`) joins ``address``.

    ``address``: ``"local"``, or a Ray cluster's address.
    """
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise C.ConfigError(f"-c N --ray runs the envs as Ray actors and needs Ray: {install_hint('ray')}")
    if address != "local":
        os.environ["RAY_ADDRESS"] = address
    return C.replace(cfg, actors="ray")
