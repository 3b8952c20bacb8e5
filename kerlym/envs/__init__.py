"""Making Gymnasium environments from ids, callables or envs, and kerlym's own env ids (light: no Keras import).

kerlym registers its own environments with Gymnasium under the ids in
:data:`KERLYM_ENVS` the first time :func:`register` runs (``make_env`` and the
CLI call it). Each entry point is imported only when its env is made, so the
registry itself costs nothing.
"""

from __future__ import annotations

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


def make_env(env, render_mode=None):
    """A Gymnasium env from an env, an env id, or a zero-argument callable returning one."""
    import gymnasium as gym

    if isinstance(env, str):
        register_atari(env)
        return gym.make(env, render_mode=render_mode)
    if callable(env) and not isinstance(env, gym.Env):
        return env()
    return env
