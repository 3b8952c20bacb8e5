"""What every kerlym agent shares: the environment, observation pipeline and episode loop.

Data flows one way: env -> preprocessor -> frame history (stacking and
difference frames) -> ``act`` -> env step -> the agent's ``observe`` hook.
Subclasses implement :meth:`Agent.act`, :meth:`Agent.observe` and the other
hooks; they never touch the loop itself.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import warnings
import weakref
from collections.abc import Callable

import numpy as np

from kerlym import preproc
from kerlym.config import DTYPE_POLICIES, AgentConfig, ConfigError, canonical, field_names
from kerlym.envs import make_env
from kerlym.memory import FrameRing
from kerlym.runs import first_line

# Keras 1 spellings (the original KeRLym's factories) and what Keras 3 calls them.
KERAS1_NAMES = {
    "init": "kernel_initializer=",
    "lr": "learning_rate=",
    "nb_filter": "filters=",
    "nb_row": "kernel_size=",
    "nb_col": "kernel_size=",
    "border_mode": "padding=",
    "subsample": "strides=",
    "output_dim": "units=",
    "W_regularizer": "kernel_regularizer=",
    "b_regularizer": "bias_regularizer=",
    "Convolution2D": "Conv2D",
    "Convolution1D": "Conv1D",
    "pool_length": "pool_size=",
    "nb_epoch": "epochs=",
}
# Keras 3's error for a layer whose first argument went in under its Keras 1 keyword names no keyword at all.
_MISSING_ARGUMENT = {"filters": "nb_filter", "units": "output_dim"}


def keras1_hint(message: str) -> str | None:
    """A hint naming the Keras 3 spelling of a Keras 1 name in a model factory's error, or ``None``."""
    quoted = re.findall(r"'(\w+)'", message)
    old = [name for name in quoted if name in KERAS1_NAMES]
    if old:
        return "Keras 3 spells " + ", ".join(f"{name} as {KERAS1_NAMES[name]}" for name in dict.fromkeys(old))
    missing = re.search(r"missing 1 required positional argument: '(\w+)'", message)
    if missing and missing.group(1) in _MISSING_ARGUMENT:
        name = missing.group(1)
        return f"Keras 3 spells {_MISSING_ARGUMENT[name]}= as {name}= (or pass it first, positionally)"
    return None


def factory_name(factory) -> str:
    return getattr(factory, "__name__", repr(factory))


