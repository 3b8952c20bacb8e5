"""kerlym.sweep: seeds under one sweep folder, the search-space parser, preset files, and Ray Tune trials."""

import csv
import importlib.util
import json
import os
import time

import numpy as np
import pytest

import kerlym
from kerlym import config, runs, search, sweep
from kerlym import summary as S
from kerlym.config import ConfigError
from kerlym.main import build_parser, main
from kerlym.settings import resolve

needs_yaml = pytest.mark.skipif(
    importlib.util.find_spec("yaml") is None, reason='needs PyYAML, from the ray extra: pip install ".[ray]"'
)

# A tiny CartPole budget: 300 steps, no update yet (update_freq 1000), 3 greedy episodes at the end.
TINY = ["-e", "CartPole-v1", "-a", "dqn", "--steps", "300", "--eval_episodes", "3", "-q"]


def only_dir(outdir):
    (name,) = os.listdir(outdir)
    return os.path.join(outdir, name)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def returns(run_dir):
    """The training episodes' (total_steps, reward) from a run's progress.csv."""
    return [(int(r["total_steps"]), float(r["reward"])) for r in read_csv(os.path.join(run_dir, runs.PROGRESS))]


def test_seeds_make_one_run_folder_each_and_a_summary_of_their_evaluations(tmp_path, capsys):
    assert main([*TINY, "--seeds", "0", "1", "--outdir", str(tmp_path)]) == 0
    sweep_dir = only_dir(tmp_path)
    assert os.path.basename(sweep_dir).startswith("CartPole-v1-dqn-sweep-")
    assert sweep.is_sweep(sweep_dir)
    summary = read_csv(os.path.join(sweep_dir, S.SUMMARY_CSV))
    assert [r["seed"] for r in summary] == ["0", "1"]
    for row in summary:
        run_dir = os.path.join(sweep_dir, f"seed-{row['seed']}")
        assert runs.read_config(run_dir)["seed"] == int(row["seed"])  # an ordinary run folder with its own seed
        (last_eval,) = read_csv(os.path.join(run_dir, runs.EVALUATIONS))  # the runner's own record
        assert float(row["eval_mean"]) == float(last_eval["mean"]) and float(row["eval_std"]) == float(last_eval["std"])
        assert int(row["steps"]) == int(last_eval["total_steps"]) == 300
        assert int(row["eval_episodes"]) == 3 and float(row["wall_s"]) > 0
        assert returns(run_dir)[-1][0] <= 300
    assert returns(os.path.join(sweep_dir, "seed-0")) != returns(os.path.join(sweep_dir, "seed-1"))
    assert os.path.getsize(os.path.join(sweep_dir, S.CURVE)) > 0
    out = capsys.readouterr().out
    mean = np.mean([float(r["eval_mean"]) for r in summary])
    assert f"mean over 2 seeds: {mean:.2f}" in out and "| seed | greedy return |" in out


def test_curves_average_on_a_common_step_grid():
    rows = [{"total_steps": s, "reward": r} for s, r in [(10, 10.0), (30, 20.0), (40, 30.0)]]
    steps, values = S.smoothed_curve(rows, window=2)
    assert steps.tolist() == [10, 30, 40] and values.tolist() == [10.0, 15.0, 25.0]
    # Run a at steps 0..10, run b at 5..20: the grid spans 5..10, where both are defined.
    a = (np.array([0.0, 10.0]), np.array([0.0, 10.0]))
    b = (np.array([5.0, 20.0]), np.array([2.0, 2.0]))
    grid, mean, std = S.mean_curve([a, b], points=3)
    assert grid.tolist() == [5.0, 7.5, 10.0]
    assert mean.tolist() == [3.5, 4.75, 6.0] and std.tolist() == [1.5, 2.75, 4.0]


def test_markdown_table_lists_each_run_and_the_mean_over_runs():
    rows = [
        {"seed": 0, "eval_mean": 100.0, "eval_std": 5.0, "eval_episodes": 20, "steps": 1000, "wall_s": 12.5},
        {"seed": 1, "eval_mean": 200.0, "eval_std": 0.0, "eval_episodes": 20, "steps": 1000, "wall_s": 11.0},
    ]
    lines = S.markdown_table(rows).splitlines()
    assert lines[0] == "| seed | greedy return | steps | wall_s |"
    assert lines[2] == "| 0 | 100.00 ± 5.00 (20 ep.) | 1000 | 12.5 |"
    assert lines[-1] == "mean over 2 seeds: 150.00 ± 50.00"


