"""Backend set-up done by kerlym.compiled."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

jax_only = pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX backend only")
CHECK = "import kerlym.compiled, jax; print(jax.config.values['jax_cpu_enable_async_dispatch'])"


@jax_only
@pytest.mark.parametrize("env_value, expected", [(None, "False"), ("1", "True")])
def test_jax_cpu_calls_run_inline_unless_the_user_says(env_value, expected):
    env = {k: v for k, v in os.environ.items() if k != "JAX_CPU_ENABLE_ASYNC_DISPATCH"}
    if env_value is not None:
        env["JAX_CPU_ENABLE_ASYNC_DISPATCH"] = env_value
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == expected


def _model():
    x = keras.Input((3,))
    model = keras.Model(x, keras.layers.Dense(2)(x))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def _target_loss(which):
    def loss_fn(online, target, batch):
        return keras.ops.mean((online(batch[0], training=True) - target(batch[which])) ** 2)

    return loss_fn


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="torch runs the target inside each step")
@pytest.mark.parametrize("n", [2, 12])  # unrolled, and a tf.range / lax.scan loop (more than UNROLL steps)
def test_precomputed_target_outputs_serve_only_the_declared_input(n):
    # With target_input=1 the target's outputs are computed from batch[1] before the steps run;
    # a loss that asks for the target on batch[0] must be refused, not handed batch[1]'s outputs.
    from kerlym.compiled import Compiled

    rng = np.random.default_rng(0)
    batches = tuple(rng.normal(size=(n, 4, 3)).astype(np.float32) for _ in range(2))
    models = [_model() for _ in range(3)]
    target = _model()
    for m in models:
        m.set_weights(models[0].get_weights())

    declared = Compiled(models[0], _target_loss(1), target=target, target_input=1).update(*batches)
    plain = Compiled(models[1], _target_loss(1), target=target, target_input=None).update(*batches)
    np.testing.assert_allclose(declared, plain, rtol=1e-5)
    with pytest.raises(ValueError, match=r"batch\[1\]"):
        Compiled(models[2], _target_loss(0), target=target, target_input=1).update(*batches)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's XLA choice")
def test_tensorflow_runs_16_bit_models_as_plain_graphs_on_cpu():
    import tensorflow as tf

    from kerlym.compiled import Compiled

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("XLA stays on with a GPU")
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        bf16 = _model()
    finally:
        keras.config.set_dtype_policy("float32")
    assert not Compiled(bf16, _target_loss(0))._tf_update.uses_xla
    assert Compiled(_model(), _target_loss(0))._tf_update.uses_xla


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_act_returns_the_models_outputs_and_their_argmax(dtype):
    from kerlym.compiled import Compiled

    model = _model()
    compiled = Compiled(model, _target_loss(0))
    rng = np.random.default_rng(1)
    for n in (1, 5, 1):  # the second call of a shape takes the cached fast path
        wide = (rng.uniform(0, 9, size=(n, 6))).astype(dtype)
        x = wide[:, ::2]  # not contiguous
        actions, q = compiled.act(x)
        expected = keras.ops.convert_to_numpy(model(x.astype(np.float32)))
        np.testing.assert_allclose(q, expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(actions, expected.argmax(-1))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's act entry points")
@pytest.mark.parametrize("missing", ["none", "execute", "flat"])
def test_tensorflow_act_falls_back_when_its_internals_are_missing(monkeypatch, missing):
    import tensorflow as tf

    import kerlym.compiled
    from kerlym.compiled import _flat_call

    graph_fn = tf.function(lambda x: (x * 2.0, x + 1.0)).get_concrete_function(tf.TensorSpec([None, 2], tf.float32))
    fn = graph_fn
    if missing == "none":  # this TensorFlow has the internals the fast path needs
        assert kerlym.compiled._execute_directly(graph_fn._inference_function, graph_fn.captured_inputs) is not None
    else:  # no TFE_Py_Execute: the flat entry point
        monkeypatch.setattr(kerlym.compiled, "_execute_directly", lambda *args: None)
    if missing == "flat":  # no flat entry point either: the public call

        class Public:
            def __call__(self, x):
                return graph_fn(x)

        fn = Public()
    x = np.array([[1.0, 2.0]], np.float32)
    doubled, plus_one = _flat_call(fn)(x)
    np.testing.assert_array_equal(doubled, [[2.0, 4.0]])
    np.testing.assert_array_equal(plus_one, [[2.0, 3.0]])
