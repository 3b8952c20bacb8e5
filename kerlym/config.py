"""kerlym's settings as typed, frozen dataclasses: one per agent family plus one for the run.

Every setting is declared once, here: one name (the Python API's keyword and
the command's long flag, ``--max_memory``), one default per class, one
docstring and one validation. A subclass changes an inherited default with
``@configclass(name=value)`` rather than declaring the field again. The
command's flags are generated from these fields (``kerlym.main``); each
declaration adds the original KeRLym spellings (``-m``, ``--max_mem``), which
also stay accepted as Python keywords and in old ``config.json`` files
(:data:`OLD_NAMES`), and, where the original command's default differed from
the Python API's, the command's default. Presets (:mod:`kerlym.presets`) are
dictionaries of these field names, checked against the same classes.

This module imports only the standard library, so that ``kerlym --help`` and
argument errors stay instant.
"""

from __future__ import annotations

import math
import typing
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass, replace  # noqa: F401 (C.replace)

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

# setting(check=NAME): what each check accepts, and the end of its error. None passes where the field's type allows it.
CHECKS = {
    "positive": ("must be positive and finite", lambda v: math.isfinite(v) and v > 0),
    "at least 0": ("must be at least 0", lambda v: math.isfinite(v) and v >= 0),
    "fraction": ("must be in [0, 1]", lambda v: math.isfinite(v) and 0 <= v <= 1),
    "rate": ("must be in [0, 1)", lambda v: math.isfinite(v) and 0 <= v < 1),
    "finite": ("must be a finite number", math.isfinite),
    "keywords": ("must be a dict of keyword arguments", lambda v: isinstance(v, dict)),
}


# Every setting's command-line spellings by field name, as configclass completes them: short flags, --NAME, the rest.
_FLAGS: dict[str, tuple[str, ...]] = {}


def flag(name: str) -> str:
    """A setting as the user types it, every spelling: ``-m/--max_memory/--max_mem`` (``--NAME`` for a non-flag)."""
    return "/".join(_FLAGS.get(name, (f"--{name}",)))


def setting(default, help: str, aliases: tuple[str, ...] = (), cli_default=MISSING, topic=None, check=None, **meta):
    """A config field: its default, docstring (``help``), other command-line spellings and validation.

    Args:
        default: the Python API's default.
        help: one line saying what the setting does (the flag's help), true for every class that has it.
        aliases: the command's spellings besides ``--<field name>``: a short flag, the original's long flag
            (``("-m", "--max_mem")``); its long ones are also accepted as Python keywords and config.json keys.
        cli_default: the command's default where the original command's differed from the Python API's.
        topic: the ``--help`` group of the flag, a key of ``TOPICS``; None: the setting has no flag.
        check: the validation, a key of ``CHECKS`` (``"positive"``); a field with ``choices`` is also checked
            against them.
        **meta: more for the flag: ``choices``, ``metavar``, ``cli_nargs``, ``cli_type``; ``api_function=True``:
            the Python API also takes a function here (a model factory), which passes the checks.
    """
    if topic is not None and topic not in TOPICS or check is not None and check not in CHECKS:
        raise ValueError(f"unknown topic {topic!r} or check {check!r}")
    metadata = {"help": help, "flags": aliases, "cli_default": cli_default, "topic": topic, "check": check, **meta}
    return field(default=default, metadata=metadata)


def _spelled(name: str, f: Field) -> Field:
    """``f`` with ``--<name>`` among its flags: short flags first, then ``--<name>``, then the other long ones."""
    if f.metadata["topic"] is None:
        return f
    given = f.metadata["flags"]
    long = tuple(s for s in given if s.startswith("--") and s != f"--{name}")
    flags = (*(s for s in given if not s.startswith("--")), f"--{name}", *long)
    if _FLAGS.setdefault(name, flags) != flags:
        raise TypeError(f"two declarations of {name!r} disagree on its flags")
    return field(default=f.default, metadata={**f.metadata, "flags": flags})


