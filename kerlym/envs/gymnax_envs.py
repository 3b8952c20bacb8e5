"""JAX-native environments from gymnax (``-e gymnax:CartPole-v1``), for the fused JAX training path.

A gymnax env is a pair of pure functions (``reset``, ``step``) and its
parameters, so a whole rollout compiles into one XLA program with the agent's
network (:mod:`kerlym.agents.fused`). For everything that steps one env from
Python (spaces, ``--play``, the agent's checks) the env is also a Gymnasium env:
gymnax's own ``GymnaxToGymWrapper``, made when first stepped, with the gymnax env
and its parameters kept public. gymnax comes with the ``.[jax]`` extra and runs only on Keras's JAX backend.
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
    backend = keras_backend()
    if backend != "jax":
        raise RuntimeError(f"-e {env_id} trains on Keras's JAX backend: set KERAS_BACKEND=jax (now {backend})")


def keras_backend() -> str:
    """The backend Keras runs (or will run) on, without importing Keras where it is not imported yet.

    Keras's own order: ``KERAS_BACKEND``, then ``keras.json`` in ``KERAS_HOME`` (default ``~/.keras``), then
    TensorFlow. Importing Keras to ask would import TensorFlow on its backend, for an error message.
    """
    import json
    import os
    import sys

    if "keras" in sys.modules:
        return sys.modules["keras"].config.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def refusals(config) -> list[str]:
    """The settings of an agent ``config`` that the fused JAX path does not have (empty: it takes them all)."""
    checks = [
        (getattr(config, "normalize_obs", False), "--normalize_obs"),
        (getattr(config, "normalize_reward", False), "--normalize_reward"),
        (getattr(config, "average_symmetries", False), "--average_symmetries"),
        (config.nframes != 1, "-t above 1"),
        (config.difference_obs, "difference frames (-i)"),
        (config.preprocessor not in (None, "none"), "a preprocessor (-E)"),
        (config.actors != "local", f"--actors {config.actors}"),
        (getattr(config, "return_steps", 1) > 1, "--n_step above 1"),
        (getattr(config, "symmetries", False), "--symmetries"),
    ]
    if hasattr(config, "update_freq"):  # DQN's units are -f env steps of every env copy; flashbax samples <= -m
        freq, envs, samples, memory = config.update_freq, config.concurrency, config.update_nsamp, config.max_memory
        checks.append((freq % envs != 0, f"-f {freq} (not a multiple of -c {envs})"))
        checks.append((samples > memory, f"-u {samples} (above -m {memory})"))
    return [name for bad, name in checks if bad]


def registered() -> list[str]:
    """The env ids gymnax knows."""
    import gymnax

    return list(gymnax.registered_envs)


def make(env_id: str, env_kwargs: dict | None = None):
    """A Gymnasium env around the gymnax env ``gymnax:ENV_ID`` (``GymnaxEnv``); ``env_kwargs`` go to gymnax.make."""
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
        import gymnasium as gym
        from gymnax.environments.spaces import gymnax_space_to_gym_space

        class GymnaxEnv(gym.Env):
            """A gymnax env as a Gymnasium env: gymnax's ``GymnaxToGymWrapper``, made when first stepped.

            The gymnax env (``gymnax_env``) and its ``gymnax_params`` are public. gymnax's wrapper compiles the
            env's reset when it is made, for every copy of the env, which the fused path, stepping ``gymnax_env``
            in its own programs, never uses; so it is made at the first ``reset``.

            Args:
                env: the gymnax environment.
                params: its ``EnvParams``.
                env_id: the id it was made from (``gymnax:CartPole-v1``).
            """

            def __init__(self, env, params, env_id: str):
                super().__init__()
                self.gymnax_env, self.gymnax_params, self.env_id = env, params, env_id
                # Gymnasium's spaces, made once (the wrapper's properties convert on every read).
                self.action_space = gymnax_space_to_gym_space(env.action_space(params))
                self.observation_space = gymnax_space_to_gym_space(env.observation_space(params))
                modes = ["human", "rgb_array"] if hasattr(env, "render") else []  # as gymnax's wrapper says
                self.metadata = {**self.metadata, "name": env.name, "render_modes": modes}
                self._wrapper = None

            def _gym(self):
                if self._wrapper is None:
                    from gymnax.wrappers.gym import GymnaxToGymWrapper

                    self._wrapper = GymnaxToGymWrapper(self.gymnax_env, self.gymnax_params)
                return self._wrapper

            def reset(self, *, seed=None, options=None):
                super().reset(seed=seed)
                return self._gym().reset(seed=seed, options=options)

            def step(self, action):
                obs, reward, terminated, truncated, info = self._gym().step(action)
                return obs, float(reward), bool(terminated), bool(truncated), info

            def render(self):
                return self._gym().render()

        _CLASS = GymnaxEnv
    return _CLASS
