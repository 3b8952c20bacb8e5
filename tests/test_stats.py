"""Binned statistics, the progress CSV and the training figure."""

import math
import os

import numpy as np
import pytest

from kerlym.stats import PROGRESS_FIELDS, ProgressCSV, read_progress, rewrite_progress, statbin


def test_statbin_by_hand():
    s = statbin([1, 3, 5, 7, 10], 2)
    np.testing.assert_array_equal(s["x"], [2, 4, 5])
    np.testing.assert_allclose(s["mean"], [2, 6, 10])
    np.testing.assert_allclose(s["std"], [1, 1, 0])
    np.testing.assert_allclose(s["min"], [1, 5, 10])
    np.testing.assert_allclose(s["max"], [3, 7, 10])


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
