"""Observation preprocessors.

A preprocessor is either a function ``frame -> array`` (applied with
Gymnasium's ``TransformObservation``) or a function ``env -> env`` marked
with :func:`env_wrapper` that wraps the environment itself. A function may
set ``storage_dtype`` to the dtype its frames are kept in (``uint8`` for
binary or pixel frames), so that replay memory never widens them.
"""

from __future__ import annotations

import numpy as np


def env_wrapper(fn):
    """Mark ``fn(env) -> env`` as a preprocessor that wraps the environment."""
    fn.wraps_env = True
    return fn


def karpathy_preproc(frame) -> np.ndarray:
    """Karpathy's Pong preprocessing: 210x160x3 frame -> 80x80x1 float32 of 0s and 1s.

    Crops rows 35-195, keeps every second pixel of the red channel, erases the
    background (values 144 and 109) and sets everything else to 1.
    """
    f = np.asarray(frame)[35:195:2, ::2, 0]
    out = ((f != 144) & (f != 109) & (f != 0)).astype(np.float32)
    return out[:, :, None]


# Its values are 0 and 1: kerlym stores these frames as uint8 (a quarter of float32's memory).
karpathy_preproc.storage_dtype = np.uint8


@env_wrapper
def atari(env):
    """Gymnasium's ``AtariPreprocessing``: noop reset, frame skip with max-pool, 84x84 grayscale uint8.

    Environments that already skip frames (ALE ``-v5`` and ``-v0`` ids) are
    remade with ``frameskip=1`` so that frames are not skipped twice.
    """
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing

    frameskip = env.unwrapped._frameskip if hasattr(env.unwrapped, "_frameskip") else 1
    if frameskip != 1 and env.spec is not None:
        env = gym.make(env.spec.id, frameskip=1, render_mode=env.render_mode)
    return AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, grayscale_newaxis=True)


PREPROCESSORS = {"none": None, "karpathy": karpathy_preproc, "atari": atari}


def apply(env, preprocessor):
    """Return ``env`` with ``preprocessor`` applied (``None`` leaves it unchanged)."""
    if preprocessor is None:
        return env
    if getattr(preprocessor, "wraps_env", False):
        return preprocessor(env)
    import gymnasium as gym
    from gymnasium.wrappers import TransformObservation

    dtype = np.dtype(
        getattr(preprocessor, "storage_dtype", None) or np.asarray(preprocessor(env.observation_space.sample())).dtype
    )

    def transform(obs):
        return np.asarray(preprocessor(obs)).astype(dtype, copy=False)

    shape = transform(env.observation_space.sample()).shape
    if dtype == np.uint8:
        space = gym.spaces.Box(low=0, high=255, shape=shape, dtype=np.uint8)
    else:
        space = gym.spaces.Box(low=-np.inf, high=np.inf, shape=shape, dtype=dtype)
    return TransformObservation(env, transform, space)
