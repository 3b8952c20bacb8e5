"""What every kerlym agent shares: the environment, observation pipeline and episode loop.

Data flows one way: env -> preprocessor -> frame history (stacking and
difference frames) -> ``act`` -> env step -> the agent's ``observe`` hook.
Subclasses implement :meth:`Agent.act`, :meth:`Agent.observe` and the other
hooks; they never touch the loop itself.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable

import numpy as np

from kerlym import preproc
from kerlym.backend import set_random_seed, synchronous_jax_cpu
from kerlym.config import DTYPE_POLICIES, AgentConfig, ConfigError, canonical, field_names
from kerlym.envs import OneEnv, action_masks, make_env, reset_env, step_env, vector_worker
from kerlym.factories import build_model, net_kwargs_problem, refuse_unknown_arguments
from kerlym.memory import FrameRing, LatestFrame


class Agent:
    """Base class: owns the environment, the frame history and the network; subclasses own learning.

    Args:
        env: a Gymnasium env, an env id, or a zero-argument callable returning an env.
        config: the agent's settings (its ``Config`` class); keyword arguments override its fields.
        enable_plots: draw the original's live 2x2 figure while :meth:`learn` runs (saved as
            ``training.png`` in the working folder).
        **kwargs: the ``Config`` fields (see :mod:`kerlym.config`: ``nframes``, ``difference_obs``,
            ``preprocessor``, ``modelfactory``, ``dropout``, ``learning_rate``, ``seed``,
            ``concurrency``, ``dtype_policy``, ...), then any keyword argument that the model
            factory names in its signature. Anything else is an error with a did-you-mean.

    ``concurrency`` env copies feed the one learner (:meth:`vector_env`). ``dtype_policy`` is the Keras
    dtype policy the model factory builds under (``"mixed_bfloat16"``: layers compute in bfloat16,
    weights, optimizer state and losses stay float32; a factory's output layer should say ``dtype="float32"``).
    """

    name = "agent"
    Config = AgentConfig
    default_network = "simple_dnn"
    continuous_actions = False  # whether the agent also takes Box action spaces
    metric_names: tuple[str, ...] = ()  # statistics its episode rows add (progress.csv columns, plot panels)
    value_estimates = True  # act() returns value estimates (Q-values, V): the rows' max_q/min_q and the plot's panel
    epsilon: float | None = None  # the exploration rate, for agents that explore epsilon-greedily (DQN)
    ema = None  # the weight average greedy actions come from, for agents that keep one
    fused = None  # on a JAX-native env, what trains in compiled chunks (kerlym.agents.fused) instead of step by step

    def __init__(self, env, config: AgentConfig | None = None, *, enable_plots: bool = False, **kwargs):
        import gymnasium as gym
        import keras

        synchronous_jax_cpu()  # before the env or a model makes JAX's CPU client
        config, factory_kwargs = self._settings(config, kwargs)
        self.config = config
        dtype_policy = config.dtype_policy or keras.config.dtype_policy().name
        if dtype_policy not in DTYPE_POLICIES:
            raise ValueError(f"dtype_policy must be one of {', '.join(DTYPE_POLICIES)}, got {dtype_policy!r}")
        self.dtype_policy = dtype_policy
        self.concurrency = int(config.concurrency)
        self._vector_env = None
        self._eval_env = None
        self.env_spec = env if isinstance(env, str) or (callable(env) and not hasattr(env, "step")) else None
        self.preprocessor = preproc.get(config.preprocessor)
        self.env = preproc.apply(make_env(env), self.preprocessor)
        self.seed = config.seed
        if self.seed is not None:
            set_random_seed(self.seed)
            self.env.action_space.seed(self.seed)
        self.rng = np.random.default_rng(self.seed)
        self.num_actions = getattr(self.env.action_space, "n", None)
        # num_actions: the policy's outputs, one per discrete action or per dimension of a Box action.
        self.continuous = self.continuous_actions and isinstance(self.env.action_space, gym.spaces.Box)
        if self.continuous:
            self.num_actions = int(np.prod(self.env.action_space.shape))
        if self.num_actions is None:
            raise ValueError(f"{type(self).__name__} needs a discrete action space, got {self.env.action_space}")
        self.num_actions = int(self.num_actions)
        if isinstance(self.env.action_space, gym.spaces.Discrete):
            # Gymnasium keeps n as np.int64, which Keras 3 layers refuse (Dense(env.action_space.n) says "expected
            # a positive integer"); the same number as a Python int lets a factory written for the original work.
            self.env.action_space.n = int(self.env.action_space.n)

        space = self.env.observation_space
        if space.shape is None:
            raise ValueError(
                f"{type(self).__name__} needs array observations, got {space}; wrap the env in "
                "gymnasium.wrappers.FlattenObservation"
            )
        self.frame_shape = tuple(space.shape)
        self.frame_dtype = np.uint8 if space.dtype == np.uint8 else np.float32
        self.nframes = int(config.nframes)
        self.difference_obs = bool(config.difference_obs)
        self.input_dim_orig = [self.nframes, *self.frame_shape]
        self.input_dim = int(np.prod(self.input_dim_orig))
        self.state_dtype = np.float32 if self.difference_obs else self.frame_dtype

        self.dropout = config.dropout
        self.learning_rate = config.learning_rate
        self.enable_plots = enable_plots
        self.modelfactory = self._factory(config.modelfactory)
        self.factory_kwargs = self._compile_settings(config) | factory_kwargs
        self.model = self.build_model()

        self.total_steps = 0
        self.episode = 0
        self.updates = 0
        self.episodes: list[dict] = []  # one row of statistics per finished episode
        self.reset_seed = self.seed  # the first env reset's seed; the runner clears it once used
        self.stop_requested = False  # set by request_stop(); the runner stops after the current step
        self.run_config = None  # the run settings kerlym.make built it with: learn() takes its budget from them
        self.pool = None  # --self-play: the snapshots the agent plays against (kerlym.agents.selfplay)
        self.in_flight = None  # a checkpoint's episodes in progress (meta, arrays); the runner takes them once
        if config.self_play is not None:
            self._check_self_play()
            from kerlym.agents.selfplay import SelfPlayPool

            self.pool = SelfPlayPool(self, config.self_play, config.self_play_latest, config.self_play_every, self.seed)

    # -- settings -----------------------------------------------------------
    @classmethod
    def _settings(cls, config, kwargs) -> tuple[AgentConfig, dict]:
        """The agent's config (``config`` with the keyword arguments that name its fields) and the rest."""
        names, kwargs = set(field_names(cls.Config)), canonical(kwargs)  # n_step=3 is return_steps=3
        values = {k: v for k, v in kwargs.items() if k in names}
        rest = {k: v for k, v in kwargs.items() if k not in names}
        try:
            config = dataclasses.replace(config, **values) if config is not None else cls.Config(**values)
        except ConfigError as e:
            raise ValueError(str(e)) from None
        factory = cls._factory(config.modelfactory)
        refuse_unknown_arguments(cls.__name__, cls.Config, rest, factory)
        problem = net_kwargs_problem(cls.Config, config.net_kwargs or {}, factory)
        if problem is not None:
            raise TypeError(f"net_kwargs: {problem}")
        return config, {**(config.net_kwargs or {}), **rest}  # a keyword argument given here wins

    @classmethod
    def _factory(cls, modelfactory):
        from kerlym import networks

        if modelfactory is None:
            return networks.get(cls.default_network)
        return networks.get(modelfactory) if isinstance(modelfactory, str) else modelfactory

    @staticmethod
    def _compile_settings(config) -> dict:
        """What the model factory compiles with: the user's optimizer, loss and clipnorm, where given."""
        chosen = {"optimizer": config.optimizer, "loss": config.loss, "clipnorm": config.clipnorm}
        return {k: v for k, v in chosen.items() if v is not None}

    def _check_self_play(self) -> None:
        """Refuse --self-play on an env or agent it cannot play (one line)."""
        game = self.env.unwrapped
        if not getattr(game, "self_play", False):
            what = self.env_id() or type(game).__name__
            raise ValueError(f"--self-play needs a two-player OpenSpiel game (-e openspiel:GAME) or Go, not {what}")
        if type(self).opponent_moves is Agent.opponent_moves:
            raise ValueError(f"-a {self.name} cannot play itself; --self-play takes dqn, ddqn, a2c, a3c or ppo")
        if self.env_spec is None:
            raise ValueError("--self-play makes its own envs: give an env id or a callable that makes envs, not an env")

    def opponent_moves(self, outputs: np.ndarray, masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Self-play: an opponent's moves from its network's ``outputs`` ``[B, ...]`` over the legal ``masks``."""
        raise NotImplementedError

    # -- construction helpers ---------------------------------------------
    def frame_history(self) -> FrameRing | LatestFrame:
        """A small ring of frames that builds this agent's states (stacking, differences) for one env.

        A state of one frame needs only that frame: a :class:`~kerlym.memory.LatestFrame` then.
        """
        if self.nframes == 1 and not self.difference_obs:
            return LatestFrame(self.frame_shape, self.frame_dtype)
        cap = self.nframes + self.difference_obs + 1
        return FrameRing(cap, self.frame_shape, self.frame_dtype, self.nframes, self.difference_obs)

    def build_model(self):
        """Call the model factory and check what it returned (:func:`kerlym.factories.build_model`)."""
        return build_model(self)

    def check_outputs(self, model, name: str) -> None:
        """Refuse a factory's model whose outputs do not fit this agent: here one value per action."""
        out = tuple(model.output_shape)
        if out[-1] != self.num_actions or len(out) != 2:
            raise ValueError(f"{name} outputs shape {out}, but the env has {self.num_actions} actions")

    # -- hooks for subclasses ---------------------------------------------
    def begin_run(self, step_limit: int | None) -> None:
        """Called when a training session starts; ``step_limit`` is the step count it stops at (None: none)."""

    def act(self, states: np.ndarray, explore: bool = True, masks=None) -> tuple[np.ndarray, np.ndarray | None]:
        """Choose actions for flat states ``[N, input_dim]``; return them and the model's outputs ``[N, A]``.

        ``masks``: bool ``[N, A]``, the legal actions, when the env gives an ``action_mask``; only
        those may be chosen. The outputs may be ``None`` when exploring skipped the network altogether.
        """
        raise NotImplementedError

    def behaviour(self) -> tuple | None:
        """What :meth:`observe` needs of the last :meth:`act` beyond the env's outcome, for an actor to send.

        A tuple of per-env arrays (or ``None`` entries) that :meth:`adopt` takes back on the learner, or
        ``None`` when the step itself says enough (DQN). See :mod:`kerlym.actors`.
        """
        return None

    def adopt(self, states: np.ndarray, behaviour: tuple) -> None:
        """Take an actor's act on ``states`` (its :meth:`behaviour`) as this agent's last act, for :meth:`observe`."""

    def begin_episode(self, frame, stream: int = 0, mask=None) -> None:
        """Called with the first (preprocessed) observation of each training episode of env ``stream``.

        ``mask``: its legal actions, when the env gives an ``action_mask``.
        """

    def observe(self, stream, state, action, reward, terminated, truncated, frame, mask=None) -> None:
        """Called for each env after each training step: the state acted on, the outcome, the next frame.

        ``mask``: the legal actions at the next frame, when the env gives an ``action_mask``.
        """

    def after_step(self, steps_before: int) -> list[float]:
        """Called once per (vector) step, after :meth:`observe`; ``total_steps`` was ``steps_before``.

        Returns the losses of the updates this step ran (empty if it ran none), as the agent's ``update`` gave them.
        """
        return []

    def end_episode(self, stream: int = 0) -> tuple[dict, list[float]]:
        """Called after each training episode of env ``stream``.

        Returns extra statistics for its row, and the losses of any update run at the episode's end
        (PG's, which learns from each finished episode; empty for the other agents).
        """
        return {}, []

    # -- the loop ---------------------------------------------------------
    def vector_env(self):
        """The envs that training steps: ``concurrency`` copies behind Gymnasium's vector-env interface.

        One env steps in this process; N copies step in Gymnasium's
        ``AsyncVectorEnv`` worker processes (``vector_env="sync"``: its
        ``SyncVectorEnv``, in turn in this process) or, for ALE ids with the
        ``atari`` preprocessor, in ale-py's ``AtariVectorEnv`` C++ threads;
        ``vector_env="envpool"``: in EnvPool's C++ threads (one copy too).

        Episodes end and restart within one ``step`` (same-step autoreset), with
        the final observation in ``info["final_obs"]``.
        """
        if self._vector_env is None:
            import gymnasium as gym

            env_id = self.env_id()
            if self.pool is not None:  # the other seat is played here, batched across the envs
                from kerlym.agents.selfplay import SelfPlayEnvs

                envs = [self._make_env() for _ in range(self.concurrency)]
                for env in envs:
                    env.unwrapped.external_opponent()
                self._vector_env = SelfPlayEnvs(self, envs)
            elif self.config.vector_env == "envpool":
                self._vector_env = self._envpool_env(env_id)
            elif self.concurrency == 1:
                self._vector_env = OneEnv(self.env)
            elif self.env_spec is None:
                raise ValueError("concurrency > 1 needs an env id or a callable that makes envs, not an env")
            elif self.preprocessor is preproc.atari and env_id is not None:
                self._vector_env = preproc.atari_vector_env(env_id, self.concurrency)
            if self._vector_env is None:
                fns = [self._make_env] * self.concurrency
                mode = gym.vector.AutoresetMode.SAME_STEP
                if self.config.vector_env == "sync":
                    self._vector_env = gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)
                else:
                    self._vector_env = gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode, worker=vector_worker)
                # Worker processes end with the program even if close() is never called.
                weakref.finalize(self, self._vector_env.close)
        return self._vector_env

    def _envpool_env(self, env_id):
        from kerlym.envs import envpool_atari

        name = "atari" if self.preprocessor is preproc.atari else getattr(self.preprocessor, "__name__", "none")
        why = envpool_atari.refusal(env_id, name)
        if why:
            raise ValueError(why)
        env = envpool_atari.EnvPoolVectorEnv(env_id, self.concurrency)
        weakref.finalize(self, env.close)
        return env

    def env_id(self) -> str | None:
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
        verbose: int = 1,
        tensorboard: bool | str = False,
        eval_episodes: int | None = None,
        total_timesteps: int | None = None,
        mlflow: bool | str = False,
        wandb: bool = False,
    ) -> list[dict]:
        """Train ``max_steps`` more env steps or ``max_episodes`` more episodes, then evaluate greedily.

        Runs the same session as the command (:func:`kerlym.session.train`), without a run
        folder. With neither bound, an agent that :func:`kerlym.make` built trains to its run's
        budget (a preset's ``steps``), and any other agent until stopped. ``verbose=1`` prints a
        line per episode and the final evaluation, ``0`` nothing. Ctrl-C (or :meth:`request_stop`)
        ends training after the current step and returns normally, the agent intact.
        ``callback(agent, row)`` runs after each episode with its statistics; returning ``True``
        stops training. ``step_callback(agent)`` runs about every 100 env steps. Unfinished
        episodes are dropped when training stops. Returns the per-episode statistics.

        Args:
            max_steps: env steps to train, counted from now (``--steps`` is a total instead).
            max_episodes: episodes to train, counted from now.
            callback: called after each episode.
            step_callback: called about every 100 env steps.
            verbose: 1: a line per episode (and a progress bar in a terminal); 0: nothing.
            tensorboard: ``True`` writes TensorBoard event files into a new folder under ``./runs``
                (view them with ``tensorboard --logdir runs``); a string names the folder instead.
            eval_episodes: greedy episodes of the final evaluation (default: the run's, 20; 0: none).
            total_timesteps: Stable-Baselines3's name for ``max_steps``.
            mlflow: ``True`` logs params, metrics, evaluations and the model to a new MLflow run in MLflow's embedded
                store (``sqlite:///mlflow.db`` here; view with ``mlflow ui``); a string names a tracking URI instead.
            wandb: log the same to a new Weights & Biases run (offline without an API key: ``wandb sync`` uploads it).
        """
        from kerlym import session

        return session.learn(
            self,
            max_steps,
            max_episodes,
            callback,
            step_callback,
            verbose,
            tensorboard,
            eval_episodes,
            total_timesteps,
            mlflow=mlflow,
            wandb=wandb,
        )

    def predict(
        self, observation, state=None, episode_start=None, deterministic: bool = True, search: int = 0, env=None
    ):
        """``(action, state)`` for raw observations of the env, as Stable-Baselines3's ``model.predict``.

        Takes one observation or a batch of them (a vector env's, one per env). Each goes through
        the agent's preprocessor and joins the last ``nframes - 1`` ones of its env given to
        ``predict`` (and their differences, with ``difference_obs``), as in training. Pass
        ``episode_start`` (a bool, or one per env) with each episode's first observation (the first
        call starts one anyway), so frames of the previous episode are not stacked with it. An
        env-wrapping preprocessor (``atari``: frame skip and max-pool) cannot apply to one
        observation: give it the observations of ``agent.env``, already preprocessed.

        Args:
            observation: one observation as ``env.reset`` or ``env.step`` return it, or a batch.
            state: a recurrent state, for Stable-Baselines3's signature; kerlym's agents keep none and
                return it as given.
            episode_start: ``observation`` begins a new episode (per env for a batch).
            deterministic: the greedy action (``False``: as training explores, epsilon-greedy or sampled).
            search: with ``env``, the move of a PUCT search of ``search`` simulations from ``env``'s game
                state instead (:meth:`search_action`); ``observation`` must be ``env``'s latest.
            env: the OpenSpiel game env (``openspiel:GAME``) ``observation`` came from, for ``search``.

        Returns:
            The action in the env's own form (an int, or for a batch an array of ints; a ``Box``
            action clipped to the space's bounds) and ``state``.
        """
        if search:
            if env is None:
                raise ValueError("predict(search=N) searches from an env's game state: give env=, the env played")
            return self.search_action(env, search), state
        raw = np.asarray(observation)
        fn = self.preprocessor
        frame_fn = fn is not None and not getattr(fn, "wraps_env", False)
        raw_shape = getattr(self.env.unwrapped.observation_space, "shape", None) if frame_fn else self.frame_shape
        batched = raw.ndim == len(raw_shape or self.frame_shape) + 1
        frames = list(raw) if batched else [raw]
        if frame_fn:
            frames = [f if f.shape == self.frame_shape else np.asarray(fn(f)) for f in frames]
        for f in frames:
            if f.shape != self.frame_shape:
                raise ValueError(f"predict expects an observation of shape {self.frame_shape}, got {f.shape}")
        starts = np.broadcast_to(
            np.asarray(bool(episode_start) if np.ndim(episode_start) == 0 else episode_start, dtype=bool),
            (len(frames),),
        )
        histories = self.__dict__.get("_predict_histories")
        if histories is None or len(histories) != len(frames):
            histories = self._predict_histories = [self.frame_history() for _ in frames]
            starts = np.ones(len(frames), dtype=bool)
        for history, frame, start in zip(histories, frames, starts):
            history.push(frame.astype(self.frame_dtype, copy=False), first=bool(start))
        states = np.concatenate([history.latest() for history in histories])
        actions, _ = self.act(states, explore=not deterministic)
        if self.continuous:
            space = self.env.action_space
            actions = np.clip(
                np.asarray(actions, dtype=space.dtype).reshape(len(frames), *space.shape), space.low, space.high
            )
            return (actions if batched else actions[0]), state
        actions = np.asarray(actions, dtype=np.int64)
        return (actions if batched else int(actions[0])), state

    def evaluate(
        self,
        episodes: int = 20,
        env=None,
        seed: int | None = None,
        explore: bool = False,
        search: int = 0,
        on_episode: Callable[[int, float], None] | None = None,
    ) -> np.ndarray:
        """Returns of ``episodes`` greedy episodes (no exploration, no dropout, no learning).

        ``explore=True`` picks actions as training does instead (epsilon-greedy
        for DQN, sampled from the policy for PG), still without learning.
        ``search=N`` plays each move by a PUCT search of N simulations (:meth:`search_action`).
        ``seed`` seeds episode ``i``'s reset with ``seed + i``, so evaluations at the same seed play the same
        episodes; it is not used on the training env itself (an env object with ``concurrency`` 1), whose
        training episodes a reseed would repeat.
        ``on_episode(i, total)`` is called as episode ``i`` (from 0) ends, with its return, so that a caller can
        report each one (``--play``) and keep the finished ones if the rest are interrupted.

        Uses a fresh copy of the environment when the agent was given an env id
        or callable, so evaluation never disturbs training episodes. On the fused path
        (:attr:`fused`), greedy episodes of the agent's own env play side by side in one compiled call.
        """
        if self.fused is not None and env is None and not explore and not search:
            returns = self.fused.evaluate(episodes, seed)  # one compiled call: the episodes end together
            for i, total in enumerate(returns):
                if on_episode is not None:
                    on_episode(i, float(total))
            return returns
        if env is None:
            if self._eval_env is None:  # training steps self.env only when concurrency is 1
                self._eval_env = self._make_env() if self.env_spec and self.concurrency == 1 else self.env
            env = self._eval_env
            if env is self.env and self.concurrency == 1:
                seed = None
        history = self.frame_history()
        returns = []
        for i in range(episodes):
            obs, info = reset_env(env, None if seed is None else seed + i)
            history.push(obs, first=True)
            total, done, moves = 0.0, False, 0
            while not done:
                if search:
                    action = self.search_action(env, search, seed=moves)
                else:
                    actions, _ = self.act(history.latest(), explore=explore, masks=action_masks(info, 1))
                    action = actions[0]  # an integer, or a float vector for a Box action space
                moves += 1
                obs, reward, terminated, truncated, info = step_env(env, action if np.ndim(action) else int(action))
                history.push(obs, first=False)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
            if on_episode is not None:
                on_episode(i, total)
        return np.asarray(returns)

    # -- play-time search (kerlym.puct) ---------------------------------------
    def position_values(self, states: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Priors ``[B, A]`` over each state's legal actions (``masks``) and values ``[B]``, for a search.

        Agents with a value to search with override it; this one has none.
        """
        raise ValueError(f"-a {self.name} has no value estimate to search with; --search needs dqn, ddqn, a2c or ppo")

    def search_action(self, env, simulations: int, seed: int = 0) -> int:
        """The move of a PUCT search (:func:`kerlym.puct.search`) of ``simulations`` from ``env``'s game state.

        The search proves what it can (``solve``: a move whose reply wins for the opponent is a proven loss, and a
        proven win is played, ending the search early); the network's values score the rest.

        Args:
            env: an ``openspiel:GAME`` env (:class:`kerlym.envs.openspiel.OpenSpielEnv`, wrapped or not) at the
                agent's turn; its state is cloned, never changed.
            simulations: the search's simulations, each one leaf evaluation.
            seed: orders children of equal score; the same seed gives the same search.

        Raises:
            ValueError: ``env`` is not an OpenSpiel game, or this agent has no value to search with (one line).
        """
        from kerlym import puct

        game = getattr(env, "unwrapped", env)
        if not getattr(game, "searchable", False):
            raise ValueError(f"--search needs an OpenSpiel game env (-e openspiel:GAME), not {type(game).__name__}")
        actions = game.search_actions()  # this env's action for each of OpenSpiel's (Go: rows flipped)

        def positions(observations, masks):
            env_masks = np.zeros((len(masks), self.num_actions), dtype=bool)
            env_masks[:, actions] = masks
            priors, values = self._search_positions(observations, env_masks)
            return np.asarray(priors)[:, actions], values

        root = puct.search(game.state, positions, game.search_observation, simulations, seed, solve=True)
        return int(actions[root.best_child().action])

    def _search_positions(self, observations: np.ndarray, masks: np.ndarray):
        """:meth:`position_values` of raw observations, each stacked as an episode's first frame."""
        fn = self.preprocessor
        states = []
        for obs in observations:
            if fn is not None and not getattr(fn, "wraps_env", False):
                obs = np.asarray(fn(obs))
            history = self.frame_history()
            history.push(obs.astype(self.frame_dtype, copy=False), first=True)
            states.append(history.latest())
        return self.position_values(np.concatenate(states), masks)

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
            "epsilon": float(self.epsilon if self.epsilon is not None else 0.0),
            "rng": self.rng.bit_generator.state,
        }
        arrays = {f"optimizer/{i}": np.asarray(v.numpy()) for i, v in enumerate(self.model.optimizer.variables)}
        if self.pool is not None:
            meta["self_play"], pool_arrays = self.pool.get_state()
            arrays.update(pool_arrays)
        return meta, arrays

    def set_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`get_state` returned (the model weights are loaded separately)."""
        self.total_steps = int(meta["total_steps"])
        self.episode = int(meta["episode"])
        self.updates = int(meta["updates"])
        if self.epsilon is not None:
            self.epsilon = float(meta["epsilon"])
        self.rng.bit_generator.state = meta["rng"]
        variables = self.model.optimizer.variables
        for i, v in enumerate(variables):
            v.assign(arrays[f"optimizer/{i}"])
        if self.pool is not None and "self_play" in meta:
            self.pool.set_state(meta["self_play"], arrays)

    def start_from(self, weights: list) -> None:
        """Give this untrained agent's networks ``weights``, a trained agent's (``--trained-agent``).

        ``weights`` are in ``model.get_weights()``'s order, from a network built by the same factory.

        Raises:
            ValueError: the weights do not fit this agent's network.
        """
        self.model.set_weights(weights)

    def in_flight_state(self) -> tuple[dict, dict[str, np.ndarray]] | None:
        """What this agent holds of the episodes in progress (a partial rollout), for an exact resume.

        ``None``: the agent cannot save it, and a resumed run starts new episodes.
        """
        return None

    def restore_in_flight(self, meta: dict, arrays: dict[str, np.ndarray]) -> bool:
        """Restore what :meth:`in_flight_state` returned; False (nothing changed) where the agent cannot."""
        return False

    def request_stop(self) -> None:
        """Ask :meth:`learn` to return after the current step (safe from a signal handler)."""
        self.stop_requested = True

    def schedule_exploration(self, total_steps: int) -> None:
        """Set the exploration rate for ``total_steps`` where it follows a schedule in steps (DQN's epsilon)."""

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
        from kerlym.backend import tensorflow_left_alone

        with tensorflow_left_alone():
            self.greedy_model.save(path)
