"""The training figure's binned panels: the ±1 std band stays between min and max; a partial last bin stands apart."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kerlym import plots  # noqa: E402
from kerlym.stats import statbin  # noqa: E402


def test_std_band_is_clipped_to_min_and_max_by_hand():
    # One long episode among short ones: mean 2.5, std sqrt((3 * 2.5**2 + 7.5**2) / 4) = sqrt(18.75) = 4.330.
    lo, hi = plots.std_band(statbin([0, 0, 0, 10, 4, 6, 4, 6], 4))
    np.testing.assert_allclose(lo, [0.0, 4.0])  # 2.5 - 4.33 < 0 = min; 5 - 1 = 4 inside [4, 6]
    np.testing.assert_allclose(hi, [2.5 + np.sqrt(18.75), 6.0])  # 6.83 under max 10; 5 + 1 = 6 = max


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def _line(ax, label):
    (line,) = [line for line in ax.get_lines() if line.get_label() == label]
    return line


def test_a_partial_last_bin_is_drawn_apart_from_the_mean_line(ax):
    rewards = [10, 20, 30, 40, 0]  # bins of 2: [10, 20], [30, 40] and one episode, 0, still filling
    plots._binned(ax, rewards, 2, "tab:blue", "reward")
    mean = _line(ax, "reward mean")
    np.testing.assert_array_equal(mean.get_xdata(), [2, 4])
    np.testing.assert_allclose(mean.get_ydata(), [15, 35])  # the full bins only: no plunge to 0
    np.testing.assert_array_equal(_line(ax, "reward min").get_ydata(), [10, 30])
    partial = _line(ax, "reward mean of the last 1 (bin filling)")
    np.testing.assert_array_equal(partial.get_xdata(), [4, 5])  # dotted from the last full bin to the partial one
    np.testing.assert_allclose(partial.get_ydata(), [35, 0])
    assert partial.get_linestyle() != "-" and partial.get_marker() == "o"
    (band,) = ax.collections
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() >= 10 and ys.max() <= 40  # the band covers the full bins and stays inside min and max


def test_full_bins_only_draw_no_partial_line(ax):
    plots._binned(ax, [1, 2, 3, 4], 2, "tab:green", "length")
    assert not [line for line in ax.get_lines() if "filling" in line.get_label()]
    np.testing.assert_allclose(_line(ax, "length mean").get_ydata(), [1.5, 3.5])


def test_win_rates_against_each_opponent_are_a_line_each_over_the_reward_panel(tmp_path):
    path = str(tmp_path / "training.png")
    plot = plots.TrainingPlot("ppo", "openspiel:tic_tac_toe", path, bin_size=2, live=False, values=False)
    rows = [{"episode": e, "reward": 1.0, "length": 5, "loss": 0.1, "max_q": 0.0, "min_q": 0.0} for e in range(1, 9)]
    plot.add_win_rates(
        4,
        {
            "random": {"win_rate": 0.5, "win_rate_95": [0.2, 0.8]},
            "mcts:8": {"win_rate": 0.0, "win_rate_95": [0.0, 0.3]},
        },
    )
    plot.add_win_rates(
        8,
        {
            "random": {"win_rate": 0.9, "win_rate_95": [0.6, 1.0]},
            "mcts:8": {"win_rate": 0.1, "win_rate_95": [0.0, 0.4]},
        },
    )
    plot.update(rows)
    random, mcts = _line(plot.ax_win, "win rate vs random"), _line(plot.ax_win, "win rate vs mcts:8")
    np.testing.assert_array_equal(random.get_xdata(), [4, 8])
    np.testing.assert_allclose(random.get_ydata(), [0.5, 0.9])
    np.testing.assert_allclose(mcts.get_ydata(), [0.0, 0.1])
    assert plot.ax_win.get_ylim() == (0, 1) and plot.ax_win.yaxis.get_label_position() == "right"
    plot.update(rows)  # a redraw keeps one line per opponent
    assert len(plot.ax_win.get_lines()) == 2
    plot.close()
