"""Pong from pixels, briefly: every stage of the pipeline on real frames."""

import numpy as np
import pytest

from kerlym import networks, preproc
from kerlym.agents import D2QN, PG
from kerlym.checkpoints import load_model


@pytest.mark.slow
def test_pg_on_pong_frames_updates_and_reloads_identically(tmp_path):
    agent = PG(
        "ALE/Pong-v5",
        preprocessor=preproc.karpathy_preproc,
        difference_obs=True,
        dropout=0.0,
        learning_rate=1e-3,
        seed=0,
    )
    assert agent.reset_on_score and agent.input_dim == 80 * 80
    history = agent.frame_history()
    assert history.frames.dtype == np.uint8
    obs, _ = agent.env.reset(seed=0)
    history.push(obs, first=True)
    agent.begin_episode(obs)
    rewards = []
    for _ in range(300):
        state = history.latest()
        actions, probs = agent.act(state)
        obs, reward, terminated, truncated, _ = agent.env.step(int(actions[0]))
        history.push(obs, first=False)
        agent.observe(0, state[0], actions[0], reward, terminated, truncated, obs)
        rewards.append(reward)
    assert np.abs(history.latest()).sum() > 0  # difference frames see the ball and paddles move
    before = [w.copy() for w in agent.model.get_weights()]
    extra, losses = agent.end_episode()
    assert extra == {} and len(losses) == 1 and np.isfinite(losses).all()
    if any(rewards):  # a point was scored: the advantages are not all zero, so the policy moved
        assert any(not np.array_equal(a, b) for a, b in zip(before, agent.model.get_weights()))

    path = str(tmp_path / "pong_pg.keras")
    agent.save(path)
    states = np.stack([np.asarray(s, np.float32) for s in agent._episodes[0][0][:16]])
    reloaded = PG("ALE/Pong-v5", preprocessor=preproc.karpathy_preproc, difference_obs=True, dropout=0.0)
    reloaded.model.set_weights(load_model(path).get_weights())
    np.testing.assert_array_equal(reloaded.act(states, explore=False)[1], agent.act(states, explore=False)[1])


@pytest.mark.slow
def test_dqn_update_on_atari_frames():
    agent = D2QN(
        "ALE/Pong-v5",
        preprocessor=preproc.atari,
        modelfactory=networks.simple_cnn,
        nframes=4,
        update_freq=100,
        update_nsamp=64,
        batch_size=32,
        dropout=0.0,
        epsilon=1.0,
        seed=0,
    )
    assert agent.memory.frames.dtype == np.uint8 and agent.memory.frames.shape[1:] == (84, 84, 1)
    before = [w.copy() for w in agent.model.get_weights()]
    agent.learn(max_steps=250, eval_episodes=0)  # two updates of two minibatches each; no greedy Pong games after
    assert agent.updates == 2 and len(agent.memory) == 250 - len(agent.episodes)
    assert any(not np.array_equal(a, b) for a, b in zip(before, agent.model.get_weights()))
    batch = agent.memory.sample(8, agent.rng)
    assert batch.states.shape == (8, 4 * 84 * 84) and batch.states.dtype == np.uint8
