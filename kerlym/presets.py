"""Per-environment hyperparameter presets (``kerlym -e ENV -a AGENT --preset``).

Each preset maps config field names (the flags' long names) to values. The
values for DQN/D2QN follow the RL Zoo's tuned DQN settings where one exists,
translated to kerlym's update scheme: ``update_freq`` is SB3's
``train_freq`` and ``update_nsamp`` is ``gradient_steps * batch_size``.
CartPole's also uses the network the RL Zoo tuned on, ``zoo_mlp`` (SB3's two
256-unit layers, initialised as torch initialises them); the other classic
tasks learned worse with it than with ``simple_dnn`` (benchmarks/README.md).

On top of the RL Zoo's settings, the classic-control DQN/D2QN presets act
greedily with an exponential moving average of the Q-network's weights over
about 5000 env steps (``ema_steps``; ``--ema 0`` turns it off); training is
unchanged. The Pong presets have none. What each preset scores, and why its
values were chosen, is in benchmarks/README.md.

Each preset is a dict of :mod:`kerlym.config` field names; the tests check
every one against the config classes. A preset can also be a file of those
names (``--preset FILE``, JSON or YAML), such as the ``best_preset.json`` a
``--tune`` sweep writes; :func:`read_file` reads and checks one.
"""

from __future__ import annotations

import copy
import json
import os

# Greedy actions from the weights' moving average over this many env steps (kerlym.agents.dqn).
EMA_STEPS = 5000

_CARTPOLE_Q = {
    "modelfactory": "zoo_mlp",
    "nframes": 1,
    "dropout": 0.0,
    "learning_rate": 2.3e-3,
    "batch_size": 64,
    "max_memory": 100_000,
    "learning_starts": 1000,
    "update_freq": 256,
    "update_nsamp": 128 * 64,
    "epsilon": 1.0,
    "epsilon_min": 0.04,
    "epsilon_decay_steps": 8000,
    "discount": 0.99,
    "optimizer": "adam",
    "loss": "huber",
    "ema_steps": EMA_STEPS,
    "steps": 50_000,
}

# RL Zoo: lr 4e-3, batch 128, buffer 10k, learning_starts 1000, gamma 0.98, target_update_interval 600,
# train_freq 16, gradient_steps 8, exploration_fraction 0.2, final eps 0.07, net [256, 256], 120k steps.
_MOUNTAINCAR_Q = {
    "nframes": 1,
    "dropout": 0.0,
    "learning_rate": 4e-3,
    "batch_size": 128,
    "max_memory": 10_000,
    "learning_starts": 1000,
    "update_freq": 16,
    "update_nsamp": 8 * 128,
    "target_update_freq": 600,
    "epsilon": 1.0,
    "epsilon_min": 0.07,
    "epsilon_decay_steps": 24_000,
    "discount": 0.98,
    "optimizer": "adam",
    "loss": "huber",
    "ema_steps": EMA_STEPS,
    "steps": 120_000,
}

# RL Zoo (Acrobot-v1 and LunarLander): lr 6.3e-4, batch 128, buffer 50k, learning_starts 0, gamma 0.99,
# target_update_interval 250, train_freq 4, gradient_steps -1 (= 4), exploration_fraction 0.12,
# final eps 0.1, net [256, 256], 100k steps. learning_starts is one batch here: nothing to sample before.
_ACROBOT_Q = {
    "nframes": 1,
    "dropout": 0.0,
    "learning_rate": 6.3e-4,
    "batch_size": 128,
    "max_memory": 50_000,
    "learning_starts": 128,
    "update_freq": 4,
    "update_nsamp": 4 * 128,
    "target_update_freq": 250,
    "epsilon": 1.0,
    "epsilon_min": 0.1,
    "epsilon_decay_steps": 12_000,
    "discount": 0.99,
    "optimizer": "adam",
    "loss": "huber",
    "ema_steps": EMA_STEPS,
    "steps": 100_000,
}

