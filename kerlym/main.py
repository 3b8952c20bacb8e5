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
    "dropout": "0.5",
}
_TYPES = {"int": int, "float": float, "str": str}


def _add_flags(group, cls, skip=()):
    """One flag per field of ``cls`` (fields in ``skip`` excluded), with its help and default in brackets."""
    for f in fields(cls):
        flags = f.metadata.get("flags")
        if not flags or f.name in skip:
            continue
        cli_default = f.metadata.get("cli_default", MISSING)
        shown = _SHOWN_DEFAULTS.get(f.name, f.default if cli_default is MISSING else cli_default)
        kw = {"dest": f.name, "default": None, "help": f"{f.metadata['help']} [{shown}]"}
        kind = str(f.type).split("|")[0].strip()
        if f.metadata.get("cli_type") == "01":
            kw.update(type=int, choices=(0, 1))
        elif kind == "bool":
            kw["action"] = "store_true" if f.name in _SWITCHES else argparse.BooleanOptionalAction
        else:
            kw["type"] = _TYPES[kind]
        if "metavar" in f.metadata:
            kw["metavar"] = f.metadata["metavar"]
        group.add_argument(*flags, **kw)


def _own_defaults(cls, base) -> str:
    """The flags whose default for ``cls`` differs from the one ``base``'s flags show, e.g. ``defaults: -t 1``."""
    shown = C.defaults(base, cli=True)
    own = C.defaults(cls, cli=True)
    parts = []
    for f in fields(cls):
        if f.metadata.get("flags") and (f.name not in shown or own[f.name] != shown[f.name]):
            if f.name in shown or f.name == "batch_size":
                parts.append(f"{f.metadata['flags'][0]} {own[f.name]}")
    return "defaults: " + ", ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    from kerlym import __version__

    p = _Parser(
        prog="kerlym",
        description="Train Keras deep RL agents (DQN, double DQN, policy gradient, A2C/A3C, PPO) on Gymnasium "
        "environments.",
        epilog="Example: kerlym -e CartPole-v1 -a ddqn --preset -P",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=34),
    )
    _add_flags(p.add_argument_group("the run"), C.RunConfig)
    p.add_argument(
        "--preset", action="store_true", help="Use kerlym's tuned settings for this env and agent (flags override)"
    )
    _add_flags(p.add_argument_group("every agent"), C.AgentConfig)
    common = set(C.field_names(C.AgentConfig))
    _add_flags(p.add_argument_group("-a dqn and -a ddqn"), C.DQNConfig, skip=common)
    _add_flags(p.add_argument_group("-a pg"), C.PGConfig, skip=common)
    ac_group = f"-a a2c, a3c and ppo ({_own_defaults(C.A2CConfig, C.AgentConfig)})"
    _add_flags(p.add_argument_group(ac_group), C.ActorCriticConfig, skip=common)
    ppo_group = f"-a ppo ({_own_defaults(C.PPOConfig, C.A2CConfig)})"
    _add_flags(p.add_argument_group(ppo_group), C.PPOConfig, skip={*C.field_names(C.A2CConfig), "batch_size"})
    p.add_argument("--resume", metavar="RUN_DIR", help="Continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--play", metavar="RUN_DIR", help="Watch/evaluate the saved agent in RUN_DIR without training")
    p.add_argument("--best", action="store_true", help="With --play: use best.keras (see --eval_every)")
    p.add_argument("--version", action="version", version=f"kerlym {__version__}")
    return p


def flag_name(name: str) -> str:
    """A field's flags as the user types them, e.g. ``-m/--max_mem``."""
    for cls in (C.RunConfig, C.DQNConfig, C.PGConfig, C.PPOConfig):
        for f in fields(cls):
            if f.name == name and f.metadata.get("flags"):
                return "/".join(f.metadata["flags"])
    return f"--{name}"


# -- configuration -----------------------------------------------------------
def given_settings(args: argparse.Namespace) -> dict:
    """The settings the user typed (None: not given)."""
    skip = ("resume", "play", "best", "preset")
    values = {k: v for k, v in vars(args).items() if v is not None and k not in skip}
    if "reset_on_score" in values:
        values["reset_on_score"] = bool(values["reset_on_score"])
    return values


