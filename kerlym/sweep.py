"""Seeds and hyperparameter sweeps: many kerlym runs under one sweep folder, in turn or as Ray Tune trials.

    kerlym -e CartPole-v1 -a dqn --preset --seeds 0 1 2 3            # one after another, in this process
    kerlym -e CartPole-v1 -a dqn --preset --seeds 0 1 2 3 --ray      # Ray Tune trials on a local Ray cluster
    kerlym -e CartPole-v1 -a dqn --preset --tune space.yaml --trials 20 --ray ADDRESS
    kerlym --resume runs/CartPole-v1-dqn-sweep-20250101-120000

A sweep folder ``<outdir>/<env>-<agent>-sweep-<time>/`` holds ``sweep.json``
(what was asked; it marks the folder as a sweep for ``--resume``), one ordinary
kerlym run folder per seed (``seed-<S>/``) or trial (``trial-<id>/``), each with
its final greedy evaluation in ``evaluation.json``, and the summary:
``summary.csv``, ``summary.md`` and ``curve.png``. Ray Tune's own experiment
state lives in ``tune/``; ``--tune`` also writes ``best_preset.json``, which
``--preset FILE`` reads.

Ray, Optuna and PyYAML are imported only inside the functions that use them
(``pip install "kerlym[ray]"``), so the command starts as fast without them.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time

from kerlym import checkpoints, runs
from kerlym import config as C
from kerlym._io import CheckpointError, install_hint, native_stderr_silenced
from kerlym.agents import AGENT_CONFIGS
from kerlym.checkpoints import read_evaluation
from kerlym.search import Dist, SpaceError, parse_space, read_space, to_tune
from kerlym.summary import CURVE, SUMMARY_CSV, markdown_table, summarize

MARKER = "sweep.json"
BEST_PRESET = "best_preset.json"
TUNE_DIR = "tune"
METRIC = "eval_mean"  # what --tune maximises and ASHA compares: the greedy evaluation's mean return


class SweepError(Exception):
    """Bad sweep input (a search space, a flag combination, a missing extra); the message is one line."""


def add_flags(parser) -> None:
    """The command's sweep flags (plain flags, not config fields)."""
    g = parser.add_argument_group("seeds and sweeps")
    g.add_argument("--seeds", type=int, nargs="+", metavar="S", help="Train one run per seed in one sweep folder")
    g.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="Run --seeds or --tune as Ray Tune trials, or with -c N the N envs as Ray actors: on a local Ray "
        "cluster, or the cluster at ADDRESS",
    )
    g.add_argument("--tune", metavar="SPACE_FILE", help="Search hyperparameters (YAML space) with Optuna and ASHA")
    g.add_argument("--trials", type=int, metavar="N", help="Trials of a --tune search [10]")


FLAGS = ("seeds", "ray", "tune", "trials")


def is_sweep(path: str) -> bool:
    """True when ``path`` is a sweep folder (it holds ``sweep.json``)."""
    return os.path.isfile(os.path.join(path, MARKER))


def _import_ray():
    try:
        import ray
        from ray import tune
    except ImportError:
        raise SweepError(f"--ray and --tune need Ray Tune and Optuna: {install_hint('ray')}") from None
    return ray, tune


# -- one run -----------------------------------------------------------------
class _Report:
    """A session sink that reports each evaluation (and, ``every_seconds``, progress) to a callback."""

    def __init__(self, report, every_seconds: float | None, final_step: int | None = None):
        self.report, self.every, self.final_step = report, every_seconds, final_step
        self.last = time.perf_counter()
        self.eval: tuple[int, float, float] | None = None

    def metrics(self, agent) -> dict:
        recent = [r["reward"] for r in agent.episodes[-100:]]
        step, mean, std = self.eval if self.eval else (-1, math.nan, math.nan)
        return {
            "total_steps": agent.total_steps,
            "episodes": agent.episode,
            "reward_100": sum(recent) / len(recent) if recent else math.nan,
            METRIC: mean,
            "eval_std": std,
            "eval_step": step,
        }

    def on_episode(self, runner, row) -> None:
        pass

    def on_tick(self, runner) -> None:
        if self.report is not None and self.every is not None and time.perf_counter() - self.last >= self.every:
            self.last = time.perf_counter()
            self.report(self.metrics(runner.agent))

    def on_eval(self, runner, mean, std, best) -> None:
        self.eval = (runner.agent.total_steps, mean, std)
        # The final evaluation is reported after evaluation.json is written: a scheduler may end the trial at
        # any report, and a run must not end up finished but without its result.
        final = runner.finishing or (self.final_step is not None and runner.agent.total_steps >= self.final_step)
        if self.report is not None and not final:
            self.last = time.perf_counter()
            self.report(self.metrics(runner.agent))


