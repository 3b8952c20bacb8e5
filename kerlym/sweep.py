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
import time
from typing import NamedTuple

from kerlym import checkpoints
from kerlym import config as C

MARKER = "sweep.json"
EVALUATION = "evaluation.json"
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
CURVE = "curve.png"
BEST_PRESET = "best_preset.json"
TUNE_DIR = "tune"
INSTALL = 'pip install "kerlym[ray]"'
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
        help="Run --seeds or --tune as Ray Tune trials: on a local Ray cluster, or the cluster at ADDRESS",
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
        raise SweepError(f"--ray and --tune need Ray Tune and Optuna: {INSTALL}") from None
    return ray, tune


# -- search spaces -----------------------------------------------------------
class Dist(NamedTuple):
    """One searched setting: ``uniform``/``loguniform`` over [low, high], or a ``choice`` of values."""

    kind: str
    low: float | None = None
    high: float | None = None
    values: tuple = ()
    integer: bool = False


KINDS = ("uniform", "loguniform", "choice")


def parse_space(space, agent: str, base: C.AgentConfig) -> dict[str, Dist]:
    """A search space (a mapping as read from YAML) checked against ``agent``'s config fields.

    Each entry is ``name: {uniform: [low, high]}``, ``{loguniform: [low, high]}`` or ``{choice: [v, ...]}``.
    On an integer setting (``batch_size``) uniform and log-uniform draw integers from [low, high].
    Every bound and choice must be a valid value of the setting (checked on ``base``).

    Raises:
        SweepError: a name that is not a setting of ``agent`` (with a did-you-mean), an unknown kind, a bad range.
    """
    import difflib

    if not isinstance(space, dict) or not space:
        raise SweepError("the search space must map setting names to {uniform|loguniform|choice: ...}")
    cls = C.AGENT_CONFIGS[agent]
    known = [n for n in C.field_names(cls) if n != "seed"]
    types = {f.name: str(f.type) for f in C.fields(cls)}
    out = {}
    for name, entry in space.items():
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise SweepError(f"-a {agent} has no setting {name!r} to search{hint}")
        if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in KINDS:
            raise SweepError(f"{name}: give one of {', '.join(KINDS)}, e.g. {name}: {{choice: [1, 2]}}; got {entry!r}")
        ((kind, args),) = entry.items()
        integer = types[name].startswith("int")
        if kind == "choice":
            if not isinstance(args, list) or not args:
                raise SweepError(f"{name}: choice takes a non-empty list of values, got {args!r}")
            dist = Dist(kind, values=tuple(args), integer=integer)
            tried = list(args)
        else:
            ok = isinstance(args, list) and len(args) == 2 and all(isinstance(a, (int, float)) for a in args)
            if not ok or not args[0] < args[1]:
                raise SweepError(f"{name}: {kind} takes [low, high] with low < high, got {args!r}")
            if kind == "loguniform" and args[0] <= 0:
                raise SweepError(f"{name}: loguniform needs a positive low bound, got {args[0]}")
            if integer and not all(float(a).is_integer() for a in args):
                raise SweepError(f"{name} is an integer setting: give integer bounds, got {args!r}")
            cast = int if integer else float
            dist = Dist(kind, cast(args[0]), cast(args[1]), integer=integer)
            tried = [dist.low, dist.high]
        for value in tried:  # each bound or choice must be a value the config accepts
            try:
                C.replace(base, **{name: value})
            except (C.ConfigError, TypeError) as e:
                raise SweepError(f"{name}: {value!r} is not a valid value: {e}") from None
        out[name] = dist
    return out