def resolve(args: argparse.Namespace) -> tuple[C.RunConfig, C.AgentConfig]:
    """The command's defaults, then the preset, then the flags the user gave."""
    from kerlym.make import configure

    given = given_settings(args)
    agent = given.get("agent", C.RunConfig.agent)
    if agent not in C.AGENT_CONFIGS:
        raise UsageError(f"unknown agent {agent!r}; choose one of: {', '.join(C.AGENT_CONFIGS)}")
    _, _, unused = C.split(given, agent)
    if unused:
        names = ", ".join(flag_name(k) for k in unused)
        print(f"kerlym: note: -a {agent} does not use {names}; ignored", file=sys.stderr)
    given = {k: v for k, v in given.items() if k not in unused}
    try:
        run, cfg = configure(cli_defaults=True, preset=args.preset, **given)
    except C.ConfigError as e:
        raise UsageError(str(e)) from None
    if not args.preset:
        from kerlym import presets

        if (run.env, run.agent) in presets.PRESETS:
            print(
                f"kerlym: note: kerlym has tuned settings for -e {run.env} -a {run.agent}; add --preset to use them",
                file=sys.stderr,
            )
    return run, cfg


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def check_settings(run: C.RunConfig, cfg: C.AgentConfig) -> None:
    """What needs no environment: display, network names."""
    if run.render and not _has_display():
        raise UsageError("--render needs a display, and none was found (DISPLAY is unset); use -S to record videos")


def check_env_id(env_id: str) -> None:
    import difflib

    import gymnasium as gym

    from kerlym.envs import register_atari

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
    """A saved run's configs (defaults for any setting it lacks), with ``overrides`` applied.

    Runs saved before the typed configs used the flags' names (``num_frames``,
    ``max_mem``...) and listed every setting of every agent; both still load.
    """
    from kerlym import runs

    saved = runs.read_config(run_dir)
    if not isinstance(saved, dict):
        raise runs.CheckpointError(f"{os.path.join(run_dir, runs.CONFIG)} is corrupt: not a JSON object")
    saved = {C.OLD_NAMES.get(k, k): v for k, v in saved.items()}
    if "reset_on_score" in saved and saved["reset_on_score"] is not None:
        saved["reset_on_score"] = bool(saved["reset_on_score"])
    agent = saved.get("agent", C.RunConfig.agent)
    if agent not in C.AGENT_CONFIGS:
        raise runs.CheckpointError(f"{os.path.join(run_dir, runs.CONFIG)} names an unknown agent {agent!r}")
    values = {**C.defaults(C.RunConfig), **C.defaults(C.AGENT_CONFIGS[agent], cli=True), **saved, **overrides}
    run_values, agent_values, _ = C.split(values, agent)  # old files also hold other agents' settings
    try:
        return C.RunConfig(**run_values), C.agent_config(agent, agent_values)
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
            changeable = ", ".join(flag_name(k).split("/")[-1] for k in C.RUNTIME_FIELDS)
            raise UsageError(
                f"{flag_name(key)} {value} differs from this run's {C.label(key)} ({saved.get(key)}); a saved run "
                f"keeps its settings, except {changeable}"
            )


