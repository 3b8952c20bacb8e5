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


def test_sync_copies_step_in_this_process_and_match_the_async_ones_step_for_step():
    rows = {}
    for mode, kind in (("async", "AsyncVectorEnv"), ("sync", "SyncVectorEnv")):
        agent = PG("CartPole-v1", concurrency=3, seed=0, dropout=0.0, vector_env=mode)
        rows[mode] = [(r["episode"], r["total_steps"], r["reward"]) for r in agent.learn(max_steps=600)]
        assert type(agent.vector_env()).__name__ == kind
        agent.close()
    assert len(rows["sync"]) > 10 and rows["sync"] == rows["async"]  # the same env seeds, the same episodes


def test_one_env_restarts_in_the_same_step_and_reports_the_final_observation():
    import gymnasium as gym

    from kerlym.envs import OneEnv

    env, twin = OneEnv(gym.make("CartPole-v1")), gym.make("CartPole-v1")
    obs, _ = env.reset(seed=3)
    expected, _ = twin.reset(seed=3)
    np.testing.assert_array_equal(obs[0], expected)
    for t in range(500):
        obs, rewards, terminated, truncated, info = env.step(np.array([t % 2]))
        expected, reward, term, trunc, _ = twin.step(t % 2)
        assert rewards.tolist() == [reward] and terminated.tolist() == [term] and truncated.tolist() == [trunc]
        if term or trunc:
            np.testing.assert_array_equal(info["final_obs"][0], expected)  # the episode's last observation
            assert np.abs(obs[0]).max() <= 0.05  # ... and a fresh CartPole start in its place
            break
        np.testing.assert_array_equal(obs[0], expected)
    else:
        raise AssertionError("alternating actions should drop the pole within 500 steps")


@pytest.mark.slow
def test_atari_copies_run_in_ale_threads_with_the_atari_preprocessors_frames():
    from kerlym import preproc
    from kerlym.envs import make_env

    single = preproc.atari(make_env("PongNoFrameskip-v4"))
    frame, _ = single.reset(seed=0)
    agent = D2QN(
        "PongNoFrameskip-v4", preprocessor=preproc.atari, nframes=2, concurrency=2, seed=0, learning_starts=10**6
    )
    envs = agent.vector_env()
    assert type(envs.env).__name__ == "AtariVectorEnv" and envs.num_envs == 2
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, *single.observation_space.shape) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs[0], frame)  # Pong's first screen, pixel for pixel the same
    rows = agent.learn(max_steps=2400, eval_episodes=0)  # random play loses 21-0 in about 800 steps, in each copy
    assert len(rows) >= 2 and all(r["reward"] <= -15 for r in rows)
    assert [r["episode"] for r in rows] == list(range(1, len(rows) + 1))
    assert sum(r["length"] for r in rows) <= agent.total_steps == 2400
    # Transitions of each copy stay in their own stream: consecutive frames of one game barely differ.
    b = agent.memory.sample(64, np.random.default_rng(0))
    changed = (b.next_states[:, -84 * 84 :] != b.states[:, -84 * 84 :]).mean(axis=1)
    assert changed.max() < 0.1
    agent.close()
    single.close()


def test_the_cli_steps_atari_copies_in_ale_threads_unless_it_wraps_each_env():
    from kerlym.main import build_parser
    from kerlym.make import make, make_env_factory
    from kerlym.settings import resolve

    run, cfg, _ = resolve(build_parser().parse_args("-e PongNoFrameskip-v4 -n nature_cnn -E atari -t 4 -c 2".split()))
    agent = make(run, cfg)
    assert type(agent.vector_env().env).__name__ == "AtariVectorEnv"
    agent.close()
    assert getattr(make_env_factory(run, submit_stats=[]), "env_id", None) is None  # -S records each env's episodes
