"""A pinned seeded trajectory: any change to the maths, the random streams or the loop shows up here.

The numbers were recorded on 2026-12-02 (kerlym 0.3.0, Keras 3 on TensorFlow and on JAX) with the
same settings; a change that is meant to alter them updates them and says why.
"""

import keras
import numpy as np
import pytest

from kerlym import networks
from kerlym.agents import D2QN, PG

# fmt: off
PINNED = {  # backend -> agent -> (episode returns, greedy returns of 3 evaluation episodes)
    "tensorflow": {
        "d2qn": (
            [
                25, 43, 11, 15, 24, 20, 29, 17, 28, 33, 35, 21, 22, 20, 18, 15, 11, 31, 9, 75, 18, 31, 46, 19, 12,
                27, 18, 29, 15, 25, 30, 24, 9, 21, 11, 26, 18, 43, 17, 23, 12, 15, 14, 17, 18, 25, 26, 14, 26, 24,
                22, 12, 37, 24, 46, 30, 17, 26, 9, 27, 11, 23, 19, 69, 41, 18, 71, 26, 30, 21, 55, 35, 50, 52, 24,
                15, 17, 12, 13, 17, 14, 20, 41, 28, 11, 37, 75, 13, 23, 16, 99, 20, 54, 84, 51, 18, 37, 14, 10, 48,
                18, 25, 16, 66, 20, 16, 28, 35
            ],
            [12, 13, 10],
        ),
        "pg": (
            [
                13, 14, 20, 55, 58, 36, 15, 20, 15, 29, 24, 117, 67, 55, 22, 46, 19, 83, 59, 47, 155, 24, 50, 89,
                53, 49, 61, 22, 78, 55, 72, 116, 40, 76, 195, 70, 152, 51, 129, 70
            ],
            [419, 500, 325],
        ),
    },
    "jax": {
        "d2qn": (
            [
                25, 43, 11, 15, 24, 20, 29, 17, 28, 33, 35, 21, 22, 20, 18, 15, 11, 31, 9, 76, 13, 32, 26, 58, 21,
                10, 15, 19, 22, 22, 19, 20, 15, 9, 19, 29, 25, 46, 15, 15, 21, 24, 14, 12, 17, 42, 10, 12, 16, 12,
                8, 30, 65, 28, 23, 15, 16, 21, 20, 11, 9, 20, 12, 29, 12, 11, 31, 24, 18, 30, 18, 40, 29, 17, 13,
                18, 15, 9, 22, 11, 24, 33, 31, 32, 23, 25, 25, 13, 15, 13, 16, 36, 14, 15, 41, 15, 15, 31, 12, 30,
                24, 44, 15, 18, 31, 28, 86, 26, 19, 29, 84, 24, 33, 18, 14, 12, 31, 21, 129, 25
            ],
            [13, 11, 15],
        ),
        "pg": (
            [
                13, 14, 20, 55, 58, 36, 15, 20, 15, 84, 19, 120, 41, 31, 18, 38, 46, 73, 70, 32, 68, 144, 69, 47,
                38, 43, 35, 57, 44, 51, 96, 70, 67, 28, 35, 42, 59, 94, 70, 73
            ],
            [130, 96, 96],
        ),
    },
}
# fmt: on
BACKEND = keras.backend.backend()


@pytest.mark.skipif(BACKEND not in PINNED, reason=f"no trajectory pinned for {BACKEND}")
def test_seeded_cartpole_d2qn_repeats_its_pinned_trajectory():
    agent = D2QN(
        "CartPole-v1",
        modelfactory=networks.zoo_mlp,
        learning_rate=2.3e-3,
        batch_size=64,
        learning_starts=1000,
        update_freq=256,
        update_nsamp=128 * 64,
        epsilon=1.0,
        epsilon_min=0.04,
        epsilon_decay_steps=8000,
        optimizer="adam",
        loss="huber",
        ema_steps=5000,
        seed=3,
    )
    rows = agent.learn(max_steps=3000, verbose=0)
    returns, evaluation = PINNED[BACKEND]["d2qn"]
    assert [r["reward"] for r in rows] == returns
    np.testing.assert_array_equal(agent.evaluate(3, seed=11), evaluation)
    agent.close()


@pytest.mark.skipif(BACKEND not in PINNED, reason=f"no trajectory pinned for {BACKEND}")
def test_seeded_cartpole_pg_repeats_its_pinned_trajectory():
    agent = PG("CartPole-v1", dropout=0.0, learning_rate=2e-3, optimizer="adam", seed=3)
    rows = agent.learn(max_episodes=40, verbose=0)
    returns, evaluation = PINNED[BACKEND]["pg"]
    assert [r["reward"] for r in rows] == returns
    np.testing.assert_array_equal(agent.evaluate(3, seed=11), evaluation)
    agent.close()
