"""RadioSearch: steer a receiver's window across a noisy band to find and declare signals.

An original environment *inspired by* O'Shea and Clancy, "Deep Reinforcement
Learning Radio Control and Signal Detection with KeRLym, a Gym RL Agent"
(arXiv 1605.09221). That paper's environment was never published; this is not
it, and nothing here reproduces its setup or its numbers.

The world is a band of ``BAND`` (1024) FFT bins of noise at a 0 dB floor that
holds ``n_signals`` flat-topped signals, each 8-40 bins wide at 3-12 dB SNR per
bin (drawn per episode). The agent sees the band through a window whose span is
1024, 512, ... or 32 bins (``SPANS``), reduced to ``OBS_BINS`` (64) power bins:
a wide window averages many FFT bins per observation bin, which smooths the
noise but washes out weak narrow signals; below a span of 64 each FFT bin is
repeated, so zooming further only magnifies. Noise power per FFT bin is
exponential (chi-square, 2 degrees of freedom) per frame, averaged over
``frames`` frames each step.

Observation (``Box`` float32, 71 values): the window's 64 power bins as
``log10(power)`` (dB/10, clipped to +-5), the window's centre as a fraction of
the band, and a one-hot of the span level (0 = full span).

Actions (``Discrete(5)``): tune left, tune right (a quarter span, the window
kept inside the band), zoom in, zoom out (the span halves or doubles about the
centre), declare a detection. ``info["action_mask"]`` marks zoom in illegal at
the narrowest span and zoom out illegal at full span; an illegal zoom is a
no-op that still costs its step.

Reward: ``-step_cost`` each step; ``+1`` for each not-yet-found signal whose
bins ``[lo, hi)`` hold the window's centre when the agent declares, and
``-false_alarm_penalty`` for a declaration that finds none (declaring a signal
already found is a false alarm). A bursty signal counts where it is, on or off.
The episode terminates when every signal is found and is truncated inside the
env after ``max_steps`` steps (the registered ids set no ``max_episode_steps``).

``variant`` picks a preset of the knobs (:data:`VARIANTS`); explicit keyword
arguments override it. ``reset(options={"signals": [(lo, width, snr_db), ...]})``
places the signals by hand instead of drawing them. :class:`SweepPolicy` (observations only) and
:func:`oracle_policy` (reads the true signals) are non-learning baselines.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import gymnasium as gym
import numpy as np

BAND = 1024  # FFT bins in the band
OBS_BINS = 64  # power bins per observation
SPANS = (1024, 512, 256, 128, 64, 32)  # window span per level; level 0 is the full band
EDGE = SPANS[-1] // 2  # signals keep this far from the band's edges, where no window centre can go
TUNE_LEFT, TUNE_RIGHT, ZOOM_IN, ZOOM_OUT, DECLARE = range(5)
OBS_SIZE = OBS_BINS + 1 + len(SPANS)
POWER_MIN, POWER_MAX = 1e-5, 1e5  # observed power is clipped to +-50 dB, so the observation space is bounded


@dataclasses.dataclass(frozen=True)
class RadioConfig:
    """The knobs of :class:`RadioSearchEnv` (one variant's settings)."""

    n_signals: int = 1
    """Signals in the band; the episode ends when all are found."""
    snr_db: tuple[float, float] = (3.0, 12.0)
    """Range of each signal's SNR per FFT bin, in dB over the 0 dB noise floor (uniform per episode)."""
    bandwidth: tuple[int, int] = (8, 40)
    """Range of each signal's width in FFT bins (uniform integers, inclusive)."""
    frames: int = 1
    """Frames averaged into each step's power: more frames, less noise."""
    drift: int = 0
    """Each step every signal moves by a uniform integer number of bins in ``[-drift, drift]``."""
    duty_cycle: float = 1.0
    """Each step every signal is on (transmitting) with this probability."""
    step_cost: float = 0.01
    """Reward lost every step."""
    false_alarm_penalty: float = 0.5
    """Reward lost for a declaration that finds no new signal."""
    max_steps: int = 100
    """Steps after which the episode is truncated."""

    def validate(self) -> None:
        """Raise ``ValueError`` with a one-line message if a knob is of the wrong type or out of range."""
        for name in ("n_signals", "frames", "drift", "max_steps"):
            if not _number(getattr(self, name), integer=True):
                raise ValueError(f"{name} must be an integer, got {getattr(self, name)!r}")
        for name in ("duty_cycle", "step_cost", "false_alarm_penalty"):
            if not _number(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)!r}")
        for name, integer in (("snr_db", False), ("bandwidth", True)):
            pair = getattr(self, name)
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(_number(v, integer) for v in pair)):
                what = "integers" if integer else "finite numbers"
                raise ValueError(f"{name} must be a (low, high) pair of {what}, got {pair!r}")
        lo_bw, hi_bw = self.bandwidth
        if self.n_signals < 1:
            raise ValueError(f"n_signals must be at least 1, got {self.n_signals}")
        if self.snr_db[0] > self.snr_db[1]:
            raise ValueError(f"snr_db must be a (low, high) range, got {self.snr_db}")
        if not SPANS[-1] // 4 <= lo_bw <= hi_bw:
            raise ValueError(f"bandwidth must be a (low, high) range, low >= {SPANS[-1] // 4}; got {self.bandwidth}")
        if self.n_signals * hi_bw > BAND - 2 * EDGE:
            raise ValueError(f"{self.n_signals} signals of up to {hi_bw} bins do not fit in the band")
        if self.frames < 1 or self.drift < 0 or self.max_steps < 1:
            raise ValueError(
                f"frames and max_steps must be >= 1 and drift >= 0, got {self.frames}, {self.max_steps}, {self.drift}"
            )
        if not 0 < self.duty_cycle <= 1:
            raise ValueError(f"duty_cycle must be in (0, 1], got {self.duty_cycle}")