# Type checkers read a configclass as a frozen dataclass (typing.dataclass_transform, Python 3.11+).
_as_dataclass = getattr(typing, "dataclass_transform", lambda **_: lambda f: f)


@_as_dataclass(frozen_default=True, field_specifiers=(setting,))
def configclass(cls=None, /, **new_defaults):
    """Class decorator: ``cls`` as a frozen dataclass of settings; ``@configclass`` or ``@configclass(name=value)``.

    Each field declared in ``cls`` gets ``--<field name>`` as its long flag, beside the spellings its
    :func:`setting` gives. ``new_defaults`` give fields declared elsewhere (inherited, or a shared setting such as
    :data:`BATCH_SIZE`) another default, for the Python API and the command alike; their help, flags and
    validation stay those of their one declaration.
    """
    if cls is None:
        return lambda cls: configclass(cls, **new_defaults)
    own = cls.__annotations__  # this class's fields only (an empty dict where it declares none)
    for name in own:
        if isinstance(cls.__dict__.get(name), Field):
            setattr(cls, name, _spelled(name, cls.__dict__[name]))
    base = cls.__bases__[0]
    inherited = {f.name: f for f in fields(base)} if is_dataclass(base) else {}
    for name, default in new_defaults.items():
        declared = cls.__dict__.get(name) if name in own else inherited.get(name)
        if not isinstance(declared, Field):
            raise TypeError(f"{cls.__name__} has no setting {name!r} to give a default")
        own.setdefault(name, declared.type)  # the field keeps its place among the inherited ones
        setattr(cls, name, field(default=default, metadata={**declared.metadata, "cli_default": MISSING}))
    return dataclass(frozen=True)(cls)


def _check_fields(config) -> None:
    """Each field's check and choices (a field's one validation); None and functions pass where they may."""
    for f in fields(config):
        value = getattr(config, f.name)
        if (value is None and "None" in str(f.type)) or (callable(value) and f.metadata.get("api_function")):
            continue
        choices, check = f.metadata.get("choices"), f.metadata.get("check")
        if choices and value not in choices:
            raise ConfigError(f"unknown {f.name.replace('_', ' ')} {value!r}; choose one of: {', '.join(choices)}")
        if check and (value is None or not CHECKS[check][1](value)):
            raise ConfigError(f"{flag(f.name)} {CHECKS[check][0]}, got {value!r}")


@configclass
class RunConfig:
    """What the run does around the agent: which env and agent, how long, what it writes."""

    env: str = setting("MountainCar-v0", "Which Gymnasium environment to run", ("-e",), topic="environment")
    agent: str = setting("ddqn", "Which learning algorithm to use", ("-a",), topic="agent")
    env_kwargs: dict | None = setting(
        None,
        "Keyword arguments for the env, as KEY=VALUE (values read as Python literals, else as strings)",
        ("--env-kwargs",),
        cli_nargs="+",
        metavar="KEY=VALUE",
        topic="environment",
        check="keywords",
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
        topic="run control",
        check="positive",
    )
    episodes: int | None = setting(
        None, "Stop after this many episodes in total", topic="run control", check="positive"
    )
    outdir: str = setting("runs", "Folder that holds run folders", topic="output")
    plots: bool = setting(
        False, "Plot learning statistics while running (PNG in the run folder)", ("-P",), topic="output"
    )
    plot_rate: int = setting(
        10, "Plot update rate in episodes (and bin size)", ("-F",), topic="output", check="positive"
    )
    submit: bool = setting(
        False,
        "Write a results bundle in the run folder (OpenAI's upload service is gone): episode statistics, a greedy "
        "evaluation as JSON and evaluation videos",
        ("-S",),
        topic="output",
    )
    render: bool = setting(False, "Render the environment in a window (needs a display)", ("-R",), topic="output")
    checkpoint_every: int = setting(10_000, "Env steps between checkpoints", topic="run control", check="positive")
    save_memory: bool = setting(False, "Include the replay memory in checkpoints", topic="run control")
    eval_episodes: int = setting(
        20, "Greedy episodes per evaluation (--eval_every, -S, --play)", topic="evaluation", check="positive"
    )
    eval_every: int | None = setting(
        None,
        "Evaluate greedily every N steps; keeps the best model as best.keras",
        topic="evaluation",
        check="positive",
    )
    quiet: bool = setting(False, "Print a progress line every 10 s instead of one per episode", ("-q",), topic="output")
    tensorboard: bool = setting(
        False, "Write TensorBoard event files into the run folder (view: tensorboard --logdir runs)", topic="output"
    )

    def __post_init__(self):
        _check_fields(self)


