"""The real ``kerlym`` command in a subprocess: run folders, interrupt and resume, and bad input."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from kerlym import agents, checkpoints, config, preproc

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
ENV.pop("DISPLAY", None)
ENV.pop("WAYLAND_DISPLAY", None)
FAST = ["-e", "CartPole-v1", "-a", "ddqn", "--preset", "--seed", "0", "-q"]


def kerlym(*args, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "kerlym", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=timeout
    )


def only_run(outdir):
    (name,) = os.listdir(outdir)
    return os.path.join(outdir, name)


def read_rows(run):
    with open(os.path.join(run, "progress.csv")) as f:
        return list(csv.DictReader(f))


def checkpoint_step(run):
    with open(os.path.join(run, "checkpoints", "latest")) as f:
        return int(f.read().strip().split("-")[1])


def test_every_agent_has_a_config_and_every_preprocessor_a_name():
    assert set(agents.AGENT_CONFIGS) == set(agents.AGENTS)
    assert all(agents.AGENTS[name].Config is cls for name, cls in agents.AGENT_CONFIGS.items())
    assert set(config.PREPROCESSOR_NAMES) == set(preproc.PREPROCESSORS)


def test_help_and_version_do_not_import_heavy_libraries():
    code = (
        "import sys; from kerlym.main import main\n"
        "for argv in (['--version'], ['--help']):\n"
        "    try: main(argv)\n"
        "    except SystemExit: pass\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib', 'jax', 'gymnasium') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "kerlym 0." in out.stdout


def test_help_shows_defaults_in_brackets():
    out = kerlym("--help").stdout
    for text in ("[MountainCar-v0]", "[1000]", "[1100]", "[0.5]", "[0.0001]", "[ddqn]", "[100000]", "[2]"):
        assert text in out
    assert "results bundle" in out  # -S says what it does now


def test_short_run_writes_folder_csv_png_and_checkpoint(tmp_path):
    out = kerlym(*FAST, "--steps", "1200", "-P", "-F", "5", "--outdir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    run = only_run(tmp_path)
    assert os.path.basename(run).startswith("CartPole-v1-ddqn-")
    rows = read_rows(run)
    assert list(rows[0]) == [
        "episode",
        "total_steps",
        "reward",
        "length",
        "epsilon",
        "loss",
        "max_q",
        "min_q",
        "wall_time",
    ]
    assert [int(r["episode"]) for r in rows] == list(range(1, len(rows) + 1))
    assert all(float(r["reward"]) == int(r["length"]) for r in rows)  # CartPole pays 1 per step
    assert int(rows[-1]["total_steps"]) <= 1200
    with open(os.path.join(run, "training.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["env"] == "CartPole-v1" and config["learning_rate"] == 2.3e-3 and config["steps"] == 1200
    assert checkpoint_step(run) == 1200
    assert {"model.keras", "state.json", "arrays.npz"} <= set(
        os.listdir(os.path.join(run, "checkpoints", "step-0000001200"))
    )


def _start(args, run_root):
    return subprocess.Popen(
        [sys.executable, "-m", "kerlym", *args, "--outdir", str(run_root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _wait_for_checkpoint(run_root, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = os.listdir(run_root) if os.path.isdir(run_root) else []
        if runs and os.path.exists(os.path.join(run_root, runs[0], "checkpoints", "latest")):
            return os.path.join(run_root, runs[0])
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_resumes_to_the_same_step_count(tmp_path, sig):
    proc = _start([*FAST, "--steps", "6000", "--checkpoint_every", "1000", "--save_memory"], tmp_path)
    run = _wait_for_checkpoint(tmp_path, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 0, stderr
        assert "interrupted at step" in stdout and f"kerlym --resume {run}" in stdout
        assert "Traceback" not in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    saved = checkpoint_step(run)
    assert 1000 <= saved < 6000

    out = kerlym("--resume", run)
    assert out.returncode == 0, out.stderr
    assert f"resumed {run} at step {saved}" in out.stdout
    assert checkpoint_step(run) == 6000
    rows = read_rows(run)
    assert [int(r["episode"]) for r in rows] == list(range(1, len(rows) + 1))  # no gap, no duplicate
    steps = [int(r["total_steps"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] <= 6000


def test_resume_may_change_the_dtype_policy(tmp_path):
    assert kerlym(*FAST, "--steps", "400", "--outdir", str(tmp_path)).returncode == 0
    run = only_run(tmp_path)
    out = kerlym("--resume", run, "--steps", "800", "--dtype_policy", "mixed_bfloat16")
    assert out.returncode == 0, out.stderr
    assert checkpoint_step(run) == 800
    with open(os.path.join(run, "config.json")) as f:
        assert json.load(f)["dtype_policy"] == "mixed_bfloat16"


def test_resume_refuses_a_changed_setting_and_accepts_a_repeated_one(tmp_path):
    assert kerlym(*FAST, "--steps", "300", "--ema", "1000", "--outdir", str(tmp_path)).returncode == 0
    run = only_run(tmp_path)
    with open(os.path.join(run, "config.json")) as f:
        before = f.read()
    for flags, message in [
        (["-r", "0.5"], "-r/--learning_rate 0.5 differs from this run's learning_rate (0.0023)"),
        (["--ema", "0"], "--ema_steps/--ema 0 differs from this run's ema_steps (1000)"),
        (["-a", "dqn"], "-a/--agent dqn differs from this run's agent (ddqn)"),
    ]:
        for mode in ("--resume", "--play"):
            out = kerlym(mode, run, *flags)
            assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
            assert out.stderr.startswith(f"kerlym: error: {message}; a saved run keeps its settings, except --steps")
    with open(os.path.join(run, "config.json")) as f:
        assert f.read() == before
    assert checkpoint_step(run) == 300
    # The run's own command line, repeated with --resume and a longer budget, continues it
    # (--outdir, spelled differently here, plays no part in a resume).
    out = kerlym(*FAST, "--ema", "1000", "--outdir", f"{tmp_path}/.", "--resume", run, "--steps", "600")
    assert out.returncode == 0, out.stderr
    assert checkpoint_step(run) == 600


def test_on_off_flags_can_be_turned_off_on_resume_and_play_takes_a_seed(tmp_path):
    assert kerlym(*FAST, "--steps", "300", "--save_memory", "--outdir", str(tmp_path)).returncode == 0
    run = only_run(tmp_path)
    out = kerlym("--resume", run, "--steps", "600", "--no-save_memory", "--no-quiet")
    assert out.returncode == 0, out.stderr
    with np.load(os.path.join(run, "checkpoints", "step-0000000300", "arrays.npz")) as npz:
        assert any(k.startswith("memory/") for k in npz.files)
    with np.load(os.path.join(run, "checkpoints", "step-0000000600", "arrays.npz")) as npz:
        assert not any(k.startswith("memory/") for k in npz.files)
    with open(os.path.join(run, "config.json")) as f:
        saved = json.load(f)
    assert saved["save_memory"] is False and saved["quiet"] is False and "best" not in saved
    plays = [kerlym("--play", run, "--seed", str(seed), "--eval_episodes", "3").stdout for seed in (5, 5, 6)]
    rewards = [[line.split("reward ")[1] for line in p.splitlines() if line.startswith(" * Episode")] for p in plays]
    assert len(rewards[0]) == 3 and rewards[0] == rewards[1]  # --seed makes --play's episodes repeat
    assert rewards[2][:2] == rewards[0][1:]  # episode i of --seed S plays env seed S + i


def test_submit_writes_a_results_bundle(tmp_path):
    out = kerlym(*FAST, "--steps", "400", "-S", "--eval_episodes", "2", "--outdir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    bundle = os.path.join(only_run(tmp_path), "submission")
    assert f"results bundle: {bundle}" in out.stdout
    evaluation = json.load(open(os.path.join(bundle, "evaluation.json")))
    assert evaluation["episodes"] == 2 and len(evaluation["returns"]) == 2
    assert evaluation["mean"] == sum(evaluation["returns"]) / 2
    stats = json.load(open(os.path.join(bundle, "episode_statistics.json")))
    rows = read_rows(only_run(tmp_path))
    assert stats["returns"][: len(rows)] == [float(r["reward"]) for r in rows]  # same episodes, two records
    videos = os.listdir(os.path.join(bundle, "videos"))
    assert any(v.endswith(".mp4") for v in videos), evaluation["videos"]


def test_submit_counts_the_episodes_of_every_env_copy(tmp_path):
    out = kerlym(*FAST, "--steps", "600", "-c", "2", "-S", "--eval_episodes", "1", "--outdir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    stats = json.load(open(os.path.join(only_run(tmp_path), "submission", "episode_statistics.json")))
    rows = read_rows(only_run(tmp_path))
    assert len(rows) > 10 and stats["returns"] == [float(r["reward"]) for r in rows]
    assert stats["lengths"] == [int(r["length"]) for r in rows]


def test_play_evaluates_a_saved_run(tmp_path):
    assert kerlym(*FAST, "--steps", "300", "--outdir", str(tmp_path)).returncode == 0
    run = only_run(tmp_path)
    open(os.path.join(run, "plays"), "w").close()  # where the results go cannot be written: the play goes on
    out = kerlym("--play", run, "--eval_episodes", "2")
    os.remove(os.path.join(run, "plays"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(" * Episode") == 2 and "mean reward" in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith("evaluation not saved: ")
    out = kerlym("--play", run, "--eval_episodes", "2")
    rewards = [float(line.split("reward ")[1]) for line in out.stdout.splitlines() if line.startswith(" * Episode")]
    (stamp,) = os.listdir(os.path.join(run, "plays"))
    with open(os.path.join(run, "plays", stamp, checkpoints.EVALUATION)) as f:
        played = json.load(f)
    assert played["returns"] == pytest.approx(rewards, abs=0.005) and played["episodes"] == 2
    assert 0 < played["total_steps"] <= 300 and played["env"] == "CartPole-v1"


def test_a_dueling_run_saves_its_head_and_plays_and_resumes_with_it(tmp_path):
    assert kerlym(*FAST, "--dueling", "--steps", "300", "--outdir", str(tmp_path)).returncode == 0
    run = only_run(tmp_path)
    with open(os.path.join(run, "config.json")) as f:
        assert json.load(f)["dueling"] is True
    out = kerlym("--play", run, "--eval_episodes", "1")
    assert out.returncode == 0 and "mean reward" in out.stdout, out.stderr
    out = kerlym("--resume", run, "--steps", "400", "-q")
    assert out.returncode == 0, out.stderr
    assert checkpoint_step(run) == 400


def _gru_units(model_path):
    import keras

    model = keras.saving.load_model(model_path, compile=False)
    return [layer.units for layer in model.layers if isinstance(layer, keras.layers.GRU)]


def test_net_kwargs_are_saved_and_every_rebuild_of_the_run_uses_them(tmp_path):
    rnn = ["-n", "q_rnn", "-t", "2", "--net-kwargs", "rnn_units=12"]
    out = kerlym(*FAST, *rnn, "--steps", "300", "--outdir", str(tmp_path / "runs"))
    assert out.returncode == 0, out.stderr
    run = only_run(tmp_path / "runs")
    with open(os.path.join(run, "config.json")) as f:
        assert json.load(f)["net_kwargs"] == {"rnn_units": 12}
    assert _gru_units(os.path.join(run, "checkpoints", "step-0000000300", "model.keras")) == [12]  # q_rnn's own: 64
    # --play, --export and --resume rebuild the 12-unit GRU from config.json: the checkpoint's weights load into it.
    out = kerlym("--play", run, "--eval_episodes", "1")
    assert out.returncode == 0 and "mean reward" in out.stdout, out.stderr
    out = kerlym("--export", run, "--format", "keras")
    assert out.returncode == 0, out.stderr
    assert _gru_units(os.path.join(run, "export", "online.keras")) == [12]
    out = kerlym("--resume", run, "--steps", "400", "-q", "--net-kwargs", "rnn_units=12")  # repeating it is allowed
    assert out.returncode == 0, out.stderr
    assert _gru_units(os.path.join(run, "checkpoints", "step-0000000400", "model.keras")) == [12]
    out = kerlym("--resume", run, "--steps", "500", "--net-kwargs", "rnn_units=8")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert (
        "--net_kwargs/--net-kwargs {'rnn_units': 8} differs from this run's net_kwargs ({'rnn_units': 12})"
        in out.stderr
    )
    # --trained-agent without --net-kwargs takes the source run's; a size that does not fit is one line.
    out = kerlym(
        *FAST, "-n", "q_rnn", "-t", "2", "--trained-agent", run, "--steps", "100", "--outdir", str(tmp_path / "new")
    )
    assert out.returncode == 0, out.stderr
    assert "kerlym: note: --trained-agent: the network takes its run's --net-kwargs rnn_units=12" in out.stderr
    with open(os.path.join(only_run(tmp_path / "new"), "config.json")) as f:
        assert json.load(f)["net_kwargs"] == {"rnn_units": 12}
    from kerlym import make

    agent = make("CartPole-v1", "ddqn", modelfactory="q_rnn", nframes=2, trained_agent=run)  # the Python API too
    assert agent.config.net_kwargs == {"rnn_units": 12}
    agent.close()
    out = kerlym(*FAST, *rnn[:-1], "rnn_units=5", "--trained-agent", run, "--outdir", str(tmp_path / "other"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "does not fit this agent's network (built with the same -a, network, --net-kwargs" in out.stderr
    assert not os.path.exists(tmp_path / "other") or not os.listdir(tmp_path / "other")


def test_a_go_run_with_symmetries_plays_with_their_average(tmp_path):
    pytest.importorskip("pyspiel")
    go = ["-e", "Go9x9-v0", "-a", "ddqn", "-n", "simple_dnn", "--env-kwargs", "opponent=random", "board_size=5"]
    out = kerlym(*go, "--symmetries", "--average_symmetries", "--steps", "300", "-q", "--outdir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    run = only_run(tmp_path)
    with open(os.path.join(run, "config.json")) as f:
        saved = json.load(f)
    assert saved["symmetries"] is True and saved["average_symmetries"] is True
    out = kerlym("--play", run, "--eval_episodes", "2")
    assert out.returncode == 0 and "mean reward" in out.stdout, out.stderr


def test_play_and_best_model_use_the_weight_average(tmp_path, monkeypatch):
    import keras
    import numpy as np

    from kerlym import playback
    from kerlym.make import saved_configs

    args = ("--steps", "1500", "--ema", "1000", "--eval_every", "1500", "--eval_episodes", "1")
    out = kerlym(*FAST, *args, "--outdir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    run = only_run(tmp_path)
    checkpoint = os.path.join(run, "checkpoints", "step-0000001500")
    with np.load(os.path.join(checkpoint, "arrays.npz")) as npz:
        average = [npz[f"ema/{i}"] for i in range(6)]  # zoo_mlp: three kernels and three biases
    online = keras.saving.load_model(os.path.join(checkpoint, "model.keras"), compile=False).get_weights()
    assert not np.allclose(average[0], online[0])  # two updates (1024, 1280): the average lags the online weights
    for got, want in zip(checkpoints.greedy_weights(checkpoint), average, strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(checkpoints.greedy_weights(os.path.join(run, "best.keras")), average, strict=True):
        np.testing.assert_array_equal(got, want)  # evaluated, and saved, at step 1500: the average
    played = kerlym("--play", run, "--eval_episodes", "1")
    assert played.returncode == 0 and "mean reward" in played.stdout, played.stderr
    # The weights --play evaluates with are the average's, not the online network's.
    evaluated = []

    def evaluate(agent, episodes, **kwargs):
        evaluated.append(agent.greedy_model.get_weights())
        return [0.0]

    monkeypatch.setattr(agents.DQN, "evaluate", evaluate)
    assert playback.play(*saved_configs(run, {"eval_episodes": 1}), run) == 0
    for got, want in zip(evaluated[0], average, strict=True):
        np.testing.assert_array_equal(got, want)


def test_play_with_corrupt_arrays_is_one_line_and_exit_2(tmp_path):
    assert kerlym(*FAST, "--steps", "300", "--outdir", str(tmp_path)).returncode == 0
    arrays = os.path.join(only_run(tmp_path), "checkpoints", "step-0000000300", "arrays.npz")
    with open(arrays, "wb") as f:
        f.write(b"truncated")
    out = kerlym("--play", only_run(tmp_path), "--eval_episodes", "1")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("kerlym: error: checkpoint") and "is corrupt" in out.stderr


def _corrupt_run(tmp_path):
    assert kerlym(*FAST, "--steps", "300", "--outdir", str(tmp_path / "runs")).returncode == 0
    run = only_run(tmp_path / "runs")
    model = os.path.join(run, "checkpoints", "step-0000000300", "model.keras")
    with open(model, "wb") as f:
        f.write(b"not a keras file")
    return run


BAD_INPUTS = {
    "unknown env": (["-e", "CartPol-v1"], "unknown environment 'CartPol-v1'; did you mean CartPole-v1"),
    "unknown agent": (["-a", "sarsa"], "unknown agent 'sarsa'; choose one of: dqn, ddqn, pg"),
    "unknown net": (["-n", "resnet"], "unknown net 'resnet'; choose one of: simple_dnn"),
    "conv on vector": (["-e", "CartPole-v1", "-n", "simple_cnn"], "simple_cnn is a convolutional network"),
    "continuous dqn": (["-e", "Pendulum-v1"], "continuous action space"),
    "continuous pg": (["-e", "Pendulum-v1", "-a", "pg"], "-a pg needs discrete actions"),
    "epsilon": (["-p", "1.5"], "epsilon must be in [0, 1], got 1.5"),
    "batch size": (["-b", "0"], "batch_size must be positive and finite, got 0"),
    "plot rate": (["-F", "-1"], "plot_rate must be positive and finite, got -1"),
    "memory size": (["-m", "0"], "-m/--max_memory/--max_mem must be positive and finite, got 0"),
    "memory below batch": (["-m", "16", "-b", "32"], "-m/--max_memory/--max_mem (16) must be at least the batch size"),
    "not a number": (["-b", "lots"], "argument -b/--batch_size: invalid int value: 'lots'"),
    "missing run": (["--resume", "/nonexistent/run"], "run folder '/nonexistent/run' does not exist"),
    "render headless": (["-e", "CartPole-v1", "-R"], "--render needs a display"),
    "concurrency": (["-c", "0"], "concurrency must be positive and finite, got 0"),
    "dtype policy": (["--dtype_policy", "float16"], "unknown dtype policy 'float16'; choose one of: float32, mixed_"),
    "replay": (["--replay", "fifo"], "unknown replay 'fifo'; choose one of: newest, uniform"),
    "ema": (["--ema", "-5"], "--ema_steps/--ema must be positive and finite, got -5"),
    "seed negative": (["--seed", "-1"], "--seed must be an integer from 0 to 2**32 - 1, got -1"),
    "seed too big": (["--seed", "99999999999999999999"], "--seed must be an integer from 0 to 2**32 - 1, got 9999"),
    "optimizer": (["--optimizer", "nosuchopt"], "unknown optimizer 'nosuchopt'; choose one of: adadelta,"),
    "loss": (["--loss", "hubber"], "unknown loss 'hubber'; did you mean huber?"),
    "atari on vectors": (["-e", "CartPole-v1", "-E", "atari"], "-E atari is Gymnasium's AtariPreprocessing, for ALE"),
    "self-play on a one-player env": (
        ["-e", "CartPole-v1", "--self-play"],
        "--self-play needs a two-player OpenSpiel game (-e openspiel:GAME) or Go, not CartPole-v1",
    ),
    "self-play pool size": (["--self-play", "-1"], "--self_play/--self-play must be at least 0, got -1"),
    "self-play pool size not an int": (["--self-play", "2.5"], "--self-play: invalid int value: '2.5'"),
    "env window headless": (
        ["-e", "CartPole-v1", "--env-kwargs", "render_mode=human"],
        "--env-kwargs render_mode=human opens a window and needs a display",
    ),
    "env kwarg not a literal": (
        ["-e", "CartPole-v1", "--env-kwargs", "sutton_barto_reward=[1,"],
        "--env-kwargs: sutton_barto_reward=[1, is not a Python literal",
    ),
    "opponents on a one-player env": (
        ["-e", "CartPole-v1", "--eval_opponents", "random"],
        "--eval_opponents on CartPole-v1: it has no opponent: evaluation opponents are for two-player games",
    ),
    "missing trained agent": (["--trained-agent", "/nonexistent/run"], "run folder '/nonexistent/run' does not exist"),
    "net kwarg the network does not take": (
        ["-e", "CartPole-v1", "-a", "ppo", "-n", "actor_critic_rnn", "--net-kwargs", "rnn_unit=8"],
        "--net-kwargs: actor_critic_rnn takes no argument 'rnn_unit'; did you mean rnn_units?",
    ),
    "net kwarg that is a setting": (
        ["-e", "CartPole-v1", "--net-kwargs", "learning_rate=0.1"],
        "--net-kwargs: learning_rate is a setting, not a network argument: use -r/--learning_rate instead",
    ),
    "net kwarg without a value": (
        ["-e", "CartPole-v1", "--net-kwargs", "filters"],
        "--net-kwargs: settings are KEY=VALUE pairs, got 'filters'",  # as --env-kwargs says it
    ),
    "env kwarg of a wrong type": (
        ["-e", "RadioSearch-v0", "--env-kwargs", "snr_db='(nan,nan)'"],
        "cannot create RadioSearch-v0: snr_db must be a (low, high) pair of finite numbers, got '(nan,nan)'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path):
    args, message = BAD_INPUTS[case]
    out = kerlym(*args, "--outdir", str(tmp_path / "runs"))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("kerlym: error: ")
    assert message in out.stderr
    assert not os.path.exists(tmp_path / "runs") or not os.listdir(tmp_path / "runs")  # no empty run folder left


def test_a_flag_the_agent_does_not_use_is_a_note_and_a_preset_is_suggested(tmp_path):
    out = kerlym("-e", "CartPole-v1", "-a", "pg", "--ema", "100", "-f", "4", "--steps", "50", "--outdir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "kerlym: note: -a pg does not use -f/--update_freq, --ema_steps/--ema; ignored" in out.stderr
    assert "kerlym: note: kerlym has tuned settings for -e CartPole-v1 -a pg; add --preset to use them" in out.stderr
    assert "untrained agent" not in out.stderr  # the note on a game's strong opponent is for two-player games
    assert "ema" not in json.load(open(os.path.join(only_run(tmp_path), "config.json")))


def test_missing_checkpoint_is_one_line_and_exit_2(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"env": "CartPole-v1"}))
    out = kerlym("--resume", str(run))
    assert out.returncode == 2 and "has no checkpoint to resume from" in out.stderr
    assert out.stderr.count("\n") == 1


def test_corrupt_checkpoint_is_one_line_exit_2_and_leaves_the_run_alone(tmp_path):
    run = _corrupt_run(tmp_path)
    before = {p: os.path.getmtime(os.path.join(run, p)) for p in ("config.json", "progress.csv")}
    out = kerlym("--resume", run)
    assert out.returncode == 2
    assert out.stderr.startswith("kerlym: error: cannot load model") and out.stderr.count("\n") == 1
    assert before == {p: os.path.getmtime(os.path.join(run, p)) for p in before}


def test_periodic_evaluation_keeps_the_best_model(tmp_path):
    out = kerlym(*FAST, "--steps", "900", "--eval_every", "300", "--eval_episodes", "2", "--outdir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    run = only_run(tmp_path)
    with open(os.path.join(run, "evaluations.csv")) as f:
        evals = list(csv.DictReader(f))
    assert [int(e["total_steps"]) for e in evals] == [300, 600, 900]
    means = [float(e["mean"]) for e in evals]
    new_bests = sum(m > max(means[:i], default=float("-inf")) for i, m in enumerate(means))
    assert out.stdout.count("saved best.keras") == new_bests >= 1  # saved exactly when the best improved
    assert os.path.exists(os.path.join(run, "best.keras"))
    played = kerlym("--play", run, "--best", "--eval_episodes", "1")
    assert played.returncode == 0 and "best.keras" in played.stdout
    missing = kerlym("--play", str(tmp_path / "nope"), "--best")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_a_second_process_cannot_resume_a_run_in_use(tmp_path):
    assert kerlym(*FAST, "--steps", "300", "--outdir", str(tmp_path)).returncode == 0
    run = only_run(tmp_path)
    first = subprocess.Popen(
        [sys.executable, "-m", "kerlym", "--resume", run, "--steps", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert "resumed" in first.stdout.readline() + first.stdout.readline()
        second = kerlym("--resume", run, "--steps", "100000")
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert f"is in use by process {first.pid}" in second.stderr
        assert kerlym("--play", run, "--eval_episodes", "1").returncode == 0  # reading needs no lock
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 0


@pytest.mark.parametrize("stage", ["exit handlers", "teardown"])
def test_a_ctrl_c_while_python_shuts_down_keeps_the_commands_status(stage):
    # The run is saved once main() returns; a Ctrl-C after it (in Python's exit handlers, or its last teardown,
    # where TensorFlow's takes about a second) ends the process with main's status (2 here), without a traceback.
    late = (
        "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(2), print('went on')))"
    )
    code = (
        "import atexit, os, signal, sys, time\n"
        + (late + "\n" if stage == "teardown" else "")  # registered first: runs after the command's own
        + "sys.argv = ['kerlym', '--play', '/nonexistent']\n"
        "from kerlym.main import command\n"
        "status = command()\n"
        + (late + "\n" if stage == "exit handlers" else "")
        + "sys.exit(status)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert ("went on" in out.stdout) == (stage == "teardown")  # ignored at the end; before, it ends the process


def test_an_impatient_double_ctrl_c_still_saves_the_final_checkpoint(tmp_path):
    proc = _start([*FAST, "--steps", "100000", "--checkpoint_every", "1000", "--save_memory"], tmp_path)
    run = _wait_for_checkpoint(tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    final = int(stdout.split("interrupted at step ")[1].split(":")[0])
    assert checkpoint_step(run) == final
    assert not [d for d in os.listdir(os.path.join(run, "checkpoints")) if d.startswith(".tmp")]


def test_play_says_which_weights_it_uses_and_weights_chooses(tmp_path):
    args = ("--steps", "1500", "--ema", "1000", "--eval_every", "1500", "--eval_episodes", "1")
    assert kerlym(*FAST, *args, "--outdir", str(tmp_path)).returncode == 0
    run = only_run(tmp_path)
    checkpoint = os.path.join(run, "checkpoints", "step-0000001500")
    lines = {}
    for which in ("", "online", "average", "best"):
        out = kerlym("--play", run, "--eval_episodes", "1", *(("--weights", which) if which else ()))
        assert out.returncode == 0, out.stderr
        lines[which] = out.stdout.splitlines()[0]
    assert lines[""] == lines["average"] == f"playing with the weight average of {checkpoint}"
    assert lines["online"] == f"playing with the online network of {checkpoint}"
    assert lines["best"] == f"playing with the best.keras of {run}"
    clash = kerlym("--play", run, "--best", "--weights", "online")
    assert clash.returncode == 2 and clash.stderr == "kerlym: error: --best and --weights online disagree; give one\n"
    alone = kerlym(*FAST, "--weights", "online")
    assert alone.returncode == 2
    assert alone.stderr == "kerlym: error: --weights goes with --play, --export or --trained-agent\n"


def _predictions(model_path):
    """A saved network's outputs on fixed CartPole observations."""
    states = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    outputs = checkpoints.load_model(model_path).predict(states, verbose=0)
    return [np.asarray(o) for o in (outputs if isinstance(outputs, list) else [outputs])]