def _number(value, integer: bool = False) -> bool:
    """Whether ``value`` is a finite number (an integer if ``integer``), and not a bool."""
    kind = numbers.Integral if integer else numbers.Real
    return isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)


# Knob presets; explicit keyword arguments to the env override them.
VARIANTS: dict[str, dict] = {
    "default": {},
    "hard": {"snr_db": (1.0, 6.0), "drift": 2, "duty_cycle": 0.5},
    "multi": {"n_signals": 2},
}


# -- the receiver: pure functions of the window ------------------------------
def window_bins(power: np.ndarray, centre: int, span: int) -> np.ndarray:
    """The ``OBS_BINS`` power bins of the window of ``span`` FFT bins centred on ``centre``.

    Each bin is the mean of ``span / OBS_BINS`` consecutive FFT bins; a span
    narrower than ``OBS_BINS`` repeats each FFT bin ``OBS_BINS / span`` times.

    Args:
        power: linear power per FFT bin over the whole band.
        centre: the window's centre, the FFT bin index where its right half starts.
        span: the window's width in FFT bins.
    """
    start = centre - span // 2
    if start < 0 or start + span > len(power):
        raise ValueError(f"window of span {span} at centre {centre} leaves the band of {len(power)} bins")
    window = power[start : start + span]
    if span >= OBS_BINS:
        return window.reshape(OBS_BINS, span // OBS_BINS).sum(axis=1) / (span // OBS_BINS)  # a mean, faster
    return np.repeat(window, OBS_BINS // span)


def observation(power: np.ndarray, centre: int, level: int) -> np.ndarray:
    """The agent's view: dB/10 of the window's bins, the centre as a band fraction, the one-hot span level."""
    obs = np.zeros(OBS_SIZE, dtype=np.float32)
    obs[:OBS_BINS] = np.log10(np.minimum(np.maximum(window_bins(power, centre, SPANS[level]), POWER_MIN), POWER_MAX))
    obs[OBS_BINS] = centre / BAND
    obs[OBS_BINS + 1 + level] = 1.0
    return obs


def move(centre: int, level: int, action: int) -> tuple[int, int]:
    """The window ``(centre, level)`` after a tune or zoom action (declaring leaves it alone).

    Tuning moves a quarter of the span; zooming keeps the centre. Either way the
    window is then kept inside the band, and the level inside ``SPANS``.
    """
    if action == ZOOM_IN:
        level = min(level + 1, len(SPANS) - 1)
    elif action == ZOOM_OUT:
        level = max(level - 1, 0)
    span = SPANS[level]
    if action == TUNE_LEFT:
        centre -= span // 4
    elif action == TUNE_RIGHT:
        centre += span // 4
    return min(max(int(centre), span // 2), BAND - span // 2), level


def action_mask(level: int) -> np.ndarray:
    """1 for each legal action: zooming past either end of ``SPANS`` is not."""
    mask = np.ones(5, dtype=np.int8)
    mask[ZOOM_IN] = level < len(SPANS) - 1
    mask[ZOOM_OUT] = level > 0
    return mask


def mean_power(lo, width, gain, on) -> np.ndarray:
    """Expected power per FFT bin: the noise floor (1) plus the gain of each signal that is on.

    ``gain`` is each signal's linear power per bin relative to the noise floor.
    """
    mean = np.ones(BAND)
    for start, w, g, is_on in zip(lo.tolist(), width.tolist(), gain.tolist(), on.tolist()):
        if is_on:
            mean[start : start + w] += g
    return mean


def measure(rng: np.random.Generator, mean: np.ndarray, frames: int) -> np.ndarray:
    """One step's measured power per FFT bin: exponential about ``mean`` per frame, averaged over ``frames``."""
    if frames == 1:
        return rng.standard_exponential(len(mean)) * mean
    return rng.standard_gamma(frames, len(mean)) * (mean / frames)


class RadioSearchEnv(gym.Env):
    """Find and declare the signals in a noisy band by tuning and zooming a receiver's window.

    Args:
        variant: ``"default"``, ``"hard"`` (weak, drifting, bursty signals) or ``"multi"`` (two signals).
        render_mode: ``None`` or ``"rgb_array"``.
        **knobs: any field of :class:`RadioConfig`, overriding the variant's preset.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, variant: str = "default", render_mode: str | None = None, **knobs):
        if variant not in VARIANTS:
            raise ValueError(f"unknown RadioSearch variant {variant!r}; choose from {', '.join(VARIANTS)}")
        fields = {f.name for f in dataclasses.fields(RadioConfig)}
        unknown = sorted(set(knobs) - fields)
        if unknown:
            raise ValueError(f"unknown RadioSearch knob(s) {', '.join(unknown)}; knobs: {', '.join(sorted(fields))}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = RadioConfig(**{**VARIANTS[variant], **knobs})
        self.config.validate()
        self.variant = variant
        self.render_mode = render_mode
        self.action_space = gym.spaces.Discrete(5)
        low = np.zeros(OBS_SIZE, dtype=np.float32)
        high = np.ones(OBS_SIZE, dtype=np.float32)
        low[:OBS_BINS], high[:OBS_BINS] = np.log10(POWER_MIN), np.log10(POWER_MAX)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

    # -- the world ---------------------------------------------------------
    def _place_signals(self) -> None:
        """Draw non-overlapping signals: widths, then free gaps shared out by sorted uniform cut points."""
        cfg, rng = self.config, self.np_random
        n = cfg.n_signals
        self.width = rng.integers(cfg.bandwidth[0], cfg.bandwidth[1] + 1, size=n)
        free = BAND - 2 * EDGE - int(self.width.sum())
        cuts = np.sort(rng.integers(0, free + 1, size=n))
        self.lo = EDGE + cuts + np.concatenate([[0], np.cumsum(self.width)[:-1]])
        self.snr_db = rng.uniform(cfg.snr_db[0], cfg.snr_db[1], size=n)
        self.gain = 10.0 ** (self.snr_db / 10.0)

    def _set_signals(self, signals) -> None:
        """Place the signals given as ``(lo, width, snr_db)`` rows (``reset(options={"signals": ...})``)."""
        rows = np.asarray(signals, dtype=float).reshape(-1, 3)
        lo, width = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)
        if len(rows) != self.config.n_signals:
            raise ValueError(f"options['signals'] must hold {self.config.n_signals} (lo, width, snr_db) rows")
        if np.any(lo < EDGE) or np.any(lo + width > BAND - EDGE) or np.any(width < SPANS[-1] // 4):
            raise ValueError(f"each signal must be {SPANS[-1] // 4}+ bins wide within bins {EDGE}..{BAND - EDGE}")
        self.lo, self.width, self.snr_db = lo, width, rows[:, 2]
        self.gain = 10.0 ** (self.snr_db / 10.0)

    def _advance(self) -> None:
        """Move drifting signals, switch bursty ones, and measure the band."""
        cfg, rng = self.config, self.np_random
        n = len(self.lo)
        if cfg.drift:  # uniform integers in [-drift, drift], faster than rng.integers
            shift = (rng.random(n) * (2 * cfg.drift + 1)).astype(np.int64) - cfg.drift
            self.lo = np.minimum(np.maximum(self.lo + shift, EDGE), BAND - EDGE - self.width)
        if cfg.duty_cycle < 1:
            self.on = rng.random(n) < cfg.duty_cycle
        if cfg.drift or cfg.duty_cycle < 1 or self.mean is None:  # static signals keep their mean power
            self.mean = mean_power(self.lo, self.width, self.gain, self.on)
        self.power = measure(rng, self.mean, cfg.frames)

    def _obs_info(self):
        return observation(self.power, self.centre, self.level), {
            "action_mask": action_mask(self.level),
            "found": int(self.found.sum()),
        }

    # -- Gymnasium API -----------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``options={"signals": [(lo, width, snr_db), ...]}`` places the signals by hand."""
        super().reset(seed=seed)
        if options and "signals" in options:
            self._set_signals(options["signals"])
        else:
            self._place_signals()
        self.found = np.zeros(self.config.n_signals, dtype=bool)
        self.on = np.ones(self.config.n_signals, dtype=bool)
        self.mean = None
        self.centre, self.level, self.steps = BAND // 2, 0, 0
        self._advance()
        return self._obs_info()

    def step(self, action):
        cfg = self.config
        action = int(action)
        if not 0 <= action < 5:
            raise ValueError(f"RadioSearch actions are 0-4, got {action}")
        reward = -cfg.step_cost
        if action == DECLARE:
            hits = ~self.found & (self.lo <= self.centre) & (self.centre < self.lo + self.width)
            self.found |= hits
            reward += float(hits.sum()) if hits.any() else -cfg.false_alarm_penalty
        else:
            self.centre, self.level = move(self.centre, self.level, action)
        self.steps += 1
        self._advance()
        terminated = bool(self.found.all())
        truncated = not terminated and self.steps >= cfg.max_steps
        obs, info = self._obs_info()
        return obs, reward, terminated, truncated, info

    def render(self):
        if self.render_mode == "rgb_array":
            return render_band(self.power, self.centre, SPANS[self.level], self.lo, self.width, self.found)
        return None


# -- rendering ----------------------------------------------------------------
def render_band(power, centre, span, lo, width, found, height: int = 256, width_px: int = 512) -> np.ndarray:
    """An RGB image of the band: its spectrum, the window (lighter), its centre (yellow), the signals below.

    The spectrum plots each column's power from -10 dB (bottom) to +20 dB (top);
    over the window an orange trace shows the observation's bins (what the agent
    sees). The strip at the bottom marks every signal: dim red while unfound,
    green once found.
    """
    per_px = BAND // width_px
    strip = 12
    img = np.full((height, width_px, 3), 24, dtype=np.uint8)
    x = np.arange(width_px)
    inside = (x * per_px >= centre - span // 2) & (x * per_px < centre + span // 2)
    img[:, inside] = 56
    plot_h = height - strip

    def row(p):  # the image row of linear power p
        return (plot_h - 1 - np.clip((10.0 * np.log10(p) + 10.0) / 30.0, 0.0, 1.0) * (plot_h - 1)).astype(int)

    top = row(power.reshape(width_px, per_px).mean(axis=1))
    bars = np.arange(plot_h)[:, None] >= top[None, :]
    img[:plot_h][bars] = (90, 160, 255)
    img[:plot_h][bars & inside[None, :]] = (170, 215, 255)
    seen = window_bins(power, centre, span)[(x[inside] * per_px - (centre - span // 2)) * OBS_BINS // span]
    rows = row(seen)
    img[rows, x[inside]] = img[np.maximum(rows - 1, 0), x[inside]] = (255, 120, 0)
    for start, w, is_found in zip(lo, width, found):
        colour = (60, 220, 90) if is_found else (150, 50, 50)
        img[plot_h + 2 :, start // per_px : (start + w - 1) // per_px + 1] = colour
    img[:plot_h, min(centre // per_px, width_px - 1)] = (255, 220, 0)
    return img
