"""kerlym's settings as typed, frozen dataclasses: one per agent family plus one for the run.

Every setting has one name (the Python API's), one default, one docstring and
one validation, here. The command line's flags are generated from these
fields (``kerlym.main``); each field's metadata gives the original KeRLym
flag spelling and, where the original command's default differed from the
Python API's, the command's default. Presets (:mod:`kerlym.presets`) are
dictionaries of these field names, checked against the same classes.

This module imports only the standard library, so that ``kerlym --help`` and
argument errors stay instant.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields, replace  # noqa: F401 (replace: used as C.replace)
from typing import ClassVar

DTYPE_POLICIES = ("float32", "mixed_bfloat16")
REPLAY_MODES = ("newest", "uniform")
PREPROCESSOR_NAMES = ("none", "atari", "karpathy")
SCHEDULES = ("constant", "linear")
ACTOR_MODES = ("local", "process", "ray")
VECTOR_MODES = ("async", "sync")


class ConfigError(ValueError):
    """A setting, or a combination of settings, that can never train; the message is one line."""


# The --help groups, in order: a field's ``topic`` names its group, and the group's title.
TOPICS = {
    "environment": "environment: which env, and what the agent observes of it",
    "agent": "agent: the learning algorithm and its settings",
    "network": "network and optimizer",
    "schedule": "schedule: when and how much to train, exploration over time",
    "run control": "run control: how long, seeds, checkpoints, resume",
    "output": "output: what the run prints, plots and writes",
    "evaluation": "evaluation: greedy evaluations during and after training",
}


def setting(default, help: str, flags: tuple[str, ...] = (), cli_default=MISSING, topic: str | None = None, **meta):
    """A config field with its docstring (``help``), command-line ``flags`` and the command's default if it differs.

    Args:
        default: the Python API's default.
        help: one line saying what the setting does (the flag's help).
        flags: the command-line spellings, e.g. ``("-t", "--num_frames")``; none: not a flag.
        cli_default: the command's default where the original command's differed from the Python API's.
        topic: the ``--help`` group of the flag, a key of ``TOPICS``.
        **meta: more for the flag: ``choices``, ``metavar``, ``cli_nargs``, ``cli_type``.
    """
    if flags and topic not in TOPICS:
        raise ValueError(f"the flag {flags[-1]} needs a topic, one of: {', '.join(TOPICS)}")
    metadata = {"help": help, "flags": flags, "cli_default": cli_default, "topic": topic, **meta}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class RunConfig:
    """What the run does around the agent: which env and agent, how long, what it writes."""

    env: str = setting("MountainCar-v0", "Which Gymnasium environment to run", ("-e", "--env"), topic="environment")
    agent: str = setting("ddqn", "Which learning algorithm to use", ("-a", "--agent"), topic="agent")
    env_kwargs: dict | None = setting(
        None,
        "Keyword arguments for the env, as KEY=VALUE (values read as Python literals, else as strings)",
        ("--env-kwargs",),
        cli_nargs="+",
        metavar="KEY=VALUE",
        topic="environment",
    )
    gym_packages: tuple[str, ...] | None = setting(
        None,
        "Modules to import before making the env, for envs they register (-e MODULE:ENV_ID also imports MODULE)",
        ("--gym-packages",),
        cli_nargs="+",
        metavar="MODULE",
        topic="environment",
    )
    steps: int | None = setting(
        None,
        "Stop after this many env steps in total (default: run until Ctrl-C)",
        ("--steps",),
        topic="run control",
    )
    episodes: int | None = setting(None, "Stop after this many episodes in total", ("--episodes",), topic="run control")
    outdir: str = setting("runs", "Folder that holds run folders", ("--outdir",), topic="output")
    plots: bool = setting(
        False, "Plot learning statistics while running (PNG in the run folder)", ("-P", "--plots"), topic="output"
    )
    plot_rate: int = setting(10, "Plot update rate in episodes (and bin size)", ("-F", "--plot_rate"), topic="output")
    submit: bool = setting(
        False,
        "Write a results bundle in the run folder (OpenAI's upload service is gone): episode statistics, a greedy "
        "evaluation as JSON and evaluation videos",
        ("-S", "--submit"),
        topic="output",
    )
    render: bool = setting(
        False, "Render the environment in a window (needs a display)", ("-R", "--render"), topic="output"
    )
    checkpoint_every: int = setting(
        10_000, "Env steps between checkpoints", ("--checkpoint_every",), topic="run control"
    )
    save_memory: bool = setting(
        False, "Include the replay memory in checkpoints", ("--save_memory",), topic="run control"
    )
    eval_episodes: int = setting(
        20, "Greedy episodes per evaluation (--eval_every, -S, --play)", ("--eval_episodes",), topic="evaluation"
    )
    eval_every: int | None = setting(
        None,
        "Evaluate greedily every N steps; keeps the best model as best.keras",
        ("--eval_every",),
        topic="evaluation",
    )
    quiet: bool = setting(
        False, "Print a progress line every 10 s instead of one per episode", ("-q", "--quiet"), topic="output"
    )
    tensorboard: bool = setting(
        False,
        "Write TensorBoard event files into the run folder (view: tensorboard --logdir runs)",
        ("--tensorboard",),
        topic="output",
    )

    def __post_init__(self):
        if self.env_kwargs is not None and not isinstance(self.env_kwargs, dict):
            raise ConfigError(f"env_kwargs must be a dict of keyword arguments, got {self.env_kwargs!r}")
        for name in ("plot_rate", "checkpoint_every"):
            _positive(name, getattr(self, name))
        for name in ("steps", "episodes", "eval_episodes", "eval_every"):
            _positive(name, getattr(self, name), optional=True)


@dataclass(frozen=True)
class AgentConfig:
    """Settings every agent shares: the observation pipeline, the network and its optimizer."""

    # Which built-in networks fit the agent: "q" (one value per action), "policy" (action preferences) or
    # "actor_critic" (a policy head and a value head). The actor-critic agents also take Box actions.
    network_kind: ClassVar[str] = "q"

    nframes: int = setting(
        1,
        "Number of sequential observations stacked into one state",
        ("-t", "--num_frames"),
        cli_default=2,
        topic="environment",
    )
    difference_obs: bool = setting(
        False, "Compute difference images for training", ("-i", "--difference"), topic="environment"
    )
    preprocessor: str = setting(
        "none",
        "Observation preprocessor",
        ("-E", "--preprocessor"),
        choices=PREPROCESSOR_NAMES,
        topic="environment",
    )
    modelfactory: str | None = setting(
        None,
        "NN architecture (a registered network name; the Python API also takes a factory)",
        ("-n", "--net"),
        topic="network",
    )
    dropout: float = setting(0.0, "Dropout rate in the NN", ("-o", "--dropout"), cli_default=0.5, topic="network")
    learning_rate: float = setting(1e-4, "Optimizer learning rate", ("-r", "--learning_rate"), topic="network")
    optimizer: str | None = setting(
        None,
        "Optimizer the built-in networks compile (any Keras name, or rmsprop_tf, SB3's RMSpropTFLike; "
        "default: the network's own)",
        ("--optimizer",),
        topic="network",
    )
    loss: str | None = setting(
        None,
        "Loss the built-in networks compile (any Keras name, e.g. huber; default: the network's own)",
        ("--loss",),
        topic="network",
    )
    clipnorm: float | None = setting(
        None,
        "Clip the global gradient norm (SB3's max_grad_norm; default: no clipping)",
        ("--clipnorm",),
        topic="network",
    )
    discount: float = setting(0.99, "Discount rate for future rewards", ("-d", "--discount"), topic="agent")
    seed: int | None = setting(None, "Random seed for the env, NumPy and Keras", ("--seed",), topic="run control")
    concurrency: int = setting(
        1,
        "Env copies feeding one learner, stepping in parallel processes (see --vector_env)",
        ("-c", "--concurrency"),
        topic="environment",
    )
    dtype_policy: str | None = setting(
        None,
        "Keras dtype policy of the networks: float32 or mixed_bfloat16 (layers compute in bfloat16, weights and "
        "losses stay float32; default: Keras's global policy)",
        ("--dtype_policy",),
        cli_default="float32",
        choices=DTYPE_POLICIES,
        topic="network",
    )
    vector_env: str = setting(
        "async",
        "How -c N env copies step: async (Gymnasium's AsyncVectorEnv, a worker process each) or sync "
        "(SyncVectorEnv, in turn in this process: faster for cheap envs such as CartPole); ALE ids with the atari "
        "preprocessor use ale-py's AtariVectorEnv either way",
        ("--vector_env",),
        choices=VECTOR_MODES,
        topic="environment",
    )
    actors: str = setting(
        "local",
        "Who steps the envs and acts: local (this process, in turn with the updates), process (one actor "
        "process with its own copy of the network, stepping while the learner updates) or ray (the -c N envs as "
        "N Ray actors; -c N --ray sets it)",
        ("--actors",),
        choices=ACTOR_MODES,
        topic="run control",
    )
    actor_sync_every: int | None = setting(
        None,
        "With --actors process or ray: learner updates between weight pushes to the actors (default: every update "
        "for pg, a2c, a3c and ppo; for dqn and ddqn, the updates of about 400 env steps, as Ape-X's actors)",
        ("--actor_sync_every",),
        topic="run control",
    )

    def __post_init__(self):
        _positive("nframes", self.nframes)
        _positive("concurrency", self.concurrency)
        _positive("learning_rate", self.learning_rate)
        _positive("clipnorm", self.clipnorm, optional=True)
        _within("discount", self.discount, 0.0, 1.0)
        if not (math.isfinite(self.dropout) and 0.0 <= self.dropout < 1.0):
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if isinstance(self.preprocessor, str):  # the Python API may pass a function instead
            _choice("preprocessor", self.preprocessor, PREPROCESSOR_NAMES)
        if self.dtype_policy is not None:
            _choice("dtype policy", self.dtype_policy, DTYPE_POLICIES)
        _choice("actors", self.actors, ACTOR_MODES)
        _choice("vector_env", self.vector_env, VECTOR_MODES)
        _positive("actor_sync_every", self.actor_sync_every, optional=True)


@dataclass(frozen=True)
class DQNConfig(AgentConfig):
    """Deep Q-learning (``dqn``) and double DQN (``ddqn``)."""

    epsilon: float = setting(
        0.1, "Exploration (1.0) vs exploitation (0.0) action probability", ("-p", "--epsilon"), topic="agent"
    )
    epsilon_decay: float = setting(
        0.0,
        "Rate of epsilon decay per episode: epsilon *= (1-decay); not used with --exploration_steps",
        ("-D", "--epsilon_decay"),
        cli_default=1e-4,
        topic="schedule",
    )
    epsilon_min: float = setting(0.05, "Min epsilon value after decay", ("-s", "--epsilon_min"), topic="schedule")
    epsilon_decay_steps: int | None = setting(
        None,
        "Anneal epsilon linearly to -s over this many steps instead of -D",
        ("--exploration_steps",),
        topic="schedule",
    )
    update_freq: int = setting(
        1000, "Frequency of NN updates specified in time steps", ("-f", "--update_freq"), topic="schedule"
    )
    update_nsamp: int = setting(
        1100, "Number of samples to train on each update", ("-u", "--update_size"), topic="schedule"
    )
    batch_size: int = setting(32, "Batch size during NN training", ("-b", "--batch_size"), topic="schedule")
    max_memory: int = setting(100_000, "Max number of samples (frames) to remember", ("-m", "--max_mem"), topic="agent")
    replay: str = setting(
        "newest",
        "What each update samples: newest (the newest -f transitions plus uniform replay, the original's scheme) "
        "or uniform (all from replay, as SB3 does)",
        ("--replay",),
        choices=REPLAY_MODES,
        topic="agent",
    )
    n_step: int = setting(
        1,
        "Rewards summed into each TD target before it bootstraps (n-step returns; 1: one-step Q-learning)",
        ("--n_step",),
        topic="agent",
    )
    dueling: bool = setting(
        False,
        "Dueling network: a value and an advantage stream in place of the model factory's output layer, "
        "Q = V + A - mean(A)",
        ("--dueling",),
        topic="agent",
    )
    symmetries: bool = setting(
        False,
        "Train on each replay sample under a random one of the env's symmetries (envs that define symmetries(): "
        "Go's 8 board rotations and reflections)",
        ("--symmetries",),
        topic="agent",
    )
    average_symmetries: bool = setting(
        False,
        "Greedy actions (evaluation, --play, predict) take Q averaged over the env's symmetries, "
        "each mapped back to the board as played",
        ("--average_symmetries",),
        topic="agent",
    )
    target_update_freq: int | None = setting(
        None,
        "Env steps between target-network syncs (default: -f)",
        ("--target_update",),
        topic="schedule",
    )
    learning_starts: int | None = setting(
        None,
        "Transitions in memory before the first update, or a full memory if that comes first (default: -b)",
        ("--learning_starts",),
        topic="schedule",
    )
    ema_steps: int | None = setting(
        None,
        "Act greedily (evaluation, --play, best.keras) with an exponential moving average of the Q-network's "
        "weights over about this many env steps (default, and 0: the online network)",
        ("--ema",),
        metavar="STEPS",
        topic="agent",
    )
    def __post_init__(self):
        super().__post_init__()
        _within("epsilon", self.epsilon, 0.0, 1.0)
        _within("epsilon_min", self.epsilon_min, 0.0, 1.0)
        _within("epsilon_decay", self.epsilon_decay, 0.0, 1.0)
        for name in ("update_freq", "update_nsamp", "batch_size", "max_memory", "n_step"):
            _positive(name, getattr(self, name))
        for name in ("epsilon_decay_steps", "target_update_freq", "ema_steps"):
            _positive(name, getattr(self, name), optional=True)
        _choice("replay", self.replay, REPLAY_MODES)
        if self.max_memory < self.batch_size:
            raise ConfigError(
                f"{label('max_memory')} ({self.max_memory}) must be at least the batch size ({self.batch_size})"
            )
        if self.update_nsamp < self.batch_size:
            raise ConfigError(
                f"{label('update_nsamp')} ({self.update_nsamp}) must be at least the batch size ({self.batch_size})"
            )
        if self.learning_starts is not None and self.learning_starts < 0:
            raise ConfigError(f"learning_starts must be at least 0, got {self.learning_starts}")


@dataclass(frozen=True)
class PGConfig(AgentConfig):
    """REINFORCE policy gradient (``pg``)."""

    network_kind: ClassVar[str] = "policy"

    dropout: float = setting(0.5, "Dropout rate in the NN", ("-o", "--dropout"), topic="network")
    reset_on_score: bool | None = setting(
        None,
        "Reset the running return at each point (1) or not (0) (default: on for Pong)",
        ("--pong_reset",),
        cli_type="01",
        topic="agent",
    )


@dataclass(frozen=True)
class ActorCriticConfig(AgentConfig):
    """What the actor-critic agents (``a2c``, ``a3c``, ``ppo``) share; SB3's A2C defaults."""

    network_kind: ClassVar[str] = "actor_critic"

    nframes: int = setting(
        1, "Number of sequential observations stacked into one state", ("-t", "--num_frames"), topic="environment"
    )
    average_symmetries: bool = setting(
        False,
        "Greedy actions (evaluation, --play, predict) take the policy averaged over the env's symmetries, "
        "each mapped back to the board as played (discrete actions)",
        ("--average_symmetries",),
        topic="agent",
    )
    dropout: float = setting(0.0, "Dropout rate in the NN", ("-o", "--dropout"), topic="network")
    learning_rate: float = setting(
        7e-4,
        "Optimizer learning rate (the start of --lr_schedule)",
        ("-r", "--learning_rate"),
        topic="network",
    )
    clipnorm: float | None = setting(
        0.5, "Clip the global gradient norm (SB3's max_grad_norm)", ("--clipnorm",), topic="network"
    )
    n_steps: int = setting(
        5, "Rollout length: env steps per env copy between updates", ("--n_steps",), topic="schedule"
    )
    gae_lambda: float = setting(1.0, "GAE lambda (1: n-step returns)", ("--gae_lambda",), topic="agent")
    ent_coef: float = setting(0.0, "Weight of the entropy bonus in the loss", ("--ent_coef",), topic="agent")
    vf_coef: float = setting(0.5, "Weight of the value loss in the loss", ("--vf_coef",), topic="agent")
    normalize_advantage: bool = setting(
        False,
        "Standardise the advantages of each minibatch",
        ("--normalize_advantage",),
        topic="agent",
    )
    lr_schedule: str = setting(
        "constant",
        "Learning rate over the run: constant, or linear to 0 at --steps (the RL Zoo's lin_)",
        ("--lr_schedule",),
        choices=SCHEDULES,
        topic="schedule",
    )
    normalize_obs: bool = setting(
        False,
        "Normalise observations with running statistics, as SB3's VecNormalize",
        ("--normalize_obs",),
        topic="environment",
    )
    normalize_reward: bool = setting(
        False,
        "Scale rewards by the running deviation of the discounted return (VecNormalize)",
        ("--normalize_reward",),
        topic="environment",
    )
    log_std_init: float = setting(
        0.0,
        "Initial log standard deviation of the Gaussian policy of Box actions (SB3's log_std_init)",
        ("--log_std_init",),
        topic="agent",
    )

    def __post_init__(self):
        super().__post_init__()
        _positive("n_steps", self.n_steps)
        if not math.isfinite(self.log_std_init):
            raise ConfigError(f"log_std_init must be a finite number, got {self.log_std_init}")
        _within("gae_lambda", self.gae_lambda, 0.0, 1.0)
        for name in ("ent_coef", "vf_coef"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ConfigError(f"{name} must be at least 0, got {getattr(self, name)}")
        _choice("lr_schedule", self.lr_schedule, SCHEDULES)


@dataclass(frozen=True)
class A2CConfig(ActorCriticConfig):
    """Synchronous advantage actor-critic (``a2c``, and ``a3c``, the original's name for it)."""


@dataclass(frozen=True)
class PPOConfig(ActorCriticConfig):
    """Proximal policy optimisation (``ppo``); SB3's PPO defaults."""

    learning_rate: float = setting(
        3e-4,
        "Optimizer learning rate (the start of --lr_schedule)",
        ("-r", "--learning_rate"),
        topic="network",
    )
    n_steps: int = setting(
        2048, "Rollout length: env steps per env copy between updates", ("--n_steps",), topic="schedule"
    )
    gae_lambda: float = setting(0.95, "GAE lambda (1: n-step returns)", ("--gae_lambda",), topic="agent")
    normalize_advantage: bool = setting(
        True,
        "Standardise the advantages of each minibatch",
        ("--normalize_advantage",),
        topic="agent",
    )
    batch_size: int = setting(64, "Minibatch size of the PPO epochs", ("-b", "--batch_size"), topic="schedule")
    n_epochs: int = setting(10, "Passes over each rollout", ("--n_epochs",), topic="schedule")
    clip_range: float = setting(
        0.2, "PPO's clip range epsilon (the start of --clip_schedule)", ("--clip_range",), topic="agent"
    )
    clip_schedule: str = setting(
        "constant",
        "Clip range over the run: constant, or linear to 0 at --steps",
        ("--clip_schedule",),
        choices=SCHEDULES,
        topic="schedule",
    )
    clip_range_vf: float | None = setting(
        None,
        "Clip the value prediction to this distance from the rollout's (default: no clipping)",
        ("--clip_range_vf",),
        topic="agent",
    )

    def __post_init__(self):
        super().__post_init__()
        for name in ("batch_size", "n_epochs", "clip_range"):
            _positive(name, getattr(self, name))
        _positive("clip_range_vf", self.clip_range_vf, optional=True)
        _choice("clip_schedule", self.clip_schedule, SCHEDULES)
        if self.batch_size > self.n_steps * self.concurrency:
            raise ConfigError(
                f"batch_size ({self.batch_size}) must be at most the rollout, n_steps x concurrency "
                f"({self.n_steps} x {self.concurrency})"
            )


# The names config.json used before these classes existed (the command's flag names), and the fields they are now.
OLD_NAMES = {
    "num_frames": "nframes",
    "difference": "difference_obs",
    "net": "modelfactory",
    "max_mem": "max_memory",
    "update_size": "update_nsamp",
    "exploration_steps": "epsilon_decay_steps",
    "target_update": "target_update_freq",
    "ema": "ema_steps",
    "pong_reset": "reset_on_score",
}


def parse_settings(items) -> dict:
    """``["KEY=VALUE", ...]`` as a dict; each value a Python literal (``3``, ``0.5``, ``True``, ``[1, 2]``) or a string.

    Raises:
        ConfigError: an item that is not ``KEY=VALUE`` with an identifier for a key (one line).
    """
    import ast

    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"settings are KEY=VALUE pairs, got {item!r}")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def label(name: str) -> str:
    """A field's name as the user knows it from the command line, e.g. ``max_mem`` for ``max_memory``."""
    for cls in (RunConfig, DQNConfig, PGConfig, PPOConfig):
        for f in fields(cls):
            if f.name == name and f.metadata.get("flags"):
                return f.metadata["flags"][-1].lstrip("-")
    return name


def _positive(name, value, optional=False):
    if value is None and optional:
        return
    if value is None or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{label(name)} must be positive and finite, got {value}")


def _within(name, value, low, high):
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{label(name)} must be in [{low:g}, {high:g}], got {value}")


def _choice(what, value, choices):
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")


def defaults(cls, cli: bool = False) -> dict:
    """A config class's defaults; ``cli``: the command's, where the original command's differ."""
    out = {}
    for f in fields(cls):
        cli_default = f.metadata.get("cli_default", MISSING)
        out[f.name] = cli_default if cli and cli_default is not MISSING else f.default
    return out


# What --resume and --play may change on a saved run; every other setting comes from its config.json.
RUNTIME_FIELDS = (
    "steps",
    "episodes",
    "plots",
    "plot_rate",
    "render",
    "submit",
    "quiet",
    "tensorboard",
    "eval_episodes",
    "eval_every",
    "checkpoint_every",
    "save_memory",
    "dtype_policy",  # weights are float32 under either policy
    "actors",  # where acting runs, not what is learned
    "vector_env",  # how the env copies step
    "actor_sync_every",
)


def field_names(cls) -> list[str]:
    return [f.name for f in fields(cls)]


def config_dict(run: RunConfig, cfg: AgentConfig) -> dict:
    """What a run's ``config.json`` holds: every field of the run and of the agent, by name."""
    return {**to_dict(run), **to_dict(cfg)}


def to_dict(config) -> dict:
    """A config's fields as a JSON-able dict (a factory or preprocessor function is saved by its name)."""
    out = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if callable(value):
            value = getattr(value, "__name__", repr(value))
        out[f.name] = value
    return out
