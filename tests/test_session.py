"""kerlym.session: what Agent.learn takes."""

import pytest

import kerlym
from kerlym.config import ConfigError


@pytest.fixture(scope="module")
def agent():
    built = kerlym.make("CartPole-v1", "dqn", seed=0)
    yield built
    built.close()


@pytest.mark.parametrize(
    "kwargs, message, is_type_error",
    [
        ({"max_steps": "100"}, "learn(): max_steps must be a positive integer, got '100'", True),
        ({"max_steps": 2.5}, "learn(): max_steps must be a positive integer, got 2.5", True),
        ({"max_steps": 0}, "learn(): max_steps must be a positive integer, got 0", False),
        ({"max_episodes": -3}, "learn(): max_episodes must be a positive integer, got -3", False),
        ({"total_timesteps": 1e3}, "learn(): total_timesteps must be a positive integer, got 1000.0", True),
        ({"eval_episodes": True}, "learn(): eval_episodes must be an integer, 0 or more, got True", True),
    ],
)
def test_learn_names_a_bad_argument_before_training(agent, kwargs, message, is_type_error):
    with pytest.raises(ConfigError) as e:
        agent.learn(verbose=0, **kwargs)
    assert str(e.value) == message and isinstance(e.value, TypeError) == is_type_error
    assert agent.total_steps == 0  # nothing ran