def test_trained_agent_starts_a_new_run_from_a_saved_runs_weights(tmp_path):
    ppo = ["-e", "CartPole-v1", "-a", "ppo", "--seed", "0", "-q", "--eval_episodes", "1", "--n_steps", "64"]
    saving = ("--eval_every", "128", "--checkpoint_every", "128")
    assert kerlym(*ppo, "--steps", "256", *saving, "--outdir", str(tmp_path / "src")).returncode == 0
    source = only_run(tmp_path / "src")
    out = kerlym(*ppo, "--seed", "1", "--steps", "30", "--trained-agent", source, "--outdir", str(tmp_path / "new"))
    assert out.returncode == 0, out.stderr
    new = only_run(tmp_path / "new")
    started = os.path.join(source, "checkpoints", "step-0000000256")
    assert f"starting from the online network of {started}" in out.stdout
    saved = json.load(open(os.path.join(new, "config.json")))
    assert saved["trained_agent"] == os.path.abspath(source) and saved["trained_weights"] is None
    record = json.load(open(os.path.join(new, "trained_agent.json")))
    assert record == {"trained_agent": os.path.abspath(source), "weights": f"online network of {started}"}
    assert int(read_rows(new)[0]["episode"]) == 1 and checkpoint_step(new) == 30  # its own counters, from 0
    # 30 steps make no update (a rollout is 64): the new run's network is the source's, its predictions equal.
    mine = _predictions(os.path.join(new, "checkpoints", "step-0000000030", "model.keras"))
    theirs = _predictions(os.path.join(started, "model.keras"))
    assert all(np.array_equal(a, b) for a, b in zip(mine, theirs, strict=True))
    untrained = _predictions(os.path.join(source, "checkpoints", "step-0000000128", "model.keras"))
    assert not np.array_equal(mine[0], untrained[0])  # the check can fail: another checkpoint's weights differ
    # --weights best: best.keras; a network of another shape: one line, exit 2, no run folder left.
    best = kerlym(*ppo, "--steps", "1", "--trained-agent", source, "--weights", "best", "--outdir", str(tmp_path / "b"))
    assert best.returncode == 0 and f"starting from the best.keras of {source}" in best.stdout, best.stderr
    other = kerlym(*ppo, "--steps", "1", "--trained-agent", source, "-t", "2", "--outdir", str(tmp_path / "bad"))
    assert other.returncode == 2 and "Traceback" not in other.stderr, other.stderr
    error = other.stderr.splitlines()[-1]  # after the note on CartPole's preset
    assert error.startswith("kerlym: error: --trained-agent: the online network of")
    assert "does not fit this agent's network" in error and "(8, 64) is not compatible" in error
    assert not os.listdir(tmp_path / "bad")
    average = kerlym(*ppo, "--trained-agent", source, "--weights", "average", "--outdir", str(tmp_path / "avg"))
    assert average.returncode == 2 and "--weights average needs a run trained with --ema" in average.stderr