# DQN on LunarLander samples its updates as SB3 does, all from replay (benchmarks/README.md: it
# learned more reliably that way); D2QN keeps the newest transitions in every update.
_LUNARLANDER_DQN = {**_ACROBOT_Q, "replay": "uniform"}

# REINFORCE: one update per episode on standardised returns, Adam, no dropout.
_CARTPOLE_PG = {
    "modelfactory": "karpathy_simple_pgnet",
    "nframes": 1,
    "dropout": 0.0,
    # The learning-rate sweep behind this value is in benchmarks/README.md.
    "learning_rate": 2e-3,
    "discount": 0.99,
    "optimizer": "adam",
    "steps": 150_000,
}

# Atari Pong from pixels, sized for a few CPU hours rather than RL Zoo's 10M steps: the Nature
# network on 4 stacked 84x84 frames, Adam 1e-4, Huber loss, train every 4 steps on one batch of
# 32, target synced every 1000 steps, epsilon 1.0 -> 0.02 over the first 100k steps (RL Zoo: 1M),
# learning after 10k steps, 100k transitions of memory.
_PONG_Q = {
    "modelfactory": "nature_cnn",
    "preprocessor": "atari",
    "nframes": 4,
    "dropout": 0.0,
    "learning_rate": 1e-4,
    "batch_size": 32,
    "max_memory": 100_000,
    "learning_starts": 10_000,
    "update_freq": 4,
    "update_nsamp": 32,
    "target_update_freq": 1000,
    "epsilon": 1.0,
    "epsilon_min": 0.02,
    "epsilon_decay_steps": 100_000,
    "discount": 0.99,
    "optimizer": "adam",
    "loss": "huber",
    "steps": 2_000_000,
}