def _named_parameters(fn) -> set[str]:
    """The keyword arguments a function names explicitly (not its ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return set()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in params if p.kind in kinds}


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
        if terminated or truncated:  # the new episode's first observation and info take the old one's place
            final_obs, final_info = obs, info
            obs, info = self.env.reset()
            info = {**info, "final_obs": [final_obs], "final_info": final_info}
        return [obs], np.array([reward], dtype=np.float64), np.array([terminated]), np.array([truncated]), info

    def close(self):
        self.env.close()


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

    ``concurrency`` env copies step in parallel (Gymnasium's ``AsyncVectorEnv``, or ale-py's
    ``AtariVectorEnv`` for Atari ids with the ``atari`` preprocessor) and feed the one learner;
    actions for all come from one batched call. ``dtype_policy`` is the Keras dtype policy the
    model factory builds under, set only while the factory runs: with ``"mixed_bfloat16"`` layers
    compute in bfloat16 while weights and optimizer state stay float32 and outputs are cast to
    float32 for the loss. A factory's own output layer should compute in float32
    (``dtype="float32"``), or a warning says its outputs are rounded first.
    """

    name = "agent"
    Config = AgentConfig
    default_network = "simple_dnn"
    continuous_actions = False  # whether the agent also takes Box action spaces

    def __init__(self, env, config: AgentConfig | None = None, *, enable_plots: bool = False, **kwargs):
        import gymnasium as gym
        import keras

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
            keras.utils.set_random_seed(self.seed)
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
        self._losses: list[float] = []
        self._reset_seed = self.seed
        self._stop = False

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
        accepted = _named_parameters(factory)
        for key in rest:
            if key not in accepted:
                close = difflib.get_close_matches(key, sorted(names | accepted), n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise TypeError(
                    f"{cls.__name__} got an unexpected argument {key!r}: it is neither a setting of "
                    f"{cls.Config.__name__} nor a parameter that {factory_name(factory)} names{hint}"
                )
        return config, rest

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
        except (TypeError, ValueError, AttributeError) as e:
            hint = keras1_hint(str(e))
            if hint is None:
                raise
            raise type(e)(f"{first_line(e)}; {hint}") from e
        finally:
            keras.config.set_dtype_policy(previous)
        if not isinstance(model, keras.Model):
            raise ValueError(f"{name} must return a keras.Model, got {type(model).__name__}")
        self.check_outputs(model, name)
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

    def after_step(self, steps_before: int) -> None:
        """Called once per (vector) step, after :meth:`observe`; ``total_steps`` was ``steps_before``."""

    def end_episode(self, stream: int = 0) -> dict:
        """Called after each training episode; returns extra statistics for its row."""
        return {}

    # -- the loop ---------------------------------------------------------
    def vector_env(self):
        """The envs that training steps: ``concurrency`` copies behind Gymnasium's vector-env interface.

        One env steps in this process; N copies step in Gymnasium's
        ``AsyncVectorEnv`` worker processes (``vector_env="sync"``: its
        ``SyncVectorEnv``, in turn in this process) or, for ALE ids with the
        ``atari`` preprocessor, in ale-py's ``AtariVectorEnv`` C++ threads.

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
                cls = gym.vector.SyncVectorEnv if self.config.vector_env == "sync" else gym.vector.AsyncVectorEnv
                self._vector_env = cls(fns, autoreset_mode=mode)
                # Worker processes end with the program even if close() is never called.
                weakref.finalize(self, self._vector_env.close)
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
        verbose: int = 1,
        tensorboard: bool | str = False,
    ) -> list[dict]:
        """Train until ``max_steps`` env steps or ``max_episodes`` episodes (forever if neither).

        Runs :class:`kerlym.runner.Runner`, as the command does: ``verbose=1`` prints a line
        per episode, ``0`` nothing. Ctrl-C (or :meth:`request_stop`) ends training after the
        current step and returns normally, the agent intact. ``callback(agent, row)`` runs
        after each episode with its statistics; returning ``True`` stops training.
        ``step_callback(agent)`` runs about every 100 env steps. Unfinished episodes are
        dropped when training stops. Returns the per-episode statistics.

        In a terminal, a bounded run also shows a progress bar with its ETA. ``tensorboard=True``
        writes TensorBoard event files into a new folder under ``./runs`` (view them with
        ``tensorboard --logdir runs``); a string names the folder instead.
        """
        import os

        from kerlym import sinks
        from kerlym.runner import Runner

        outputs = []
        if verbose:
            total_steps = None if max_steps is None else self.total_steps + max_steps
            total_episodes = None if max_episodes is None else self.episode + max_episodes
            bar = sinks.progress_bar(total_steps, total_episodes, self)
            outputs = [sinks.Console(bar=bar)] + ([bar] if bar is not None else [])
        if tensorboard:
            from kerlym import runs
            from kerlym.config import to_dict

            env_id = self._env_id() or type(self.env.unwrapped).__name__
            if isinstance(tensorboard, str):
                log_dir = view = tensorboard
            else:
                log_dir = os.path.join(runs.new_run_dir("runs", env_id.replace(":", "_"), self.name), "tensorboard")
                view = "runs"
            if verbose:
                print(f"TensorBoard: {log_dir}  (view: tensorboard --logdir {view})")
            outputs.append(sinks.TensorBoard(log_dir, {"env": env_id, "agent": self.name, **to_dict(self.config)}))
        if self.enable_plots:
            env_id = self._env_id() or type(self.env.unwrapped).__name__
            outputs.append(sinks.LivePlot(".", self.name, env_id, 10, self.episodes, values=self.name != "pg"))
        import signal

        runner = Runner(self, sinks=outputs, signals=(signal.SIGINT,))
        return runner.run(max_steps, max_episodes, callback, step_callback)

    def predict(self, observation, deterministic: bool = True, episode_start: bool = False) -> int:
        """The action for one raw observation of the env, as Stable-Baselines3's ``model.predict`` gives.

        The observation goes through the agent's preprocessor and joins the last ``nframes - 1``
        ones given to ``predict`` (and their differences, with ``difference_obs``), as in training.
        Pass ``episode_start=True`` with each episode's first observation (the first call starts
        one anyway), so frames of the previous episode are not stacked with it. An env-wrapping
        preprocessor (``atari``: frame skip and max-pool) cannot apply to one observation:
        give it the observations of ``agent.env``, which are already preprocessed.

        Args:
            observation: one observation, as ``env.reset`` or ``env.step`` return it.
            deterministic: the greedy action (``False``: as training explores, epsilon-greedy or sampled).
            episode_start: ``observation`` begins a new episode.
        """
        frame = np.asarray(observation)
        fn = self.preprocessor
        if fn is not None and not getattr(fn, "wraps_env", False) and frame.shape != self.frame_shape:
            frame = np.asarray(fn(frame))
        if frame.shape != self.frame_shape:
            raise ValueError(f"predict expects an observation of shape {self.frame_shape}, got {frame.shape}")
        history = getattr(self, "_predict_history", None)
        if history is None:
            history = self._predict_history = self.frame_history()
            episode_start = True
        history.push(frame.astype(self.frame_dtype, copy=False), first=episode_start)
        actions, _ = self.act(history.latest(), explore=not deterministic)
        return int(actions[0])

    def evaluate(self, episodes: int = 20, env=None, seed: int | None = None, explore: bool = False) -> np.ndarray:
        """Returns of ``episodes`` greedy episodes (no exploration, no dropout, no learning).

        ``explore=True`` picks actions as training does instead (epsilon-greedy
        for DQN, sampled from the policy for PG), still without learning.

        Uses a fresh copy of the environment when the agent was given an env id
        or callable, so evaluation never disturbs training episodes.
        """
        from kerlym.runner import evaluate

        if env is None:
            if self._eval_env is None:  # training steps self.env only when concurrency is 1
                self._eval_env = self._make_env() if self.env_spec and self.concurrency == 1 else self.env
            env = self._eval_env
        return evaluate(self, episodes, env=env, seed=seed, explore=explore)

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
