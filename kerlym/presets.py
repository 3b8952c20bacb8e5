"""Per-environment hyperparameter presets (``kerlym -e ENV -a AGENT --preset``).

Each preset maps CLI option names (argparse ``dest``) to values. The values
for DQN/D2QN follow the RL Zoo's tuned DQN settings where one exists,
translated to kerlym's update scheme: ``update_freq`` is SB3's
``train_freq`` and ``update_size`` is ``gradient_steps * batch_size``.
"""

from __future__ import annotations

_CARTPOLE_Q = {
    "num_frames": 1,
    "dropout": 0.0,
    "learning_rate": 2.3e-3,
    "batch_size": 64,
    "max_mem": 100_000,
    "learning_starts": 1000,
    "update_freq": 256,
    "update_size": 128 * 64,
    "epsilon": 1.0,
    "epsilon_min": 0.04,
    "exploration_steps": 8000,
    "discount": 0.99,
    "optimizer": "adam",
    "loss": "huber",
    "steps": 50_000,
}

PRESETS: dict[tuple[str, str], dict] = {
    ("CartPole-v1", "dqn"): _CARTPOLE_Q,
    ("CartPole-v1", "ddqn"): _CARTPOLE_Q,
}


def get(env_id: str, agent: str) -> dict:
    """The preset for ``env_id`` and ``agent``; ``KeyError`` lists those that exist."""
    try:
        return dict(PRESETS[(env_id, agent)])
    except KeyError:
        have = ", ".join(f"{e} -a {a}" for e, a in sorted(PRESETS))
        raise KeyError(f"no preset for -e {env_id} -a {agent}; presets exist for: {have}") from None