def read_space(path: str, agent: str, base: C.AgentConfig) -> dict[str, Dist]:
    """The search space in the YAML file ``path`` (see :func:`parse_space`)."""
    try:
        import yaml
    except ImportError:
        raise SweepError(f"--tune reads YAML: {INSTALL}") from None
    try:
        with open(path) as f:
            space = yaml.safe_load(f)
    except OSError as e:
        raise SweepError(f"cannot read the search space {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise SweepError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    return parse_space(space, agent, base)


def to_tune(space: dict[str, Dist]) -> dict:
    """The space as Ray Tune sample domains (which ``OptunaSearch`` turns into Optuna distributions)."""
    _, tune = _import_ray()
    out = {}
    for name, d in space.items():
        if d.kind == "choice":
            out[name] = tune.choice(list(d.values))
        elif d.integer:  # randint's upper bound is exclusive; the YAML's is inclusive
            out[name] = (tune.lograndint if d.kind == "loguniform" else tune.randint)(d.low, d.high + 1)
        else:
            out[name] = (tune.loguniform if d.kind == "loguniform" else tune.uniform)(d.low, d.high)
    return out


# -- one run -----------------------------------------------------------------
class _Report:
    """A runner sink that reports each evaluation (and, ``every_seconds``, progress) to a callback."""

    def __init__(self, report, every_seconds: float | None, final_step: int | None = None):
        self.report, self.every, self.final_step = report, every_seconds, final_step
        self.last = time.perf_counter()
        self.eval: tuple[int, float, float] | None = None

    def metrics(self, runner) -> dict:
        agent = runner.agent
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
            self.report(self.metrics(runner))

    def on_eval(self, runner, mean, std, best) -> None:
        self.eval = (runner.agent.total_steps, mean, std)
        # The last evaluation is reported after evaluation.json is written: a scheduler may end the trial at
        # any report, and a run must not end up finished but without its result.
        final = self.final_step is not None and runner.agent.total_steps >= self.final_step
        if self.report is not None and not final:
            self.last = time.perf_counter()
            self.report(self.metrics(runner))


def train_one(run: C.RunConfig, cfg: C.AgentConfig, run_dir: str, report=None, every_seconds=None) -> dict | None:
    """Train one run into ``run_dir`` and evaluate it greedily; ``evaluation.json`` records the result.

    A folder that already has ``evaluation.json`` is done and is not trained again; one with a checkpoint
    continues from it (as ``kerlym --resume``). ``report(metrics)`` receives each evaluation (every
    ``run.eval_every`` steps, and the final one) and, every ``every_seconds``, the progress.

    Returns:
        The evaluation (``mean``, ``std``, ``returns``, ``total_steps``, ``wall_time``), or ``None`` when
        training was interrupted (Ctrl-C): the run folder then resumes.
    """
    from kerlym import runs, sinks
    from kerlym.main import config_dict, native_stderr_silenced
    from kerlym.make import make
    from kerlym.runner import Runner
    from kerlym.stats import read_progress, rewrite_progress

    done = read_evaluation(run_dir)
    if done is not None:
        return done
    os.makedirs(run_dir, exist_ok=True)
    with native_stderr_silenced():
        agent = make(run, cfg)
    wall = 0.0
    try:
        checkpoint = checkpoints.latest_checkpoint(run_dir)
    except runs.CheckpointError:
        checkpoint = None
    if checkpoint:
        with native_stderr_silenced():
            checkpoints.restore_checkpoint(checkpoint, agent)
        progress = os.path.join(run_dir, runs.PROGRESS)
        rows = [r for r in read_progress(progress) if r["episode"] <= agent.episode]
        rewrite_progress(progress, rows)
        agent.episodes = rows
        wall = rows[-1]["wall_time"] if rows else 0.0  # training time before the interruption, as far as is known
    runs.write_config(run_dir, config_dict(run, cfg))
    reporter = _Report(report, every_seconds, final_step=run.steps)
    runner = Runner(
        agent,
        run_dir,
        [sinks.Console(quiet=run.quiet), sinks.ProgressFile(run_dir, sinks.extra_columns(agent)), reporter],
        checkpoint_every=run.checkpoint_every,
        eval_every=run.eval_every,
        eval_episodes=run.eval_episodes,
        save_memory=run.save_memory,
    )
    t0 = time.perf_counter()
    steps_left = None if run.steps is None else max(0, run.steps - agent.total_steps)
    episodes_left = None if run.episodes is None else max(0, run.episodes - agent.episode)
    runner.run(max_steps=steps_left, max_episodes=episodes_left)
    if runner.interrupted:
        agent.close()
        return None
    if reporter.eval is None or reporter.eval[0] != agent.total_steps:
        runner.sinks = [reporter]  # the final evaluation: evaluations.csv and best.keras
        reporter.final_step = agent.total_steps
        runner.evaluate()
    _, mean, std = reporter.eval
    evaluation = {
        "mean": mean,
        "std": std,
        "episodes": run.eval_episodes,
        "total_steps": agent.total_steps,
        "wall_time": wall + time.perf_counter() - t0,
    }
    agent.close()
    tmp = os.path.join(run_dir, EVALUATION + ".tmp")
    with open(tmp, "w") as f:
        json.dump(evaluation, f, indent=2)
    os.replace(tmp, os.path.join(run_dir, EVALUATION))
    if report is not None:
        report(reporter.metrics(runner))
    return evaluation


def read_evaluation(run_dir: str) -> dict | None:
    """A finished run's ``evaluation.json`` (``None`` if the run has not finished)."""
    try:
        with open(os.path.join(run_dir, EVALUATION)) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def configs_from(settings: dict) -> tuple[C.RunConfig, C.AgentConfig]:
    """The configs from flat field values (``config.json``'s form, as a sweep stores its base settings)."""
    from kerlym.make import configure

    settings = dict(settings)
    return configure(settings.pop("env"), settings.pop("agent"), **settings)


# -- the summary ---------------------------------------------------------------
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

    from kerlym import runs
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
    from kerlym import runs
    from kerlym.stats import read_progress

    try:
        with open(os.path.join(run_dir, runs.EVALUATIONS)) as f:
            last = f.read().strip().splitlines()[-1].split(",")
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
    from kerlym.main import config_dict

    seeds = list(seeds)
    sweep_dir = os.path.abspath(sweep_dir) if sweep_dir else new_sweep_dir(run)  # Ray workers start elsewhere
    os.makedirs(sweep_dir, exist_ok=True)
    if not is_sweep(sweep_dir):
        _write_marker(sweep_dir, {"kind": "seeds", "seeds": seeds, "ray": ray, "settings": config_dict(run, cfg)})
    print(f"sweep folder: {sweep_dir}", flush=True)
    folders = {s: os.path.join(sweep_dir, f"seed-{s}") for s in seeds}
    if ray is None:
        for s in seeds:
            print(f"== seed {s}: {folders[s]}", flush=True)
            if train_one(run, C.replace(cfg, seed=s), folders[s]) is None:
                print(f"\ninterrupted: continue with: kerlym --resume {sweep_dir}")
                return None
    else:
        from ray import tune

        settings = {k: v for k, v in config_dict(run, cfg).items() if k != "seed"}
        if not _fit(sweep_dir, settings, {"seed": tune.grid_search(seeds)}, None, ray, len(seeds)):
            return None
    return _finish(sweep_dir, folders)


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
    ray, tune = _import_ray()
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
    from kerlym.main import config_dict

    if run.steps is None:
        raise SweepError("--tune needs a budget per trial: --steps N (or a --preset that sets one)")
    _, tune = _import_ray()
    try:
        import optuna
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise SweepError(f"--tune needs Optuna: {INSTALL}") from None
    run = C.replace(run, eval_every=run.eval_every or max(1, run.steps // 5))
    sweep_dir = os.path.abspath(sweep_dir) if sweep_dir else new_sweep_dir(run)
    os.makedirs(sweep_dir, exist_ok=True)
    settings = config_dict(run, cfg)
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
    names = [n for n in C.field_names(C.AGENT_CONFIGS[agent]) if n != "seed"]
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
    """The command's ``--seeds`` / ``--tune`` dispatch (after :func:`kerlym.main.resolve`)."""
    from kerlym.main import UsageError

    try:
        space = read_space(args.tune, run.agent, cfg) if args.tune else None  # bad input first, before Ray starts
        _check(args, run)
        if args.tune:
            return 0 if run_tune(run, cfg, space, args.trials or 10, ray=args.ray or "local") else 1
        return 0 if run_seeds(run, cfg, args.seeds, ray=args.ray) is not None else 1
    except SweepError as e:
        raise UsageError(str(e)) from None


def resume(args) -> int:
    """``kerlym --resume SWEEP_DIR``: finish the sweep's unfinished runs (``--ray [ADDRESS]`` may change where)."""
    from kerlym.main import UsageError, given_settings

    sweep_dir = os.path.abspath(args.resume)
    try:
        with open(os.path.join(sweep_dir, MARKER)) as f:
            info = json.load(f)
        if given_settings(args) or args.preset or args.seeds or args.tune or args.trials:
            raise SweepError("a sweep resumes with its own settings; only --ray [ADDRESS] may be given")
        run, cfg = configs_from(info["settings"])
        ray = args.ray or info.get("ray")
        if info["kind"] == "tune":
            space = parse_space(info["space"], run.agent, cfg)
            done = run_tune(run, cfg, space, info["trials"], sweep_dir, ray=ray or "local")
        else:
            done = run_seeds(run, cfg, info["seeds"], sweep_dir, ray=ray)
        return 0 if done is not None else 1
    except (SweepError, C.ConfigError, KeyError, json.JSONDecodeError) as e:
        raise UsageError(f"cannot resume the sweep in {sweep_dir}: {e}") from None
