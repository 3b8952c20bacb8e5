"""JAX-native environments from gymnax (``-e gymnax:CartPole-v1``), for the fused JAX training path.

A gymnax env is a pair of pure functions (``reset``, ``step``) and its
parameters, so a whole rollout compiles into one XLA program with the agent's
network (:mod:`kerlym.agents.fused`). For everything that steps one env from
Python (spaces, ``--play``, the agent's checks) the env is also a Gymnasium env:
gymnax's own ``GymnaxToGymWrapper``, with the gymnax env and its parameters kept
public. gymnax comes with the ``.[jax]`` extra and runs only on Keras's JAX backend.
"""

from __future__ import annotations

PREFIX = "gymnax:"


def is_gymnax(env_id) -> bool:
    """Whether ``env_id`` names a gymnax env (``gymnax:ENV_ID``)."""
    return isinstance(env_id, str) and env_id.startswith(PREFIX)


def require(env_id: str) -> None:
    """Refuse, in one line, a gymnax env without JAX or gymnax installed, or on a Keras backend other than JAX.

    Raises:
        ImportError: JAX or gymnax is missing (the message names the extra).
        RuntimeError: Keras runs on another backend.
    """
    import importlib.util

    from kerlym._io import install_hint

    if importlib.util.find_spec("jax") is None or importlib.util.find_spec("gymnax") is None:
        raise ImportError(f"-e {env_id} needs JAX and gymnax: {install_hint('jax')}")
    import keras

    backend = keras.config.backend()
    if backend != "jax":
        raise RuntimeError(f"-e {env_id} trains on Keras's JAX backend: set KERAS_BACKEND=jax (now {backend})")


def registered() -> list[str]:
    """The env ids gymnax knows."""
    import gymnax

    return list(gymnax.registered_envs)


def make(env_id: str, env_kwargs: dict | None = None):
    """A Gymnasium env around the gymnax env ``gymnax:ENV_ID`` (:class:`GymnaxEnv`); ``env_kwargs`` go to gymnax.make."""
    require(env_id)
    import gymnax

    name = env_id[len(PREFIX) :]
    if name not in gymnax.registered_envs:
        import difflib

        close = difflib.get_close_matches(name, gymnax.registered_envs, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(PREFIX + c for c in close)}?" if close else ""
        raise ValueError(f"gymnax has no env {name!r}{hint}")
    env, params = gymnax.make(name, **(env_kwargs or {}))
    return gymnax_env_class()(env, params, env_id)


_CLASS = None


def gymnax_env_class():
    """:class:`GymnaxEnv`, defined on first use so that importing this module imports neither JAX nor gymnax."""
    global _CLASS
    if _CLASS is None:
        from gymnax.wrappers.gym import GymnaxToGymWrapper

        class GymnaxEnv(GymnaxToGymWrapper):
            """gymnax's Gymnasium wrapper, with the gymnax env (``gymnax_env``) and its ``gymnax_params`` public.

            Args:
                env: the gymnax environment.
                params: its ``EnvParams``.
                env_id: the id it was made from (``gymnax:CartPole-v1``).
            """

            def __init__(self, env, params, env_id: str):
                super().__init__(env, params)
                self.gymnax_env, self.gymnax_params, self.env_id = env, params, env_id
                # Gymnasium's spaces, made once (the wrapper's properties convert on every read).
                self.action_space = super().action_space
                self.observation_space = super().observation_space

            action_space = None  # instance attributes, set in __init__
            observation_space = None

            def step(self, action):
                obs, reward, terminated, truncated, info = super().step(action)
                return obs, float(reward), bool(terminated), bool(truncated), info

        _CLASS = GymnaxEnv
    return _CLASS
