"""kerlym.tracking: MLflow and W&B runs read back and compared with the run folder's own files."""

import glob
import json
import math
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import pytest

import kerlym
from kerlym import config, runs, session, tracking
from kerlym.main import main
from kerlym.stats import read_progress

TINY = ["-e", "CartPole-v1", "-a", "dqn", "--seed", "0", "--steps", "300", "--eval_episodes", "2", "-q"]
TINY += ["-f", "50", "-u", "64", "-b", "32", "--learning_starts", "32"]  # updates within 300 steps
EXTRA = 'needs the tracking extra: pip install ".[tracking]"'


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """MLflow's artifacts (./mlruns) and W&B's folder (./wandb) default to the current folder: keep them in tmp."""
    monkeypatch.chdir(tmp_path)


def only_dir(folder):
    (name,) = os.listdir(folder)
    return os.path.join(folder, name)


def mlflow_run(run_dir):
    """The MLflow client and run that ``run_dir``'s tracking.json names."""
    import mlflow

    saved = runs.read_tracking(run_dir)["mlflow"]
    client = mlflow.MlflowClient(saved["tracking_uri"])
    return client, client.get_run(saved["run_id"])


def history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp)]


def check_mlflow_run(client, run, run_dir, steps):
    """The MLflow run holds progress.csv's rows, config.json's settings, evaluation.json's result and artifacts."""
    rows = read_progress(os.path.join(run_dir, runs.PROGRESS))
    assert history(client, run.info.run_id, "reward") == [(r["total_steps"], r["reward"]) for r in rows]
    assert history(client, run.info.run_id, "length") == [(r["total_steps"], r["length"]) for r in rows]
    losses = [(r["total_steps"], pytest.approx(r["loss"])) for r in rows if not math.isnan(r["loss"])]
    assert history(client, run.info.run_id, "loss") == losses and losses  # NaN (no update) rows left out
    assert history(client, run.info.run_id, "epsilon") == [(r["total_steps"], r["epsilon"]) for r in rows]
    evaluation = json.load(open(os.path.join(run_dir, "evaluation.json")))
    assert history(client, run.info.run_id, "eval/mean_return")[-1] == (steps, evaluation["mean"])
    assert run.data.metrics["evaluation/mean"] == evaluation["mean"]
    assert run.data.metrics["evaluation/std"] == evaluation["std"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "evaluation.json", "model"} <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/model.keras"]
    assert run.info.status == "FINISHED"


def check_params(run, run_dir, changed=()):
    saved = runs.read_config(run_dir)
    assert set(run.data.params) == set(saved)
    for key, value in saved.items():
        if key not in changed:
            assert json.loads(run.data.params[key]) == value if not isinstance(value, str) else run.data.params[key]


