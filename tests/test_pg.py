"""REINFORCE maths by hand: returns, Pong's reset rule, the advantage-weighted loss and its gradient."""

import keras
import numpy as np
import pytest
from keras import layers

from kerlym.agents import PG
from kerlym.agents.pg import discounted_returns, standardise


def linear_policy(agent, env, learning_rate=0.5, **kwargs):
    s = keras.Input((agent.input_dim,))
    p = layers.Dense(int(env.action_space.n), use_bias=False, activation="softmax")(s)
    model = keras.Model(s, p)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="categorical_crossentropy")
    return model


def test_discounted_returns_by_hand():
    np.testing.assert_allclose(discounted_returns([1, 0, 2], 0.5), [1 + 0.5 * 0 + 0.25 * 2, 0 + 0.5 * 2, 2])


def test_pong_reset_restarts_the_return_at_each_point():
    r = [0, 0, -1, 0, 1]
    np.testing.assert_allclose(discounted_returns(r, 0.5, reset_on_score=True), [-0.25, -0.5, -1, 0.5, 1])
    np.testing.assert_allclose(discounted_returns(r, 0.5, reset_on_score=False), [-0.1875, -0.375, -0.75, 0.5, 1])


def test_standardise():
    np.testing.assert_allclose(standardise([1.0, 3.0]), [-1.0, 1.0])
    np.testing.assert_allclose(standardise([2.0, 2.0]), [0.0, 0.0])


def test_reset_rule_is_on_for_pong_only():
    assert PG("CartPole-v1", dropout=0.0).reset_on_score is False
    assert PG("CartPole-v1", dropout=0.0, reset_on_score=True).reset_on_score is True


def test_episode_update_is_the_advantage_weighted_log_likelihood_step():
    agent = PG("CartPole-v1", modelfactory=linear_policy, learning_rate=0.5, discount=0.5, seed=0)
    w = np.random.default_rng(1).normal(size=(4, 2)).astype(np.float32) * 0.3
    agent.model.set_weights([w])
    s = np.array([[1.0, 0.0, 0.5, -1.0], [0.0, 1.0, -0.5, 2.0], [1.0, 1.0, 1.0, 1.0]], np.float32)
    a = np.array([0, 1, 1])
    agent.begin_episode(None)
    for state, action, reward in zip(s, a, [1.0, 0.0, 2.0]):
        agent.observe(0, state, action, reward, False, False, None)
    adv = standardise(discounted_returns([1.0, 0.0, 2.0], 0.5))

    logits = s @ w
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected_loss = np.mean(-adv * np.log(p[np.arange(3), a]))
    # d/dW of -A log softmax(sW)_a = -A * s^T (onehot(a) - p), averaged over the 3 real steps.
    grad = sum(-adv[i] * np.outer(s[i], np.eye(2)[a[i]] - p[i]) for i in range(3)) / 3

    extra, losses = agent.end_episode()  # the episode's end runs the update and returns its loss
    assert extra == {} and agent.updates == 1
    np.testing.assert_allclose(losses, [expected_loss], rtol=1e-4)
    np.testing.assert_allclose(agent.model.get_weights()[0], w - 0.5 * grad, rtol=1e-4, atol=1e-6)


def test_greedy_and_sampled_actions():
    agent = PG("CartPole-v1", modelfactory=linear_policy, seed=0)
    agent.model.set_weights([np.array([[0.0, 3.0]] * 4, np.float32)])
    state = np.ones((1, 4), np.float32)
    actions, probs = agent.act(state, explore=False)
    assert actions.tolist() == [1]
    np.testing.assert_allclose(probs, [[1 / (1 + np.exp(12)), 1 / (1 + np.exp(-12))]], rtol=1e-4)
    agent.model.set_weights([np.zeros((4, 2), np.float32)])
    sampled, _ = agent.act(np.ones((2000, 4), np.float32))
    assert 900 < sampled.sum() < 1100  # a uniform policy samples both actions equally often
    agent.model.set_weights([np.array([[0.0, -3.0]] * 4, np.float32)])
    assert agent.act(np.ones((500, 4), np.float32))[0].sum() == 0  # p(1) = 6e-6: never sampled


@pytest.mark.slow
def test_a_saved_policy_loads_with_identical_outputs(tmp_path):
    import kerlym

    path = str(tmp_path / "pg.keras")
    agent = PG("CartPole-v1", dropout=0.0, seed=0, learning_rate=1e-2)
    agent.learn(max_episodes=5, verbose=0)
    agent.save(path)
    x = np.random.default_rng(0).normal(size=(8, agent.input_dim)).astype(np.float32)
    loaded = kerlym.load(path, env="CartPole-v1", agent="pg", dropout=0.0)
    np.testing.assert_array_equal(loaded.act(x, explore=False)[1], agent.act(x, explore=False)[1])


def test_evaluation_is_greedy_unless_asked_to_sample_from_the_policy():
    agent = PG("CartPole-v1", modelfactory=linear_policy, seed=0)
    agent.model.set_weights([np.zeros((4, 2), np.float32)])  # a uniform policy; its argmax is always "left"
    greedy = agent.evaluate(20, seed=0)
    sampled = agent.evaluate(20, seed=0, explore=True)
    assert greedy.max() <= 12  # always pushing left drops the pole within a dozen steps
    assert sampled.max() > 12 and len(set(sampled.tolist())) > 3  # random actions balance longer, variably


def test_each_episode_row_reports_the_loss_of_its_own_update():
    agent = PG("CartPole-v1", modelfactory=linear_policy, seed=0)
    update, losses = agent.steps.update, []

    def recording_update(batches):
        losses.append(update(batches))
        return losses[-1]

    agent.steps.update = recording_update
    agent.learn(max_episodes=3)
    assert len(losses) == 3
    np.testing.assert_allclose([row["loss"] for row in agent.episodes], [float(np.mean(x)) for x in losses])


def test_masked_policy_renormalises_over_legal_actions():
    import keras

    from kerlym.agents.pg import greedy_and_sampled, renormalised

    probs = np.array([[0.5, 0.3, 0.2]], dtype=np.float32)
    legal = np.array([[0.0, 1.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(renormalised(probs, legal)), [[0.0, 0.6, 0.4]], atol=1e-7)
    for u, expected in ((0.0, 1), (0.59, 1), (0.61, 2), (0.99, 2)):  # action 0 is never drawn
        greedy, sampled, _ = greedy_and_sampled(probs, np.array([u], dtype=np.float32), legal)
        assert int(keras.ops.convert_to_numpy(greedy)[0]) == 1
        assert int(keras.ops.convert_to_numpy(sampled)[0]) == expected