# -- search spaces -------------------------------------------------------------
SPACE = """
learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
batch_size: {choice: [32, 64]}
discount: {uniform: [0.95, 0.999]}
update_freq: {loguniform: [4, 256]}
"""


@needs_yaml
def test_each_kind_of_search_entry_becomes_its_distribution(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    _, cfg = kerlym.configure("CartPole-v1", "dqn")
    space = search.read_space(str(path), "dqn", cfg)
    assert space == {
        "learning_rate": search.Dist("loguniform", 1e-4, 1e-2),
        "batch_size": search.Dist("choice", values=(32, 64), integer=True),
        "discount": search.Dist("uniform", 0.95, 0.999),
        "update_freq": search.Dist("loguniform", 4, 256, integer=True),
    }


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"learnig_rate": {"uniform": [0.1, 0.2]}}, "-a dqn has no setting 'learnig_rate' to search; did you mean "),
        ({"reset_on_score": {"choice": [0, 1]}}, "-a dqn has no setting 'reset_on_score' to search"),
        ({"seed": {"choice": [0, 1]}}, "-a dqn has no setting 'seed' to search"),
        ({"discount": {"normal": [0.9, 0.1]}}, "discount: give one of uniform, loguniform, choice"),
        ({"discount": {"uniform": [0.99, 0.9]}}, "discount: uniform takes [low, high] with low < high"),
        ({"discount": {"uniform": [0.9, 1.5]}}, "discount: 1.5 is not a valid value: -d/--discount must be in [0, 1]"),
        ({"learning_rate": {"loguniform": [0, 0.1]}}, "learning_rate: loguniform needs a positive low bound"),
        ({"batch_size": {"uniform": [16.5, 64]}}, "batch_size is an integer setting"),
        ({"batch_size": {"choice": []}}, "batch_size: choice takes a non-empty list"),
    ],
)
def test_a_bad_search_entry_is_a_one_line_error(entry, message):
    _, cfg = kerlym.configure("CartPole-v1", "dqn")
    with pytest.raises(search.SpaceError) as e:
        search.parse_space(entry, "dqn", cfg)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@needs_yaml