def test_mlflow_logs_the_run_folder_and_resume_continues_its_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason=EXTRA)
    monkeypatch.chdir(tmp_path)
    assert main([*TINY, "--outdir", "runs", "--mlflow"]) == 0
    run_dir = only_dir(tmp_path / "runs")
    assert runs.read_tracking(run_dir)["mlflow"]["tracking_uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    client, run = mlflow_run(run_dir)
    check_mlflow_run(client, run, run_dir, 300)
    check_params(run, run_dir)
    assert run.info.run_name == os.path.basename(run_dir)
    assert client.get_experiment(run.info.experiment_id).name == "kerlym"
    assert client.get_experiment(run.info.experiment_id).artifact_location.startswith(str(tmp_path / "mlruns"))

    assert main(["--resume", run_dir, "--steps", "500", "-q"]) == 0
    client, resumed = mlflow_run(run_dir)
    assert resumed.info.run_id == run.info.run_id
    check_mlflow_run(client, resumed, run_dir, 500)  # the resumed session's rows are the checkpoint's continuation
    assert resumed.data.params["steps"] == "300"  # MLflow params never change: the first session's budget
    check_params(resumed, run_dir, changed=("steps",))


def test_agent_learn_logs_to_a_new_mlflow_run(tmp_path):
    pytest.importorskip("mlflow", reason=EXTRA)
    import mlflow

    uri = f"sqlite:///{tmp_path}/store.db"
    agent = kerlym.make("CartPole-v1", "dqn", seed=0, update_freq=50, batch_size=32, learning_starts=32)
    episodes = agent.learn(300, verbose=0, eval_episodes=2, mlflow=uri)
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("kerlym").experiment_id])
    assert history(client, run.info.run_id, "reward") == [(r["total_steps"], r["reward"]) for r in episodes]
    assert {"config.json", "model"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert run.data.params["agent"] == "dqn" and run.info.status == "FINISHED"
    agent.close()


def test_seeds_are_runs_of_one_experiment_named_after_the_sweep(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason=EXTRA)
    import mlflow

    monkeypatch.chdir(tmp_path)
    steps = ["--steps", "200"]
    assert main([*TINY, *steps, "--seeds", "0", "1", "--outdir", "runs", "--mlflow", "sqlite:///sweeps.db"]) == 0
    sweep_dir = only_dir(tmp_path / "runs")
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/sweeps.db")
    experiment = client.get_experiment_by_name(os.path.basename(sweep_dir))
    found = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(found) == ["seed-0", "seed-1"]
    for seed in (0, 1):
        run_dir = os.path.join(sweep_dir, f"seed-{seed}")
        assert found[f"seed-{seed}"].data.params["seed"] == str(seed)
        check_mlflow_run(client, found[f"seed-{seed}"], run_dir, 200)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real ``mlflow server`` on a free local port, SQLite behind it, its artifacts in a tmp folder."""
    pytest.importorskip("mlflow", reason=EXTRA)
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{tmp_path}/server.db"]
    cmd += ["--artifacts-destination", str(tmp_path / "server-artifacts")]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


@pytest.mark.slow
def test_mlflow_logs_to_a_tracking_server(tmp_path, mlflow_server):
    assert main([*TINY, "--outdir", str(tmp_path / "runs"), "--mlflow", mlflow_server]) == 0
    run_dir = only_dir(tmp_path / "runs")
    client, run = mlflow_run(run_dir)
    assert runs.read_tracking(run_dir)["mlflow"]["tracking_uri"] == mlflow_server
    check_mlflow_run(client, run, run_dir, 300)
    check_params(run, run_dir)
    stored = glob.glob(str(tmp_path / "server-artifacts" / "**" / "model.keras"), recursive=True)
    assert len(stored) == 1  # uploaded through the server, into its artifact folder


# -- Weights & Biases, offline --------------------------------------------------
def wandb_records(path):
    """The records of a ``.wandb`` file (W&B's LevelDB-style log of ``wandb_internal_pb2.Record`` protos)."""
    from wandb.proto import wandb_internal_pb2

    data = open(path, "rb").read()
    assert data[:4] == b":W&B"
    out, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk  # full, first / middle, last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def wandb_logged(run_folder):
    """From an offline run folder: its id, history rows by step, config, summary and the files it will upload."""
    (path,) = glob.glob(os.path.join(run_folder, "run-*.wandb"))
    records = wandb_records(path)
    steps, config, summary, run_id = {}, {}, {}, None
    for r in records:
        kind = r.WhichOneof("record_type")
        if kind == "history":
            items = {i.nested_key[0] if i.nested_key else i.key: json.loads(i.value_json) for i in r.history.item}
            steps.setdefault(items["_step"], {}).update(items)
        elif kind == "run":
            run_id = r.run.run_id
            config.update({i.key: json.loads(i.value_json) for i in r.run.config.update})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in r.config.update})
        elif kind == "summary":
            for i in r.summary.update:
                summary[tuple(i.nested_key) or (i.key,)] = json.loads(i.value_json)
    return run_id, steps, config, summary, sorted(os.listdir(os.path.join(run_folder, "files")))


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason=EXTRA)
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_DIR", "WANDB_PROJECT", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc, so no API key: offline
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / "wandb"))
    import wandb

    wandb.teardown()  # W&B reads its environment once per process, at its first run: read this test's
    yield
    wandb.teardown()


def test_wandb_runs_offline_without_a_key_and_resume_continues_its_run(tmp_path, wandb_offline):
    assert tracking.wandb_mode() == "offline"
    assert main([*TINY, "--outdir", str(tmp_path / "runs"), "--wandb"]) == 0
    run_dir = only_dir(tmp_path / "runs")
    run_id = runs.read_tracking(run_dir)["wandb"]["id"]
    (first,) = glob.glob(os.path.join(run_dir, "wandb", "offline-run-*"))
    logged_id, steps, logged_config, summary, files = wandb_logged(first)
    assert logged_id == run_id
    rows = read_progress(os.path.join(run_dir, runs.PROGRESS))
    assert [(s, v["reward"]) for s, v in sorted(steps.items()) if "reward" in v] == [
        (r["total_steps"], r["reward"]) for r in rows
    ]
    evaluation = json.load(open(os.path.join(run_dir, "evaluation.json")))
    assert steps[300]["eval/mean_return"] == evaluation["mean"]
    assert summary[("evaluation",)] == {k: evaluation[k] for k in ("mean", "std", "episodes")}
    saved = runs.read_config(run_dir)
    assert {k: v for k, v in logged_config.items() if k in saved} == saved
    assert {"config.json", "evaluation.json", "model.keras"} <= set(files)

    assert main(["--resume", run_dir, "--steps", "500", "-q"]) == 0
    assert runs.read_tracking(run_dir)["wandb"]["id"] == run_id
    (second,) = set(glob.glob(os.path.join(run_dir, "wandb", "offline-run-*"))) - {first}
    logged_id, steps, logged_config, _, _ = wandb_logged(second)  # wandb sync appends it to the same run
    assert logged_id == run_id and logged_config["steps"] == 500
    rows = read_progress(os.path.join(run_dir, runs.PROGRESS))
    resumed = [(r["total_steps"], r["reward"]) for r in rows if r["total_steps"] > 300]
    assert [(s, v["reward"]) for s, v in sorted(steps.items()) if "reward" in v] == resumed and resumed


