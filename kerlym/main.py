"""The ``kerlym`` command: train, resume, watch and evaluate agents on Gymnasium environments.

The flags are generated from the typed configs in :mod:`kerlym.config`, keeping
the original KeRLym's spellings and defaults. Start-up imports only the standard
library, so ``--help``, ``--version`` and argument errors answer at once;
Gymnasium, Keras and matplotlib are imported when a run actually starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import MISSING, fields

from kerlym import config as C
from kerlym import settings as S
from kerlym.agents import AGENT_CONFIGS

# --weights and --format's choices (kerlym.checkpoints' WEIGHTS, kerlym.playback's EXPORT_FORMATS: they import more).
WEIGHTS = ("online", "average", "best")
FORMATS = ("keras", "saved_model", "onnx", "litert")


class UsageError(Exception):
    """Bad input: reported as one line and exit status 2."""


class RunFailed(Exception):
    """The machine failed a run (a worker process died, a write failed): one line and exit status 1."""


class Interrupted(Exception):
    """A signal (Ctrl-C, SIGTERM) arrived before training began; the message says what was kept."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def _stop_if_interrupted(kept: str) -> None:
    """Raise :class:`Interrupted` if a signal arrived during the set-up so far (``kept``: what the user has)."""
    from kerlym._io import deferred_signals

    signals = deferred_signals()
    if signals:
        raise Interrupted(f"interrupted before training began; {kept}", signals[0])


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
    for agent, cls in AGENT_CONFIGS.items():
        if f.name in C.field_names(cls):
            by_default.setdefault(str(C.defaults(cls, cli=True)[f.name]), []).append(agent)
    users = [a for agents in by_default.values() for a in agents]
    prefix = "" if len(users) == len(AGENT_CONFIGS) else f"{', '.join(a for a in AGENT_CONFIGS if a in users)}: "
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
            if "cli_const" in f.metadata:  # --mlflow [URI]: the flag alone means its const
                kw["const"] = f.metadata["cli_const"]
            if kind == "int":  # --self-play [K]
                kw["type"] = int
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
        return tuple(AGENT_CONFIGS)
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
        help="With --play, --export or --trained-agent: the latest checkpoint's online network, its weight average "
        "(runs with --ema), or best.keras (see --eval_every) [the average where there is one, else online]",
    )
    played.add_argument(
        "--export",
        metavar="RUN_DIR",
        help="Write the saved agent's greedy policy network under RUN_DIR/export/ for inference outside kerlym",
    )
    played.add_argument(
        "--format",
        choices=FORMATS,
        default="saved_model",
        help='With --export: a .keras file, a TensorFlow SavedModel, ONNX (pip install ".[export]") or LiteRT '
        "(.tflite; TensorFlow or torch backend) [saved_model]",
    )
    sweep.add_flags(p)
    p.add_argument("--version", action="version", version=f"kerlym {__version__}")
    return p


# -- running ----------------------------------------------------------------
def train(run: C.RunConfig, cfg: C.AgentConfig, run_dir: str, resume_from: str | None) -> int:
    """The command's training run in ``run_dir`` (locked by the caller): build the agent, run the session."""
    from kerlym import session
    from kerlym._io import ProcessDied, native_stderr_silenced
    from kerlym.make import make
    from kerlym.pretrain import Interrupted as PretrainInterrupted
    from kerlym.runner import NonFiniteLoss

    stats_envs: list | None = [] if run.submit else None
    with native_stderr_silenced():
        agent = make(run, cfg, submit_stats=stats_envs)
    try:
        kept = f"the run is as it was: continue with: kerlym --resume {run_dir}" if resume_from else "nothing was saved"
        _stop_if_interrupted(kept)
        session.train(agent, run, run_dir, resume_from=resume_from, submit_stats=stats_envs)
    except NonFiniteLoss as e:
        raise UsageError(session.non_finite_message(e, run_dir)) from None
    except ProcessDied as e:  # an env worker, the actor process, a Go opponent
        raise RunFailed(session.failure_message(e, run_dir)) from None
    except PretrainInterrupted as e:  # a fresh run's Ctrl-C during --pretrain: the games played are cached
        raise Interrupted(str(e), e.signum) from None
    finally:
        agent.close()
    return 0


def _saved_run(args, saved_dir: str) -> int:
    """``--resume``, ``--play`` or ``--export`` of the run in ``saved_dir``."""
    from kerlym import checkpoints, runs
    from kerlym.make import check_env, saved_configs

    which = S.weights_choice(args)
    overrides = {k: v for k, v in S.given_settings(args).items() if k in C.RUNTIME_FIELDS}
    run, cfg = saved_configs(saved_dir, overrides)
    S.check_fixed_settings(args, run, cfg)
    given_kwargs = S.given_settings(args).get("env_kwargs")
    if args.play and given_kwargs:  # --play against another opponent: the given env kwargs add to the run's
        run = dataclasses.replace(run, env_kwargs={**(run.env_kwargs or {}), **given_kwargs})
    if args.play:  # the opponents --play plays are the ones named here, else the env's own
        run = dataclasses.replace(run, eval_opponents=S.given_settings(args).get("eval_opponents"))
    S.check_settings(run, cfg)
    check_env(run, cfg, training=not (args.play or args.export), new_run=False)
    if args.play:  # reads only (but for -S's bundle): no lock, works on a read-only disk
        from kerlym import playback

        try:
            return playback.play(run, cfg, saved_dir, which, seed=args.seed)
        except playback.Interrupted as e:  # the finished episodes' results, in one line
            raise Interrupted(str(e), e.signum) from None
    if args.export:
        from kerlym.playback import export

        return export(run, cfg, saved_dir, args.format, which)
    run = S.check_tracking(run)
    runs.check_run_writable(saved_dir)
    with runs.lock_run(saved_dir):
        runs.remove_stale_temporaries(saved_dir)
        checkpoint, note = checkpoints.resumable_checkpoint(saved_dir)
        if note:
            print(f"kerlym: note: {note}", file=sys.stderr)
        return train(run, cfg, saved_dir, checkpoint)


