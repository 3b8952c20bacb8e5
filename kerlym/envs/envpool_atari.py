"""``--vector_env envpool``: ALE ids stepped in EnvPool's C++ threads, as kerlym's ``atari`` preprocessor makes them.

EnvPool (``pip install ".[envpool]"``) steps the emulators and does the frame skip, max-pool, 84x84
resize and grayscale without Python. It is set up as :func:`kerlym.preproc.atari` is: no-op starts
(up to 30), frame skip 4 with a max-pool of the last two frames, 84x84 grayscale uint8 (area
resize), the id's sticky-action probability, action set and frame limit, no life-loss episodes, no
reward clipping, no FIRE on reset. It stacks no frames: kerlym stacks them itself (``nframes``) from
one uint8 copy of each frame, in its replay memory too.

EnvPool restarts a finished episode at the next step (its ``NEXT_STEP`` autoreset); kerlym's vector
envs restart it within the step, with the last frame in ``info["final_obs"]``: :class:`EnvPoolVectorEnv`
resets the finished ones (EnvPool takes a reset of some of its envs) before returning.
"""

from __future__ import annotations

import numpy as np

EXTRA = 'pip install ".[envpool]"'


def envpool_id(game: str) -> str:
    """EnvPool's id for an ALE game name (``space_invaders`` -> ``SpaceInvaders-v5``)."""
    return "".join(part.capitalize() for part in game.split("_")) + "-v5"


def refusal(env_id: str | None, preprocessor: str | None, other: tuple[str, ...] = ()) -> str | None:
    """Why ``--vector_env envpool`` cannot give the frames the run asks for, in one line; ``None`` when it can.

    Args:
        env_id: the run's env id (``None``: not a plain id).
        preprocessor: the run's preprocessor setting.
        other: the flags of the run that EnvPool cannot honour (``--env-kwargs``, ``--render``, ...).
    """
    import gymnasium as gym

    from kerlym.envs import register_atari

    if other:
        return f"--vector_env envpool steps the env as its id registers it; it does not take {', '.join(other)}"
    if env_id:
        register_atari(env_id)
    try:
        spec = gym.spec(env_id) if env_id else None
    except gym.error.Error:
        spec = None
    if spec is None or spec.entry_point != "ale_py.env:AtariEnv":
        what = env_id or "an env given by MODULE:ID"
        return f"--vector_env envpool steps ALE (Atari) ids such as PongNoFrameskip-v4; {what} is not one"
    kw = spec.kwargs
    if kw.get("obs_type", "rgb") not in ("rgb", "grayscale"):
        return f"--vector_env envpool makes frames from the screen; {env_id} observes the {kw['obs_type']}"
    if preprocessor != "atari":
        return (
            f"--vector_env envpool gives the atari preprocessor's frames (84x84 grayscale, frame skip 4); "
            f"use -E atari, or --vector_env async for the {preprocessor} preprocessor"
        )
    try:
        import envpool
    except ImportError:
        return f"--vector_env envpool needs EnvPool: {EXTRA}"
    if envpool_id(kw["game"]) not in envpool.list_all_envs():
        return f"EnvPool has no {kw['game']} game ({envpool_id(kw['game'])}); use --vector_env async"
    return None


