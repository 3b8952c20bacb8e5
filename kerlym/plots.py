"""The live 2x2 training figure (imported only when plots are asked for).

With a display the window refreshes without blocking training; without one
(servers, CI) matplotlib falls back to Agg. Either way the same figure is
written to a PNG in the run folder at each refresh, atomically, so it can be
opened while training runs.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from kerlym.stats import statbin


def has_display() -> bool:
    """True when a GUI window can be opened."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _pyplot(live: bool):
    import matplotlib

    if not (live and has_display()):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def std_band(s: dict) -> tuple[np.ndarray, np.ndarray]:
    """The ±1 std band of :func:`~kerlym.stats.statbin`'s bins, kept between each bin's min and max.

    A skewed bin (one long episode among short ones) has a std that reaches
    past its values; the band never claims values the bin did not have.
    """
    return np.maximum(s["mean"] - s["std"], s["min"]), np.minimum(s["mean"] + s["std"], s["max"])


def _binned(ax, values, bin_size, color, label, extremes=True):
    s = statbin(values, bin_size)
    lo, hi = std_band(s)
    full = int((s["count"] == bin_size).sum())  # full bins come first; only the last may be partial
    x = s["x"]
    ax.fill_between(x[:full], lo[:full], hi[:full], color=color, alpha=0.3, label=f"{label} ±1 std")
    ax.plot(x[:full], s["mean"][:full], color=color, label=f"{label} mean")
    if extremes:
        ax.plot(x[:full], s["min"][:full], color=color, linestyle=":", linewidth=0.8, label=f"{label} min")
        ax.plot(x[:full], s["max"][:full], color=color, linestyle="--", linewidth=0.8, label=f"{label} max")
    if full < len(x):  # the bin still filling: a few episodes' mean, drawn apart so it does not read as a trend
        part = slice(max(full - 1, 0), None)
        ax.plot(
            x[part],
            s["mean"][part],
            color=color,
            linestyle=(0, (1, 2)),
            marker="o",
            markevery=[-1],
            markerfacecolor="none",
            label=f"{label} mean of the last {s['count'][-1]} (bin filling)",
        )


# The actor-critic panels after reward and length: (column, colour, title, y label).
AC_PANELS = (
    ("max_q", "tab:purple", "Value Estimate", "V(s) (mean per episode)"),
    ("policy_loss", "tab:red", "Policy Loss", "loss (latest update)"),
    ("value_loss", "tab:orange", "Value Loss", "loss (latest update)"),
    ("entropy", "tab:cyan", "Policy Entropy", "entropy (latest update)"),
)