def _new_run(args) -> int:
    """A new run (or, with ``--seeds``/``--tune``, a sweep of them) from the flags."""
    from kerlym import runs
    from kerlym.make import check_env, trained_net_kwargs

    which = S.weights_choice(args)  # --best, --weights or --format without --play/--export/--trained-agent: an error
    run, cfg, notes = S.resolve(args)
    run = S.check_trained_agent(run, which)
    cfg, note = trained_net_kwargs(run, cfg)
    notes += [note] if note else []
    S.check_settings(run, cfg)
    run = S.check_tracking(run)
    S.check_env_id(run)
    check_env(run, cfg)
    for note in notes:  # only once the input is known to be good, so an error stays one line
        print(f"kerlym: note: {note}", file=sys.stderr)
    if args.ray is not None and not (args.seeds or args.tune) and cfg.concurrency > 1:
        cfg = S.ray_actors(cfg, args.ray)  # -c N --ray: the N envs as Ray actors feeding this learner
        args.ray = None
    from kerlym import sweep

    if sweep.wanted(args):  # --seeds, --tune: many runs under one sweep folder
        return sweep.run(args, run, cfg)
    runs.check_outdir_writable(run.outdir)
    _stop_if_interrupted("nothing was saved")
    # Every check above ran before the run folder exists, so bad input never leaves one behind.
    run_dir = runs.new_run_dir(run.outdir, run.env.replace(":", "_"), run.agent)
    try:
        with runs.lock_run(run_dir):
            return train(run, cfg, run_dir, None)
    finally:
        runs.remove_if_empty(run_dir)  # stopped before it held anything but its lock


def main(argv=None) -> int:
    """The ``kerlym`` command; returns its exit status (2 for bad input, with one line on stderr).

    SIGINT and SIGTERM are caught from the start (:func:`kerlym._io.defer_signals`), so that a Ctrl-C while
    Keras loads is never lost; training stops as soon as the agent is built, with one line, and a Ctrl-C during
    ``--play`` ends it with one line and status 130.
    """
    from kerlym._io import defer_signals, end_deferral

    defer_signals()
    try:
        return _main(argv)
    finally:
        end_deferral()


def command() -> int:
    """The console script and ``python -m kerlym``: :func:`main`, then a quiet exit with its status.

    By the time :func:`main` returns, the run is saved. A Ctrl-C (or SIGTERM) while Python shuts down
    (its exit handlers, TensorFlow's teardown: about a second) then ends the process at once with that
    status, instead of a ``KeyboardInterrupt`` in an exit handler or death by the signal, which a shell
    reads as a failed run. In the last stage of teardown, where Python code no longer runs, SIGINT is ignored.

    The last exit handler also freezes the garbage collector's objects (``gc.freeze``): Python's final
    collection would otherwise walk every object the imports made (Keras, JAX, TensorFlow) to free memory
    the process hands back as it ends anyway.
    """
    import atexit
    import gc
    import os
    import signal

    atexit.register(gc.freeze)  # the first registered runs last
    atexit.register(signal.signal, signal.SIGINT, signal.SIG_IGN)
    status = main()

    def leave(signum, frame):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, leave)
    return status


def _main(argv) -> int:
    import signal

    from kerlym._io import CheckpointError

    try:
        args = build_parser().parse_args(argv)
        chosen = [f"--{k}" for k in ("resume", "play", "export") if getattr(args, k)]
        if len(chosen) > 1:
            raise UsageError(f"{' and '.join(chosen)} cannot be used together")
        saved_dir = args.resume or args.play or args.export
        if args.resume:
            from kerlym import sweep

            if sweep.is_sweep(args.resume):
                if S.given_settings(args) or args.preset or args.seeds or args.tune or args.trials:
                    raise UsageError("a sweep resumes with its own settings; only --ray [ADDRESS] may be given")
                return sweep.resume(args.resume, args.ray)
        return _saved_run(args, saved_dir) if saved_dir else _new_run(args)
    except (UsageError, C.ConfigError, CheckpointError) as e:
        print(f"kerlym: error: {e}", file=sys.stderr)
        return 2
    except RunFailed as e:
        print(f"kerlym: error: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"kerlym: {e}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("\nkerlym: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Exception as e:
        from kerlym.sweep import SweepError

        if isinstance(e, SweepError):
            print(f"kerlym: error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
