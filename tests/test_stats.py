"""Binned statistics, the progress CSV and the training figure."""

import errno
import math
import os
import subprocess

import numpy as np
import pytest

from kerlym import stats
from kerlym.runs import CheckpointError
from kerlym.stats import (
    PROGRESS_FIELDS,
    ProgressCSV,
    ProgressWarning,
    csv_line,
    load_progress,
    progress_fields,
    read_progress,
    rewrite_progress,
    statbin,
    truncate_progress,
)


def test_statbin_by_hand():
    s = statbin([1, 3, 5, 7, 10], 2)
    np.testing.assert_array_equal(s["x"], [2, 4, 5])
    np.testing.assert_allclose(s["mean"], [2, 6, 10])
    np.testing.assert_allclose(s["std"], [1, 1, 0])
    np.testing.assert_allclose(s["min"], [1, 5, 10])
    np.testing.assert_allclose(s["max"], [3, 7, 10])
    np.testing.assert_array_equal(s["count"], [2, 2, 1])  # the last bin holds one episode of two
    np.testing.assert_array_equal(statbin([1.0] * 6, 3)["count"], [3, 3])


def test_statbin_skips_missing_values():
    s = statbin([np.nan, np.nan, 4.0, np.nan], 2)
    assert math.isnan(s["mean"][0])
    assert s["mean"][1] == 4.0 and s["std"][1] == 0.0


def test_statbin_refuses_empty_bins():
    with pytest.raises(ValueError):
        statbin([1.0], 0)


def row(i):
    return {
        "episode": i,
        "total_steps": 10 * i,
        "reward": float(i),
        "length": 10,
        "epsilon": 0.5,
        "loss": 0.1,
        "max_q": 1.0,
        "min_q": 0.0,
        "wall_time": 0.01 * i,
    }


def test_progress_csv_round_trip_and_truncation(tmp_path):
    path = str(tmp_path / "progress.csv")
    log = ProgressCSV(path)
    for i in range(1, 6):
        log.write(row(i))
    log.close()
    assert open(path).readline().strip() == ",".join(PROGRESS_FIELDS)
    rows = read_progress(path)
    assert [r["episode"] for r in rows] == [1, 2, 3, 4, 5] and rows[2]["reward"] == 3.0
    kept = read_progress(path, until_step=30)
    rewrite_progress(path, kept)
    assert [r["total_steps"] for r in read_progress(path)] == [10, 20, 30]
    ProgressCSV(path).write(row(4))  # appending later does not repeat the header
    assert open(path).read().count("episode") == 1


def ac_row(i):
    return {**row(i), "policy_loss": -0.5 * i, "value_loss": 2.0 * i, "entropy": 0.25}


def test_actor_critic_columns_round_trip_and_survive_a_resume(tmp_path):
    path = str(tmp_path / "progress.csv")
    log = ProgressCSV(path, extra=("policy_loss", "value_loss", "entropy"))
    first = ac_row(1)
    del first["entropy"]  # an episode before the first update has no metrics yet: an empty cell
    for r in (first, ac_row(2), ac_row(3)):
        log.write(r)
    log.close()
    header = PROGRESS_FIELDS + ["policy_loss", "value_loss", "entropy"]
    assert open(path).readline().strip() == ",".join(header)
    rows = read_progress(path)
    assert [(r["policy_loss"], r["value_loss"]) for r in rows] == [(-0.5, 2.0), (-1.0, 4.0), (-1.5, 6.0)]
    assert math.isnan(rows[0]["entropy"]) and rows[1]["entropy"] == 0.25
    kept, note = truncate_progress(path, until_step=20, until_episode=2)  # what a resume does
    assert note is None and [r["episode"] for r in kept] == [1, 2]
    assert open(path).readline().strip() == ",".join(header)  # the rewrite keeps the columns
    ProgressCSV(path, extra=("policy_loss", "value_loss", "entropy")).write(ac_row(3))
    assert [r["value_loss"] for r in read_progress(path)] == [2.0, 4.0, 6.0]


def test_an_older_progress_file_stays_readable_and_keeps_its_columns(tmp_path):
    path = str(tmp_path / "progress.csv")
    log = ProgressCSV(path)  # the columns every file had before the actor-critic ones
    log.write(row(1))
    log.close()
    ProgressCSV(path, extra=("policy_loss", "value_loss", "entropy")).write(ac_row(2))  # a resumed run appends
    lines = open(path).read().splitlines()
    assert lines[0] == ",".join(PROGRESS_FIELDS) and len(lines[2].split(",")) == len(PROGRESS_FIELDS)
    rows, note = truncate_progress(path, until_step=20)
    assert note is None and [r["reward"] for r in rows] == [1.0, 2.0] and "policy_loss" not in rows[1]


