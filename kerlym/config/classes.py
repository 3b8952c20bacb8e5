"""The settings themselves: :class:`RunConfig`, :class:`AgentConfig` and one subclass per agent family."""

from __future__ import annotations

import re
import typing

from kerlym.config.declare import (
    ACTOR_MODES,
    DTYPE_POLICIES,
    LOSS_NAMES,
    MLFLOW_DEFAULT_URI,
    OPTIMIZER_NAMES,
    PREPROCESSOR_NAMES,
    REPLAY_MODES,
    SCHEDULES,
    VECTOR_MODES,
    ConfigError,
    _check_fields,
    configclass,
    flag,
    setting,
)


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
    search: int = setting(
        0,
        "Play evaluation moves (--play, --eval_every, the final one) by a PUCT search of N simulations with the "
        "agent's networks; OpenSpiel games (-e openspiel:GAME) and Go, with -a dqn, ddqn, a2c, a3c or ppo",
        topic="evaluation",
        check="at least 0",
    )
    eval_every: int | None = setting(
        None,
        "Evaluate greedily every N steps; keeps the best model as best.keras",
        topic="evaluation",
        check="positive",
    )
    eval_opponents: tuple[str, ...] | None = setting(
        None,
        "Two-player games: evaluations play each of these fixed opponents, alternating colours ('random', "
        "'mcts:SIMULATIONS', for Go 'gnugo:LEVEL'); the first one picks best.keras "
        "(default: the training env's opponent)",
        cli_nargs="+",
        metavar="OPPONENT",
        topic="evaluation",
    )
    quiet: bool = setting(False, "Print a progress line every 10 s instead of one per episode", ("-q",), topic="output")
    tensorboard: bool = setting(
        False, "Write TensorBoard event files into the run folder (view: tensorboard --logdir runs)", topic="output"
    )
    mlflow: str | None = setting(
        None,
        f"Log params, per-episode metrics, evaluations and artifacts to MLflow: its embedded store "
        f"({MLFLOW_DEFAULT_URI}, view: mlflow ui) or the tracking server at URI",
        cli_nargs="?",
        cli_const=MLFLOW_DEFAULT_URI,
        metavar="URI",
        topic="output",
    )
    wandb: bool = setting(
        False,
        "Log the same to Weights & Biases (offline without an API key; upload later with: wandb sync)",
        topic="output",
    )
    pretrain: str | None = setting(
        None,
        "Before RL (-a a2c, a3c or ppo): behaviour cloning of the network on GAMES games a teacher plays against "
        "itself, GnuGo at LEVEL (Go) or OpenSpiel's MCTS at SIMULATIONS a move (-e openspiel:GAME), cached in "
        "$KERLYM_CACHE or ~/.cache/kerlym",
        ("--pretrain",),
        metavar="gnugo:LEVEL:GAMES|mcts:SIMULATIONS:GAMES",
        topic="run control",
    )
    pretrain_epochs: int = setting(
        10,
        "With --pretrain: passes over the games' positions",
        ("--pretrain-epochs",),
        topic="run control",
        check="positive",
    )
    trained_agent: str | None = setting(
        None,
        "Start a new run from the weights of the saved run in RUN_DIR (its latest checkpoint; --weights picks online, "
        "average or best); the new run has its own folder and counters from 0, and its network must match",
        ("--trained_agent", "--trained-agent"),
        metavar="RUN_DIR",
        topic="run control",
    )
    trained_weights: str | None = setting(
        None,
        "With --trained-agent: which of its weights, online, average or best (--weights says the same; default: "
        "those --play uses)",
        ("--trained_weights", "--trained-weights"),
        choices=("online", "average", "best"),
        topic="run control",
    )

    def __post_init__(self):
        _check_fields(self)
        spec = self.pretrain
        if spec is not None and not re.fullmatch(r"(gnugo:([0-9]|10)|mcts:0*[1-9][0-9]*):0*[1-9][0-9]*", str(spec)):
            raise ConfigError("--pretrain takes gnugo:LEVEL:GAMES or mcts:SIMULATIONS:GAMES (level 0-10, at least 1 "
                              f"simulation and 1 game), got {spec!r}")  # fmt: skip


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
    net_kwargs: dict | None = setting(
        None,
        "Keyword arguments for the network's factory, as KEY=VALUE, read as --env-kwargs are (e.g. filters=96 "
        "conv_layers=8 for actor_critic_board; SB3's policy_kwargs); saved with the run",
        ("--net-kwargs",),
        cli_nargs="+",
        metavar="KEY=VALUE",
        topic="network",
        check="keywords",
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
        names=OPTIMIZER_NAMES,
        names_ignore_case=True,
    )
    loss: str | None = setting(
        None,
        "Loss the built-in networks compile (any Keras name, e.g. huber; default: the network's own)",
        topic="network",
        names=LOSS_NAMES,
    )
    clipnorm: float | None = setting(
        None,
        "Clip the global gradient norm (SB3's max_grad_norm; None: no clipping)",
        topic="network",
        check="positive",
    )
    discount: float = setting(0.99, "Discount rate for future rewards", ("-d",), topic="agent", check="fraction")
    seed: int | None = setting(None, "Random seed for the env, NumPy and Keras", topic="run control", check="seed")
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
        "preprocessor use ale-py's AtariVectorEnv either way. envpool: ALE ids with the atari preprocessor in "
        "EnvPool's C++ threads, -c 1 too (pip install .[envpool])",
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
    self_play: int | None = setting(
        None,
        "Self-play on a two-player OpenSpiel game (-e openspiel:GAME): the agent plays both colours against its "
        "latest weights and up to K frozen snapshots of itself (the flag alone: 4)",
        ("--self-play",),
        cli_nargs="?",
        cli_const=4,
        metavar="K",
        topic="agent",
        check="at least 0",
    )
    self_play_latest: float = setting(
        0.5,
        "With --self-play: the chance that a game's opponent is the latest weights; otherwise a frozen snapshot, "
        "each as likely",
        ("--self-play-latest",),
        topic="agent",
        check="fraction",
    )
    self_play_every: int = setting(
        10_000,
        "With --self-play: env steps between snapshots of the weights joining the pool",
        ("--self-play-every",),
        topic="agent",
        check="positive",
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
        if self.self_play is not None and self.actors != "local":
            raise ConfigError(
                f"--self-play plays the opponents' moves in the learner: it needs --actors local, not {self.actors}"
            )


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