@configclass
class AgentConfig:
    """Settings every agent shares: the observation pipeline, the network and its optimizer."""

    # Which built-in networks fit the agent: "q" (one value per action), "policy" (action preferences) or
    # "actor_critic" (a policy head and a value head). The actor-critic agents also take Box actions.
    network_kind: typing.ClassVar[str] = "q"

    nframes: int = setting(
        1,
        "Number of sequential observations stacked into one state",
        ("-t", "--num_frames"),
        cli_default=2,
        topic="environment",
        check="positive",
    )
    difference_obs: bool = setting(
        False, "Compute difference images for training", ("-i", "--difference"), topic="environment"
    )
    preprocessor: str | None = setting(
        "none", "Observation preprocessor", ("-E",), choices=PREPROCESSOR_NAMES, topic="environment", api_function=True
    )
    modelfactory: str | None = setting(
        None,
        "NN architecture (a registered network name; the Python API also takes a factory)",
        ("-n", "--net"),
        topic="network",
        api_function=True,
    )
    dropout: float = setting(0.0, "Dropout rate in the NN", ("-o",), cli_default=0.5, topic="network", check="rate")
    learning_rate: float = setting(
        1e-4,
        "Optimizer learning rate (with --lr_schedule, its value at the start)",
        ("-r",),
        topic="network",
        check="positive",
    )
    optimizer: str | None = setting(
        None,
        "Optimizer the built-in networks compile (any Keras name, or rmsprop_tf, SB3's RMSpropTFLike; "
        "default: the network's own)",
        topic="network",
    )
    loss: str | None = setting(
        None,
        "Loss the built-in networks compile (any Keras name, e.g. huber; default: the network's own)",
        topic="network",
    )
    clipnorm: float | None = setting(
        None,
        "Clip the global gradient norm (SB3's max_grad_norm; None: no clipping)",
        topic="network",
        check="positive",
    )
    discount: float = setting(0.99, "Discount rate for future rewards", ("-d",), topic="agent", check="fraction")
    seed: int | None = setting(None, "Random seed for the env, NumPy and Keras", topic="run control")
    concurrency: int = setting(
        1,
        "Env copies feeding one learner, stepping in parallel processes (see --vector_env)",
        ("-c",),
        topic="environment",
        check="positive",
    )
    dtype_policy: str | None = setting(
        None,
        "Keras dtype policy of the networks: float32 or mixed_bfloat16 (layers compute in bfloat16, weights and "
        "losses stay float32; default: Keras's global policy)",
        cli_default="float32",
        choices=DTYPE_POLICIES,
        topic="network",
    )
    vector_env: str = setting(
        "async",
        "How -c N env copies step: async (Gymnasium's AsyncVectorEnv, a worker process each) or sync "
        "(SyncVectorEnv, in turn in this process: faster for cheap envs such as CartPole); ALE ids with the atari "
        "preprocessor use ale-py's AtariVectorEnv either way",
        choices=VECTOR_MODES,
        topic="environment",
    )
    actors: str = setting(
        "local",
        "Who steps the envs and acts: local (this process, in turn with the updates), process (one actor "
        "process with its own copy of the network, stepping while the learner updates) or ray (the -c N envs as "
        "N Ray actors; -c N --ray sets it)",
        choices=ACTOR_MODES,
        topic="run control",
    )
    actor_sync_every: int | None = setting(
        None,
        "With --actors process or ray: learner updates between weight pushes to the actors (default: every update "
        "for pg, a2c, a3c and ppo; for dqn and ddqn, the updates of about 400 env steps, as Ape-X's actors)",
        topic="run control",
        check="positive",
    )

    def __post_init__(self):
        _check_fields(self)


