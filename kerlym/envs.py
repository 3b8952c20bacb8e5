"""Making Gymnasium environments from ids, callables or envs (light: no Keras import)."""

from __future__ import annotations


def register_atari(env_id: str) -> None:
    """Have ale-py register its ids (``Pong-v0``, ``ALE/Pong-v5``...) if ``env_id`` is not known yet."""
    import gymnasium as gym

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