_BUILDING = threading.Lock()


def train_one(
    run: C.RunConfig, cfg: C.AgentConfig, run_dir: str, report=None, every_seconds=None, join=None
) -> dict | None:
    """Train one run into ``run_dir`` with :func:`kerlym.session.train`; its ``evaluation.json`` is the result.

    A folder that already has ``evaluation.json`` is done and is not trained again; one with a checkpoint
    continues from it (as ``kerlym --resume``). With ``--mlflow`` or ``--wandb`` it is one run of the MLflow
    experiment and W&B group named after its sweep folder. ``report(metrics)`` receives each evaluation (every
    ``run.eval_every`` steps, and the final one) and, every ``every_seconds``, the progress. ``join(agent)``
    is called with the agent once it is built (the seeds of a fused sweep join one compiled program).

    Returns:
        The evaluation (:func:`kerlym.checkpoints.evaluation_record`), or ``None`` when training was
        interrupted (Ctrl-C): the run folder then resumes.
    """
    from kerlym import session
    from kerlym.make import make

    done = read_evaluation(run_dir)
    if done is not None:
        return done
    os.makedirs(run_dir, exist_ok=True)
    with runs.lock_run(run_dir):
        runs.remove_stale_temporaries(run_dir)
        try:
            checkpoint, _ = checkpoints.resumable_checkpoint(run_dir)
        except CheckpointError:
            checkpoint = None
        with _BUILDING, native_stderr_silenced():  # seeding sets Keras's global generators: one build at a time
            agent = make(run, cfg)
        if join is not None:
            join(agent)
        reporter = _Report(report, every_seconds, final_step=run.steps)
        try:
            group = os.path.basename(os.path.dirname(os.path.abspath(run_dir)))  # the sweep folder's name
            outcome = session.train(agent, run, run_dir, resume_from=checkpoint, extra_sinks=[reporter], group=group)
        finally:
            agent.close()
    if outcome.interrupted or outcome.evaluation is None:
        return None
    if report is not None:
        report(reporter.metrics(agent))
    return outcome.evaluation


def configs_from(settings: dict) -> tuple[C.RunConfig, C.AgentConfig]:
    """The configs from flat field values (``config.json``'s form, as a sweep stores its base settings)."""
    from kerlym.make import configure

    settings = dict(settings)
    return configure(settings.pop("env"), settings.pop("agent"), **settings)


# -- running a sweep -------------------------------------------------------------
def new_sweep_dir(run: C.RunConfig) -> str:
    """Create ``<outdir>/<env>-<agent>-sweep-<time>`` (made unique); returns its absolute path."""
    from kerlym import runs

    return os.path.abspath(runs.new_run_dir(run.outdir, run.env.replace(":", "_"), f"{run.agent}-sweep"))


def _write_marker(sweep_dir: str, info: dict) -> None:
    from kerlym import __version__

    with open(os.path.join(sweep_dir, MARKER), "w") as f:
        json.dump({**info, "kerlym": __version__}, f, indent=2)


def run_seeds(
    run: C.RunConfig, cfg: C.AgentConfig, seeds, sweep_dir: str | None = None, ray: str | None = None
) -> list[dict] | None:
    """Train one run per seed under one sweep folder and summarise them.

    Args:
        run: the run's config (``steps`` or ``episodes`` sets each seed's budget).
        cfg: the agent's config; each run gets it with ``seed`` replaced.
        seeds: the seeds, one run each (``seed-<S>/``).
        sweep_dir: an existing sweep folder to continue (default: a new one under ``run.outdir``).
        ray: ``None``: one after another in this process; ``"local"``: Ray Tune trials on a local Ray cluster
            (or the one already initialised); an address: the Ray cluster there.

    Returns:
        The summary rows (seed, greedy mean and std, steps, wall-clock), or ``None`` if interrupted.
    """
    seeds = list(seeds)
    fused = ray is None and len(seeds) > 1 and run.env.startswith("gymnax:") and run.steps is not None
    if fused and run.agent in ("dqn", "ddqn"):  # every seed holds a replay buffer: refuse before any folder
        from kerlym.agents.fused_dqn import check_replay_fits

        check_replay_fits(run.env, cfg, len(seeds))
    sweep_dir = os.path.abspath(sweep_dir) if sweep_dir else new_sweep_dir(run)  # Ray workers start elsewhere
    os.makedirs(sweep_dir, exist_ok=True)
    if not is_sweep(sweep_dir):
        _write_marker(sweep_dir, {"kind": "seeds", "seeds": seeds, "ray": ray, "settings": C.config_dict(run, cfg)})
    print(f"sweep folder: {sweep_dir}", flush=True)
    folders = {s: os.path.join(sweep_dir, f"seed-{s}") for s in seeds}
    if fused:
        if not _train_fused_seeds(run, cfg, seeds, folders):
            print(f"\ninterrupted: continue with: kerlym --resume {sweep_dir}")
            return None
    elif ray is None:
        for s in seeds:
            print(f"== seed {s}: {folders[s]}", flush=True)
            if train_one(run, C.replace(cfg, seed=s), folders[s]) is None:
                print(f"\ninterrupted: continue with: kerlym --resume {sweep_dir}")
                return None
    else:
        from ray import tune

        settings = {k: v for k, v in C.config_dict(run, cfg).items() if k != "seed"}
        if not _fit(sweep_dir, settings, {"seed": tune.grid_search(seeds)}, None, ray, len(seeds)):
            return None
    return _finish(sweep_dir, folders)