# -- running -----------------------------------------------------------------
def train(run: C.RunConfig, cfg: C.AgentConfig, run_dir: str, resume_from: str | None) -> int:
    from kerlym import runs, sinks
    from kerlym.make import make
    from kerlym.runner import NonFiniteLoss, Runner
    from kerlym.stats import read_progress, rewrite_progress

    stats_envs: list | None = [] if run.submit else None
    with native_stderr_silenced():
        agent = make(run, cfg, submit_stats=stats_envs)
    if resume_from:
        with native_stderr_silenced():
            runs.restore_checkpoint(resume_from, agent)
        progress = os.path.join(run_dir, runs.PROGRESS)
        # The checkpoint was written after its step's episodes were counted: keep exactly those rows.
        rows = [r for r in read_progress(progress) if r["episode"] <= agent.episode]
        rewrite_progress(progress, rows)  # episodes after the checkpoint will be run again
        agent.episodes = rows
        print(f"resumed {run_dir} at step {agent.total_steps}, episode {agent.episode}")
    runs.write_config(run_dir, config_dict(run, cfg))
    print(f"run folder: {run_dir}")
    outputs = [sinks.Console(quiet=run.quiet), sinks.ProgressFile(run_dir)]
    if run.plots:
        outputs.append(
            sinks.LivePlot(run_dir, run.agent, run.env, run.plot_rate, agent.episodes, values=run.agent != "pg")
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
        raise UsageError(f"{e}; the last checkpoint is {runs.latest_checkpoint(run_dir)}") from None
    path = runner.last_checkpoint
    if runner.interrupted:
        print(f"\ninterrupted at step {agent.total_steps}: checkpoint saved in {path}")
        print(f"continue with: kerlym --resume {run_dir}")
    else:
        print(f"finished at step {agent.total_steps}; checkpoint saved in {path}")
    if run.plots:
        print(f"plot: {os.path.join(run_dir, runs.PLOT)}")
    if run.submit and not runner.interrupted:
        print(f"results bundle: {write_submission(run, run_dir, agent, stats_envs)}")
    agent.close()
    return 0


def play(run: C.RunConfig, cfg: C.AgentConfig, model_path: str, seed: int | None = None) -> int:
    """Greedy episodes with a saved agent (a checkpoint folder or a ``.keras`` file); no training, nothing written."""
    import numpy as np

    from kerlym import runs
    from kerlym.make import make

    with native_stderr_silenced():
        agent = make(run, cfg)
        weights = runs.greedy_weights(model_path)
        try:
            agent.greedy_model.set_weights(weights)
        except ValueError as e:
            raise runs.CheckpointError(f"{model_path} does not match this agent's network: {first_line(e)}") from None
    returns = agent.evaluate(run.eval_episodes, seed=seed)
    agent.close()
    for i, r in enumerate(returns):
        print(f" * Episode {i + 1}: reward {r:.2f}")
    print(f"mean reward {np.mean(returns):.2f} ± {np.std(returns):.2f} over {len(returns)} episodes ({model_path})")
    return 0


def write_submission(run, run_dir, agent, stats_envs) -> str:
    """The -S results bundle: episode statistics, a greedy evaluation and videos."""
    import numpy as np

    out = os.path.join(run_dir, "submission")
    os.makedirs(out, exist_ok=True)
    train_env = stats_envs[0] if stats_envs and agent.concurrency == 1 else None
    if train_env is not None:  # Gymnasium's RecordEpisodeStatistics around the env that trained
        episode_stats = {
            "source": "RecordEpisodeStatistics",
            "returns": [float(x) for x in train_env.return_queue],
            "lengths": [int(x) for x in train_env.length_queue],
            "times": [float(x) for x in train_env.time_queue],
        }
    else:  # -c N: the copies step in other processes or threads; the agent's own rows count the same episodes
        episode_stats = {
            "source": "kerlym episode rows",
            "returns": [float(r["reward"]) for r in agent.episodes],
            "lengths": [int(r["length"]) for r in agent.episodes],
            "times": [],  # episodes of different copies overlap in time
        }
    with open(os.path.join(out, "episode_statistics.json"), "w") as f:
        json.dump(episode_stats, f)
    video_note = _record_videos(run, agent, os.path.join(out, "videos"))
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
    with open(os.path.join(out, "evaluation.json"), "w") as f:
        json.dump(evaluation, f, indent=2)
    print(f"greedy evaluation over {len(returns)} episodes: {evaluation['mean']:.2f} ± {evaluation['std']:.2f}")
    return out


def _record_videos(run, agent, folder, episodes=3) -> str:
    import gymnasium as gym

    from kerlym import preproc

    env = None
    if not _has_display():
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame renders off-screen
    try:
        env = gym.make(run.env, render_mode="rgb_array")
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
        if args.resume and args.play:
            raise UsageError("--resume and --play cannot be used together")
        saved_dir = args.resume or args.play
        if saved_dir:
            from kerlym import runs

            if args.best and not args.play:
                raise UsageError("--best goes with --play")
            given = given_settings(args)
            overrides = {k: v for k, v in given.items() if k in C.RUNTIME_FIELDS}
            run, cfg = saved_configs(saved_dir, overrides)
            check_fixed_settings(args, run, cfg)
            checkpoint = runs.best_model(saved_dir) if args.best else runs.latest_checkpoint(saved_dir)
            check_settings(run, cfg)
            check_env(run, cfg)
            if args.play:
                return play(run, cfg, checkpoint, seed=args.seed)
            return train(run, cfg, saved_dir, checkpoint)
        run, cfg = resolve(args)
        check_settings(run, cfg)
        check_env_id(run.env)
        check_env(run, cfg)
        from kerlym import runs

        # Every check above ran before the run folder exists, so bad input never leaves one behind.
        return train(run, cfg, runs.new_run_dir(run.outdir, run.env, run.agent), None)
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