def test_agent_learn_logs_to_a_new_offline_wandb_run(tmp_path, wandb_offline, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "w"))  # without a run folder: W&B's own folder
    agent = kerlym.make("CartPole-v1", "dqn", seed=0, update_freq=50, batch_size=32, learning_starts=32)
    episodes = agent.learn(300, verbose=0, eval_episodes=2, wandb=True)
    (folder,) = glob.glob(str(tmp_path / "w" / "wandb" / "offline-run-*"))
    _, steps, logged_config, summary, files = wandb_logged(folder)
    assert [(s, v["reward"]) for s, v in sorted(steps.items()) if "reward" in v] == [
        (r["total_steps"], r["reward"]) for r in episodes
    ]
    assert logged_config["agent"] == "dqn" and {"config.json", "model.keras"} <= set(files)
    agent.close()


# -- off, missing, refused ----------------------------------------------------------
def test_no_tracking_flag_builds_no_tracker():
    agent = kerlym.make("CartPole-v1", "dqn", seed=0)
    run = config.RunConfig(env="CartPole-v1", agent="dqn")
    assert not any(hasattr(s, "finish") for s in session.default_sinks(agent, run, None, console=False))
    agent.close()


def test_help_imports_neither_mlflow_nor_wandb():
    code = (
        "import sys; from kerlym.main import main\n"
        "try: main(['--help'])\n"
        "except SystemExit: pass\n"
        "print(sorted(m for m in ('mlflow', 'wandb', 'kerlym.tracking') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "--mlflow [URI]" in out.stdout and out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("flag", [["--mlflow"], ["--mlflow", "http://localhost:5000"], ["--wandb"]])
def test_a_tracking_flag_without_its_package_names_the_extra(tmp_path, monkeypatch, capsys, flag):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed: find_spec says None
    monkeypatch.setitem(sys.modules, "wandb", None)
    assert main([*TINY, "--outdir", str(tmp_path / "runs"), *flag]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"kerlym: error: {flag[0]} needs {flag[0][2:]}: pip install")
    assert "[tracking]" in err
    assert not os.path.exists(tmp_path / "runs")  # refused before any run folder


def test_mlflow_folder_store_is_refused_before_a_run_folder(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow", reason=EXTRA)
    monkeypatch.delenv(tracking.FILE_STORE_OPT_IN, raising=False)
    assert main([*TINY, "--outdir", str(tmp_path / "runs"), "--mlflow", str(tmp_path / "mlruns")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "MLFLOW_ALLOW_FILE_STORE=true" in err
    assert not os.path.exists(tmp_path / "runs")


def test_mlflow_uri_makes_local_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking.mlflow_uri(True) == f"sqlite:///{tmp_path}/mlflow.db"
    assert tracking.mlflow_uri("sqlite:///a/b.db") == f"sqlite:///{tmp_path}/a/b.db"
    assert tracking.mlflow_uri("sqlite:////abs/b.db") == "sqlite:////abs/b.db"
    assert tracking.mlflow_uri("http://host:5000") == "http://host:5000"
    assert tracking.mlflow_uri(None) is None and tracking.mlflow_uri(False) is None
    monkeypatch.setenv(tracking.FILE_STORE_OPT_IN, "true")
    assert tracking.mlflow_uri("mlruns") == f"file://{tmp_path}/mlruns"


def test_wandb_goes_online_with_a_key_in_netrc(tmp_path, wandb_offline, monkeypatch):
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert tracking.wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.wandb_mode() == "disabled"


def test_row_metrics_are_the_finite_numbers_but_the_step():
    row = {"episode": 3, "total_steps": 90, "reward": 12.0, "loss": float("nan"), "epsilon": None, "tag": "x"}
    assert tracking.row_metrics(row) == {"episode": 3.0, "reward": 12.0}


def test_a_failing_tracking_service_stops_its_sink_not_training(tmp_path, capsys):
    pytest.importorskip("mlflow", reason=EXTRA)
    sink = tracking.MLflow(f"sqlite:///{tmp_path}/x.db", None, {"env": "CartPole-v1"}, flush_seconds=0.0)

    def refuse(*args, **kwargs):
        raise ConnectionError("server gone\nmore lines")

    sink.client.log_batch = refuse
    sink.on_episode(None, {"episode": 1, "total_steps": 10, "reward": 1.0})
    sink.on_tick(None)  # the flush fails: one note, and the sink goes quiet
    sink.on_episode(None, {"episode": 2, "total_steps": 20, "reward": 2.0})
    sink.close()
    assert capsys.readouterr().err == "kerlym: note: MLflow logging stopped: server gone\n"
    assert sink.failed
