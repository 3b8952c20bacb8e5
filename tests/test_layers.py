"""kerlym's custom layers: registered under the names saved models hold, importing only Keras."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from kerlym import layers


@pytest.mark.parametrize("cls", [layers.LogStd, layers.ObservationNormalization, layers.DuelingQ, layers.Orthogonal])
def test_each_layer_is_registered_under_the_name_saved_models_hold(cls):
    name = f"kerlym>{cls.__name__}"
    assert keras.saving.get_registered_name(cls) == name
    assert keras.saving.get_registered_object(name) is cls


def test_dueling_q_is_value_plus_centred_advantages():
    q = layers.DuelingQ()([np.array([[1.0]], np.float32), np.array([[1.0, 3.0]], np.float32)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(q), [[0.0, 2.0]])  # mean advantage 2


def test_observation_normalization_scales_and_clips_by_its_statistics():
    layer = layers.ObservationNormalization(clip=2.0)
    layer.build((None, 2))
    layer.mean.assign(np.array([1.0, 0.0], np.float32))
    layer.var.assign(np.array([4.0, 1e-2], np.float32))
    out = keras.ops.convert_to_numpy(layer(np.array([[5.0, 1.0]], np.float32)))
    np.testing.assert_allclose(out, [[2.0, 2.0]], rtol=1e-5)  # (5 - 1) / 2; 1 / 0.1 = 10 clipped to 2


def test_the_module_imports_no_agent():
    code = "import sys, kerlym.layers; print(any(m.startswith('kerlym.agents.') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("shape", [(4, 64), (64, 2), (3, 3, 2, 8)])
def test_orthogonal_matrix_has_orthonormal_columns_or_rows_times_the_gain(shape):
    w = layers.orthogonal_matrix(shape, 2.0, seed=7)
    flat = w.reshape(-1, shape[-1])
    small = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(small, 4.0 * np.eye(min(flat.shape)), atol=1e-10)  # gain^2 I
    np.testing.assert_array_equal(w, layers.orthogonal_matrix(shape, 2.0, seed=7))  # the seed fixes it
    assert not np.allclose(w, layers.orthogonal_matrix(shape, 2.0, seed=8))


def test_orthogonal_initializer_keeps_keras_config_and_draws_orthogonal_weights():
    init = layers.Orthogonal(0.5, seed=3)
    assert init.get_config() == keras.initializers.Orthogonal(0.5, seed=3).get_config()
    w = keras.ops.convert_to_numpy(init((5, 3)))
    np.testing.assert_allclose(w.T @ w, 0.25 * np.eye(3), atol=1e-5)
