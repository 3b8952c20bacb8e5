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


def atari_vector_env(env_id: str, num_envs: int):
    """ale-py's own ``AtariVectorEnv`` for ``env_id``, giving the frames :func:`atari` gives.

    The N emulators and their preprocessing (noop reset, frame skip 4 with
    max-pool, 84x84 grayscale) run in C++ threads; episodes end and restart in
    the same step with the last frame in ``info["final_obs"]``, as Gymnasium's
    vector envs do for kerlym. The id's sticky-action probability, action set
    and time limit carry over. Returns ``None`` for ids that are not ALE envs
    with screen observations.
    """
    import gymnasium as gym

    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        return None
    kw = spec.kwargs
    if spec.entry_point != "ale_py.env:AtariEnv" or kw.get("obs_type", "rgb") not in ("rgb", "grayscale"):
        return None
    from ale_py.vector_env import AtariVectorEnv

    # As in atari(), the emulator runs unskipped and the id's step limit counts emulator frames.
    limits = [x for x in (spec.max_episode_steps, kw.get("max_num_frames_per_episode")) if x]
    env = AtariVectorEnv(
        kw["game"],
        num_envs,
        repeat_action_probability=kw.get("repeat_action_probability", 0.25),
        full_action_space=kw.get("full_action_space", False),
        max_num_frames_per_episode=min(limits) if limits else 108_000,
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        img_height=84,
        img_width=84,
        grayscale=True,
        stack_num=1,  # kerlym stacks frames itself (nframes)
        frameskip=4,
        maxpool=True,
        noop_max=30,
        reward_clipping=False,
        use_fire_reset=False,
    )
    return _ChannelLast(env)


class _ChannelLast:
    """Presents AtariVectorEnv's ``[N, 1, 84, 84]`` frames as :func:`atari`'s ``[N, 84, 84, 1]``."""

    def __init__(self, env):
        self.env = env
        self.num_envs = env.num_envs

    def _frames(self, obs):
        return obs.reshape(obs.shape[0], *obs.shape[2:], 1)

    def reset(self, seed=None):
        obs, info = self.env.reset(seed=seed)
        return self._frames(obs), info

    def step(self, actions):
        obs, rewards, terminated, truncated, info = self.env.step(np.asarray(actions))
        if "final_obs" in info:
            info["final_obs"] = self._frames(info["final_obs"])
        return self._frames(obs), rewards, terminated, truncated, info

    def close(self):
        self.env.close()


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


def get(preprocessor):
    """The preprocessor a setting names (``"none"``, ``"karpathy"``, ``"atari"``), or a function as given."""
    if preprocessor is None or callable(preprocessor):
        return preprocessor
    try:
        return PREPROCESSORS[preprocessor]
    except KeyError:
        raise ValueError(f"unknown preprocessor {preprocessor!r}; choose one of: {', '.join(PREPROCESSORS)}") from None