def test_weights_average_needs_a_run_with_ema_and_an_update(tmp_path):
    plain = ["-e", "CartPole-v1", "-a", "dqn", "--seed", "0", "-q", "--steps", "100", "--outdir"]
    assert kerlym(*plain, str(tmp_path / "plain")).returncode == 0
    out = kerlym("--play", only_run(tmp_path / "plain"), "--weights", "average")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "--weights average needs a run trained with --ema" in out.stderr
    assert kerlym(*FAST, "--steps", "300", "--outdir", str(tmp_path / "ema")).returncode == 0  # preset: --ema
    out = kerlym("--play", only_run(tmp_path / "ema"), "--weights", "average")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "step-0000000300 holds no weight average yet (saved before the first update); use online" in out.stderr


def test_play_with_submit_writes_the_bundle_of_that_evaluation(tmp_path):
    assert kerlym(*FAST, "--steps", "400", "--outdir", str(tmp_path)).returncode == 0
    run = only_run(tmp_path)
    out = kerlym("--play", run, "-S", "--eval_episodes", "3", "--seed", "5")
    assert out.returncode == 0, out.stderr
    bundle = os.path.join(run, "submission")
    assert f"results bundle: {bundle}" in out.stdout
    played = [float(line.split("reward ")[1]) for line in out.stdout.splitlines() if line.startswith(" * Episode")]
    evaluation = json.load(open(os.path.join(bundle, "evaluation.json")))
    assert evaluation["returns"] == played and len(played) == 3  # the evaluation --play printed, not another
    assert evaluation["weights"] == f"online network of {os.path.join(run, 'checkpoints', 'step-0000000400')}"
    stats = json.load(open(os.path.join(bundle, "episode_statistics.json")))
    assert stats["returns"] == [float(r["reward"]) for r in read_rows(run)]


