"""What every agent does with a user's model factory: the original KeRLym's factories, and Atari ids after import."""

import os
import subprocess
import sys

import gymnasium as gym
import keras
import numpy as np
import pytest
from keras import layers

from kerlym.agents import D2QN
from kerlym.factories import keras1_hint


def original_factory(agent, env, dropout=0.5, learning_rate=1e-3, **kwargs):
    """The original's simple_dnn as written, with only Keras 3's renames."""
    inp = keras.Input(shape=(agent.input_dim,))
    h = layers.Dense(16, activation="relu", kernel_initializer="uniform")(inp)
    out = layers.Dense(env.action_space.n, kernel_initializer="uniform")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=learning_rate), loss="mse")
    return model


def test_the_original_factory_gets_a_python_int_action_count():
    with pytest.raises(ValueError, match="expected a positive integer"):  # why: Keras 3 refuses NumPy's integers
        layers.Dense(gym.make("CartPole-v1").action_space.n)
    agent = D2QN("CartPole-v1", modelfactory=original_factory)
    assert type(agent.env.action_space.n) is int and agent.env.action_space.n == 2
    assert agent.model.output_shape == (None, 2)
    assert agent.env.action_space.contains(1) and not agent.env.action_space.contains(2)


def test_keras1_hint_by_hand():
    assert keras1_hint("Unrecognized keyword arguments passed to Dense: {'init': 'uniform'}") == (
        "Keras 3 spells init as kernel_initializer="
    )
    assert keras1_hint("Argument(s) not recognized: {'lr': 0.1}") == "Keras 3 spells lr as learning_rate="
    assert keras1_hint("Conv2D.__init__() missing 1 required positional argument: 'filters'") == (
        "Keras 3 spells nb_filter= as filters= (or pass it first, positionally)"
    )
    assert (
        keras1_hint("module 'keras.layers' has no attribute 'Convolution2D'")
        == "Keras 3 spells Convolution2D as Conv2D"
    )
    assert keras1_hint("Unrecognized keyword arguments passed to Dense: {'units2': 3}") is None


def _factory_with(layer):
    def factory(agent, env, dropout=0.5, learning_rate=1e-3, **kwargs):
        inp = keras.Input(shape=(agent.input_dim,))
        return keras.Model(inp, layer()(inp))

    return factory


@pytest.mark.parametrize(
    "layer, error, hint",
    [
        (lambda: layers.Dense(2, init="uniform"), ValueError, "; Keras 3 spells init as kernel_initializer="),
        (lambda: keras.optimizers.RMSprop(lr=0.1), ValueError, "; Keras 3 spells lr as learning_rate="),
        (lambda: layers.Conv1D(nb_filter=2, kernel_size=1), TypeError, "; Keras 3 spells nb_filter= as filters="),
    ],
)
def test_a_keras1_spelling_in_a_factory_gets_a_one_line_hint(layer, error, hint):
    with pytest.raises(error) as caught:
        D2QN("CartPole-v1", modelfactory=_factory_with(layer))
    message = str(caught.value)
    assert hint in message and "\n" not in message


def test_other_factory_errors_pass_unchanged():
    with pytest.raises(ValueError) as caught:
        D2QN("CartPole-v1", modelfactory=_factory_with(lambda: layers.Dense(-1)))
    assert "Keras 3 spells" not in str(caught.value)


ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)


def test_atari_ids_are_registered_after_import_kerlym_with_gymnasium_but_import_kerlym_stays_light():
    made = _python("import gymnasium as gym, kerlym; print(gym.make('SpaceInvaders-v0').spec.id)")
    assert made.returncode == 0 and made.stdout.split()[-1] == "SpaceInvaders-v0", made.stderr
    light = _python("import sys, kerlym; print('gymnasium' in sys.modules, 'ale_py' in sys.modules)")
    assert light.stdout.split() == ["False", "False"], light.stderr
    agents = _python("import kerlym.agents, gymnasium as gym; print(gym.make('SpaceInvaders-v0').spec.id)")
    assert agents.returncode == 0 and agents.stdout.split()[-1] == "SpaceInvaders-v0", agents.stderr


def test_atari_ids_are_registered_when_kerlym_is_imported_before_gymnasium():
    code = (
        "import sys, kerlym; light = 'gymnasium' in sys.modules or 'ale_py' in sys.modules\n"
        "import gymnasium as gym\n"
        "print(light, gym.make('SpaceInvaders-v0').spec.id, type(gym.__spec__.loader).__name__)"
    )
    made = _python(code)
    # still light, the id made, and Gymnasium's module left with its own loader
    assert made.returncode == 0 and made.stdout.split()[-3:] == ["False", "SpaceInvaders-v0", "SourceFileLoader"], (
        made.stderr
    )


def test_evaluate_reports_each_episode_as_it_ends_and_returns_the_same():
    agent = D2QN("CartPole-v1", seed=0, max_memory=100)
    seen = []
    returns = agent.evaluate(3, seed=5, on_episode=lambda i, total: seen.append((i, total)))
    assert seen == list(enumerate(returns.tolist())) and all(total >= 1 for _, total in seen)
    np.testing.assert_array_equal(returns, agent.evaluate(3, seed=5))  # the callback changes nothing
    agent.close()