# Actor-critic presets: the RL Zoo's ppo.yml and a2c.yml (n_envs is -c, lin_X a linear schedule from X,
# normalize both VecNormalize statistics). The Zoo steps its n_envs in turn in one process (SB3's DummyVecEnv),
# and so do the presets of the cheap envs (vector_env sync); Pong's copies step in ale-py's C++ threads.
# Pendulum's Zoo entry samples with gSDE, which kerlym does not have; its preset keeps the rest of the entry
# with the plain Gaussian policy.
_CARTPOLE_PPO = {
    "vector_env": "sync",
    "concurrency": 8,
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "discount": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": 1e-3,
    "lr_schedule": "linear",
    "clip_range": 0.2,
    "clip_schedule": "linear",
    "steps": 100_000,
}
_PENDULUM_PPO = {
    "vector_env": "sync",
    "concurrency": 4,
    "n_steps": 1024,
    "gae_lambda": 0.95,
    "discount": 0.9,
    "n_epochs": 10,
    "ent_coef": 0.0,
    "learning_rate": 1e-3,
    "clip_range": 0.2,
    "steps": 100_000,
}
_ACROBOT_PPO = {
    "vector_env": "sync",
    "normalize_obs": True,
    "normalize_reward": True,
    "concurrency": 16,
    "n_steps": 256,
    "gae_lambda": 0.94,
    "discount": 0.99,
    "n_epochs": 4,
    "ent_coef": 0.0,
    "steps": 1_000_000,
}
# LunarLander-v2's entries in the Zoo (v3 has the same dynamics); the continuous env's PPO entry is the same.
_LUNARLANDER_PPO = {
    "vector_env": "sync",
    "concurrency": 16,
    "n_steps": 1024,
    "batch_size": 64,
    "gae_lambda": 0.98,
    "discount": 0.999,
    "n_epochs": 4,
    "ent_coef": 0.01,
    "steps": 1_000_000,
}
# The Zoo's "atari" entry: 8 envs, rollouts of 128, 4 epochs of minibatches of 256, lin_2.5e-4, lin_0.1,
# on the Nature CNN over 4 stacked 84x84 frames (SB3's AtariWrapper; kerlym's atari preprocessor).
_PONG_PPO = {
    "modelfactory": "actor_critic_cnn",
    "preprocessor": "atari",
    "nframes": 4,
    "concurrency": 8,
    "n_steps": 128,
    "batch_size": 256,
    "n_epochs": 4,
    "learning_rate": 2.5e-4,
    "lr_schedule": "linear",
    "clip_range": 0.1,
    "clip_schedule": "linear",
    "vf_coef": 0.5,
    "ent_coef": 0.01,
    "steps": 10_000_000,
}
# A2C: the keys a2c.yml leaves out are SB3's A2C defaults, which ActorCriticConfig's defaults are.
_CARTPOLE_A2C = {"concurrency": 8, "vector_env": "sync", "ent_coef": 0.0, "steps": 500_000}
_LUNARLANDER_A2C = {
    "vector_env": "sync",
    "concurrency": 8,
    "discount": 0.995,
    "n_steps": 5,
    "learning_rate": 8.3e-4,
    "lr_schedule": "linear",
    "ent_coef": 1e-5,
    "steps": 200_000,
}
# The Zoo's Pendulum-v1 A2C samples with gSDE from log_std -2 without orthogonal initialisation; kerlym keeps
# the rest of the entry with its plain Gaussian policy, SB3's initialisation and log_std 0: without gSDE's
# state-dependent noise, starting at -2 explores too little (benchmarks/README.md, "A2C and PPO").
_PENDULUM_A2C = {
    "vector_env": "sync",
    "normalize_obs": True,
    "normalize_reward": True,
    "concurrency": 8,
    "ent_coef": 0.0,
    "clipnorm": 0.5,
    "n_steps": 8,
    "gae_lambda": 0.9,
    "vf_coef": 0.4,
    "discount": 0.9,
    "normalize_advantage": False,
    "learning_rate": 7e-4,
    "lr_schedule": "linear",
    "steps": 1_000_000,
}
# The Zoo's "atari" A2C entry: 16 envs, ent 0.01, vf 0.25, and its RMSpropTFLike (TensorFlow 1's RMSprop: the
# mean square starts at 1, epsilon 1e-5 inside the root; kerlym's "rmsprop_tf"), the other keys SB3's defaults.
_PONG_A2C = {
    "modelfactory": "actor_critic_cnn",
    "preprocessor": "atari",
    "nframes": 4,
    "optimizer": "rmsprop_tf",
    "concurrency": 16,
    "ent_coef": 0.01,
    "vf_coef": 0.25,
    "steps": 10_000_000,
}
_ACROBOT_A2C = {
    "vector_env": "sync",
    "normalize_obs": True,
    "normalize_reward": True,
    "concurrency": 16,
    "ent_coef": 0.0,
    "steps": 500_000,
}

