"""Making Gymnasium environments from ids, callables or envs, and kerlym's own env ids (light: no Keras import).

kerlym registers its own environments with Gymnasium under the ids in
:data:`KERLYM_ENVS` the first time :func:`register` runs (``make_env`` and the
CLI call it). Each entry point is imported only when its env is made, so the
registry itself costs nothing.
"""

from __future__ import annotations

import numpy as np

from kerlym.config import ConfigError

OPENSPIEL_PREFIX = "openspiel:"  # -e openspiel:GAME (kerlym.envs.openspiel) rather than -e MODULE:ENV_ID

# id -> (entry point, default kwargs, max_episode_steps). Each env lives in its own module of this package.
KERLYM_ENVS: dict[str, tuple[str, dict, int | None]] = {
    "Go9x9-v0": ("kerlym.envs.go:GoEnv", {"board_size": 9}, None),
    "Go19x19-v0": ("kerlym.envs.go:GoEnv", {"board_size": 19}, None),
    "OpenSpiel-v0": ("kerlym.envs.openspiel:OpenSpielEnv", {}, None),  # -e openspiel:GAME
    "RadioSearch-v0": ("kerlym.envs.radio:RadioSearchEnv", {}, None),
    "RadioSearchHard-v0": ("kerlym.envs.radio:RadioSearchEnv", {"variant": "hard"}, None),
    "RadioSearchMulti-v0": ("kerlym.envs.radio:RadioSearchEnv", {"variant": "multi"}, None),
}

GO_IDS = ("Go9x9-v0", "Go19x19-v0")  # kerlym.envs.go's GoEnv: GnuGo by default, random under --self-play


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

    if isinstance(env, str) and env.startswith(OPENSPIEL_PREFIX):  # -e openspiel:GAME: an OpenSpiel game
        register()
        kwargs = {**(env_kwargs or {}), "game": env[len(OPENSPIEL_PREFIX) :]}
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        return gym.make("OpenSpiel-v0", **kwargs)
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
        obs, info = reset_env(self.env, seed)
        return [obs], info

    def step(self, actions):
        obs, reward, terminated, truncated, info = step_env(self.env, actions[0])
        if terminated or truncated:  # the new episode's first observation and info take the old one's place
            final_obs, final_info = obs, info
            obs, info = reset_env(self.env)
            info = {**info, "final_obs": [final_obs], "final_info": final_info}
        return [obs], np.array([reward], dtype=np.float64), np.array([terminated]), np.array([truncated]), info

    def close(self):
        self.env.close()


def is_two_player(env) -> bool:
    """Whether ``env`` is a two-player game against an opponent (Go, ``openspiel:GAME``): returns are won or lost."""
    return bool(getattr(getattr(env, "unwrapped", env), "two_player", False))


def evaluation_env_kwargs(env, opponent: str) -> dict:
    """The env kwargs that make a copy of two-player ``env`` play ``opponent``, the agent's seat alternating."""
    return type(getattr(env, "unwrapped", env)).evaluation_kwargs(opponent)


def check_opponents(env, opponents) -> None:
    """Refuse ``--eval_opponents`` that ``env`` cannot play: a one-player env, an unknown form, GnuGo off Go.

    Raises:
        ValueError: one line saying which opponent and why (``DependencyNotInstalled`` for a missing GnuGo).
    """
    if not is_two_player(env):
        raise ValueError("it has no opponent: evaluation opponents are for two-player games (Go, -e openspiel:GAME)")
    from kerlym.envs.openspiel import make_opponent

    seen = set()
    for name in opponents:
        if name in seen:
            raise ValueError(f"{name!r} is named twice")
        seen.add(name)
        make_opponent(env.unwrapped.game, name).close()  # checks the form; GnuGo starts only at its first game


class OldGymAPIError(ConfigError):
    """An env that speaks the old Gym API (before Gym 0.26): ``reset()`` -> obs, ``step()`` -> 4 values."""


_OLD_API = (
    "{what}, as the old Gym API did (before Gym 0.26); kerlym needs Gymnasium's reset() -> (obs, info) and "
    "step() -> (obs, reward, terminated, truncated, info): convert the env with Shimmy, "
    'gymnasium.make("GymV21Environment-v0", env=env) (pip install "shimmy[gym-v21]")'
)


def reset_env(env, seed=None) -> tuple:
    """``env.reset(seed=seed)`` as ``(obs, info)``; an env of the old Gym API is an :class:`OldGymAPIError`."""
    try:
        result = env.reset(seed=seed)
    except TypeError as e:
        if "unexpected keyword argument 'seed'" not in str(e):
            raise
        raise OldGymAPIError(_OLD_API.format(what="the env's reset() takes no seed")) from None
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
        raise OldGymAPIError(_OLD_API.format(what="the env's reset() returned an observation alone"))
    return result


def step_env(env, action) -> tuple:
    """``env.step(action)`` as its 5 values; an env of the old Gym API is an :class:`OldGymAPIError`."""
    result = env.step(action)
    if not (isinstance(result, tuple) and len(result) == 5):
        got = f"{len(result)} values" if isinstance(result, tuple) else type(result).__name__
        raise OldGymAPIError(_OLD_API.format(what=f"the env's step() returned {got}, not 5"))
    return result


class _LearnerPipe:
    """A worker's end of its pipe to the learner: the learner's death (EOF, a broken pipe) ends the worker quietly."""

    def __init__(self, pipe):
        self._pipe = pipe

    def recv(self):
        try:
            return self._pipe.recv()
        except (EOFError, ConnectionResetError):
            raise SystemExit(0) from None

    def send(self, obj):
        try:
            self._pipe.send(obj)
        except (BrokenPipeError, ConnectionResetError):
            raise SystemExit(0) from None

    def __getattr__(self, name):
        return getattr(self._pipe, name)


def vector_worker(index, env_fn, pipe, parent_pipe, *args) -> None:
    """Gymnasium's ``AsyncVectorEnv`` worker (its ``worker=``), quiet when the learner is gone or interrupted.

    Gymnasium's own worker reports a closed pipe as an error and then prints a
    ``BrokenPipeError`` traceback as it tries to send it to a learner that was
    killed; here the worker just ends. A terminal's Ctrl-C reaches every
    process of the group: the workers ignore it, since the learner decides
    when to stop and closes them. A forked worker would inherit the learner's
    SIGTERM handler (which only asks training to stop), so that Gymnasium's
    ``terminate()`` could not end it: the worker takes the default back.
    """
    import signal

    from gymnasium.vector.async_vector_env import _async_worker

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the learner's handler, inherited by fork: terminate() ends us
    try:
        _async_worker(index, env_fn, _LearnerPipe(pipe), parent_pipe, *args)
    except SystemExit:
        pass


def action_masks(info, n: int) -> np.ndarray | None:
    """The ``action_mask`` of ``n`` envs' info (a Gymnasium vector env's, or one env's) as bool ``[n, actions]``."""
    mask = info.get("action_mask") if info else None
    return None if mask is None else np.asarray(mask, dtype=bool).reshape(n, -1)