def test_submit_after_ctrl_c_and_resume_covers_every_episode_and_wall_time_goes_on(tmp_path):
    proc = _start([*FAST, "--steps", "6000", "--checkpoint_every", "500", "-S", "--eval_episodes", "1"], tmp_path)
    run = _wait_for_checkpoint(tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    bundle = os.path.join(run, "submission")
    assert "interrupted at step" in stdout and f"results bundle: {bundle}" in stdout
    first = json.load(open(os.path.join(bundle, "episode_statistics.json")))
    assert first["source"] == "RecordEpisodeStatistics"  # one session: Gymnasium's record, times included
    assert first["returns"] == [float(r["reward"]) for r in read_rows(run)]

    saved = checkpoint_step(run)
    out = kerlym("--resume", run, "--steps", str(saved + 500))
    assert out.returncode == 0, out.stderr
    rows = read_rows(run)
    stats = json.load(open(os.path.join(bundle, "episode_statistics.json")))
    assert stats["source"] == "kerlym episode rows"  # the wrapper saw only the resumed session's episodes
    assert stats["returns"] == [float(r["reward"]) for r in rows] and len(rows) > len(first["returns"]) // 2
    assert stats["lengths"] == [int(r["length"]) for r in rows]
    resumed = next(i for i, r in enumerate(rows) if int(r["total_steps"]) > saved)
    wall = [float(r["wall_time"]) for r in rows]
    assert resumed > 0 and wall == sorted(wall)  # the resumed episodes' clock starts at the last kept row's
    assert wall[resumed] > wall[resumed - 1]


def test_help_groups_flags_by_topic_and_names_the_agents_that_use_them():
    from kerlym.main import build_parser

    groups = {g.title: g._group_actions for g in build_parser()._action_groups}
    titles = [t.split(":")[0] for t in groups if t not in ("positional arguments", "options")]
    assert titles == [
        "environment",
        "agent",
        "network and optimizer",
        "schedule",
        "run control",
        "output",
        "evaluation",
        "play and export a saved agent",
        "seeds and sweeps",
    ]
    helps = {a.option_strings[0]: (title.split(":")[0], a.help) for title, acts in groups.items() for a in acts}
    assert helps["-e"][0] == "environment" and helps["--steps"][0] == "run control"
    assert helps["--eval_every"][0] == "evaluation" and helps["--format"][0] == "play and export a saved agent"
    assert helps["-p"] == ("agent", "dqn, ddqn: Exploration (1.0) vs exploitation (0.0) action probability [0.1]")
    assert helps["-t"][1].endswith("[2] (a2c, a3c, ppo: 1)")  # the command's default, and where agents differ
    assert helps["-r"][1].endswith("[0.0001] (a2c, a3c: 0.0007; ppo: 0.0003)")
    assert helps["-b"][1].startswith("dqn, ddqn, ppo: ") and helps["-b"][1].endswith("[32] (ppo: 64)")
    assert helps["--n_epochs"][1].startswith("ppo: ") and helps["-d"][1].startswith("Discount")  # every agent: no names
    # Where the agents' defaults differ, --help gives each (a subclass's default, declared once in its class).
    assert helps["-o"][1].endswith("[0.5] (a2c, a3c, ppo: 0.0)")
    assert helps["--clipnorm"][1].endswith("[None] (a2c, a3c, ppo: 0.5)")
    assert helps["--n_steps"][1].startswith("a2c, a3c, ppo: ") and helps["--n_steps"][1].endswith("[5] (ppo: 2048)")
    assert helps["--return_steps"][1].startswith("dqn, ddqn: Rewards summed")
    assert helps["--return_steps"][1].endswith("one-step Q-learning) [1]")


# Every spelling of the original KeRLym command (README), with the field it sets and a value to give it.
ORIGINAL_FLAGS = {
    "-e": ("env", "CartPole-v1"),
    "--env": ("env", "CartPole-v1"),
    "-n": ("modelfactory", "simple_cnn"),
    "--net": ("modelfactory", "simple_cnn"),
    "-f": ("update_freq", 7),
    "--update_freq": ("update_freq", 7),
    "-u": ("update_nsamp", 7),
    "--update_size": ("update_nsamp", 7),
    "-b": ("batch_size", 7),
    "--batch_size": ("batch_size", 7),
    "-o": ("dropout", 0.25),
    "--dropout": ("dropout", 0.25),
    "-p": ("epsilon", 0.25),
    "--epsilon": ("epsilon", 0.25),
    "-D": ("epsilon_decay", 0.25),
    "--epsilon_decay": ("epsilon_decay", 0.25),
    "-s": ("epsilon_min", 0.25),
    "--epsilon_min": ("epsilon_min", 0.25),
    "-d": ("discount", 0.25),
    "--discount": ("discount", 0.25),
    "-t": ("nframes", 7),
    "--num_frames": ("nframes", 7),
    "-m": ("max_memory", 7),
    "--max_mem": ("max_memory", 7),
    "-F": ("plot_rate", 7),
    "--plot_rate": ("plot_rate", 7),
    "-a": ("agent", "pg"),
    "--agent": ("agent", "pg"),
    "-r": ("learning_rate", 0.25),
    "--learning_rate": ("learning_rate", 0.25),
}
ORIGINAL_SWITCHES = {"-P": "plots", "--plots": "plots", "-S": "submit", "--submit": "submit", "-i": "difference_obs"}


def test_the_original_commands_flags_and_every_other_spelling_set_the_same_field():
    from kerlym.main import build_parser
    from kerlym.settings import given_settings

    parser = build_parser()
    for spelling, (dest, value) in ORIGINAL_FLAGS.items():
        assert given_settings(parser.parse_args([spelling, str(value)])) == {dest: value}, spelling
    for spelling, dest in {**ORIGINAL_SWITCHES, "--difference": "difference_obs"}.items():
        assert given_settings(parser.parse_args([spelling])) == {dest: True}, spelling
    assert given_settings(parser.parse_args([])) == {}  # nothing given: the command's defaults apply
    # Every spelling of every generated flag (-m, --max_memory, --max_mem) fills the field's dest.
    for f in {f.name: f for cls in agents.AGENT_CONFIGS.values() for f in config.fields(cls)}.values():
        for spelling in f.metadata["flags"]:
            action = parser._option_string_actions[spelling]
            assert action.dest == f.name, spelling
    parse = parser.parse_args
    assert parse(["--n_step", "3"]).return_steps == 3 == parse(["--return_steps=3"]).return_steps
    assert parse(["--ema=5"]).ema_steps == 5 and parse(["--pong_reset", "0"]).reset_on_score == 0


def test_openspiel_game_trains_and_plays_with_search_against_another_opponent(tmp_path):
    pytest.importorskip("pyspiel", reason="OpenSpiel games need the .[games] extra (open-spiel)")
    game = ["-e", "openspiel:tic_tac_toe", "-a", "ppo", "-n", "actor_critic_mlp", "--seed", "0", "-q"]
    out = kerlym(*game, "--steps", "256", "--eval_episodes", "4", "--outdir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    run = only_run(tmp_path)
    assert os.path.basename(run).startswith("openspiel_tic_tac_toe-ppo-")
    with open(os.path.join(run, checkpoints.EVALUATION)) as f:
        record = json.load(f)
    assert record["wins"] + record["draws"] + record["losses"] == 4
    assert record["wins"] == sum(r > 0 for r in record["returns"])
    assert 0 <= record["win_rate_95"][0] <= record["win_rate"] <= record["win_rate_95"][1] <= 1
    out = kerlym("--play", run, "--env-kwargs", "opponent=mcts:8", "--search", "8", "--eval_episodes", "2")
    assert out.returncode == 0, out.stderr
    assert "PUCT search of 8" in out.stdout and "games: wins " in out.stdout
    (stamp,) = os.listdir(os.path.join(run, "plays"))  # each --play's results in a folder of their own
    saved = os.path.join(run, "plays", stamp, checkpoints.EVALUATION)
    assert out.stdout.strip().splitlines()[-1] == f"evaluation: {saved}"
    with open(saved) as f:
        played = json.load(f)
    with open(os.path.join(run, checkpoints.EVALUATION)) as f:
        assert json.load(f) == record  # the run's own evaluation is kept
    assert (record["opponent"], played["opponent"], played["search"]) == ("random", "mcts:8", 8)
    assert played["wins"] + played["draws"] + played["losses"] == 2
    with open(os.path.join(run, "config.json")) as f:
        assert "opponent" not in (json.load(f)["env_kwargs"] or {})  # --play's opponent is its own, not the run's
    out = kerlym("--play", run, "--search", "8", "-a", "pg")
    assert out.returncode != 0
    out = kerlym("-e", "openspiel:matrix_rps", "-a", "ppo", "--outdir", str(tmp_path / "bad"))
    assert out.returncode == 2 and "simultaneous moves" in out.stderr and "Traceback" not in out.stderr
    out = kerlym("-e", "CartPole-v1", "--search", "4", "--outdir", str(tmp_path / "bad"))
    assert out.returncode == 2 and "--search plays OpenSpiel games" in out.stderr


def _interrupt_once_it_says(args, text, stream="stderr", tmp_path=None):
    """Run ``kerlym args``; once ``text`` appears in its output, Ctrl-C its process group. Returns (rc, out, err)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kerlym", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=ENV, start_new_session=True,
    )  # fmt: skip
    seen = []
    for line in getattr(proc, stream):
        seen.append(line)
        if text in line:
            break
    os.killpg(proc.pid, signal.SIGINT)
    # The rest through the same file objects: communicate() reads the pipes' descriptors and would miss lines the
    # loop above had already buffered past ``text``.
    other, read = proc.stderr if stream == "stdout" else proc.stdout, {}
    reader = threading.Thread(target=lambda: read.setdefault("other", other.read()))
    reader.start()
    seen.append(getattr(proc, stream).read())
    reader.join(timeout=300)
    proc.wait(timeout=300)
    return (proc.returncode, "".join(seen), read["other"]) if stream == "stdout" else (
        proc.returncode, read["other"], "".join(seen))  # fmt: skip


def test_ctrl_c_while_a_new_run_is_set_up_is_one_line_and_leaves_no_run_folder(tmp_path):
    # The note comes before the agent is built (Keras loads for seconds): the Ctrl-C lands in that set-up.
    args = ["-e", "CartPole-v1", "-a", "dqn", "--steps", "100000", "--outdir", str(tmp_path), "-q"]
    rc, out, err = _interrupt_once_it_says(args, "add --preset to use them")
    assert rc == 128 + signal.SIGINT, err
    assert err.strip().splitlines()[-1] == "kerlym: interrupted before training began; nothing was saved"
    assert "Traceback" not in err + out and "Exception ignored" not in err
    assert os.listdir(tmp_path) == []  # the run folder, which held only its lock, is gone


def test_ctrl_c_while_a_resume_is_set_up_leaves_the_run_as_it_was(tmp_path):
    assert kerlym(*FAST, "--steps", "300", "--outdir", str(tmp_path)).returncode == 0
    run = only_run(tmp_path)
    before = sorted(os.listdir(run))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kerlym", "--resume", run, "--steps", "100000"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True,
    )  # fmt: skip
    time.sleep(1.0)  # kerlym has started; Keras takes seconds more to load
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert "Traceback" not in err + out and "Exception ignored" not in err
    if proc.returncode == 128 + signal.SIGINT:  # the Ctrl-C came while the agent was built
        assert err.strip().splitlines()[-1] == (
            f"kerlym: interrupted before training began; the run is as it was: continue with: kerlym --resume {run}"
        )
        assert checkpoint_step(run) == 300 and sorted(os.listdir(run)) == before
    else:  # a fast machine had built it: the runner stopped as soon as it started
        assert proc.returncode == 0 and "interrupted at step" in out, err


def test_ctrl_c_during_play_is_one_line(tmp_path):
    assert kerlym(*FAST, "--steps", "300", "--outdir", str(tmp_path)).returncode == 0
    run = only_run(tmp_path)
    rc, out, err = _interrupt_once_it_says(["--play", run, "--eval_episodes", "100000"], " * Episode 2:", "stdout")
    assert rc == 128 + signal.SIGINT, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    # Each episode was printed as it ended; the one line gives the finished ones' results.
    rewards = [float(line.split("reward ")[1]) for line in out.splitlines() if line.startswith(" * Episode")]
    finished = re.fullmatch(r"kerlym: interrupted: (\d+) of 100000 episodes finished, mean reward (\S+)", err.strip())
    assert finished, err
    assert int(finished[1]) == len(rewards) >= 2 and float(finished[2]) == pytest.approx(np.mean(rewards), abs=0.005)


@pytest.mark.parametrize(
    "opponents, message",
    [
        (["mcts"], "--eval_opponents on openspiel:tic_tac_toe: unknown opponent 'mcts'; use 'random', 'mcts:"),
        (["random", "gnugo:0"], "--eval_opponents on openspiel:tic_tac_toe: opponent 'gnugo:0' plays Go only"),
        (["random", "random"], "--eval_opponents on openspiel:tic_tac_toe: 'random' is named twice"),
    ],
)
def test_eval_opponents_a_game_cannot_play_are_one_line_before_any_run_folder(opponents, message, tmp_path):
    pytest.importorskip("pyspiel", reason="OpenSpiel games need the .[games] extra (open-spiel)")
    out = kerlym("-e", "openspiel:tic_tac_toe", "-a", "ppo", "-n", "actor_critic_mlp", "--eval_opponents", *opponents,
                 "--outdir", str(tmp_path / "runs"))  # fmt: skip
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith(f"kerlym: error: {message}")
    assert not os.path.exists(tmp_path / "runs")


def test_eval_opponents_rows_survive_a_resume_and_play_gives_the_same_games(tmp_path):
    pytest.importorskip("pyspiel", reason="OpenSpiel games need the .[games] extra (open-spiel)")
    from kerlym import summary

    game = ["-e", "openspiel:tic_tac_toe", "-a", "ppo", "-n", "actor_critic_mlp", "-t", "1", "--seed", "0", "-q"]
    evals = ["--eval_every", "64", "--eval_episodes", "6", "--eval_opponents", "random", "mcts:2"]
    out = kerlym(*game, *evals, "--steps", "128", "--outdir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    run = only_run(tmp_path)
    out = kerlym("--resume", run, "--steps", "192")
    assert out.returncode == 0, out.stderr
    with open(os.path.join(run, "evaluations.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["total_steps"]), r["opponent"]) for r in rows] == [
        (step, name) for step in (64, 128, 192) for name in ("random", "mcts:2")
    ]
    for r in rows:
        assert int(r["wins"]) + int(r["draws"]) + int(r["losses"]) == 6
        lo, hi = stats_wilson(int(r["wins"]), 6)
        assert float(r["win_rate_lo"]) == pytest.approx(lo) and float(r["win_rate_hi"]) == pytest.approx(hi)
    with open(os.path.join(run, checkpoints.EVALUATION)) as f:
        record = json.load(f)
    assert record["opponent"] == "random" and list(record["opponents"]) == ["random", "mcts:2"]
    for r in rows[-2:]:
        games = record["opponents"][r["opponent"]]
        assert (games["wins"], games["draws"], games["losses"]) == (int(r["wins"]), int(r["draws"]), int(r["losses"]))
    assert (record["wins"], record["mean"]) == (int(rows[-2]["wins"]), float(rows[-2]["mean"]))
    assert f"games against mcts:2: wins {rows[-1]['wins']}, draws {rows[-1]['draws']}" in out.stdout
    # A sweep's summary of a stopped run reads the first opponent's row of the last evaluation.
    assert summary._last_evaluation(run)["mean"] == float(rows[-2]["mean"])
    # --play with the same seed plays the same games against the final weights.
    out = kerlym("--play", run, "--eval_opponents", "mcts:2", "--eval_episodes", "6", "--seed", "0")
    assert out.returncode == 0, out.stderr
    last = rows[-1]
    assert f"games against mcts:2: wins {last['wins']}, draws {last['draws']}, losses {last['losses']};" in out.stdout
    out = kerlym("--resume", run, "--eval_opponents", "random")  # training keeps its opponents
    assert out.returncode == 2 and "--eval_opponents ['random'] differs from this run's" in out.stderr


def stats_wilson(wins, n):
    from kerlym.stats import wilson_interval

    return wilson_interval(wins, n)


def test_a_strong_fixed_opponent_is_named_at_the_start_with_the_ways_to_a_run_that_learns(tmp_path):
    pytest.importorskip("pyspiel", reason="OpenSpiel games need the .[games] extra (open-spiel)")
    game = ["-e", "openspiel:tic_tac_toe", "-a", "ppo", "-n", "actor_critic_mlp", "--steps", "20"]
    out = kerlym(*game, "--eval_episodes", "1", "--env-kwargs", "opponent=mcts:2", "--outdir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    note = [line for line in out.stderr.splitlines() if "untrained agent" in line]
    assert note == [
        "kerlym: note: openspiel:tic_tac_toe plays OpenSpiel's MCTS bot (2 simulations a move) (opponent mcts:2), "
        "and an untrained agent loses most games against it; for a run that learns: --preset (kerlym's settings, "
        "against random moves), or --self-play (-e openspiel:tic_tac_toe against snapshots of itself)"
    ]
    out = kerlym(*game, "--eval_episodes", "1", "--env-kwargs", "opponent=mcts:2", "-q", "--outdir", str(tmp_path))
    assert out.returncode == 0 and "untrained agent" not in out.stderr + out.stdout  # -q: quiet
    import types

    from kerlym.envs import make_env
    from kerlym.session import opponent_note

    run = config.RunConfig(env="openspiel:tic_tac_toe", agent="ppo")
    for opponent, says in (("random", False), ("mcts:2", True)):  # random moves: an untrained agent wins some
        env = make_env("openspiel:tic_tac_toe", env_kwargs={"opponent": opponent})
        assert (opponent_note(types.SimpleNamespace(env=env, config=None), run) is not None) == says


@pytest.mark.skipif(
    not (os.access("/usr/games/gnugo", os.X_OK) or shutil.which("gnugo")),
    reason="GnuGo is not installed (apt-get install gnugo)",
)
def test_the_headline_go_example_says_gnugo_beats_an_untrained_agent(tmp_path):
    pytest.importorskip("pyspiel", reason="Go needs the .[go] extra (open-spiel)")
    go = ["-e", "Go9x9-v0", "-n", "simple_dnn", "-P", "--env-kwargs", "board_size=5", "--steps", "1"]
    out = kerlym(*go, "--eval_episodes", "1", "--outdir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert (
        "kerlym: note: Go9x9-v0 plays GnuGo level 0 (opponent gnugo:0), and an untrained agent loses every game "
        "against it (reward -1 each episode); for a run that learns: --preset (kerlym's settings, against random "
        "moves), --self-play (-e Go9x9-v0 against snapshots of itself), or -a ppo -n actor_critic_board -t 1 "
        "--env-kwargs planes=mover --pretrain gnugo:0:1200 (GnuGo's own games cloned first, benchmarks/README.md)\n"
    ) in out.stderr


def test_the_headline_go_note_points_at_self_play_on_the_same_env():
    pytest.importorskip("pyspiel", reason="Go needs the .[go] extra (open-spiel)")
    import types

    from kerlym.envs.go import GoEnv
    from kerlym.session import opponent_note

    presets = {9: "--preset (kerlym's settings, against random moves)"}
    for size, env_id in ((9, "Go9x9-v0"), (19, "Go19x19-v0")):
        env = GoEnv(board_size=size, opponent="random")
        env.opponent_name = "gnugo:0"  # what the env plays by default, named without starting GnuGo
        agent = types.SimpleNamespace(env=env, config=config.DQNConfig())
        note = opponent_note(agent, config.RunConfig(env=env_id, agent="ddqn"))
        easier = presets.get(size, "--env-kwargs opponent=random (an opponent it can beat)")
        assert note == (
            f"{env_id} plays GnuGo level 0 (opponent gnugo:0), and an untrained agent loses every game against it "
            f"(reward -1 each episode); for a run that learns: {easier}, "
            f"--self-play (-e {env_id} against snapshots of itself), or -a ppo -n actor_critic_board -t 1 "
            "--env-kwargs planes=mover --pretrain gnugo:0:1200 (GnuGo's own games cloned first, benchmarks/README.md)"
        )
        for started in ({"pretrain": "gnugo:0:10"}, {"trained_agent": "/some/run"}):  # not an untrained agent
            assert opponent_note(agent, config.RunConfig(env=env_id, agent="ddqn", **started)) is None
        agent.config = config.DQNConfig(self_play=2)
        assert opponent_note(agent, config.RunConfig(env=env_id, agent="ddqn")) is None
        env.close()


def test_self_play_on_the_headline_go_env_trains_without_gnugo(tmp_path):
    pytest.importorskip("pyspiel", reason="Go needs the .[go] extra (open-spiel)")
    go = ["-e", "Go9x9-v0", "-n", "simple_dnn", "--self-play", "--env-kwargs", "board_size=5", "--steps", "60"]
    out = kerlym(*go, "--eval_episodes", "1", "--outdir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "untrained agent" not in out.stderr and "GnuGo" not in out.stderr + out.stdout
    assert "finished at step 60" in out.stdout + out.stderr
