"""Experiment tracking: MLflow (``--mlflow [URI]``) and Weights & Biases (``--wandb``) as session sinks.

Both log what ``progress.csv``, TensorBoard and ``evaluation.json`` hold:

- the run's settings (``config.json``'s fields): MLflow params, the W&B run's config;
- each episode row's numeric columns under their ``progress.csv`` names (``reward``, ``length``,
  ``loss``, ``epsilon`` or the actor-critic agents' ``entropy``...), at the row's env step;
  non-finite values (an episode without an update has a NaN loss) are left out, as in TensorBoard;
- each evaluation: ``eval/mean_return`` and ``eval/std_return`` at its env step, the final one too;
- at the end: ``evaluation/mean`` and ``evaluation/std`` (``evaluation.json``'s), and as artifacts
  (W&B: the run's files) ``config.json``, ``training.png``, ``evaluation.json`` and ``model.keras``,
  the final model ``--play`` would use.

A run folder's ``tracking.json`` keeps each service's run id, so ``--resume`` logs on into the same
runs. A sweep's runs (``--seeds``, ``--tune``) share one MLflow experiment and one W&B group, named
after the sweep folder. mlflow and wandb are imported only when their sink is built
(``pip install "kerlym[tracking]"``). Once training runs, a failing service (a tracking server gone)
costs the run nothing: the sink prints one note and stops logging.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import shutil
import sys
import tempfile
import time

from kerlym import runs
from kerlym._io import first_line, install_hint, native_stderr_silenced
from kerlym.checkpoints import EVALUATION
from kerlym.config import MLFLOW_DEFAULT_URI, ConfigError

# The env var a user sets to keep using MLflow's old folder store (refused by MLflow 3.x without it).
FILE_STORE_OPT_IN = "MLFLOW_ALLOW_FILE_STORE"


def mlflow_uri(value: str | bool | None) -> str | None:
    """``--mlflow``'s value as the URI to log to, with a relative path made absolute (``None``: off).

    ``True`` (the Python API) is MLflow's embedded store, ``sqlite:///mlflow.db`` in the current folder.
    A path without a scheme is MLflow's folder store (``./mlruns``), which MLflow 3.x refuses unless
    ``MLFLOW_ALLOW_FILE_STORE=true``.

    Raises:
        ConfigError: a folder store without ``MLFLOW_ALLOW_FILE_STORE=true`` (one line).
    """
    if value is None or value is False:
        return None
    uri = MLFLOW_DEFAULT_URI if value is True else str(value)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(uri[len("sqlite:///") :])
    if uri.startswith("file:") or "://" not in uri:
        path = uri[len("file://") :] if uri.startswith("file://") else uri.removeprefix("file:")
        if os.environ.get(FILE_STORE_OPT_IN, "").lower() not in ("1", "true"):
            raise ConfigError(
                f"--mlflow {uri}: MLflow 3 keeps runs in a database, not a folder; give sqlite:///PATH.db, a "
                f"tracking server's http:// URI or no URI ({MLFLOW_DEFAULT_URI}), or set {FILE_STORE_OPT_IN}=true"
            )
        return "file://" + os.path.abspath(path)
    return uri


def check_installed(mlflow: str | None, wandb: bool) -> None:
    """Refuse ``--mlflow`` or ``--wandb`` without its package, naming the extra (one line, nothing imported).

    Raises:
        ConfigError: the package is not installed.
    """
    import importlib.util

    for wanted, module, flag in ((mlflow, "mlflow", "--mlflow"), (wandb, "wandb", "--wandb")):
        if wanted and importlib.util.find_spec(module) is None:
            raise ConfigError(f"{flag} needs {module}: {install_hint('tracking')}")


def row_metrics(row: dict) -> dict[str, float]:
    """An episode row's finite numeric columns but ``total_steps`` (the step they are logged at), as floats."""
    out = {}
    for key, value in row.items():
        if key != "total_steps" and isinstance(value, numbers.Real) and math.isfinite(value):
            out[key] = float(value)
    return out