def _train_fused_seeds(run: C.RunConfig, cfg: C.AgentConfig, seeds, folders) -> bool:
    """The seeds' runs of a gymnax env as one program (``jax.vmap`` over seeds), each its own session and folder.

    Each seed's :func:`train_one` runs in a thread of its own and joins a
    :class:`kerlym.agents.fused.FusedGroup`, which trains all the seeds' chunks at once. Ctrl-C stops
    every seed at its next chunk, each with a checkpoint. Returns ``False`` when interrupted.
    """
    from kerlym._io import deferred_signals, end_deferral
    from kerlym.agents.fused import FusedGroup

    # The seeds' sessions run in threads, which cannot take signals over: the main thread acts on Ctrl-C below.
    stopped = deferred_signals()
    end_deferral()
    if stopped:
        raise KeyboardInterrupt
    group = FusedGroup(len(seeds))
    results: dict = {}
    run = C.replace(run, quiet=True)  # the seeds' lines interleave: a status line each, not one per episode

    def train(place, s):
        try:
            results[s] = train_one(run, C.replace(cfg, seed=s), folders[s], join=lambda a: group.join(place, a))
        except KeyboardInterrupt:
            results[s] = None
        except BaseException as e:  # noqa: BLE001 (reported once all seeds have stopped)
            results[s] = e
        finally:
            group.leave(place)

    print(f"== seeds {', '.join(map(str, seeds))} together, as one compiled program", flush=True)

    def on_signal(signum, frame):  # Ctrl-C or SIGTERM: the threads' runners cannot take signals over
        if not group.interrupted:
            print("\nkerlym: stopping every seed after its chunk; saving checkpoints ...", flush=True)
        group.interrupt()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    threads = [threading.Thread(target=train, args=(i, s), daemon=True) for i, s in enumerate(seeds)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        group.close()  # no program left running as Python exits
    errors = [e for e in results.values() if isinstance(e, BaseException)]
    if errors:
        raise errors[0]
    return all(results.get(s) is not None for s in seeds)


def _finish(sweep_dir, folders, label="seed", params=None) -> list[dict]:
    rows = summarize(sweep_dir, folders, label, params)
    missing = [str(k) for k, f in folders.items() if read_evaluation(f) is None and not params]
    if rows:
        print("\n" + markdown_table(rows, label))
        print(f"\nsummary: {os.path.join(sweep_dir, SUMMARY_CSV)}, {os.path.join(sweep_dir, CURVE)}")
    if missing:
        print(f"not finished: {label} {', '.join(missing)}")
    return rows


def _trainable(config: dict, base: dict, sweep_dir: str) -> None:
    """One Ray Tune trial: a kerlym run folder under the sweep folder, evaluations reported to Tune."""
    from ray import tune

    # One CPU per trial: TensorFlow would otherwise start a thread per core in every trial.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    label = f"seed-{config['seed']}" if "seed" in config else f"trial-{tune.get_context().get_trial_id()}"
    run_dir = os.path.join(sweep_dir, label)
    done = read_evaluation(run_dir)
    if done is not None:  # finished before an interruption: report its result again
        tune.report({"total_steps": done["total_steps"], METRIC: done["mean"], "eval_std": done["std"]})
        return
    run, cfg = configs_from({**base, **config, "quiet": True})
    train_one(run, cfg, run_dir, report=tune.report, every_seconds=10.0)


def _fit(sweep_dir, settings, param_space, tune_config, address, n_trials):
    """Run (or, when its state exists, restore) the sweep's Ray Tune experiment; False if interrupted."""
    from kerlym._io import end_deferral

    ray, tune = _import_ray()
    end_deferral()  # Tune handles Ctrl-C itself (KeyboardInterrupt below): the command's start-up catch ends here
    started = False
    if not ray.is_initialized():
        if address in (None, "local"):
            cpus = min(n_trials, os.cpu_count() or 1)
            ray.init(num_cpus=cpus, include_dashboard=False, configure_logging=False)
        else:
            try:
                ray.init(address=address)
            except ConnectionError as e:
                raise SweepError(f"cannot connect to the Ray cluster at {address}: {str(e).splitlines()[0]}") from None
        started = True
    try:
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, base=settings, sweep_dir=sweep_dir), {"cpu": 1}
        )
        path = os.path.join(sweep_dir, TUNE_DIR)
        if tune.Tuner.can_restore(path):  # an interrupted sweep: Tune keeps every finished trial
            tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=tune_config,
                run_config=tune.RunConfig(name=TUNE_DIR, storage_path=sweep_dir, verbose=1),
            )
        try:
            results = tuner.fit()
        except KeyboardInterrupt:
            results = None
        if results is None or _interrupted(path, n_trials):
            print(f"\ninterrupted: continue with: kerlym --resume {sweep_dir}")
            return False
        for r in results:
            if r.error is not None:
                from kerlym._io import first_line

                print(f"kerlym: note: trial {r.metrics.get('trial_id', '?')} failed: {first_line(r.error)}")
        return results
    finally:
        if started:
            ray.shutdown()


