"""Non-learning baselines for RadioSearch: an energy detector that sweeps, and an oracle that knows the signals."""

from __future__ import annotations

from collections import deque

import numpy as np

from kerlym.envs.radio import BAND, DECLARE, OBS_BINS, SPANS, TUNE_LEFT, TUNE_RIGHT, ZOOM_IN, ZOOM_OUT, move


class SweepPolicy:
    """A non-learning baseline that sees only observations: an energy detector with a coarse sweep.

    Each step it smooths the window's linear power over about ``min_width``
    FFT bins and compares it with the known 0 dB noise floor: a bin is
    "occupied" when it clears ``1 + z / sqrt(n)``, ``n`` being the number of
    FFT bins averaged (noise of mean 1 and standard deviation ``1 / sqrt(n)``).
    The middle of the occupied run around the strongest bin is its target,
    remembered for ``memory`` steps after it leaves the view. It tunes towards
    the target, zooms in once the target is within an eighth of a span, and
    declares once the centre lies well inside the run (at a span of
    ``declare_span`` or narrower) or the span is the narrowest. With no target
    it zooms to ``sweep_span`` and sweeps the band, turning at its edges.
    Declared positions are ignored afterwards within ``exclude`` bins, so one
    signal is not declared twice.

    Args:
        z: detection threshold in noise standard deviations.
        min_width: the narrowest signal expected, in FFT bins (the smoothing length).
        sweep_span: the span at which it sweeps when it has no target.
        declare_span: the widest span at which it declares.
        memory: steps it keeps steering to a target it no longer sees (bursty signals go quiet).
        exclude: bins either side of a declared position that it ignores afterwards.
    """

    def __init__(self, z=4.0, min_width=8, sweep_span=256, declare_span=256, memory=4, exclude=40):
        self.z = z
        self.min_width = min_width
        self.sweep_level = SPANS.index(sweep_span)
        self.declare_level = SPANS.index(declare_span)
        self.memory = memory
        self.exclude = exclude
        self.reset()

    def reset(self) -> None:
        """Forget the episode: declared positions, the target and the sweep direction."""
        self.declared: list[float] = []
        self.target: tuple[float, float] | None = None  # (middle, half width) in FFT bins
        self.unseen = 0  # steps since the target was last seen
        self.direction = TUNE_RIGHT

    def __call__(self, obs) -> int:
        obs = np.asarray(obs, dtype=np.float64)
        level = int(np.argmax(obs[OBS_BINS + 1 :]))
        span = SPANS[level]
        centre = int(round(obs[OBS_BINS] * BAND))
        self._look(obs[:OBS_BINS], centre, span)
        if self.target is None:
            return self._sweep(centre, level)
        middle, half = self.target
        offset = middle - centre
        toward = TUNE_LEFT if offset < 0 else TUNE_RIGHT
        narrowest = level == len(SPANS) - 1
        if (level >= self.declare_level and abs(offset) < half - 2) or (narrowest and abs(offset) < span / 8):
            self.declared.append(middle)
            self.target = None
            return DECLARE
        if abs(offset) >= span / 8 and move(centre, level, toward)[0] != centre:
            return toward
        return toward if narrowest else ZOOM_IN

    def _look(self, db10: np.ndarray, centre: int, span: int) -> None:
        """Update the target from this window's energy detector."""
        per_bin = span / OBS_BINS  # FFT bins per observation bin
        k = max(1, round(self.min_width / per_bin))
        smooth = np.convolve(10.0**db10, np.ones(k) / k, mode="same")
        position = centre - span / 2 + (np.arange(OBS_BINS) + 0.5) * per_bin
        for p in self.declared:
            smooth[np.abs(position - p) <= self.exclude] = 0.0
        occupied = smooth >= 1.0 + self.z / np.sqrt(max(k * per_bin, 1.0))
        peak = int(np.argmax(np.where(occupied, smooth, 0.0)))
        if occupied[peak]:
            left, right = peak, peak
            while left > 0 and occupied[left - 1]:
                left -= 1
            while right < OBS_BINS - 1 and occupied[right + 1]:
                right += 1
            # Smoothing widens a run by about k - 1 observation bins.
            half = max(right - left + 2 - k, 1) * per_bin / 2
            self.target = ((position[left] + position[right]) / 2, half)
            self.unseen = 0
        elif self.target is not None:
            self.unseen += 1
            if self.unseen > self.memory:
                self.target = None

    def _sweep(self, centre: int, level: int) -> int:
        if level != self.sweep_level:
            return ZOOM_IN if level < self.sweep_level else ZOOM_OUT
        if move(centre, level, self.direction)[0] == centre:  # at an edge: turn round
            self.direction = TUNE_LEFT if self.direction == TUNE_RIGHT else TUNE_RIGHT
        return self.direction


def oracle_policy(env) -> int:
    """The upper-bound baseline: the first action of a shortest path to declaring an unfound signal.

    It reads the true signals from ``env.unwrapped`` and searches breadth-first
    over window states ``(centre, level)`` for the nearest unfound signal (with
    several signals that order is greedy, not jointly optimal). It replans every
    step, so it follows drifting signals, though a drift mid-path can cost it a step.
    """
    env = env.unwrapped
    todo = ~env.found
    intervals = list(zip(env.lo[todo].tolist(), (env.lo + env.width)[todo].tolist()))

    def inside(c):
        return any(lo <= c < hi for lo, hi in intervals)

    start = (env.centre, env.level)
    if inside(start[0]):
        return DECLARE
    seen = {start}
    frontier = deque([(start, None)])
    while frontier:
        state, first = frontier.popleft()
        for action in (TUNE_LEFT, TUNE_RIGHT, ZOOM_IN, ZOOM_OUT):
            nxt = move(*state, action)
            if nxt in seen:
                continue
            if inside(nxt[0]):
                return action if first is None else first
            seen.add(nxt)
            frontier.append((nxt, action if first is None else first))
    raise RuntimeError("no window centre lies inside an unfound signal")  # signals keep EDGE bins from the edges
