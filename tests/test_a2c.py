"""A2C's update against a hand-computed step, Box actions, and the network checks."""

import math

import keras
import numpy as np
import pytest
from keras import layers

from kerlym.agents import A2C, A3C, PPO
from kerlym.agents.actor_critic import Rollout, gaussian_log_prob


def linear_ac(agent, env, dropout=0.0, learning_rate=0.1, **kwargs):
    """Zero-initialised linear policy and value heads without biases, plain SGD."""
    s = keras.Input(shape=(agent.input_dim,))
    pi = layers.Dense(agent.num_actions, use_bias=False, kernel_initializer="zeros")(s)
    v = layers.Dense(1, use_bias=False, kernel_initializer="zeros")(s)
    model = keras.Model(s, [pi, v])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate))
    return model


def test_a2c_update_by_hand():
    agent = A2C("CartPole-v1", modelfactory=linear_ac, learning_rate=0.1, ent_coef=0.01, clipnorm=None, seed=0)
    s = np.array([[1.0, 2.0, 0.0, 0.0]], dtype=np.float32)
    rollout = Rollout(
        s,
        np.array([0], np.int32),
        np.zeros(1, np.float32),
        np.zeros(1, np.float32),
        np.array([2.0], np.float32),
        np.array([3.0], np.float32),
    )
    rows = agent.update(rollout)
    # Uniform policy, V=0: loss = -2 log(1/2) - 0.01 log 2 + 0.5 * 3^2.
    loss, policy_loss, value_loss, entropy = rows[0]
    assert loss == pytest.approx(2 * math.log(2) - 0.01 * math.log(2) + 4.5, abs=1e-5)
    assert (policy_loss, value_loss, entropy) == pytest.approx((2 * math.log(2), 9.0, math.log(2)), abs=1e-5)
    # d/dlogits of -A log pi(0) = -A (onehot - p) = [-1, 1]; the entropy's gradient is 0 at the uniform policy.
    # d/dV of 0.5 (R - V)^2 = -(R - V) = -3. SGD with lr 0.1 moves each weight column by -0.1 * grad * s.
    w_pi, w_v = agent.steps.get_weights()
    np.testing.assert_allclose(w_pi, np.stack([0.1 * s[0], -0.1 * s[0]], axis=1), atol=1e-6)
    np.testing.assert_allclose(w_v[:, 0], 0.3 * s[0], atol=1e-6)
    agent.close()