class _Tracker:
    """What both services share: the sink calls, one note on a failure, the artifacts at the end."""

    label = ""

    def __init__(self):
        self.failed = False
        self.where = ""  # a line for the user: where the run is logged and how to view it

    def _guard(self, fn, *args) -> None:
        if self.failed:
            return
        try:
            fn(*args)
        except Exception as e:  # a tracking failure must never end training
            self.failed = True
            print(f"kerlym: note: {self.label} logging stopped: {first_line(e)}", file=sys.stderr)

    def on_episode(self, runner, row) -> None:
        self._guard(self._metrics, row_metrics(row), int(row["total_steps"]))

    def on_eval(self, runner, mean, std, best) -> None:
        self._guard(self._metrics, {"eval/mean_return": mean, "eval/std_return": std}, runner.agent.total_steps)

    def finish(self, agent, run_dir: str | None, settings: dict, evaluation: dict | None, status: str) -> None:
        """End the tracking run: the final evaluation, the artifacts, and its status.

        Args:
            agent: the trained agent; its greedy network is saved as ``model.keras`` (not after a failure).
            run_dir: the run folder whose ``config.json``, ``training.png`` and ``evaluation.json`` are logged.
            settings: ``config.json``'s contents (written here too when there is no run folder).
            evaluation: the final evaluation (``evaluation.json``'s record), or ``None``.
            status: ``"FINISHED"``, ``"KILLED"`` (interrupted; it resumes) or ``"FAILED"``.
        """
        if self.failed:  # the service failed during training (said so then): nothing more to send it
            return
        with tempfile.TemporaryDirectory(prefix="kerlym-tracking-") as tmp:
            if run_dir is not None:
                names = (runs.CONFIG, runs.PLOT, EVALUATION)
                files = [os.path.join(run_dir, n) for n in names if os.path.isfile(os.path.join(run_dir, n))]
            else:  # Agent.learn: no run folder, so config.json is written here for the service
                files = [os.path.join(tmp, runs.CONFIG)]
                with open(files[0], "w") as f:
                    json.dump(settings, f, indent=2, sort_keys=True, default=str)
            if status != "FAILED":
                model = os.path.join(tmp, "model.keras")
                try:
                    with native_stderr_silenced():
                        agent.save(model)
                    files.append(model)
                except Exception as e:
                    print(f"kerlym: note: {self.label}: model not logged: {first_line(e)}", file=sys.stderr)
            if evaluation is not None:
                values = {"evaluation/mean": evaluation["mean"], "evaluation/std": evaluation["std"]}
                self._guard(self._metrics, values, agent.total_steps)
            self._guard(self._end, files, evaluation, status)
        self.failed = True  # nothing more after the end

    def _metrics(self, values: dict, step: int) -> None:
        raise NotImplementedError

    def _end(self, files: list[str], evaluation: dict | None, status: str) -> None:
        raise NotImplementedError