# Settings of two agent families but not of every agent: declared once here, named in each family's class.
BATCH_SIZE = setting(
    32,
    "Samples in each gradient step (ppo: in each minibatch of its --n_epochs passes over a rollout)",
    ("-b",),
    topic="schedule",
    check="positive",
)
AVERAGE_SYMMETRIES = setting(
    False,
    "Greedy actions (evaluation, --play, predict) take Q (or, for a2c, a3c and ppo, the policy of discrete "
    "actions) averaged over the env's symmetries, each mapped back to the board as played",
    topic="agent",
)


@configclass
class DQNConfig(AgentConfig):
    """Deep Q-learning (``dqn``) and double DQN (``ddqn``)."""

    epsilon: float = setting(
        0.1, "Exploration (1.0) vs exploitation (0.0) action probability", ("-p",), topic="agent", check="fraction"
    )
    epsilon_decay: float = setting(
        0.0,
        "Rate of epsilon decay per episode: epsilon *= (1-decay); not used with --exploration_steps",
        ("-D",),
        cli_default=1e-4,
        topic="schedule",
        check="fraction",
    )
    epsilon_min: float = setting(0.05, "Min epsilon value after decay", ("-s",), topic="schedule", check="fraction")
    epsilon_decay_steps: int | None = setting(
        None,
        "Anneal epsilon linearly to -s over this many steps instead of -D",
        ("--exploration_steps",),
        topic="schedule",
        check="positive",
    )
    update_freq: int = setting(
        1000, "Frequency of NN updates specified in time steps", ("-f",), topic="schedule", check="positive"
    )
    update_nsamp: int = setting(
        1100, "Number of samples to train on each update", ("-u", "--update_size"), topic="schedule", check="positive"
    )
    batch_size: int = BATCH_SIZE
    max_memory: int = setting(
        100_000, "Max number of samples (frames) to remember", ("-m", "--max_mem"), topic="agent", check="positive"
    )
    replay: str = setting(
        "newest",
        "What each update samples: newest (the newest -f transitions plus uniform replay, the original's scheme) "
        "or uniform (all from replay, as SB3 does)",
        choices=REPLAY_MODES,
        topic="agent",
    )
    # Not n_step: that reads as the actor-critic rollout length, n_steps; --n_step stays a spelling of it.
    return_steps: int = setting(
        1,
        "Rewards summed into each TD target before it bootstraps (n-step returns; 1: one-step Q-learning)",
        ("--n_step",),
        topic="agent",
        check="positive",
    )
    dueling: bool = setting(
        False,
        "Dueling network: a value and an advantage stream in place of the model factory's output layer, "
        "Q = V + A - mean(A)",
        topic="agent",
    )
    symmetries: bool = setting(
        False,
        "Train on each replay sample under a random one of the env's symmetries (envs that define symmetries(): "
        "Go's 8 board rotations and reflections)",
        topic="agent",
    )
    average_symmetries: bool = AVERAGE_SYMMETRIES
    target_update_freq: int | None = setting(
        None,
        "Env steps between target-network syncs (default: -f)",
        ("--target_update",),
        topic="schedule",
        check="positive",
    )
    learning_starts: int | None = setting(
        None,
        "Transitions in memory before the first update, or a full memory if that comes first (default: -b)",
        topic="schedule",
        check="at least 0",
    )
    ema_steps: int | None = setting(
        None,
        "Act greedily (evaluation, --play, best.keras) with an exponential moving average of the Q-network's "
        "weights over about this many env steps (default, and 0: the online network)",
        ("--ema",),
        metavar="STEPS",
        topic="agent",
        check="positive",
    )

    def __post_init__(self):
        super().__post_init__()
        for name in ("max_memory", "update_nsamp"):
            if getattr(self, name) < self.batch_size:
                raise ConfigError(
                    f"{flag(name)} ({getattr(self, name)}) must be at least the batch size ({self.batch_size})"
                )


