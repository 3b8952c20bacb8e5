"""dtype_policy="mixed_bfloat16": layers compute in bfloat16; weights, TD targets and losses stay float32.

The hand-computed update uses numbers that bfloat16 holds exactly (small
multiples of 1/2, discount 0.5), so the bfloat16 step must equal the float32
arithmetic to the last bit that float32 carries; the act check uses a sum that
bfloat16 rounds, to show the layers really compute in bfloat16.
"""

import os

import keras
import numpy as np
import pytest
from keras import layers
from test_dqn import hand_sgd_step

from kerlym import checkpoints, networks, runs
from kerlym.agents import D2QN, DQN, PG

BF16 = "mixed_bfloat16"


def linear_q(agent, env, dropout=0.0, learning_rate=0.1, **kwargs):
    """Q(s) = s @ W with no float32 output layer: a user factory that ignores precision (kerlym warns)."""
    s = keras.Input((agent.input_dim,))
    model = keras.Model(s, layers.Dense(int(env.action_space.n), use_bias=False)(s))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    return model


def make_agent(cls, **kw):
    args = dict(modelfactory=linear_q, batch_size=2, update_nsamp=2, seed=0, discount=0.5, learning_rate=0.1)
    args = {**args, "dtype_policy": BF16, **kw}
    if args["dtype_policy"] == "float32":
        return cls("CartPole-v1", **args)
    with pytest.warns(UserWarning, match="linear_q's output layer computes in bfloat16, so its outputs are rounded"):
        return cls("CartPole-v1", **args)


def test_the_policy_shapes_the_factorys_layers_and_nothing_else():
    before = keras.config.dtype_policy().name
    agent = D2QN("CartPole-v1", modelfactory=networks.zoo_mlp, dtype_policy=BF16, seed=0)
    assert keras.config.dtype_policy().name == before  # the process-wide policy is back as it was
    for model in (agent.model, agent.target_model):
        dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
        assert [layer.compute_dtype for layer in dense] == ["bfloat16", "bfloat16", "float32"]
        assert {w.dtype for w in model.weights} == {"float32"}
    plain = D2QN("CartPole-v1", modelfactory=networks.zoo_mlp, seed=0)
    assert {layer.compute_dtype for layer in plain.model.layers} == {"float32"}


def test_by_default_the_agent_takes_the_global_policy():
    keras.config.set_dtype_policy(BF16)
    try:
        agent = D2QN("CartPole-v1", modelfactory=networks.zoo_mlp, seed=0)
        assert agent.dtype_policy == BF16 and agent.model.layers[1].compute_dtype == "bfloat16"
        with pytest.raises(ValueError, match="dtype_policy must be one of float32, mixed_bfloat16, got 'float16'"):
            keras.config.set_dtype_policy("float16")
            D2QN("CartPole-v1", modelfactory=networks.zoo_mlp)
    finally:
        keras.config.set_dtype_policy("float32")


def test_a_failing_factory_leaves_the_global_policy_alone():
    def broken(agent, env, **kw):
        raise RuntimeError("no network today")

    with pytest.raises(RuntimeError, match="no network today"):
        D2QN("CartPole-v1", modelfactory=broken, dtype_policy=BF16)
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.parametrize("cls", [DQN, D2QN])
def test_bf16_update_matches_hand_computed_sgd_step(cls):
    agent = make_agent(cls)
    w = np.array([[1.0, -0.5], [0.5, 1.0], [-1.0, 0.5], [0.5, 0.5]], np.float32)
    w_target = np.array([[0.5, 1.0], [-0.5, 0.5], [1.0, -1.0], [0.5, 0.0]], np.float32)
    agent.model.set_weights([w])
    agent.target_model.set_weights([w_target])
    s = np.array([[1.0, 0.5, -1.0, 2.0], [0.0, -1.0, 1.0, 0.5]], np.float32)
    s2 = np.array([[0.5, 0.5, 0.0, 1.0], [1.0, 1.0, -2.0, 0.0]], np.float32)
    a = np.array([1, 0], np.int32)
    r = np.array([1.0, -0.5], np.float32)
    term = np.array([False, False])
    expected_loss, grad = hand_sgd_step(cls, w, w_target, (s, a, r, s2, term), 0.5)

    losses = agent.steps.update((s[None], a[None], r[None], s2[None], term[None]))
    np.testing.assert_allclose(losses, [expected_loss], rtol=1e-6)
    np.testing.assert_allclose(agent.model.get_weights()[0], w - np.float32(0.1) * grad, rtol=1e-6)


def test_bf16_act_computes_in_bf16_and_returns_float32():
    agent = make_agent(DQN)
    w = np.array([[256.0, 2.0], [1.0, -1.0], [0.0, 0.5], [-0.5, 1.0]], np.float32)
    agent.model.set_weights([w])
    states = np.array([[1.0, 1.0, 0.0, 0.0], [0.5, 0.5, 1.0, 1.0]], np.float32)
    actions, q = agent.act(states, explore=False)
    assert q.dtype == np.float32
    # 256 + 1 = 257 needs 9 significant bits; bfloat16 has 8 and rounds it to 256. XLA may keep the
    # float32 sum instead (its xla_allow_excess_precision, on by default), so JAX may give either.
    sums = (256.0, 257.0) if keras.backend.backend() == "jax" else (256.0,)
    assert q[0, 0] in sums
    np.testing.assert_array_equal(q[:, 1:], [[1.0], [2.0]])
    np.testing.assert_array_equal(q[1, 0], 128.0)
    np.testing.assert_array_equal(actions, [0, 0])
    np.testing.assert_array_equal((states @ w)[0], [257.0, 1.0])  # what float32 layers would give


def test_a_bf16_checkpoint_reloads_with_identical_outputs(tmp_path):
    agent = D2QN("CartPole-v1", modelfactory=networks.zoo_mlp, dtype_policy=BF16, seed=0, learning_starts=64)
    agent.learn(max_steps=300)
    path = checkpoints.save_checkpoint(str(tmp_path), agent)
    states = np.random.default_rng(1).normal(size=(16, 4)).astype(np.float32)
    again = D2QN("CartPole-v1", modelfactory=networks.zoo_mlp, dtype_policy=BF16, seed=5)
    checkpoints.restore_checkpoint(path, again)
    np.testing.assert_array_equal(again.act(states, explore=False)[1], agent.act(states, explore=False)[1])
    assert again.total_steps == 300
    saved = checkpoints.load_model(os.path.join(path, runs.MODEL))  # the .keras file keeps each layer's policy
    assert [layer.compute_dtype for layer in saved.layers[1:]] == [
        layer.compute_dtype for layer in agent.model.layers[1:]
    ]
    assert saved.layers[1].compute_dtype == "bfloat16"


def test_pg_trains_under_bf16_with_float32_probabilities():
    agent = PG("CartPole-v1", dtype_policy=BF16, seed=0, learning_rate=1e-2)
    before = [w.copy() for w in agent.model.get_weights()]
    agent.learn(max_episodes=3)
    losses = [row["loss"] for row in agent.episodes]  # each episode's own update
    assert len(losses) == 3 and np.isfinite(losses).all()
    assert any(not np.array_equal(a, b) for a, b in zip(before, agent.model.get_weights()))
    _, probs = agent.act(np.ones((2, agent.input_dim), np.float32), explore=False)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown dtype policy 'float16'; choose one of: float32, mixed_bfloat16"):
        DQN("CartPole-v1", modelfactory=linear_q, dtype_policy="float16")
