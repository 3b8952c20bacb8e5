"""Preprocessors on real Atari frames from ale-py, and on hand-made ones."""

import gymnasium as gym
import numpy as np
import pytest

from kerlym import preproc
from kerlym.agents.base import make_env


def pong_frames(n, env_id="ALE/Pong-v5"):
    env = make_env(env_id)
    obs, _ = env.reset(seed=0)
    frames = [obs]
    for _ in range(n):
        obs, *_ = env.step(0)
        frames.append(obs)
    env.close()
    return frames


def test_karpathy_preproc_by_hand():
    frame = np.full((210, 160, 3), 144, np.uint8)  # background colour 1
    frame[100:, :, 0] = 109  # background colour 2
    frame[35 + 2 * 7, 2 * 11] = (236, 236, 236)  # one bright pixel on a kept row/column
    out = preproc.karpathy_preproc(frame)
    assert out.shape == (80, 80, 1) and out.dtype == np.float32
    assert out.sum() == 1 and out[7, 11, 0] == 1


def test_karpathy_preproc_on_real_pong_shows_paddles_and_ball():
    frames = [preproc.karpathy_preproc(f)[:, :, 0] for f in pong_frames(40)]
    last = frames[-1]
    assert set(np.unique(last)) == {0.0, 1.0}
    assert last.mean() < 0.02  # the background is erased
    columns = np.where(last.any(axis=0))[0]
    assert {8, 9} <= set(columns) and {70, 71} <= set(columns)  # both paddles
    # The ball appears in the open court between the paddles once it is served.
    assert any(f[:, 12:68].any() for f in frames)


@pytest.mark.parametrize("env_id", ["Pong-v0", "ALE/Pong-v5", "SpaceInvaders-v0", "Breakout-v0"])
def test_seed_env_ids_and_atari_preprocessing(env_id):
    env = preproc.apply(make_env(env_id), preproc.atari)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (84, 84, 1) and obs.dtype == np.uint8
    assert isinstance(env, gym.wrappers.AtariPreprocessing)
    assert env.unwrapped._frameskip == 1  # the wrapper skips frames; ALE must not skip again
    env.close()


def test_binary_frames_are_stored_as_uint8():
    env = preproc.apply(make_env("ALE/Pong-v5"), preproc.karpathy_preproc)
    assert env.observation_space.dtype == np.uint8 and env.observation_space.shape == (80, 80, 1)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8 and obs.max() <= 1


def test_float_preprocessor_keeps_its_dtype():
    env = preproc.apply(gym.make("CartPole-v1"), lambda o: o[:2] * 2.0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2,) and env.observation_space.shape == (2,)