def test_progress_fields_follow_the_agents_metric_names_and_refuse_bad_columns():
    assert progress_fields(("entropy", "policy_loss")) == PROGRESS_FIELDS + ["entropy", "policy_loss"]
    assert progress_fields(("kl", "weight_lag"))[-2:] == ["kl", "weight_lag"]
    for bad in (("reward",), ("a b",), ("kl", "kl")):
        with pytest.raises(ValueError, match="must be new identifiers"):
            progress_fields(bad)


def test_actor_critic_plot_bins_value_losses_and_entropy(tmp_path):
    from kerlym.plots import TrainingPlot

    path = str(tmp_path / "training.png")
    plot = TrainingPlot("ppo", "CartPole-v1", path, bin_size=2, live=False, actor_critic=True)
    rows = [ac_row(i) for i in range(1, 5)]  # max_q (the mean V(s) of each episode) is 1.0 in every row
    del rows[0]["policy_loss"]  # an episode that ended before the first update
    plot.update(rows)
    titles = [ax.get_title() for ax in plot.axes]
    assert titles == [
        "Total Reward per Episode",
        "Finishing Time per Episode",
        "Value Estimate",
        "Policy Loss",
        "Value Loss",
        "Policy Entropy",
    ]

    def mean_line(ax):
        (line,) = [line for line in ax.get_lines() if line.get_label().endswith(" mean")]
        return line.get_ydata()

    np.testing.assert_allclose(mean_line(plot.axes[2]), [1.0, 1.0])
    np.testing.assert_allclose(mean_line(plot.axes[3]), [-1.0, -1.75])  # bin 1 leaves its NaN out: -1.0
    np.testing.assert_allclose(mean_line(plot.axes[4]), [3.0, 7.0])  # (2 + 4) / 2, (6 + 8) / 2
    np.testing.assert_allclose(mean_line(plot.axes[5]), [0.25, 0.25])
    plot.update([row(i) for i in range(1, 5)])  # rows from an older file: no loss columns
    assert plot.axes[3].texts[0].get_text() == "no policy loss recorded yet"
    assert open(path, "rb").read(4) == b"\x89PNG"
    plot.close()


def test_training_plot_writes_a_png_with_nan_q_values(tmp_path):
    from kerlym.plots import TrainingPlot

    path = str(tmp_path / "training.png")
    plot = TrainingPlot("ddqn", "CartPole-v1", path, bin_size=3, live=False)
    plot.update([])
    assert os.path.getsize(path) > 0  # written before the first episode
    rows = [row(i) for i in range(1, 8)]
    rows[0]["max_q"] = rows[0]["min_q"] = rows[0]["loss"] = float("nan")
    plot.update(rows)
    assert plot.fig._suptitle.get_text() == "ddqn Training Stats for CartPole-v1"
    titles = [ax.get_title() for ax in plot.axes]
    assert titles == [
        "Total Reward per Episode",
        "Finishing Time per Episode",
        "Value Function Outputs",
        "Training Loss",
    ]
    assert open(path, "rb").read(4) == b"\x89PNG"
    plot.close()


# -- progress.csv under faults -------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs; skips where one cannot be mounted (not root, a sandbox)."""
    point = tmp_path / "fs"
    point.mkdir()
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(point)], capture_output=True, text=True
    )
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip() or 'mount failed'})")
    yield str(point)
    subprocess.run(["umount", "-l", str(point)], check=False)


def test_progress_rows_stay_whole_when_the_disk_fills(small_disk):
    path = os.path.join(small_disk, "progress.csv")
    log = ProgressCSV(path)
    st = os.statvfs(small_disk)
    with open(os.path.join(small_disk, "filler"), "wb") as f:
        f.write(b"x" * (st.f_bavail * st.f_frsize - 4096))  # one page left for the rows
    written = 0
    with pytest.raises(CheckpointError) as e:
        for i in range(1, 1000):
            log.write(row(i))
            written = i
    log.close()
    assert str(e.value) == f"cannot write {path}: No space left on device"
    size = os.path.getsize(path)  # two pages: the header's, and the one left free
    assert size <= 8192 < size + len(csv_line(row(written + 1), PROGRESS_FIELDS)) and written > 50
    assert open(path, "rb").read().endswith(b"\r\n")  # no partial row
    rows, note = load_progress(path)
    assert note is None and [r["episode"] for r in rows] == list(range(1, written + 1))


def test_a_short_write_then_an_error_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = str(tmp_path / "progress.csv")
    log = ProgressCSV(path)
    log.write(row(1))
    before = open(path, "rb").read()
    real_write = os.write

    def full_disk(fd, data):
        if len(data) > 10:
            return real_write(fd, data[:10])  # what write(2) does when the disk fills mid-row
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(CheckpointError, match=r"^cannot write .*progress.csv: No space left on device$"):
        log.write(row(2))
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    log.write(row(2))
    assert [r["episode"] for r in read_progress(path)] == [1, 2]


