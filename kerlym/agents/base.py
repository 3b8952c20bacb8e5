"""What every kerlym agent shares: the environment, observation pipeline and episode loop.

Data flows one way: env -> preprocessor -> frame history (stacking and
difference frames) -> ``act`` -> env step -> the agent's ``observe`` hook.
Subclasses implement :meth:`Agent.act`, :meth:`Agent.observe` and the other
hooks; they never touch the loop itself.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np

from kerlym import preproc
from kerlym.envs import make_env
from kerlym.memory import FrameRing

# Keras dtype policies an agent's networks may compute in. "mixed_bfloat16" pays off on CPUs with
# bfloat16 instructions (AVX512_BF16, AMX) through TensorFlow's oneDNN kernels; XLA's CPU backend has
# no fast bfloat16 kernels, so TensorFlow then runs plain graphs on CPU (kerlym.backend.tensorflow),
# and JAX on CPU is slower in bfloat16 than in float32 (benchmarks/README.md, "bfloat16").
# "mixed_float16" is left out: it needs loss scaling, which the compiled update does not do.
DTYPE_POLICIES = ("float32", "mixed_bfloat16")


def factory_name(factory) -> str:
    return getattr(factory, "__name__", repr(factory))


class _OneEnv:
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
        if terminated or truncated:
            info = {"final_obs": [obs], "final_info": info}
            obs, _ = self.env.reset()
        return [obs], np.array([reward], dtype=np.float64), np.array([terminated]), np.array([truncated]), info

    def close(self):
        self.env.close()


class Agent:
    """Base class: owns the environment, the frame history and the episode loop.

    Args:
        env: a Gymnasium env, an env id, or a zero-argument callable returning an env.
        nframes: observations stacked into one state.
        difference_obs: feed differences of consecutive frames instead of frames.
        preprocessor: a ``kerlym.preproc`` function (or any ``frame -> array``).
        modelfactory: builds the Keras model (see :mod:`kerlym.networks`).
        dropout, learning_rate: passed to the model factory.
        seed: seeds the env, NumPy, Python and the Keras backend.
        concurrency: env copies stepping in parallel (Gymnasium's ``AsyncVectorEnv``, or
            ale-py's ``AtariVectorEnv`` for Atari ids with the ``atari`` preprocessor)
            that feed the one learner; actions for all come from one batched call.
        dtype_policy: the Keras dtype policy the model factory builds under:
            ``"float32"``, or ``"mixed_bfloat16"``, where layers compute in bfloat16
            while weights and optimizer state stay float32, and outputs are cast to
            float32 for the loss and TD targets. ``None`` (the default) takes Keras's
            global policy (``keras.config.dtype_policy()``, float32 unless set). It
            is set only while the factory runs, not for the process. The built-in
            networks' output layers compute in float32; a factory's own output layer
            should too (``dtype="float32"``), or its outputs are rounded to bfloat16
            first, and a warning says so. See ``DTYPE_POLICIES`` for where bfloat16
            is faster.
        **factory_kwargs: further keyword arguments for the model factory.
    """

    name = "agent"

    def __init__(
        self,
        env,
        nframes: int = 1,
        difference_obs: bool = False,
        preprocessor=None,
        modelfactory=None,
        dropout: float = 0.0,
        learning_rate: float = 1e-4,
        seed: int | None = None,
        enable_plots: bool = False,
        concurrency: int = 1,
        dtype_policy: str | None = None,
        **factory_kwargs,
    ):
        import keras

        from kerlym.backend import prefer_inline_dispatch

        prefer_inline_dispatch()  # before anything runs on JAX, or it has no effect
        if dtype_policy is None:
            dtype_policy = keras.config.dtype_policy().name
        if dtype_policy not in DTYPE_POLICIES:
            raise ValueError(f"dtype_policy must be one of {', '.join(DTYPE_POLICIES)}, got {dtype_policy!r}")
        self.dtype_policy = dtype_policy
        if nframes < 1:
            raise ValueError(f"nframes must be at least 1, got {nframes}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.concurrency = int(concurrency)
        self._vector_env = None
        self._eval_env = None
        self.env_spec = env if isinstance(env, str) or (callable(env) and not hasattr(env, "step")) else None
        self.preprocessor = preprocessor
        self.env = preproc.apply(make_env(env), preprocessor)
        self.seed = seed
        if seed is not None:
            keras.utils.set_random_seed(seed)
            self.env.action_space.seed(seed)
        self.rng = np.random.default_rng(seed)
        self.num_actions = getattr(self.env.action_space, "n", None)
        if self.num_actions is None:
            raise ValueError(f"{type(self).__name__} needs a discrete action space, got {self.env.action_space}")
        self.num_actions = int(self.num_actions)

        space = self.env.observation_space
        self.frame_shape = tuple(space.shape)
        self.frame_dtype = np.uint8 if space.dtype == np.uint8 else np.float32
        self.nframes = int(nframes)
        self.difference_obs = bool(difference_obs)
        self.input_dim_orig = [self.nframes, *self.frame_shape]
        self.input_dim = int(np.prod(self.input_dim_orig))
        self.state_dtype = np.float32 if self.difference_obs else self.frame_dtype

        self.dropout = dropout
        self.learning_rate = learning_rate
        self.enable_plots = enable_plots
        self.modelfactory = modelfactory
        self.factory_kwargs = factory_kwargs
        self.model = self.build_model()

        self.total_steps = 0
        self.episode = 0
        self.updates = 0
        self.episodes: list[dict] = []  # one row of statistics per finished episode
        self._losses: list[float] = []
        self._reset_seed = seed
        self._stop = False

    # -- construction helpers ---------------------------------------------
    def frame_history(self) -> FrameRing:
        """A small ring of frames that builds this agent's states (stacking, differences) for one env."""
        cap = self.nframes + self.difference_obs + 1
        return FrameRing(cap, self.frame_shape, self.frame_dtype, self.nframes, self.difference_obs)

    def build_model(self):
        """Call the model factory and check what it returned."""
        import keras

        name = factory_name(self.modelfactory)
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.dtype_policy)
        try:
            model = self.modelfactory(
                self, self.env, dropout=self.dropout, learning_rate=self.learning_rate, **self.factory_kwargs
            )
        finally:
            keras.config.set_dtype_policy(previous)
        if not isinstance(model, keras.Model):
            raise ValueError(f"{name} must return a keras.Model, got {type(model).__name__}")
        out = tuple(model.output_shape)
        if out[-1] != self.num_actions or len(out) != 2:
            raise ValueError(f"{name} outputs shape {out}, but the env has {self.num_actions} actions")
        inp = tuple(model.input_shape)
        if inp[1:] != (self.input_dim,):
            raise ValueError(f"{name} takes input shape {inp}, but states have shape (None, {self.input_dim})")
        if not getattr(model, "compiled", False) or model.optimizer is None:
            raise ValueError(f"{name} returned a model that is not compiled; call model.compile(optimizer, loss)")
        last = model.layers[-1].compute_dtype
        if last != "float32":
            warnings.warn(
                f"{name}'s output layer computes in {last}, so its outputs are rounded to {last} before the "
                "float32 loss; build it with dtype='float32'",
                stacklevel=3,
            )
        return model

    # -- hooks for subclasses ---------------------------------------------
    def act(self, states: np.ndarray, explore: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Choose actions for flat states ``[N, input_dim]``; return them and the model's outputs ``[N, A]``.

        The outputs may be ``None`` when exploring skipped the network altogether.
        """
        raise NotImplementedError

    def begin_episode(self, frame, stream: int = 0) -> None:
        """Called with the first (preprocessed) observation of each training episode of env ``stream``."""

    def observe(self, stream, state, action, reward, terminated, truncated, frame) -> None:
        """Called for each env after each training step: the state acted on, the outcome, the next frame."""

    def after_step(self, steps_before: int) -> None:
        """Called once per (vector) step, after :meth:`observe`; ``total_steps`` was ``steps_before``."""

    def end_episode(self, stream: int = 0) -> dict:
        """Called after each training episode; returns extra statistics for its row."""
        return {}

    # -- the loop ---------------------------------------------------------
    def vector_env(self):
        """The envs that training steps: ``concurrency`` copies behind Gymnasium's vector-env interface.

        One env steps in this process; N copies step in Gymnasium's
        ``AsyncVectorEnv`` worker processes or, for ALE ids with the ``atari``
        preprocessor, in ale-py's ``AtariVectorEnv`` C++ threads.

        Episodes end and restart within one ``step`` (same-step autoreset), with
        the final observation in ``info["final_obs"]``.
        """
        if self._vector_env is None:
            import gymnasium as gym

            env_id = self._env_id()
            if self.concurrency == 1:
                self._vector_env = _OneEnv(self.env)
            elif self.env_spec is None:
                raise ValueError("concurrency > 1 needs an env id or a callable that makes envs, not an env")
            elif self.preprocessor is preproc.atari and env_id is not None:
                self._vector_env = preproc.atari_vector_env(env_id, self.concurrency)
            if self._vector_env is None:
                fns = [self._make_env] * self.concurrency
                mode = gym.vector.AutoresetMode.SAME_STEP
                self._vector_env = gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode)
        return self._vector_env

    def _env_id(self) -> str | None:
        """The env id, when envs come from one with nothing added (a callable may say so with ``env_id``)."""
        return self.env_spec if isinstance(self.env_spec, str) else getattr(self.env_spec, "env_id", None)

    def _make_env(self):
        return preproc.apply(make_env(self.env_spec), self.preprocessor)

    def learn(
        self,
        max_steps: int | None = None,
        max_episodes: int | None = None,
        callback: Callable[[Agent, dict], bool | None] | None = None,
        step_callback: Callable[[Agent], None] | None = None,
    ) -> list[dict]:
        """Train until ``max_steps`` env steps or ``max_episodes`` episodes (forever if neither).

        ``callback(agent, row)`` runs after each episode with its statistics;
        returning ``True`` stops training. ``step_callback(agent)`` runs about
        every 100 env steps (progress lines, checkpoints). :meth:`request_stop`
        ends training after the current step. Unfinished episodes are dropped
        when training stops. Returns the per-episode statistics.
        """
        n = self.concurrency
        envs = self.vector_env()
        step_limit = None if max_steps is None else self.total_steps + max_steps
        episode_limit = None if max_episodes is None else self.episode + max_episodes
        callback_every = max(1, 100 // n)
        start = time.perf_counter()
        histories = [self.frame_history() for _ in range(n)]
        ep_reward, ep_len = np.zeros(n), np.zeros(n, dtype=np.int64)
        ep_qmax, ep_qmin, ep_qsteps = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64)

        obs, _ = envs.reset(seed=self._reset_seed)
        self._reset_seed = None  # seed only the first reset; later resets continue each env's RNG
        for i in range(n):
            histories[i].push(obs[i], first=True)
            self.begin_episode(obs[i], i)
        vector_steps = 0
        while True:
            states = histories[0].latest() if n == 1 else np.concatenate([h.latest() for h in histories])
            actions, values = self.act(states)
            obs, rewards, terminated, truncated, infos = envs.step(actions)
            done = terminated | truncated
            steps_before = self.total_steps
            self.total_steps += n
            ep_reward += rewards
            ep_len += 1
            if values is not None:  # statistics over the steps where the network was consulted
                ep_qmax += values.max(axis=1)
                ep_qmin += values.min(axis=1)
                ep_qsteps += 1
            for i in range(n):
                nxt = infos["final_obs"][i] if done[i] else obs[i]
                histories[i].push(nxt, first=False)
                self.observe(i, states[i], actions[i], rewards[i], terminated[i], truncated[i], nxt)
            self.after_step(steps_before)
            vector_steps += 1
            if step_callback is not None and vector_steps % callback_every == 0:
                step_callback(self)
            stop = False
            for i in done.nonzero()[0]:
                self.episode += 1
                epsilon = getattr(self, "epsilon", float("nan"))  # the episode's own (PG has none)
                extra = self.end_episode(i)  # DQN decays epsilon here; PG updates, so its loss joins this row
                row = {
                    "episode": self.episode,
                    "total_steps": self.total_steps,
                    "reward": float(ep_reward[i]),
                    "length": int(ep_len[i]),
                    "epsilon": epsilon,
                    "loss": float(np.mean(self._losses)) if self._losses else float("nan"),
                    "max_q": float(ep_qmax[i] / ep_qsteps[i]) if ep_qsteps[i] else float("nan"),
                    "min_q": float(ep_qmin[i] / ep_qsteps[i]) if ep_qsteps[i] else float("nan"),
                    "wall_time": time.perf_counter() - start,
                }
                self._losses = []
                row.update(extra)
                self.episodes.append(row)
                ep_reward[i] = ep_len[i] = ep_qmax[i] = ep_qmin[i] = ep_qsteps[i] = 0
                histories[i].push(obs[i], first=True)
                self.begin_episode(obs[i], i)
                if callback is not None and callback(self, row):
                    stop = True
                if episode_limit is not None and self.episode >= episode_limit:
                    stop = True
            if stop or self._stop or (step_limit is not None and self.total_steps >= step_limit):
                self._stop = False
                return self.episodes

    def evaluate(self, episodes: int = 20, env=None, seed: int | None = None, explore: bool = False) -> np.ndarray:
        """Returns of ``episodes`` greedy episodes (no exploration, no dropout, no learning).

        ``explore=True`` picks actions as training does instead (epsilon-greedy
        for DQN, sampled from the policy for PG), still without learning.

        Uses a fresh copy of the environment when the agent was given an env id
        or callable, so evaluation never disturbs training episodes.
        """
        if env is None:
            if self._eval_env is None:  # training steps self.env only when concurrency is 1
                self._eval_env = self._make_env() if self.env_spec and self.concurrency == 1 else self.env
            env = self._eval_env
        history = self.frame_history()
        returns = []
        for i in range(episodes):
            obs, _ = env.reset(seed=None if seed is None else seed + i)
            history.push(obs, first=True)
            total, done = 0.0, False
            while not done:
                actions, _ = self.act(history.latest(), explore=explore)
                obs, reward, terminated, truncated, _ = env.step(int(actions[0]))
                history.push(obs, first=False)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        return np.asarray(returns)

    def close(self) -> None:
        """Close the environments this agent opened."""
        for env in (self._vector_env, self._eval_env, self.env):
            if env is not None:
                env.close()
        self._vector_env = self._eval_env = None

    # -- checkpoint state ---------------------------------------------------
    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """What a checkpoint needs beyond the ``.keras`` model: JSON-able counters and arrays.

        The arrays hold the optimizer's variables, so a resumed run continues
        with the same moments and step count.
        """
        meta = {
            "total_steps": self.total_steps,
            "episode": self.episode,
            "updates": self.updates,
            "epsilon": float(getattr(self, "epsilon", 0.0)),
            "rng": self.rng.bit_generator.state,
        }
        arrays = {f"optimizer/{i}": np.asarray(v.numpy()) for i, v in enumerate(self.model.optimizer.variables)}
        return meta, arrays

    def set_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`get_state` returned (the model weights are loaded separately)."""
        self.total_steps = int(meta["total_steps"])
        self.episode = int(meta["episode"])
        self.updates = int(meta["updates"])
        if hasattr(self, "epsilon"):
            self.epsilon = float(meta["epsilon"])
        self.rng.bit_generator.state = meta["rng"]
        variables = self.model.optimizer.variables
        for i, v in enumerate(variables):
            v.assign(arrays[f"optimizer/{i}"])

    def request_stop(self) -> None:
        """Ask :meth:`learn` to return after the current step (safe from a signal handler)."""
        self._stop = True

    @property
    def model(self):
        """The online network as a Keras model, its weights current.

        A backend that keeps the weights outside Keras between steps (JAX)
        writes them into the model here, and its next step reads them back, so
        weights set on it take effect. Go through ``agent.model`` each time
        rather than keeping the model: one kept across steps may be stale.
        """
        steps = self.__dict__.get("steps")
        if steps is not None:
            steps.to_keras()
        return self._model

    @model.setter
    def model(self, model) -> None:
        self._model = model

    @property
    def greedy_model(self):
        """The network greedy actions (``explore=False``) come from; agents with a weight average override it."""
        return self.model

    def save(self, path: str) -> None:
        """Save the network greedy actions come from (:attr:`greedy_model`) as a ``.keras`` file."""
        self.greedy_model.save(path)