def test_the_command_reports_a_bad_space_in_one_line_before_starting_ray(tmp_path, capsys):
    path = tmp_path / "space.yaml"
    path.write_text("learnig_rate: {loguniform: [1.0e-4, 1.0e-2]}\n")
    assert main([*TINY, "--tune", str(path), "--outdir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "kerlym: error: -a dqn has no setting 'learnig_rate' to search; did you mean learning_rate?"
    assert not os.path.exists(tmp_path / "runs")


@needs_yaml
@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"\x89PNG\r\n\x1a\n\x00\x00"], ids=["all bytes", "png"])
def test_a_binary_space_file_is_one_line_before_any_run_folder(tmp_path, capsys, content):
    path = tmp_path / "space.yaml"
    path.write_bytes(content)
    assert main([*TINY, "--tune", str(path), "--outdir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"kerlym: error: {path} is not a YAML text file: byte ")
    assert not os.path.exists(tmp_path / "runs")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ray"], "--ray runs --seeds or --tune as Ray Tune trials; give one of them"),
        (["--seeds", "0", "0"], "--seeds has a seed twice: 0 0"),
        (["--trials", "3"], "--trials goes with --tune SPACE_FILE"),
    ],
)
def test_bad_sweep_flags_are_one_line_errors(tmp_path, capsys, args, message):
    assert main([*TINY, *args, "--outdir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"kerlym: error: {message}"
    assert os.listdir(tmp_path) == []


# -- preset files ----------------------------------------------------------------
def test_a_best_preset_file_gives_exactly_its_settings(tmp_path):
    run, cfg = kerlym.configure(
        "CartPole-v1", "dqn", preset=True, seed=7, learning_rate=3e-4, batch_size=32, discount=0.97, steps=5000
    )
    run_dir = tmp_path / "trial"
    run_dir.mkdir()
    runs.write_config(str(run_dir), config.config_dict(run, cfg))
    preset = sweep.write_best_preset(str(tmp_path), str(run_dir))
    path = str(tmp_path / sweep.BEST_PRESET)
    with open(path) as f:
        assert json.load(f) == preset
    assert "seed" not in preset and preset["learning_rate"] == 3e-4 and preset["steps"] == 5000
    # No -e or -a: the file names them. The command's own defaults (-t 2, -o 0.5) do not creep in.
    run2, cfg2, _ = resolve(build_parser().parse_args(["--preset", path]))
    assert (run2.env, run2.agent, run2.steps) == ("CartPole-v1", "dqn", 5000)
    assert config.config_dict(run2, cfg2) | {"seed": 7} == config.config_dict(run, cfg) and cfg2.seed is None
    # Flags still override the file.
    _, cfg3, _ = resolve(build_parser().parse_args(["--preset", path, "-b", "64", "--seed", "1"]))
    assert cfg3.batch_size == 64 and cfg3.seed == 1 and cfg3.learning_rate == 3e-4


@needs_yaml
def test_a_yaml_preset_file_and_its_errors(tmp_path):
    good = tmp_path / "p.yaml"
    good.write_text("learning_rate: 0.001\nbatch_size: 16\nsteps: 2000\n")
    run, cfg = kerlym.configure("CartPole-v1", "ddqn", preset=str(good))
    assert (cfg.learning_rate, cfg.batch_size, run.steps, run.agent) == (0.001, 16, 2000, "ddqn")
    bad = tmp_path / "bad.json"
    bad.write_text('{"learning_rate": 0.001, "reset_on_score": true}')
    with pytest.raises(ConfigError, match=r"bad.json: -a ddqn has no setting 'reset_on_score'$"):
        kerlym.configure("CartPole-v1", "ddqn", preset=str(bad))
    bad.write_text('{"learnig_rate": 0.001}')
    with pytest.raises(ConfigError, match="has no setting 'learnig_rate'; did you mean learning_rate"):
        kerlym.configure("CartPole-v1", "ddqn", preset=str(bad))
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold a mapping of setting names to values"):
        kerlym.configure("CartPole-v1", "ddqn", preset=str(bad))
    with pytest.raises(ConfigError, match="preset file 'nope.json' does not exist"):
        kerlym.configure("CartPole-v1", "ddqn", preset="nope.json")


# -- Ray -------------------------------------------------------------------------
def child_pids():
    """This process's child processes (Ray's GCS, raylet and workers while a local cluster runs)."""
    me, out = os.getpid(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me:
            out.append(int(pid))
    return out


@pytest.fixture
def ray_cluster():
    ray = pytest.importorskip("ray")
    pytest.importorskip("optuna")
    before = set(child_pids())
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        deadline = time.time() + 30
        while set(child_pids()) - before and time.time() < deadline:
            time.sleep(0.5)
        assert not set(child_pids()) - before, "Ray left processes behind"


@pytest.mark.slow
def test_seeds_as_ray_trials_train_as_they_do_in_turn(tmp_path, ray_cluster):
    run, cfg = kerlym.configure("CartPole-v1", "dqn", cli_defaults=True, steps=300, eval_episodes=3, quiet=True)
    rows = sweep.run_seeds(run, cfg, [0, 1], str(tmp_path / "ray"), ray="local")
    assert [r["seed"] for r in rows] == [0, 1] and all(r["steps"] == 300 for r in rows)
    assert os.path.isdir(tmp_path / "ray" / sweep.TUNE_DIR)  # Ray Tune's own experiment state, for restore
    sweep.run_seeds(run, cfg, [0, 1], str(tmp_path / "plain"))
    for s in (0, 1):  # the same training episodes, step for step
        assert returns(tmp_path / "ray" / f"seed-{s}") == returns(tmp_path / "plain" / f"seed-{s}")


@pytest.mark.slow
def test_a_two_trial_tune_search_writes_a_preset_the_command_accepts(tmp_path, ray_cluster):
    run, cfg = kerlym.configure("CartPole-v1", "dqn", cli_defaults=True, steps=100, eval_episodes=2, seed=0)
    space = search.parse_space(
        {"learning_rate": {"loguniform": [1e-4, 1e-2]}, "batch_size": {"choice": [16, 32]}}, "dqn", cfg
    )
    preset = sweep.run_tune(run, cfg, space, 2, str(tmp_path), ray="local")
    summary = read_csv(tmp_path / S.SUMMARY_CSV)
    assert len(summary) == 2 and {r["status"] for r in summary} <= {"finished", "stopped"}
    best = max((r for r in summary if r["status"] == "finished"), key=lambda r: float(r["eval_mean"]))
    assert preset["learning_rate"] == float(best["learning_rate"]) and 1e-4 <= preset["learning_rate"] <= 1e-2
    assert preset["batch_size"] == int(best["batch_size"]) in (16, 32)
    _, cfg2, _ = resolve(build_parser().parse_args(["--preset", str(tmp_path / sweep.BEST_PRESET)]))
    assert cfg2.learning_rate == preset["learning_rate"] and cfg2.batch_size == preset["batch_size"]
