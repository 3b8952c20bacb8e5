"""Several env copies feeding one learner (-c N): statistics and replay stay exact."""

import numpy as np
import pytest

from kerlym.agents import D2QN, PG


@pytest.mark.slow
@pytest.mark.parametrize("cls", [D2QN, PG])
def test_parallel_envs_keep_episode_statistics_and_transitions_exact(cls):
    kw = dict(batch_size=16, update_nsamp=32, update_freq=64) if cls is D2QN else {}
    agent = cls("CartPole-v1", concurrency=3, seed=0, dropout=0.0, **kw)
    rows = agent.learn(max_steps=1500)
    assert agent.total_steps == 1500 and agent.vector_env().num_envs == 3
    assert [r["episode"] for r in rows] == list(range(1, len(rows) + 1))
    assert all(r["reward"] == r["length"] for r in rows)  # CartPole pays 1 per step
    # Every step of a finished episode was counted once, in one of the three envs.
    assert sum(r["length"] for r in rows) <= 1500 < sum(r["length"] for r in rows) + 3 * 500
    assert [r["total_steps"] for r in rows] == sorted(r["total_steps"] for r in rows)
    if cls is D2QN:
        mem = agent.memory
        assert len(mem) == 1500 and agent.updates == 1500 // 64
        b = mem.sample(256, np.random.default_rng(0))
        # CartPole moves a little per step: a next state is always close to its state, never another env's.
        assert np.abs(b.next_states - b.states).max() < 1.0
        # Termination is exactly CartPole's rule on the next state: pole angle or cart position out of bounds.
        assert (b.terminated == ((np.abs(b.next_states[:, 2]) > 0.2095) | (np.abs(b.next_states[:, 0]) > 2.4))).all()