# kerlym's own envs (kerlym/envs). Go9x9-v0's presets train against the uniformly random opponent
# (about 8k env steps/s, against GnuGo's 20), set through the env's keyword arguments; the env's
# default opponent, gnugo:0, stays what `kerlym -e Go9x9-v0` plays without --preset. Both envs
# give action masks, which every agent honours. What these score: benchmarks/README.md.
_GO_RANDOM = {"opponent": "random"}
_GO_PPO = {
    "env_kwargs": _GO_RANDOM,
    "concurrency": 1,
    "n_steps": 1024,
    "batch_size": 256,
    "n_epochs": 4,
    "ent_coef": 0.01,
    "learning_rate": 3e-4,
    "lr_schedule": "linear",  # to 0 at 1M steps: 96.0% against random over 5 seeds, against 93.8% at a constant 3e-4
    "steps": 1_000_000,  # 250k steps won 90.7% against random (benchmarks/README.md)
    # No average_symmetries: PPO trains on the games as played, and averaging its policy over the
    # board's symmetries took its wins against random from 93.8% to 88.2% over 5 seeds (benchmarks/README.md).
}
_GO_Q = {
    "env_kwargs": _GO_RANDOM,
    "modelfactory": "simple_dnn",
    "nframes": 1,
    "dropout": 0.0,
    "learning_rate": 1e-4,  # 5e-4: greedy max-Q climbed to 8 where true values lie in [-1, 1]
    "batch_size": 128,
    "max_memory": 50_000,
    "learning_starts": 1000,
    "update_freq": 4,
    "update_nsamp": 128,
    "target_update_freq": 1000,
    "epsilon": 1.0,
    "epsilon_min": 0.02,
    "epsilon_decay_steps": 20_000,
    "discount": 0.99,
    "return_steps": 5,  # the game's only reward is its end; one-step targets pass it back one move per sync
    # The next three together, not any one alone, lift the win rate against random (benchmarks/README.md).
    "dueling": True,
    "symmetries": True,  # every sample under a random one of the board's 8 rotations and reflections
    "ema_steps": 10_000,  # play greedily with a moving average of the weights
    "average_symmetries": True,  # and with its Q averaged over the 8 symmetries of the board
    "optimizer": "adam",
    "loss": "huber",
    "steps": 300_000,
}
_RADIO_PPO = {
    "concurrency": 4,
    "vector_env": "sync",  # a NumPy step of about 0.1 ms: cheaper in turn here than across processes
    "modelfactory": "actor_critic_rnn",  # a GRU over the last 16 views: where the window has been, and what it saw
    "nframes": 16,
    "n_steps": 256,
    "batch_size": 256,
    "n_epochs": 4,
    "ent_coef": 0.01,
    "learning_rate": 3e-4,
    "steps": 1_000_000,
}
_RADIO_HARD_PPO = {**_RADIO_PPO, "steps": 3_000_000}  # weak, drifting, bursty signals take longer to learn
_RADIO_Q = {
    "modelfactory": "simple_dnn",
    "nframes": 4,
    "dropout": 0.0,
    "learning_rate": 1e-4,  # at 6.3e-4 and a target sync every 250 steps, Q diverged on 3 seeds in 5
    "batch_size": 128,
    "max_memory": 50_000,
    "learning_starts": 1000,
    "update_freq": 4,
    "update_nsamp": 128,
    "target_update_freq": 1000,
    "epsilon": 1.0,
    "epsilon_min": 0.05,
    "epsilon_decay_steps": 50_000,
    "discount": 0.99,
    "optimizer": "adam",
    "loss": "huber",
    "steps": 600_000,
}

# Tic-tac-toe by self-play: 50k steps (about 70 s on two shared cores) scored 0.83 ± 0.01 mean return against
# random play and 0.04 ± 0.06 against mcts:200 with --search 64, over 3 seeds (benchmarks/README.md).
_TIC_TAC_TOE_PPO = {
    "modelfactory": "actor_critic_mlp",
    "nframes": 1,
    "concurrency": 8,
    "vector_env": "sync",
    "self_play": 4,
    "self_play_every": 5000,
    "env_kwargs": {"player": "alternate"},  # evaluations play the env's opponent from both seats
    "steps": 50_000,
}

