"""Short real training runs: learning beats a random policy, and seeded runs repeat exactly."""

import numpy as np
import pytest

import kerlym


def preset_agent(agent="ddqn", seed=0):
    return kerlym.make("CartPole-v1", agent, preset=True, cli_defaults=True, seed=seed)


@pytest.mark.slow
def test_d2qn_learns_cartpole_far_beyond_random():
    agent = preset_agent()
    greedy = []

    def evaluate(a):
        if a.total_steps in (7_500, 10_000, 12_500):
            greedy.append(a.evaluate(10, seed=123).mean())

    rows = agent.learn(max_steps=12_500, step_callback=evaluate)
    # No update happens before 1000 steps, with epsilon near 1: that is random play.
    random_mean = np.mean([r["reward"] for r in rows if r["total_steps"] <= 1000])
    assert random_mean < 40
    # DQN on CartPole oscillates on its way up; the best of three greedy checkpoints shows the learning.
    assert len(greedy) == 3 and max(greedy) > 120, greedy


@pytest.mark.slow
def test_seeded_runs_are_reproducible():
    runs = []
    for _ in range(2):
        agent = preset_agent(seed=7)
        rows = agent.learn(max_steps=1500)
        runs.append(([r["reward"] for r in rows], agent.model.get_weights(), agent.evaluate(2, seed=5)))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