def _interrupted(path: str, expected: int) -> bool:
    """True when Tune's saved experiment has fewer than ``expected`` trials, or some not yet ended (Ctrl-C)."""
    import glob

    states = glob.glob(os.path.join(path, "experiment_state-*.json"))
    if not states:
        return True
    with open(max(states)) as f:  # the newest by the time in its name (restoring rewrites the old ones too)
        trials = [json.loads(t[0]) for t in json.load(f)["trial_data"]]
    return len(trials) < expected or any(t["status"] not in ("TERMINATED", "ERROR") for t in trials)


def run_tune(
    run: C.RunConfig,
    cfg: C.AgentConfig,
    space: dict[str, Dist],
    trials: int,
    sweep_dir: str | None = None,
    ray: str | None = "local",
) -> dict | None:
    """Search ``space`` with Optuna's TPE through Ray Tune, stopping weak trials early with ASHA.

    Each trial trains ``run.steps`` steps from ``cfg`` with the searched settings replaced, evaluating
    greedily every ``run.eval_every`` steps (default ``steps / 5``); ASHA compares trials on those
    evaluations. The best finished trial's settings are written to ``best_preset.json``.

    Returns:
        The best preset (a dict of config field names), or ``None`` if interrupted or no trial finished.
    """
    if run.steps is None:
        raise SweepError("--tune needs a budget per trial: --steps N (or a --preset that sets one)")
    _, tune = _import_ray()
    try:
        import optuna
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise SweepError(f"--tune needs Optuna: {install_hint('ray')}") from None
    run = C.replace(run, eval_every=run.eval_every or max(1, run.steps // 5))
    sweep_dir = os.path.abspath(sweep_dir) if sweep_dir else new_sweep_dir(run)
    os.makedirs(sweep_dir, exist_ok=True)
    settings = C.config_dict(run, cfg)
    if not is_sweep(sweep_dir):
        raw = {k: {d.kind: list(d.values) if d.kind == "choice" else [d.low, d.high]} for k, d in space.items()}
        _write_marker(sweep_dir, {"kind": "tune", "space": raw, "trials": trials, "ray": ray, "settings": settings})
    print(f"sweep folder: {sweep_dir}", flush=True)
    tune_config = tune.TuneConfig(
        metric=METRIC,
        mode="max",
        search_alg=OptunaSearch(sampler=optuna.samplers.TPESampler(seed=cfg.seed)),
        scheduler=ASHAScheduler(
            time_attr="total_steps", max_t=run.steps, grace_period=run.eval_every, reduction_factor=2
        ),
        num_samples=trials,
    )
    results = _fit(sweep_dir, settings, to_tune(space), tune_config, ray, trials)
    if not results:
        return None
    folders, params = {}, {}
    for r in results:
        trial_id = r.metrics.get("trial_id") if r.metrics else None
        if trial_id:
            folders[trial_id] = os.path.join(sweep_dir, f"trial-{trial_id}")
            params[trial_id] = {k: r.config[k] for k in space if k in r.config}
    rows = [r for r in _finish(sweep_dir, folders, "trial", params) if r["status"] == "finished"]
    if len(rows) < len(results):
        print(f"{len(results) - len(rows)} of {len(results)} trials were stopped early by ASHA or failed")
    if not rows:
        return None
    best = max(rows, key=lambda r: r["eval_mean"])
    preset = write_best_preset(sweep_dir, folders[best["trial"]])
    print(f"best: trial {best['trial']}, greedy return {best['eval_mean']:.2f} ± {best['eval_std']:.2f}")
    print(f"best settings: {os.path.join(sweep_dir, BEST_PRESET)} (use with --preset FILE)")
    return preset


def write_best_preset(sweep_dir: str, run_dir: str) -> dict:
    """``best_preset.json``: the env, agent, budget and every agent setting (but the seed) of ``run_dir``."""
    from kerlym import runs

    saved = runs.read_config(run_dir)
    agent = saved["agent"]
    names = [n for n in C.field_names(AGENT_CONFIGS[agent]) if n != "seed"]
    preset = {"env": saved["env"], "agent": agent, "steps": saved["steps"], **{n: saved[n] for n in names}}
    with open(os.path.join(sweep_dir, BEST_PRESET), "w") as f:
        json.dump(preset, f, indent=2)
        f.write("\n")
    return preset


# -- the command -----------------------------------------------------------------
def wanted(args) -> bool:
    """True when the command line asks for a sweep (any of ``--seeds``, ``--ray``, ``--tune``, ``--trials``)."""
    return any(getattr(args, name, None) is not None for name in FLAGS)


def _check(args, run: C.RunConfig) -> None:
    if args.ray is not None and not (args.seeds or args.tune):
        raise SweepError("--ray runs --seeds or --tune as Ray Tune trials; give one of them")
    if args.trials is not None and not args.tune:
        raise SweepError("--trials goes with --tune SPACE_FILE")
    if args.trials is not None and args.trials < 1:
        raise SweepError(f"--trials must be positive, got {args.trials}")
    if args.seeds and args.tune:
        raise SweepError("--tune runs each trial with --seed; --seeds goes without --tune")
    if args.seeds and len(set(args.seeds)) != len(args.seeds):
        raise SweepError(f"--seeds has a seed twice: {' '.join(map(str, args.seeds))}")
    if args.seeds and run.steps is None and run.episodes is None:
        raise SweepError("--seeds needs a budget per seed: --steps N or --episodes N (or a --preset that sets one)")
    if args.seeds and (run.render or run.plots or run.submit):
        raise SweepError("--seeds writes its own summary and curve.png; drop --render, --plots and --submit")
    if args.ray is not None or args.tune:
        _import_ray()


def run(args, run: C.RunConfig, cfg: C.AgentConfig) -> int:
    """The command's ``--seeds`` / ``--tune`` dispatch (after :func:`kerlym.settings.resolve`).

    Raises:
        SweepError: bad sweep input (one line), before Ray starts.
    """
    try:
        space = read_space(args.tune, run.agent, cfg) if args.tune else None  # bad input first, before Ray starts
    except SpaceError as e:
        raise SweepError(str(e)) from None
    _check(args, run)
    if args.tune:
        return 0 if run_tune(run, cfg, space, args.trials or 10, ray=args.ray or "local") else 1
    return 0 if run_seeds(run, cfg, args.seeds, ray=args.ray) is not None else 1


def resume(sweep_dir: str, ray: str | None = None) -> int:
    """``kerlym --resume SWEEP_DIR``: finish the sweep's unfinished runs; ``ray`` (``--ray [ADDRESS]``) may move them.

    Raises:
        SweepError: the sweep folder's ``sweep.json`` cannot be read or holds bad settings (one line).
    """
    sweep_dir = os.path.abspath(sweep_dir)
    try:
        with open(os.path.join(sweep_dir, MARKER)) as f:
            info = json.load(f)
        run, cfg = configs_from(info["settings"])
        ray = ray or info.get("ray")
        if info["kind"] == "tune":
            space = parse_space(info["space"], run.agent, cfg)
            done = run_tune(run, cfg, space, info["trials"], sweep_dir, ray=ray or "local")
        else:
            done = run_seeds(run, cfg, info["seeds"], sweep_dir, ray=ray)
        return 0 if done is not None else 1
    except (SpaceError, C.ConfigError, KeyError, json.JSONDecodeError) as e:
        raise SweepError(f"cannot resume the sweep in {sweep_dir}: {e}") from None