class MLflow(_Tracker):
    """Logs a session to an MLflow run, through ``MlflowClient``: metrics batched, sent every ``flush_seconds``.

    Args:
        uri: the tracking URI (:func:`mlflow_uri`'s).
        run_dir: the run folder, whose ``tracking.json`` keeps the run id (``None``: a new run each time).
        settings: the run's settings, logged as params (a resumed run's new ones only: MLflow params never change).
        name: the run's name (the run folder's).
        experiment: the experiment (a sweep's folder name); default ``$MLFLOW_EXPERIMENT_NAME`` or ``kerlym``.
        flush_seconds: how long metrics wait before one ``log_batch`` hands them to MLflow's logging thread.

    Raises:
        ConfigError: mlflow is missing, or the store or server refused to start the run (one line).
    """

    label = "MLflow"

    def __init__(self, uri, run_dir, settings, name=None, experiment=None, flush_seconds: float = 5.0):
        super().__init__()
        check_installed(uri, False)
        try:
            self._start(uri, run_dir, settings, name, experiment)
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(f"--mlflow {uri}: {first_line(e)}") from None
        self.flush_seconds = flush_seconds
        self.pending: list = []
        self.sent: list = []  # MLflow's RunOperations of the batches its background thread is logging
        self.last_flush = time.perf_counter()

    def _start(self, uri, run_dir, settings, name, experiment) -> None:
        import logging

        import mlflow

        for chatty in ("mlflow.store.db.utils", "alembic"):  # a new SQLite store's table set-up, at INFO
            logging.getLogger(chatty).setLevel(logging.WARNING)
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        self.client = mlflow.MlflowClient(tracking_uri=uri)
        saved = runs.read_tracking(run_dir).get("mlflow", {}) if run_dir else {}
        self.run_id, known = None, {}
        if saved.get("tracking_uri") == uri and saved.get("run_id"):
            try:
                found = self.client.get_run(saved["run_id"])
                self.run_id, known = found.info.run_id, found.data.params
                self.client.update_run(self.run_id, status="RUNNING")
            except MlflowException:
                print(
                    f"kerlym: note: MLflow run {saved['run_id']} not found at {uri}; starting a new one",
                    file=sys.stderr,
                )
        if self.run_id is None:
            experiment_id = self._experiment(experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "kerlym")
            tags = {"kerlym.run_dir": os.path.abspath(run_dir)} if run_dir else {}
            self.run_id = self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
            if run_dir:
                runs.write_tracking(run_dir, "mlflow", {"run_id": self.run_id, "tracking_uri": uri})
        params = [Param(k, _text(v)) for k, v in sorted(settings.items()) if k not in known]
        for i in range(0, len(params), 100):  # log_batch takes at most 100 params
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        view = "mlflow ui" if uri == mlflow_uri(True) else f"mlflow ui --backend-store-uri {uri}"
        local = uri.startswith(("sqlite:", "file:"))  # a server's URI is its UI
        self.where = f"MLflow: run {self.run_id} at {uri}" + (f"  (view: {view})" if local else "")

    def _experiment(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except MlflowException:  # a sweep's other trial made it first
            return self.client.get_experiment_by_name(name).experiment_id

    def _metrics(self, values: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.pending += [Metric(k, float(v), now, step) for k, v in values.items() if math.isfinite(v)]
        if len(self.pending) >= 900:
            self._flush()

    def _flush(self) -> None:
        """Hand the pending metrics to MLflow's own background logging thread: the loop does not wait for the store."""
        pending, self.pending = self.pending, []
        self.last_flush = time.perf_counter()
        for i in range(0, len(pending), 1000):  # log_batch takes at most 1000 metrics
            self.sent.append(self.client.log_batch(self.run_id, metrics=pending[i : i + 1000], synchronous=False))

    def _wait(self) -> None:
        """Wait until MLflow has stored every batch; raises the error of one it could not."""
        self._flush()
        sent, self.sent = self.sent, []
        for operations in sent:
            operations.wait()

    def on_tick(self, runner) -> None:
        if self.pending and time.perf_counter() - self.last_flush >= self.flush_seconds:
            self._guard(self._flush)

    def close(self) -> None:
        self._guard(self._wait)

    def _end(self, files, evaluation, status) -> None:
        self._wait()
        for path in files:
            self.client.log_artifact(self.run_id, path, "model" if path.endswith(".keras") else None)
        self.client.set_terminated(self.run_id, status=status)


def _text(value) -> str:
    """A setting as an MLflow param value (at most 6000 characters)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]


def wandb_mode() -> str:
    """``$WANDB_MODE`` if set, else ``online`` with an API key (``$WANDB_API_KEY``, ``~/.netrc``), else ``offline``."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return "online"
    import netrc
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        return "online" if netrc.netrc(os.environ.get("NETRC") or None).authenticators(host) else "offline"
    except (OSError, netrc.NetrcParseError):
        return "offline"


class WandB(_Tracker):
    """Logs a session to a Weights & Biases run: ``run.log(row, step=total_steps)``; offline without an API key.

    Args:
        run_dir: the run folder: W&B's files go in ``<run_dir>/wandb/``, ``tracking.json`` keeps the run id
            (``None``: W&B's own folder, ``./wandb`` or ``$WANDB_DIR``, and a new run each time).
        settings: the run's settings, the W&B run's config.
        name: the run's name (the run folder's).
        group: the W&B group (a sweep's folder name).

    Raises:
        ConfigError: wandb is missing, or it could not start the run (one line).
    """

    label = "W&B"

    def __init__(self, run_dir, settings, name=None, group=None):
        super().__init__()
        check_installed(None, True)
        try:
            self._start(run_dir, settings, name, group)
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(f"--wandb: {first_line(e)}") from None

    def _start(self, run_dir, settings, name, group) -> None:
        import wandb

        saved = runs.read_tracking(run_dir).get("wandb", {}) if run_dir else {}
        mode = wandb_mode()
        project = saved.get("project") or os.environ.get("WANDB_PROJECT") or "kerlym"
        self.run = wandb.init(
            project=project,
            name=name,
            group=group,
            id=saved.get("id"),
            resume="allow" if saved.get("id") else None,
            dir=run_dir,
            config=settings,
            mode=mode,
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True),
        )
        self.run.config.update(settings, allow_val_change=True)  # a resumed run's settings may have changed
        self.start_step = int(self.run.step or 0)  # W&B drops steps below the run's own: skip them quietly
        if run_dir:
            runs.write_tracking(run_dir, "wandb", {"id": self.run.id, "project": project})
        if mode == "offline":
            self.where = f"W&B: offline run {self.run.id} (upload: wandb sync {self.run.settings.sync_dir})"
        else:
            self.where = f"W&B: run {self.run.id} ({mode})"

    def _metrics(self, values: dict, step: int) -> None:
        if step >= self.start_step:
            self.run.log({k: v for k, v in values.items() if math.isfinite(v)}, step=step)

    def _end(self, files, evaluation, status) -> None:
        for path in files:  # the run's files folder is uploaded with the run (by wandb sync, offline)
            shutil.copy(path, os.path.join(self.run.dir, os.path.basename(path)))
        if evaluation is not None:
            self.run.summary["evaluation"] = {k: v for k, v in evaluation.items() if k in ("mean", "std", "episodes")}
        self.run.finish(exit_code=1 if status == "FAILED" else 0)
