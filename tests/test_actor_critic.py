"""The actor-critic maths against hand-computed numbers (kerlym.agents.actor_critic)."""

import math

import numpy as np
import pytest
from keras import ops

from kerlym.agents import actor_critic as ac

# One env (column 0) with a termination at t=1 and a truncation at t=2, and one (column 1) without episode ends.
REWARDS = np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [4.0, 1.0]])
VALUES = np.array([[2.0, 0.0], [4.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
# V(s_{t+1}): 99 after the termination must be ignored; 8 is the value of the truncated episode's final observation.
NEXT_VALUES = np.array([[4.0, 0.0], [99.0, 0.0], [8.0, 0.0], [6.0, 2.0]])
TERMINATED = np.array([[0, 0], [1, 0], [0, 0], [0, 0]], dtype=bool)
TRUNCATED = np.array([[0, 0], [0, 0], [1, 0], [0, 0]], dtype=bool)


def np_(x):
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def test_gae_by_hand():
    # gamma = lambda = 0.5. Column 0: deltas 1+0.5*4-2=1, 2-4=-2 (terminated), 3+0.5*8-0=7 (bootstrapped), 4+3-2=5;
    # A3=5, A2=7 and A1=-2 (episode ends cut the sum), A0=1+0.25*(-2)=0.5.
    # Column 1: deltas 1,1,1,2 -> A3=2, A2=1.5, A1=1.375, A0=1.34375.
    adv = ac.gae(REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED, discount=0.5, lam=0.5)
    np.testing.assert_allclose(adv, [[0.5, 1.34375], [-2.0, 1.375], [7.0, 1.5], [5.0, 2.0]])


def test_n_step_returns_by_hand():
    # Column 0: R3=4+0.5*6=7, R2=3+0.5*8=7 (truncated: bootstrap), R1=2 (terminated), R0=1+0.5*2=2.
    returns = ac.n_step_returns(REWARDS, NEXT_VALUES, TERMINATED, TRUNCATED, discount=0.5)
    np.testing.assert_allclose(returns, [[2.0, 2.0], [2.0, 2.0], [7.0, 2.0], [7.0, 2.0]])
    lam1 = ac.gae(REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED, discount=0.5, lam=1.0)
    np.testing.assert_allclose(lam1 + VALUES, returns)


def test_gae_lambda_zero_is_one_step_td():
    adv = ac.gae(REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED, discount=0.5, lam=0.0)
    np.testing.assert_allclose(adv[:, 0], [1.0, -2.0, 7.0, 5.0])


def test_categorical_log_prob_and_entropy():
    logits = np.array([[0.0, math.log(3.0)]], dtype=np.float32)  # probabilities 1/4, 3/4
    assert np_(ac.categorical_log_prob(logits, np.array([1])))[0] == pytest.approx(math.log(0.75), abs=1e-6)
    assert np_(ac.categorical_log_prob(logits, np.array([0])))[0] == pytest.approx(math.log(0.25), abs=1e-6)
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert np_(ac.categorical_entropy(logits))[0] == pytest.approx(expected, abs=1e-6)


def test_gaussian_log_prob_and_entropy():
    mean = np.array([[0.0, 1.0]], dtype=np.float32)
    log_std = np.array([0.0, math.log(2.0)], dtype=np.float32)
    action = np.array([[1.0, 1.0]], dtype=np.float32)
    # dim 0: z=1 -> -0.5 - 0 - 0.5 log 2pi; dim 1: z=0 -> -log 2 - 0.5 log 2pi.
    expected = -0.5 - math.log(2.0) - math.log(2.0 * math.pi)
    assert np_(ac.gaussian_log_prob(mean, log_std, action))[0] == pytest.approx(expected, abs=1e-5)
    expected = math.log(2.0) + math.log(2 * math.pi) + 1
    assert float(np_(ac.gaussian_entropy(log_std))) == pytest.approx(expected, abs=1e-5)


def _surrogate(theta, advantages, clip=0.2):
    """The clipped surrogate of a two-action linear policy, logits [theta, 0], action 0 taken, old theta 0."""
    n = len(advantages)
    logits = np.tile(np.array([[theta, 0.0]], dtype=np.float64), (n, 1))
    actions = np.zeros(n, dtype=np.int32)
    old = np.full(n, math.log(0.5))
    return float(np_(ac.clipped_surrogate(ac.categorical_log_prob(logits, actions), old, np.array(advantages), clip)))


def _grad(theta, advantages, h=1e-3):
    # A central difference; h is large enough for float32 (JAX's default) round-off, small for the curvature.
    return (_surrogate(theta + h, advantages) - _surrogate(theta - h, advantages)) / (2 * h)


def test_clipped_surrogate_and_its_gradient():
    # theta = log 3: pi(0) = 3/4, ratio 1.5. A=+1 is clipped to 1.2 (no gradient); A=-1 keeps -1.5 with
    # gradient d(1.5 * exp(logp - logp_old))/dtheta = 1.5 * (1 - 3/4) = 0.375. The loss is the batch mean.
    theta = math.log(3.0)
    assert _surrogate(theta, [1.0]) == pytest.approx(-1.2, abs=1e-6)
    assert _grad(theta, [1.0]) == pytest.approx(0.0, abs=1e-3)
    assert _surrogate(theta, [-1.0]) == pytest.approx(1.5, abs=1e-6)
    assert _grad(theta, [-1.0]) == pytest.approx(0.375, abs=1e-3)
    assert _surrogate(theta, [1.0, -1.0]) == pytest.approx(0.15, abs=1e-6)
    assert _grad(theta, [1.0, -1.0]) == pytest.approx(0.1875, abs=1e-3)
    # Inside the clip range it is the plain policy gradient: -A * (1 - pi(0)) = -0.5 at theta = 0.
    assert _grad(0.0, [1.0]) == pytest.approx(-0.5, abs=1e-3)


def test_normalise_advantages():
    out = np_(ac.normalise_advantages(np.array([1.0, 3.0])))
    np.testing.assert_allclose(out, [-1.0, 1.0], atol=1e-6)


def test_linear_schedule():
    assert ac.linear_schedule(3e-4, 0.0) == 3e-4
    assert ac.linear_schedule(3e-4, 0.75) == pytest.approx(7.5e-5)
    assert ac.linear_schedule(3e-4, 1.5) == 0.0


def test_running_mean_std_by_hand():
    rms = ac.RunningMeanStd(shape=(), epsilon=1e-12)
    rms.update(np.array([1.0, 2.0, 3.0]))
    assert rms.mean == pytest.approx(2.0) and rms.var == pytest.approx(2.0 / 3.0)
    rms.update(np.array([5.0]))
    # All four: mean 2.75, variance (1+4+9+25)/4 - 2.75**2 = 2.1875.
    assert rms.mean == pytest.approx(2.75) and rms.var == pytest.approx(2.1875)
    meta, arrays = rms.state("obs")
    other = ac.RunningMeanStd(shape=())
    other.restore("obs", meta, arrays)
    assert (other.mean, other.var, other.count) == (rms.mean, rms.var, rms.count)


def test_log_std_init_starts_the_gaussian_and_survives_saving(tmp_path):
    """``log_std_init`` (SB3's policy_kwargs) sets the log-std before training; a saved model keeps it."""
    import keras

    from kerlym.agents import PPO

    agent = PPO("Pendulum-v1", log_std_init=-2.0, n_steps=64, batch_size=64, seed=0)
    layer = agent.model.get_layer("log_std")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.log_std), [-2.0])
    _, log_std, _ = agent.split(agent.model(np.zeros((3, 3), dtype="float32")))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(log_std), [[-2.0]] * 3)
    path = str(tmp_path / "m.keras")
    agent.model.save(path)
    again = keras.models.load_model(path)
    assert again.get_layer("log_std").initial == -2.0
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again.get_layer("log_std").log_std), [-2.0])
    assert PPO("Pendulum-v1", n_steps=64, batch_size=64, seed=0).model.get_layer("log_std").initial == 0.0
