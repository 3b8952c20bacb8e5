"""Making Gymnasium environments from ids, callables or envs, and kerlym's own env ids (light: no Keras import).

kerlym registers its own environments with Gymnasium under the ids in
:data:`KERLYM_ENVS` the first time :func:`register` runs (``make_env`` and the
CLI call it). Each entry point is imported only when its env is made, so the
registry itself costs nothing.
"""

from __future__ import annotations

import numpy as np

# id -> (entry point, default kwargs, max_episode_steps). Each env lives in its own module of this package.
KERLYM_ENVS: dict[str, tuple[str, dict, int | None]] = {
    "Go9x9-v0": ("kerlym.envs.go:GoEnv", {"board_size": 9}, None),
    "Go19x19-v0": ("kerlym.envs.go:GoEnv", {"board_size": 19}, None),
    "RadioSearch-v0": ("kerlym.envs.radio:RadioSearchEnv", {}, None),
    "RadioSearchHard-v0": ("kerlym.envs.radio:RadioSearchEnv", {"variant": "hard"}, None),
    "RadioSearchMulti-v0": ("kerlym.envs.radio:RadioSearchEnv", {"variant": "multi"}, None),
}


def register() -> None:
    """Register kerlym's own env ids with Gymnasium (once; ids already registered are left alone)."""
    import gymnasium as gym

    for env_id, (entry_point, kwargs, max_steps) in KERLYM_ENVS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, kwargs=kwargs, max_episode_steps=max_steps)


def register_atari(env_id: str) -> None:
    """Have ale-py register its ids (``Pong-v0``, ``ALE/Pong-v5``...) if ``env_id`` is not known yet."""
    import gymnasium as gym

    register()
    if env_id not in gym.registry:
        try:
            import ale_py

            gym.register_envs(ale_py)
        except ImportError:
            pass


def import_env_modules(env_id: str, gym_packages=None) -> None:
    """Import the modules that register a user's envs: ``gym_packages``, and ``MODULE`` of ``MODULE:ENV_ID``.

    Raises:
        ImportError: with one line naming the module and the first line of its error.
    """
    import importlib
    import os
    import sys

    modules = list(gym_packages or [])
    if modules or ":" in env_id:  # as ``python -m`` does, so the ``kerlym`` script finds a module in this folder
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.append(cwd)
    if ":" in env_id:
        modules.append(env_id.split(":")[0])
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # anything the user's module raises while importing
            text = str(e).strip().splitlines()
            raise ImportError(f"cannot import {name!r}: {type(e).__name__}: {text[0] if text else ''}") from None


def make_env(env, render_mode=None, env_kwargs=None, gym_packages=None):
    """A Gymnasium env from an env, an env id (``MODULE:ENV_ID``, ``gymnax:ENV_ID`` too), or a callable making one."""
    import gymnasium as gym

    if isinstance(env, str) and env.startswith("gymnax:"):  # a JAX-native env (kerlym.envs.gymnax_envs)
        from kerlym.envs import gymnax_envs

        return gymnax_envs.make(env, env_kwargs)
    if isinstance(env, str):
        import_env_modules(env, gym_packages)
        env = env.split(":")[-1]
        register_atari(env)
        kwargs = dict(env_kwargs or {})
        if render_mode is not None:  # an env without rendering need not take the argument at all
            kwargs["render_mode"] = render_mode
        return gym.make(env, **kwargs)
    if callable(env) and not isinstance(env, gym.Env):
        return env()
    return env


class OneEnv:
    """One env behind the vector-env interface the training loop uses.

    Same-step autoreset as Gymnasium's ``SyncVectorEnv`` (the last observation
    of an episode goes to ``info["final_obs"]``), without batching the
    observations into new arrays on every step, which costs more than a
    CartPole step itself.
    """

    num_envs = 1

    def __init__(self, env):
        self.env = env

    def reset(self, seed=None):
        obs, info = self.env.reset(seed=seed)
        return [obs], info

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions[0])
        if terminated or truncated:  # the new episode's first observation and info take the old one's place
            final_obs, final_info = obs, info
            obs, info = self.env.reset()
            info = {**info, "final_obs": [final_obs], "final_info": final_info}
        return [obs], np.array([reward], dtype=np.float64), np.array([terminated]), np.array([truncated]), info

    def close(self):
        self.env.close()


def action_masks(info, n: int) -> np.ndarray | None:
    """The ``action_mask`` of ``n`` envs' info (a Gymnasium vector env's, or one env's) as bool ``[n, actions]``."""
    mask = info.get("action_mask") if info else None
    return None if mask is None else np.asarray(mask, dtype=bool).reshape(n, -1)
