"""PPO's update against a hand-computed step, its minibatches, normalisation checkpoints, and learning."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from test_a2c import linear_ac  # tests/ is on sys.path (rootdir-relative import mode)

from kerlym import checkpoints
from kerlym.agents import PPO
from kerlym.agents.actor_critic import Rollout


def test_ppo_update_by_hand():
    agent = PPO(
        "CartPole-v1",
        modelfactory=linear_ac,
        learning_rate=0.1,
        n_steps=2,
        batch_size=2,
        n_epochs=1,
        ent_coef=0.0,
        normalize_advantage=False,
        clipnorm=None,
        seed=0,
    )
    states = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], dtype=np.float32)
    # Uniform policy now (log pi = log 1/2). Sample 0: ratio 1. Sample 1: the rollout's pi was 1/3, ratio 1.5,
    # clipped to 1.2 with A = +1, so it adds no gradient.
    old_log_prob = np.array([math.log(0.5), math.log(1 / 3)], dtype=np.float32)
    rollout = Rollout(
        states,
        np.array([0, 1], np.int32),
        old_log_prob,
        np.zeros(2, np.float32),
        np.array([1.0, 1.0], np.float32),
        np.array([1.0, 2.0], np.float32),
    )
    (row,) = agent.update(rollout)
    loss, policy_loss, value_loss, entropy, clip_fraction, approx_kl = row
    assert policy_loss == pytest.approx(-(1.0 + 1.2) / 2, abs=1e-5)
    assert value_loss == pytest.approx((1 + 4) / 2, abs=1e-5)
    assert loss == pytest.approx(-1.1 + 0.5 * 2.5, abs=1e-5)
    assert entropy == pytest.approx(math.log(2), abs=1e-5)
    assert clip_fraction == pytest.approx(0.5)
    assert approx_kl == pytest.approx((0.5 - math.log(1.5)) / 2, abs=1e-5)
    # Policy: d/dlogits of -0.5 * ratio * A * log pi(0) for sample 0 = -0.5 * (onehot(0) - p) = [-0.25, 0.25].
    # Value: d/dV_i of 0.5 * mean((R - V)^2) = -R_i / 2 = -0.5, -1.
    w_pi, w_v = agent.steps.get_weights()
    expected_pi = np.zeros((4, 2))
    expected_pi[0] = [0.025, -0.025]
    np.testing.assert_allclose(w_pi, expected_pi, atol=1e-6)
    np.testing.assert_allclose(w_v[:, 0], [0.05, 0.1, 0.0, 0.0], atol=1e-6)
    agent.close()


def test_minibatches_cover_each_epoch_once():
    agent = PPO("CartPole-v1", n_steps=10, batch_size=4, n_epochs=3, seed=0)
    idx = agent.minibatch_indices(10)
    assert idx.shape == (6, 4)  # 2 minibatches per epoch; 2 of the 10 samples sit out each epoch
    for epoch in idx.reshape(3, 8):
        assert len(set(epoch.tolist())) == 8
    agent.close()


def test_normalisation_statistics_are_checkpointed(tmp_path):

    settings = dict(n_steps=32, batch_size=32, n_epochs=1, normalize_obs=True, normalize_reward=True, seed=0)
    agent = PPO("CartPole-v1", **settings)
    agent.learn(max_steps=64, verbose=0)
    assert agent.obs_rms.count == pytest.approx(64 + 1e-4) and agent.ret_rms.count == pytest.approx(64 + 1e-4)
    layer = agent.model.get_layer("obs_norm")  # set from the statistics after the second rollout's update
    np.testing.assert_allclose(layer.mean.numpy(), agent.obs_rms.mean, rtol=1e-5)
    path = checkpoints.save_checkpoint(str(tmp_path), agent)

    other = PPO("CartPole-v1", **settings)
    checkpoints.restore_checkpoint(path, other)
    for mine, theirs in ((agent.obs_rms, other.obs_rms), (agent.ret_rms, other.ret_rms)):
        np.testing.assert_array_equal(theirs.mean, mine.mean)
        np.testing.assert_array_equal(theirs.var, mine.var)
        assert theirs.count == mine.count
    np.testing.assert_array_equal(other.running_returns, agent.running_returns)
    np.testing.assert_allclose(other.model.get_layer("obs_norm").var.numpy(), agent.obs_rms.var, rtol=1e-5)
    states = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(other.act(states, explore=False)[1], agent.act(states, explore=False)[1], rtol=1e-5)
    agent.close()
    other.close()


@pytest.mark.slow
def test_pendulum_through_the_command_and_resume(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    cmd = [
        sys.executable,
        "-m",
        "kerlym",
        "-e",
        "Pendulum-v1",
        "-a",
        "ppo",
        "--n_steps",
        "128",
        "--steps",
        "512",
        "--outdir",
        str(tmp_path),
        "-q",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = [os.path.join(tmp_path, d) for d in os.listdir(tmp_path)]
    assert os.path.isdir(os.path.join(run_dir, "checkpoints", "step-0000000512"))
    resume = [sys.executable, "-m", "kerlym", "--resume", run_dir, "--steps", "768", "-q"]
    done = subprocess.run(resume, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed" in done.stdout and "finished at step 768" in done.stdout


@pytest.mark.slow
def test_ppo_learns_cartpole():
    agent = PPO(
        "CartPole-v1",
        n_steps=256,
        batch_size=64,
        n_epochs=10,
        discount=0.98,
        gae_lambda=0.8,
        learning_rate=1e-3,
        seed=0,
    )
    agent.learn(max_steps=40_000, verbose=0)
    returns = agent.evaluate(10, seed=100)
    agent.close()
    assert returns.mean() > 200  # random play averages about 22


def test_average_symmetries_averages_the_legal_policy_over_the_turned_boards():
    pytest.importorskip("pyspiel")
    import keras

    from kerlym.envs import make_env

    env = make_env("Go9x9-v0", env_kwargs={"opponent": "random", "board_size": 5})
    agent = PPO(env, seed=0, average_symmetries=True, n_steps=32, batch_size=32)
    model = agent.model  # random weights throughout, so no board's policy is symmetric by chance
    rng = np.random.default_rng(2)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
    obs, info = env.reset(seed=3)
    for action in (6, 12, 8):
        obs, *_, info = env.step(action)
    state, legal = obs.reshape(1, 3, 5, 5), info["action_mask"].astype(bool)
    probs, values = [], []
    for flip in (False, True):  # each turned board's policy over its legal moves, turned back by hand
        for k in range(4):
            board = np.rot90(state, k, axes=(2, 3))
            board = board[..., ::-1] if flip else board
            out = keras.ops.convert_to_numpy(agent.model(board.reshape(1, -1).astype(np.float32)))[0]
            points = out[:25].reshape(5, 5)
            logits = np.append(np.rot90(points[:, ::-1] if flip else points, -k), out[25:27])
            p = np.where(legal, np.exp(logits - logits.max()), 0.0)
            probs.append(p / p.sum())
            values.append(out[-1])
    by_hand = np.mean(probs, axis=0)
    actions, value = agent.act(state.reshape(1, -1), explore=False, masks=info["action_mask"][None])
    assert actions[0] == np.argmax(by_hand) and legal[actions[0]]
    np.testing.assert_allclose(value[0, 0], np.mean(values), rtol=1e-5)
    priors, leaf = agent.position_values(state.reshape(1, -1), legal[None])  # a search scores positions alike
    np.testing.assert_allclose(priors[0], by_hand, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(leaf[0], np.mean(values), rtol=1e-5)
    plain, _ = agent.act(state.reshape(1, -1).copy(), explore=True, masks=info["action_mask"][None])  # sampling
    assert legal[plain[0]]
    assert len({int(np.argmax(p)) for p in probs}) > 1  # the turned boards disagree, so the average decides
    agent.learn(max_steps=64, verbose=0)


def test_average_symmetries_need_discrete_actions():
    with pytest.raises(ValueError, match="average_symmetries=True needs discrete actions"):
        PPO("Pendulum-v1", average_symmetries=True)


def test_the_rollouts_last_step_returns_its_updates_losses_and_episodes_report_its_metrics():
    agent = PPO("CartPole-v1", n_steps=4, batch_size=2, n_epochs=3, seed=0)
    update, rows = agent.update, []
    agent.update = lambda rollout: rows.append(update(rollout)) or rows[-1]
    obs, _ = agent.env.reset(seed=0)
    agent.begin_episode(obs)
    returned = []
    for _ in range(4):
        state = agent.buffer.histories[0].latest()
        actions, _ = agent.act(state)
        obs, reward, terminated, truncated, _ = agent.env.step(int(actions[0]))
        agent.observe(0, state[0], actions[0], reward, terminated, truncated, obs)
        returned.append(agent.after_step(agent.total_steps))
    assert returned[:3] == [[], [], []] and agent.updates == 1
    (loss_rows,) = rows  # 3 epochs of 2 minibatches: a row each, the loss first, then metric_names
    assert loss_rows.shape == (6, 6) and returned[3] == loss_rows[:, 0].tolist()
    stats, losses = agent.end_episode(0)
    assert losses == [] and list(stats) == list(agent.metric_names)
    assert stats["approx_kl"] == pytest.approx(float(np.mean(loss_rows[:, 5])))
    assert agent.buffer.t == 0  # the next rollout starts
    agent.close()