PRESETS: dict[tuple[str, str], dict] = {
    ("CartPole-v1", "ppo"): _CARTPOLE_PPO,
    ("Pendulum-v1", "ppo"): _PENDULUM_PPO,
    ("Acrobot-v1", "ppo"): _ACROBOT_PPO,
    ("LunarLander-v3", "ppo"): _LUNARLANDER_PPO,
    ("LunarLanderContinuous-v3", "ppo"): _LUNARLANDER_PPO,
    ("PongNoFrameskip-v4", "ppo"): _PONG_PPO,
    ("CartPole-v1", "a2c"): _CARTPOLE_A2C,
    ("CartPole-v1", "a3c"): _CARTPOLE_A2C,
    ("Acrobot-v1", "a2c"): _ACROBOT_A2C,
    ("Acrobot-v1", "a3c"): _ACROBOT_A2C,
    ("LunarLander-v3", "a2c"): _LUNARLANDER_A2C,
    ("LunarLander-v3", "a3c"): _LUNARLANDER_A2C,
    ("Pendulum-v1", "a2c"): _PENDULUM_A2C,
    ("Pendulum-v1", "a3c"): _PENDULUM_A2C,
    ("PongNoFrameskip-v4", "a2c"): _PONG_A2C,
    ("PongNoFrameskip-v4", "a3c"): _PONG_A2C,
    ("CartPole-v1", "dqn"): _CARTPOLE_Q,
    ("CartPole-v1", "ddqn"): _CARTPOLE_Q,
    ("MountainCar-v0", "dqn"): _MOUNTAINCAR_Q,
    ("MountainCar-v0", "ddqn"): _MOUNTAINCAR_Q,
    ("Acrobot-v1", "dqn"): _ACROBOT_Q,
    ("Acrobot-v1", "ddqn"): _ACROBOT_Q,
    ("LunarLander-v3", "dqn"): _LUNARLANDER_DQN,
    ("LunarLander-v3", "ddqn"): _ACROBOT_Q,
    ("PongNoFrameskip-v4", "dqn"): _PONG_Q,
    ("PongNoFrameskip-v4", "ddqn"): _PONG_Q,
    ("CartPole-v1", "pg"): _CARTPOLE_PG,
    ("Acrobot-v1", "pg"): {**_CARTPOLE_PG, "learning_rate": 1e-3, "steps": 100_000},
    ("Go9x9-v0", "dqn"): _GO_Q,
    ("Go9x9-v0", "ddqn"): _GO_Q,
    ("Go9x9-v0", "ppo"): _GO_PPO,
    ("RadioSearch-v0", "dqn"): _RADIO_Q,
    ("RadioSearch-v0", "ddqn"): _RADIO_Q,
    ("RadioSearch-v0", "ppo"): _RADIO_PPO,
    ("RadioSearchHard-v0", "dqn"): _RADIO_Q,
    ("RadioSearchHard-v0", "ddqn"): _RADIO_Q,
    ("RadioSearchHard-v0", "ppo"): _RADIO_HARD_PPO,
    ("openspiel:tic_tac_toe", "ppo"): _TIC_TAC_TOE_PPO,
}


def get(env_id: str, agent: str) -> dict:
    """The preset for ``env_id`` and ``agent`` (``gymnax:ENV_ID``: ``ENV_ID``'s); ``KeyError`` lists those there are."""
    if env_id.startswith("gymnax:"):  # gymnax's port of an env takes the Gymnasium env's settings
        env_id = env_id.split(":", 1)[1]
    try:
        return copy.deepcopy(PRESETS[(env_id, agent)])  # a caller may change a preset's env_kwargs
    except KeyError:
        have = ", ".join(f"{e} -a {a}" for e, a in sorted(PRESETS))
        raise KeyError(f"no preset for -e {env_id} -a {agent}; presets exist for: {have}") from None


def read_file(path: str) -> dict:
    """A preset file's settings: a JSON or YAML mapping of config field names, optionally with ``env`` and ``agent``.

    A setting's other spelling (``n_step``, ``max_mem``: :data:`kerlym.config.OLD_NAMES`) is read as its field.

    Raises:
        kerlym.config.ConfigError: a missing or unreadable file, or one that is not a mapping (one line). The
            names and values are checked against the config classes by :func:`kerlym.make.configure`.
    """
    from kerlym.config import ConfigError, canonical

    if not os.path.isfile(path):
        raise ConfigError(f"preset file {path!r} does not exist")
    try:
        with open(path) as f:
            if path.endswith((".yaml", ".yml")):
                import yaml

                values = yaml.safe_load(f)
            else:
                values = json.load(f)
    except ImportError:
        raise ConfigError(f"reading {path} needs PyYAML: pip install pyyaml") from None
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError
        raise ConfigError(
            f"preset file {path} is not valid {'YAML' if path.endswith(('.yaml', '.yml')) else 'JSON'}: "
            f"{str(e).splitlines()[0]}"
        ) from None
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ConfigError(f"preset file {path} must hold a mapping of setting names to values")
    return canonical(values)