class TrainingPlot:
    """The original's four panels: reward, episode length, value outputs and loss.

    Actor-critic agents (``actor_critic``) get six: reward and length, then
    their value estimate, policy loss, value loss and entropy, each binned as
    reward is (the losses and entropy are those of the update before the episode ended).

    Args:
        agent_name: shown in the title (``"ddqn"``, ``"pg"``, ...).
        env_name: shown in the title.
        path: PNG file rewritten at every refresh.
        bin_size: episodes per bin (the CLI's ``--plot_rate``).
        live: open a window when a display is available.
        values: draw the value-function panel (Q-learning agents only).
        actor_critic: draw the actor-critic panels instead of the value and loss panels.
    """

    def __init__(self, agent_name, env_name, path, bin_size=10, live=True, values=True, actor_critic=False):
        self.plt = _pyplot(live)
        self.live = live and self.plt.get_backend().lower() != "agg"
        self.path = path
        self.bin_size = bin_size
        self.values = values
        self.actor_critic = actor_critic
        self.fig, axes = self.plt.subplots(2, 3 if actor_critic else 2, figsize=(15 if actor_critic else 11, 8))
        self.axes = axes.ravel()
        self.title = f"{agent_name} Training Stats for {env_name}"
        self.win_rates: dict[str, list[tuple]] = {}  # opponent -> (episode, win rate, 95% low, high) per evaluation
        self.ax_win = None  # the reward panel's right axis, once there are win rates
        if self.live:
            self.plt.ion()
            self.plt.show(block=False)

    def add_win_rates(self, episode: int, games: dict) -> None:
        """An evaluation's win rate against each opponent (``--eval_opponents``), drawn over the reward panel.

        Args:
            episode: the episodes trained when the evaluation was made (its x position).
            games: :func:`kerlym.stats.game_results` (``win_rate``, ``win_rate_95``) by opponent.
        """
        for name, g in games.items():
            self.win_rates.setdefault(name, []).append((episode, g["win_rate"], *g["win_rate_95"]))

    def _win_rate_lines(self, ax_r) -> None:
        if self.ax_win is None:
            self.ax_win = ax_r.twinx()
        ax = self.ax_win
        ax.clear()
        for name, points in self.win_rates.items():
            episode, rate, lo, hi = np.array(points, dtype=np.float64).T
            (line,) = ax.plot(episode, rate, marker="o", markersize=3, linewidth=1.2, label=f"win rate vs {name}")
            ax.fill_between(episode, lo, hi, color=line.get_color(), alpha=0.1)
        ax.set_ylim(0, 1)
        ax.yaxis.tick_right()  # clear() puts a twin's axis label back on the left
        ax.yaxis.set_label_position("right")
        ax.set_ylabel("win rate (evaluations, 95% band)")
        ax.legend(loc="lower right", fontsize="x-small")

    def update(self, rows: list[dict]) -> None:
        """Redraw from the per-episode rows and rewrite the PNG."""
        if not rows:  # still write the figure, so the PNG exists from the start of a run
            self.fig.suptitle(f"{self.title} (waiting for the first episode)")
            self.save()
            return
        names = dict.fromkeys(k for r in rows for k in r)  # the first episodes may end before the first update
        col = {k: np.array([r.get(k, np.nan) for r in rows], dtype=np.float64) for k in names}
        ax_r, ax_l, *rest = self.axes
        for ax in self.axes:
            ax.clear()
        self.fig.suptitle(self.title)
        _binned(ax_r, col["reward"], self.bin_size, "tab:blue", "reward")
        ax_r.set(title="Total Reward per Episode", xlabel="Episode", ylabel="Total Reward")
        if self.win_rates:
            self._win_rate_lines(ax_r)
        _binned(ax_l, col["length"], self.bin_size, "tab:green", "length")
        ax_l.set(title="Finishing Time per Episode", xlabel="Episode", ylabel="Steps")
        if self.actor_critic:
            self._actor_critic_panels(rest, col)
        else:
            self._value_and_loss_panels(*rest, col)
        for ax in (ax_r, ax_l):
            ax.legend(loc="upper left", fontsize="x-small")
        self.fig.tight_layout()
        self.save()
        if self.live:
            self.fig.canvas.draw_idle()
            self.fig.canvas.flush_events()

    def _actor_critic_panels(self, axes, col) -> None:
        for ax, (name, color, title, ylabel) in zip(axes, AC_PANELS, strict=True):
            values = col.get(name)
            if values is None or not np.isfinite(values).any():  # e.g. resumed from a file without the column
                ax.text(0.5, 0.5, f"no {title.lower()} recorded yet", ha="center", va="center")
            else:
                _binned(ax, values, self.bin_size, color, name.replace("_", " ").replace("max q", "V"), False)
                ax.legend(loc="upper left", fontsize="x-small")
            ax.set(title=title, xlabel="Episode", ylabel=ylabel)

    def _value_and_loss_panels(self, ax_v, ax_loss, col) -> None:
        if self.values:
            _binned(ax_v, col["max_q"], self.bin_size, "tab:purple", "max Q", extremes=False)
            _binned(ax_v, col["min_q"], self.bin_size, "slategrey", "min Q", extremes=False)
            ax_v.set(title="Value Function Outputs", xlabel="Episode", ylabel="Q (mean per episode)")
        else:
            ax_v.set_axis_off()
            ax_v.text(0.5, 0.5, "no value function (policy gradient)", ha="center", va="center")
        loss = col["loss"]
        ok = np.isfinite(loss)
        ax_loss.plot(col["episode"][ok], loss[ok], color="tab:red", linewidth=0.8)
        ax_loss.set(title="Training Loss", xlabel="Episode", ylabel="Loss (mean per episode)")
        if ok.any() and (loss[ok] > 0).all():
            ax_loss.set_yscale("log")
        if self.values:
            ax_v.legend(loc="upper left", fontsize="x-small")

    def save(self) -> None:
        tmp = self.path + ".tmp.png"
        self.fig.savefig(tmp, dpi=80)
        os.replace(tmp, self.path)

    def close(self) -> None:
        self.plt.close(self.fig)
