"""RadioSearch: the receiver's window, the rewards, episode ends, seeding, rendering and the baselines."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from kerlym.envs import register
from kerlym.envs.radio import (
    BAND,
    DECLARE,
    EDGE,
    OBS_BINS,
    TUNE_LEFT,
    TUNE_RIGHT,
    ZOOM_IN,
    ZOOM_OUT,
    RadioSearchEnv,
    mean_power,
    measure,
    move,
    observation,
    window_bins,
)
from kerlym.envs.radio_baselines import SweepPolicy, oracle_policy


def env_with_signals(lo, width, **knobs):
    """An env reset with 10 dB signals at bins ``lo`` of ``width``."""
    env = RadioSearchEnv(n_signals=len(lo), **knobs)
    env.reset(seed=0, options={"signals": [(a, w, 10.0) for a, w in zip(lo, width)]})
    return env


# -- the window --------------------------------------------------------------
def test_window_bins_average_span_over_64_fft_bins():
    power = np.arange(BAND, dtype=float)
    full = window_bins(power, 512, 1024)  # bin i averages FFT bins 16i..16i+15
    np.testing.assert_allclose(full[[0, 1, 63]], [7.5, 23.5, 1015.5])
    mid = window_bins(power, 512, 128)  # window 448..575, two FFT bins per bin
    np.testing.assert_allclose(mid[[0, 1, 63]], [448.5, 450.5, 574.5])
    one = window_bins(power, 300, 64)  # window 268..331, one FFT bin per bin
    np.testing.assert_array_equal(one, np.arange(268, 332))
    narrow = window_bins(power, 512, 32)  # window 496..527, each FFT bin shown twice
    np.testing.assert_array_equal(narrow[:6], [496, 496, 497, 497, 498, 498])
    assert narrow[-1] == 527
    with pytest.raises(ValueError, match="leaves the band"):
        window_bins(power, 100, 256)


def test_observation_is_db_over_10_then_centre_then_one_hot_span():
    power = np.full(BAND, 10.0)
    power[512:528] = 1000.0  # the first 16 FFT bins right of centre: two bins at span 512
    obs = observation(power, 512, 1)
    assert obs.shape == (OBS_BINS + 1 + 6,) and obs.dtype == np.float32
    assert obs[31] == pytest.approx(1.0) and obs[32] == obs[33] == pytest.approx(3.0) and obs[34] == pytest.approx(1.0)
    assert obs[OBS_BINS] == 0.5
    np.testing.assert_array_equal(obs[OBS_BINS + 1 :], [0, 1, 0, 0, 0, 0])


def test_tuning_moves_a_quarter_span_and_stops_at_the_band_edges():
    assert move(512, 2, TUNE_LEFT) == (448, 2)  # span 256
    assert move(512, 2, TUNE_RIGHT) == (576, 2)
    assert move(512, 5, TUNE_RIGHT) == (520, 5)  # span 32
    assert move(512, 0, TUNE_LEFT) == (512, 0)  # the full span cannot move
    assert move(160, 2, TUNE_LEFT) == (128, 2)  # clipped: the window starts at bin 0
    assert move(896, 2, TUNE_RIGHT) == (896, 2)
    assert move(16, 5, TUNE_LEFT) == (16, 5)


def test_zoom_keeps_the_centre_and_stays_within_the_spans():
    assert move(600, 3, ZOOM_IN) == (600, 4)
    assert move(600, 5, ZOOM_IN) == (600, 5)
    assert move(600, 3, ZOOM_OUT) == (600, 2)
    assert move(128, 2, ZOOM_OUT) == (256, 1)  # a span of 512 must centre at 256 or more
    assert move(512, 0, ZOOM_OUT) == (512, 0)


def test_zooming_changes_the_observed_span_level_and_the_action_mask():
    env = RadioSearchEnv()
    obs, info = env.reset(seed=0)
    np.testing.assert_array_equal(obs[OBS_BINS + 1 :], [1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(info["action_mask"], [1, 1, 1, 0, 1])
    for level in range(1, 6):
        obs, *_, info = env.step(ZOOM_IN)
        assert np.argmax(obs[OBS_BINS + 1 :]) == level and obs[OBS_BINS + 1 :].sum() == 1
    np.testing.assert_array_equal(info["action_mask"], [1, 1, 0, 1, 1])
    obs, *_, info = env.step(ZOOM_IN)  # illegal: a no-op
    assert np.argmax(obs[OBS_BINS + 1 :]) == 5
    obs, *_, info = env.step(ZOOM_OUT)
    assert np.argmax(obs[OBS_BINS + 1 :]) == 4
    np.testing.assert_array_equal(info["action_mask"], [1, 1, 1, 1, 1])


# -- the world ----------------------------------------------------------------
def test_signals_fit_the_band_without_overlapping():
    env = RadioSearchEnv(n_signals=5, snr_db=(2.0, 4.0), bandwidth=(30, 40))
    for seed in range(50):
        env.reset(seed=seed)
        order = np.argsort(env.lo)
        lo, hi = env.lo[order], (env.lo + env.width)[order]
        assert lo[0] >= EDGE and hi[-1] <= BAND - EDGE and np.all(hi[:-1] <= lo[1:])
        assert np.all((env.width >= 30) & (env.width <= 40)) and np.all((env.snr_db >= 2) & (env.snr_db <= 4))


def test_mean_power_adds_each_signal_that_is_on_to_the_noise_floor():
    mean = mean_power(np.array([100, 120, 300]), np.array([30, 10, 8]), np.array([10.0, 2.0, 5.0]), np.array([1, 1, 0]))
    np.testing.assert_array_equal(mean[[99, 100, 119, 120, 129, 130, 300]], [1, 11, 11, 13, 13, 1, 1])
    assert mean.sum() == BAND + 30 * 10 + 10 * 2


def test_noise_is_exponential_per_frame_and_frames_average_it():
    rng = np.random.default_rng(0)
    one = np.concatenate([measure(rng, np.ones(BAND), 1) for _ in range(100)])
    four = np.concatenate([measure(rng, np.ones(BAND), 4) for _ in range(100)])
    # exponential: mean 1, variance 1; the mean of 4 frames: variance 1/4 (~100k samples: errors ~1%)
    assert one.mean() == pytest.approx(1.0, abs=0.02) and one.var() == pytest.approx(1.0, abs=0.05)
    assert four.mean() == pytest.approx(1.0, abs=0.02) and four.var() == pytest.approx(0.25, abs=0.015)
    # about a mean of 11 (a 10 dB signal) the spread scales with it: variance 121
    loud = np.concatenate([measure(rng, np.full(BAND, 11.0), 1) for _ in range(100)])
    assert loud.mean() == pytest.approx(11.0, rel=0.02) and loud.var() == pytest.approx(121.0, rel=0.05)


def test_signals_placed_by_hand_are_checked():
    env = RadioSearchEnv(n_signals=2)
    with pytest.raises(ValueError, match="must hold 2"):
        env.reset(options={"signals": [(100, 20, 5.0)]})
    with pytest.raises(ValueError, match="within bins 16..1008"):
        env.reset(options={"signals": [(100, 20, 5.0), (1000, 20, 5.0)]})
    env.reset(options={"signals": [(100, 20, 5.0), (600, 8, 7.0)]})
    np.testing.assert_array_equal(env.lo, [100, 600])
    np.testing.assert_array_equal(env.width, [20, 8])


def test_drift_moves_signals_a_few_bins_and_bursts_follow_the_duty_cycle():
    env = RadioSearchEnv(drift=3, duty_cycle=0.25)
    env.reset(seed=0)
    lo, moves, on = env.lo.copy(), [], []
    for _ in range(2000):
        env.step(TUNE_LEFT)
        moves.append(int(env.lo[0] - lo[0]))
        on.append(bool(env.on[0]))
        lo = env.lo.copy()
        assert EDGE <= lo[0] <= BAND - EDGE - env.width[0]
    assert max(np.abs(moves)) == 3 and set(moves) <= set(range(-3, 4))
    assert np.mean(on) == pytest.approx(0.25, abs=0.03)


# -- rewards and episode ends ------------------------------------------------
def test_a_correct_declaration_earns_one_less_the_step_cost_and_ends_the_episode():
    env = env_with_signals([500], [20])  # the centre, 512, is inside
    _, reward, terminated, truncated, info = env.step(DECLARE)
    assert reward == pytest.approx(1 - 0.01) and terminated and not truncated and info["found"] == 1


def test_a_false_alarm_and_a_plain_step_cost_what_the_knobs_say():
    env = env_with_signals([700], [20])
    assert env.step(DECLARE)[1] == pytest.approx(-0.5 - 0.01)
    assert env.step(ZOOM_IN)[1] == pytest.approx(-0.01)
    env = env_with_signals([700], [20], step_cost=0.1, false_alarm_penalty=2.0)
    assert env.step(DECLARE)[1] == pytest.approx(-2.1)
    assert env.step(TUNE_RIGHT)[1] == pytest.approx(-0.1)


def test_declaring_a_found_signal_again_is_a_false_alarm():
    env = env_with_signals([500, 800], [20, 20])
    _, reward, terminated, _, info = env.step(DECLARE)
    assert reward == pytest.approx(0.99) and not terminated and info["found"] == 1
    _, reward, terminated, _, info = env.step(DECLARE)
    assert reward == pytest.approx(-0.51) and not terminated and info["found"] == 1


def test_the_episode_ends_when_every_signal_is_found():
    env = env_with_signals([500, 540], [20, 20])
    assert not env.step(DECLARE)[2]
    for action in (ZOOM_IN, ZOOM_IN, TUNE_RIGHT, ZOOM_IN, TUNE_LEFT):  # span 256: 576; span 128: 576 - 32
        assert not env.step(action)[2]
    assert env.centre == 544
    _, reward, terminated, truncated, info = env.step(DECLARE)
    assert reward == pytest.approx(0.99) and terminated and not truncated and info["found"] == 2


def test_truncation_after_max_steps():
    env = env_with_signals([700], [20], max_steps=3)
    ends = [env.step(ZOOM_IN)[2:4] for _ in range(3)]
    assert ends == [(False, False), (False, False), (False, True)]


def test_seeded_resets_repeat_exactly():
    def episode(seed):
        env = RadioSearchEnv("hard")
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for action in [ZOOM_IN, TUNE_LEFT, DECLARE, ZOOM_IN, TUNE_RIGHT, ZOOM_OUT] * 3:
            obs, reward, *_ = env.step(action)
            out += [obs, np.float32(reward)]
        return np.concatenate([np.ravel(x) for x in out]), env.lo.copy()

    (a, lo_a), (b, lo_b), (c, _) = episode(5), episode(5), episode(6)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(lo_a, lo_b)
    assert not np.array_equal(a, c)


# -- construction --------------------------------------------------------------
def test_variants_set_knobs_and_explicit_knobs_override_them():
    hard = RadioSearchEnv("hard", drift=0)
    assert hard.config.drift == 0 and hard.config.duty_cycle == 0.5 and hard.config.snr_db == (1.0, 6.0)
    assert RadioSearchEnv("multi").config.n_signals == 2
    assert RadioSearchEnv().config.n_signals == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"variant": "easy"}, "unknown RadioSearch variant"),
        ({"snr": 3}, "unknown RadioSearch knob"),
        ({"duty_cycle": 0.0}, "duty_cycle"),
        ({"bandwidth": (4, 10)}, "bandwidth"),
        ({"n_signals": 40}, "do not fit"),
        ({"render_mode": "human"}, "render_mode"),
        ({"snr_db": "(nan,nan)"}, r"snr_db must be a \(low, high\) pair of finite numbers, got '\(nan,nan\)'"),
        ({"snr_db": (float("nan"), 3.0)}, "snr_db must be a"),
        ({"bandwidth": (8.5, 40)}, "bandwidth must be a .* pair of integers"),
        ({"n_signals": 1.5}, "n_signals must be an integer, got 1.5"),
        ({"max_steps": "100"}, "max_steps must be an integer, got '100'"),
        ({"duty_cycle": True}, "duty_cycle must be a finite number, got True"),
    ],
)
def test_bad_settings_raise_a_one_line_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RadioSearchEnv(**kwargs)


@pytest.mark.parametrize("env_id", ["RadioSearch-v0", "RadioSearchHard-v0", "RadioSearchMulti-v0"])
def test_registered_ids_pass_gymnasiums_env_checker(env_id):
    register()
    env = gym.make(env_id, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs) and env.action_space.n == 5


# -- rendering -----------------------------------------------------------------
def test_render_draws_the_band_window_centre_and_found_signals():
    env = env_with_signals([500], [20], render_mode="rgb_array")
    env.step(ZOOM_IN)
    env.step(DECLARE)
    img = env.render()
    assert img.shape == (256, 512, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[0, 256], [255, 220, 0])  # the centre, bin 512, is column 256
    np.testing.assert_array_equal(img[0, 100], [24, 24, 24])  # outside the window (bins 256..767)
    np.testing.assert_array_equal(img[0, 200], [56, 56, 56])  # inside it
    np.testing.assert_array_equal(img[-1, 250:260], np.tile([60, 220, 90], (10, 1)))  # bins 500..519 found
    assert RadioSearchEnv().render() is None


# -- baselines -----------------------------------------------------------------
def test_the_oracle_takes_a_shortest_path():
    # From the full span at 512, a centre inside [600, 620) (600, 608 or 616) needs 5 moves, e.g. zoom in
    # twice, tune right (576), zoom in, tune right (608); tuning at the full span goes nowhere.
    env = env_with_signals([600], [20])
    total, steps, done = 0.0, 0, False
    while not done:
        action = oracle_policy(env)
        assert steps > 0 or action == ZOOM_IN
        _, reward, terminated, truncated, _ = env.step(action)
        total, steps, done = total + reward, steps + 1, terminated or truncated
    assert steps == 6 and terminated and total == pytest.approx(1 - 6 * 0.01)


def test_the_sweep_baseline_beats_random_on_the_default_variant():
    env = RadioSearchEnv()
    env.action_space.seed(0)
    sweep = SweepPolicy()
    returns = {"sweep": [], "random": []}
    for name in returns:
        for seed in range(50):
            obs, _ = env.reset(seed=seed)
            sweep.reset()
            total, done = 0.0, False
            while not done:
                action = sweep(obs) if name == "sweep" else env.action_space.sample()
                obs, reward, terminated, truncated, _ = env.step(action)
                total, done = total + reward, terminated or truncated
            returns[name].append(total)
    # random declares ~20 times an episode at -0.5 each; the sweep finds almost every signal
    assert np.mean(returns["random"]) < -5 and np.mean(returns["sweep"]) > 0.5