@configclass(dropout=0.5)
class PGConfig(AgentConfig):
    """REINFORCE policy gradient (``pg``)."""

    network_kind: typing.ClassVar[str] = "policy"

    reset_on_score: bool | None = setting(
        None,
        "Reset the running return at each point (1) or not (0) (default: on for Pong)",
        ("--pong_reset",),
        cli_type="01",
        topic="agent",
    )


@configclass(nframes=1, dropout=0.0, learning_rate=7e-4, clipnorm=0.5)
class ActorCriticConfig(AgentConfig):
    """What the actor-critic agents (``a2c``, ``a3c``, ``ppo``) share; SB3's A2C defaults."""

    network_kind: typing.ClassVar[str] = "actor_critic"

    average_symmetries: bool = AVERAGE_SYMMETRIES
    n_steps: int = setting(
        5, "Rollout length: env steps per env copy between updates", topic="schedule", check="positive"
    )
    gae_lambda: float = setting(1.0, "GAE lambda (1: n-step returns)", topic="agent", check="fraction")
    ent_coef: float = setting(0.0, "Weight of the entropy bonus in the loss", topic="agent", check="at least 0")
    vf_coef: float = setting(0.5, "Weight of the value loss in the loss", topic="agent", check="at least 0")
    normalize_advantage: bool = setting(False, "Standardise the advantages of each minibatch", topic="agent")
    lr_schedule: str = setting(
        "constant",
        "Learning rate over the run: constant, or linear to 0 at --steps (the RL Zoo's lin_)",
        choices=SCHEDULES,
        topic="schedule",
    )
    normalize_obs: bool = setting(
        False, "Normalise observations with running statistics, as SB3's VecNormalize", topic="environment"
    )
    normalize_reward: bool = setting(
        False,
        "Scale rewards by the running deviation of the discounted return (VecNormalize)",
        topic="environment",
    )
    log_std_init: float = setting(
        0.0,
        "Initial log standard deviation of the Gaussian policy of Box actions (SB3's log_std_init)",
        topic="agent",
        check="finite",
    )


@configclass
class A2CConfig(ActorCriticConfig):
    """Synchronous advantage actor-critic (``a2c``, and ``a3c``, the original's name for it)."""


@configclass(learning_rate=3e-4, n_steps=2048, gae_lambda=0.95, normalize_advantage=True, batch_size=64)
class PPOConfig(ActorCriticConfig):
    """Proximal policy optimisation (``ppo``); SB3's PPO defaults."""

    batch_size: int = BATCH_SIZE
    n_epochs: int = setting(10, "Passes over each rollout", topic="schedule", check="positive")
    clip_range: float = setting(
        0.2, "PPO's clip range epsilon (the start of --clip_schedule)", topic="agent", check="positive"
    )
    clip_schedule: str = setting(
        "constant",
        "Clip range over the run: constant, or linear to 0 at --steps",
        choices=SCHEDULES,
        topic="schedule",
    )
    clip_range_vf: float | None = setting(
        None,
        "Clip the value prediction to this distance from the rollout's (default: no clipping)",
        topic="agent",
        check="positive",
    )

    def __post_init__(self):
        super().__post_init__()
        if self.batch_size > self.n_steps * self.concurrency:
            raise ConfigError(
                f"batch_size ({self.batch_size}) must be at most the rollout, n_steps x concurrency "
                f"({self.n_steps} x {self.concurrency})"
            )


# Each setting's other long spellings and the field they name: the command's flag names that config.json used
# before these classes existed (num_frames, max_mem...), and names since changed (n_step). Python keywords,
# preset files and config.json files may use them.
OLD_NAMES = {s[2:]: name for name, flags in _FLAGS.items() for s in flags if s.startswith("--") and s[2:] != name}


def canonical(values: dict) -> dict:
    """``values`` with each key that is another spelling of a setting (``n_step``, ``max_mem``) renamed to its field."""
    return {OLD_NAMES.get(key, key): value for key, value in values.items()}


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