def write_rows(path, n, tail=""):
    log = ProgressCSV(path)
    for i in range(1, n + 1):
        log.write(row(i))
    log.close()
    with open(path, "a") as f:
        f.write(tail)


@pytest.mark.parametrize(
    "tail, why",
    [
        ("6,60,6.0,1", "line 7 is incomplete (a write was cut short)"),  # no line end: today a ValueError
        ("6,60,6.0,10,0.5\r\n", "line 7 is incomplete (a write was cut short)"),  # too few values
        ("6,60,6.0,10,0.5,0.1,1.0,0.0,0.0.6\r\n", "line 7 is corrupt: could not convert string to float: '0.0.6'"),
    ],
)
def test_a_partial_last_row_is_dropped_and_said(tmp_path, tail, why):
    path = str(tmp_path / "progress.csv")
    write_rows(path, 5, tail)
    rows, note = load_progress(path)
    assert [r["episode"] for r in rows] == [1, 2, 3, 4, 5]
    assert note == f"{path} {why}; dropped it"
    with pytest.warns(ProgressWarning, match="dropped it$"):
        assert len(read_progress(path)) == 5


def test_a_corrupt_row_before_the_last_is_a_one_line_error(tmp_path):
    path = str(tmp_path / "progress.csv")
    write_rows(path, 2, "3,30,x,10,0.5,0.1,1.0,0.0,0.03\r\n")
    write_rows(path, 1)
    with pytest.raises(CheckpointError, match=rf"^{path} line 4 is corrupt: could not convert string to float: 'x'$"):
        load_progress(path)
    with open(path, "w") as f:
        f.write("not,a,header\r\n1,2,3\r\n")
    with pytest.raises(CheckpointError, match=rf"^{path} line 1 is not the header episode,total_steps,"):
        load_progress(path)


def test_appending_after_a_partial_row_starts_a_new_line(tmp_path):
    path = str(tmp_path / "progress.csv")
    write_rows(path, 3, "4,40,4.")
    with pytest.warns(ProgressWarning, match="ended in a partial row"):
        log = ProgressCSV(path)
    log.write(row(4))
    log.close()
    rows, note = load_progress(path)
    assert note is None and [r["episode"] for r in rows] == [1, 2, 3, 4] and rows[3]["reward"] == 4.0


def test_truncate_progress_keeps_the_checkpoints_episodes(tmp_path):
    path = str(tmp_path / "progress.csv")
    write_rows(path, 5, "6,60,6.0,1")
    rows, note = truncate_progress(path, until_step=40, until_episode=3)
    assert [r["episode"] for r in rows] == [1, 2, 3] and note.endswith(
        "line 7 is incomplete (a write was cut short); dropped it"
    )
    assert load_progress(path) == (rows, None)
    with open(path) as f:
        text = f.read()
    assert truncate_progress(path, until_step=40) == (rows, None)  # nothing to drop: the file is not rewritten
    assert open(path).read() == text


def test_rewrite_progress_keeps_the_old_file_when_it_cannot_write(tmp_path, monkeypatch):
    path = str(tmp_path / "progress.csv")
    write_rows(path, 3)
    before = open(path, "rb").read()

    def read_only(*args):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(
        CheckpointError, match=rf"^cannot rewrite {path}: Read-only file system \(the old file is kept\)$"
    ):
        rewrite_progress(path, [row(1)])
    monkeypatch.undo()
    assert open(path, "rb").read() == before and os.listdir(tmp_path) == ["progress.csv"]


def test_wilson_interval_by_hand():
    # 12 wins of 20, z = 1.96: centre (0.6 + 0.09604) / 1.19208 = 0.58389,
    # half-width 1.96 / 1.19208 * sqrt(0.012 + 0.0024010) = 0.19731
    lo, hi = stats.wilson_interval(12, 20)
    assert lo == pytest.approx(0.38658, abs=1e-5) and hi == pytest.approx(0.78120, abs=1e-5)
    assert stats.wilson_interval(0, 10) == pytest.approx((0.0, 3.8416 / 13.8416))  # z² / (n + z²)
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)


def test_game_results_count_wins_draws_and_losses_by_the_return_sign():
    results = stats.game_results([1.0, -1.0, 0.0, 1.0, 0.5])
    assert (results["wins"], results["draws"], results["losses"]) == (3, 1, 1)
    assert results["win_rate"] == 0.6 and results["win_rate_95"] == list(stats.wilson_interval(3, 5))
    assert stats.game_results_text(results).startswith("wins 3, draws 1, losses 1; win rate 0.60 (95% ")