def test_rmsprop_tf_starts_the_mean_square_at_one_in_the_agents_update():
    # SB3's RMSpropTFLike (the Zoo's Atari A2C optimizer): v = 0.99 * 1 + 0.01 g^2, w -= lr g / sqrt(v + 1e-5).
    # The same rollout as test_a2c_update_by_hand, whose gradients are -s and +s (policy) and -3 s (value).
    from kerlym import optimizers

    def factory(agent, env, **kwargs):
        model = linear_ac(agent, env)
        model.compile(optimizer=optimizers.get("rmsprop_tf", learning_rate=0.1))
        return model

    agent = A2C("CartPole-v1", modelfactory=factory, ent_coef=0.01, clipnorm=None, seed=0)
    s = np.array([1.0, 2.0, 0.0, 0.0], dtype=np.float32)
    one = np.ones(1, np.float32)
    agent.update(Rollout(s[None], np.array([0], np.int32), 0 * one, 0 * one, 2 * one, 3 * one))

    def step(g):
        return 0.1 * g / np.sqrt(0.99 + 0.01 * g**2 + 1e-5)

    w_pi, w_v = agent.steps.get_weights()
    np.testing.assert_allclose(w_pi, np.stack([step(s), -step(s)], axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(w_v[:, 0], step(3 * s), rtol=1e-5, atol=1e-7)
    # Keras's RMSprop (v from 0) would have stepped every nonzero weight by about 0.1 / sqrt(0.01) = 1.
    assert np.abs(w_pi).max() < 0.2
    agent.close()


def test_a3c_is_a2c_under_the_original_name():
    assert A3C is A2C  # one class; the registry maps "a3c" to it


def test_box_actions_sample_a_gaussian_and_clip_to_bounds():
    agent = PPO("Pendulum-v1", n_steps=8, batch_size=8, seed=0)
    assert agent.continuous and agent.num_actions == 1
    states = np.random.default_rng(0).normal(size=(256, agent.input_dim)).astype(np.float32)
    actions, values = agent.act(states)
    sampled, log_prob, _ = agent.last_act
    assert values.shape == (256, 1) and np.all(np.abs(actions) <= 2.0)
    np.testing.assert_allclose(actions, np.clip(sampled, -2.0, 2.0))
    # The policy's means are near 0 (gain 0.01) and its std is 1: some of 256 samples lie beyond +-2... or none
    # with probability 0.9545^256; the log-prob is of the unclipped sample.
    assert np.any(np.abs(sampled) > 2.0)
    means = agent.act(states, explore=False)[0]
    expected = np.asarray(keras.ops.convert_to_numpy(gaussian_log_prob(means, np.zeros(1, np.float32), sampled)))
    np.testing.assert_allclose(log_prob, expected, rtol=1e-4, atol=1e-4)
    agent.close()


def test_a_q_network_is_refused_with_its_name():
    with pytest.raises(ValueError, match="simple_dnn outputs .* two outputs"):
        A2C("CartPole-v1", modelfactory="simple_dnn")


def test_dqn_still_refuses_box_actions():
    from kerlym.agents import DQN

    with pytest.raises(ValueError, match="discrete action space"):
        DQN("Pendulum-v1")


def test_a2c_rmsprop_steps_as_torchs_does_by_hand():
    # torch's RMSprop (SB3's A2C): v = 0.01 g^2, step = lr g / (sqrt(v) + 1e-5). For g = 1: 1 / (0.1 + 1e-5);
    # for g = 1e-3: 1e-3 / (1e-4 + 1e-5) = 9.09, where Keras's sqrt(v + 1e-10) gives 9.95 (within 10%) and
    # epsilon 1e-5 inside the root would give 1e-3 / sqrt(1.001e-5) = 0.32, 28 times smaller.
    from kerlym.networks import actor_critic_mlp

    agent = A2C("CartPole-v1", modelfactory=actor_critic_mlp, learning_rate=0.01, clipnorm=None, seed=0)
    optimizer = agent.model.optimizer
    assert optimizer.rho == pytest.approx(0.99)
    for g, step, rel in ((1.0, 1.0 / (0.1 + 1e-5), 1e-3), (1e-3, 1e-3 / (1e-4 + 1e-5), 0.1)):
        w = keras.Variable(np.zeros(1, np.float32))
        opt = optimizer.__class__.from_config(optimizer.get_config())
        opt.apply_gradients([(keras.ops.convert_to_tensor(np.full(1, g, np.float32)), w)])
        assert -float(keras.ops.convert_to_numpy(w)[0]) == pytest.approx(0.01 * step, rel=rel)


def test_a_model_saved_with_rmsprop_tf_loads_in_a_fresh_process(tmp_path):
    # Keras reads a saved optimizer even when loading uncompiled, so kerlym.checkpoints.load_model must register
    # RMSpropTF itself: a fresh process (kerlym --play, kerlym.load) has not compiled one yet.
    import os
    import subprocess
    import sys

    from kerlym.networks import actor_critic_mlp

    agent = A2C("CartPole-v1", modelfactory=actor_critic_mlp, optimizer="rmsprop_tf", seed=0)
    states = np.random.default_rng(0).normal(size=(5, agent.input_dim)).astype(np.float32)
    path = str(tmp_path / "model.keras")
    agent.model.save(path)
    np.save(tmp_path / "states.npy", states)
    logits = np.asarray(keras.ops.convert_to_numpy(agent.model(states)[0]))
    agent.close()
    code = (
        "import sys, numpy as np, keras; from kerlym import checkpoints; m = checkpoints.load_model(sys.argv[1]); "
        "np.save(sys.argv[3], keras.ops.convert_to_numpy(m(np.load(sys.argv[2]))[0]))"
    )
    out = tmp_path / "logits.npy"
    proc = subprocess.run(
        [sys.executable, "-c", code, path, str(tmp_path / "states.npy"), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
    )
    assert proc.returncode == 0, proc.stderr.strip().splitlines()[-1]
    np.testing.assert_array_equal(np.load(out), logits)