def envpool_kwargs(env_id: str) -> dict:
    """The ``envpool.make`` settings that give :func:`kerlym.preproc.atari`'s frames for ``env_id``."""
    import gymnasium as gym

    spec = gym.spec(env_id)
    kw = spec.kwargs
    # The id's frame limit counts emulator frames (atari() steps the emulator unskipped); EnvPool's counts agent steps.
    limits = [x for x in (spec.max_episode_steps, kw.get("max_num_frames_per_episode")) if x]
    frames = min(limits) if limits else 108_000
    return dict(
        stack_num=1,  # kerlym stacks frames itself (nframes)
        frame_skip=4,
        noop_max=30,
        img_height=84,
        img_width=84,
        gray_scale=True,
        use_inter_area_resize=True,  # cv2.INTER_AREA, as Gymnasium's AtariPreprocessing
        episodic_life=False,
        zero_discount_on_life_loss=False,
        reward_clip=False,
        use_fire_reset=False,
        repeat_action_probability=kw.get("repeat_action_probability", 0.25),
        full_action_space=kw.get("full_action_space", False),
        max_episode_steps=max(1, frames // 4),
        mode=kw.get("mode") if kw.get("mode") is not None else -1,
        difficulty=kw.get("difficulty") if kw.get("difficulty") is not None else -1,
    )


class EnvPoolVectorEnv:
    """``num_envs`` copies of an ALE id in EnvPool, behind kerlym's vector-env interface.

    ``reset(seed)`` returns ``[N, 84, 84, 1]`` uint8 frames; ``step(actions)`` returns frames, rewards,
    terminated and truncated per env, with a finished episode's last frame in ``info["final_obs"]``
    and the new episode's first frame in its place (same-step autoreset). ``info["lives"]`` and
    ``info["elapsed_step"]`` are EnvPool's, per env.

    Args:
        env_id: an ALE id (see :func:`refusal`).
        num_envs: the env copies.
        num_threads: EnvPool's worker threads (``0``: its default, one per core up to ``num_envs``).
    """

    def __init__(self, env_id: str, num_envs: int, num_threads: int = 0):
        self.env_id = env_id
        self.num_envs = num_envs
        self.num_threads = num_threads
        self.env = None
        self._ids = np.arange(num_envs, dtype=np.int32)

    def _make(self, seed):
        import envpool

        if self.env is not None:
            self.env.close()
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
        self.env = envpool.make(
            envpool_id(_game(self.env_id)),
            env_type="gymnasium",
            num_envs=self.num_envs,
            batch_size=self.num_envs,  # every env each step, as kerlym acts on all of them at once
            num_threads=self.num_threads,
            seed=int(seed),
            **envpool_kwargs(self.env_id),
        )

    @staticmethod
    def _frames(obs, info) -> np.ndarray:
        order = info["env_id"]
        if (np.diff(order) < 0).any():  # EnvPool returns a batch in the order its envs finished
            obs = obs[np.argsort(order)]
        return obs.reshape(obs.shape[0], *obs.shape[2:], 1)  # EnvPool's [N, 1, 84, 84] -> [N, 84, 84, 1]

    @staticmethod
    def _by_env(info, *arrays):
        order = info["env_id"]
        if not (np.diff(order) < 0).any():
            return arrays
        back = np.argsort(order)
        return tuple(a[back] for a in arrays)

    def reset(self, seed=None):
        """Start every env anew (``seed``, when given, seeds EnvPool's emulators and no-op starts)."""
        if self.env is None or seed is not None:
            self._make(seed)
        obs, info = self.env.reset(self._ids)
        (lives,) = self._by_env(info, info["lives"])
        return self._frames(obs, info), {"lives": lives}

    def step(self, actions):
        """Step every env once; finished episodes restart within the step (see the class)."""
        obs, rewards, terminated, truncated, info = self.env.step(np.asarray(actions, dtype=np.int32), self._ids)
        frames = self._frames(obs, info)
        rewards, terminated, truncated, lives, elapsed = self._by_env(
            info, rewards, terminated, truncated, info["lives"], info["elapsed_step"]
        )
        info = {"lives": lives, "elapsed_step": elapsed}
        done = np.flatnonzero(terminated | truncated)
        if done.size:
            info["final_obs"] = frames.copy()
            # EnvPool would start a finished env's next episode at its next step; kerlym wants its first frame now.
            obs, first = self.env.reset(done.astype(np.int32))
            frames[np.sort(first["env_id"])] = self._frames(obs, first)
        return frames, rewards.astype(np.float32, copy=False), terminated, truncated, info

    def close(self):
        """Stop EnvPool's threads."""
        if self.env is not None:
            self.env.close()
            self.env = None


def _game(env_id: str) -> str:
    import gymnasium as gym

    return gym.spec(env_id).kwargs["game"]
