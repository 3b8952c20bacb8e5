"""kerlym.backend: compiled act and update on every Keras backend, checked against hand-computed numbers."""

import warnings

import keras
import numpy as np
import pytest
from keras import ops

from kerlym.backend import build_steps, computes_in_16_bits
from kerlym.backend.common import has_convolutions

BACKEND = keras.backend.backend()
tf_only = pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow only")


def linear(n_in=3, n_out=2, lr=0.1, policy=None):
    """``y = x @ W`` trained with plain SGD: updates easy to compute by hand."""
    previous = keras.config.dtype_policy()
    if policy:
        keras.config.set_dtype_policy(policy)
    try:
        x = keras.Input((n_in,))
        model = keras.Model(x, keras.layers.Dense(n_out, use_bias=False)(x))
    finally:
        keras.config.set_dtype_policy(previous)
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    return model


def regression_loss(online, batch, prepared):
    """Mean squared distance of ``online(x)`` to ``prepared`` (the target network's outputs on ``x2``)."""
    x, x2 = batch
    return ops.mean((online(x, training=True) - prepared) ** 2)


def target_outputs(target, batches):
    return target(batches[1])


def hand_updates(w, w_target, batches, lr=0.1):
    """The losses and final weights of SGD on :func:`regression_loss`, one minibatch after another."""
    w = w.copy()
    losses = []
    for x, x2 in zip(*batches):
        error = x @ w - x2 @ w_target
        losses.append(np.mean(error**2))
        w -= lr * 2.0 * x.T @ error / error.size
    return np.array(losses), w


@pytest.mark.parametrize("n", [2, 12])  # unrolled, and a tf.range / lax.scan loop (more than UNROLL steps)
def test_update_runs_prepare_once_and_each_minibatch_gets_its_slice(n):
    rng = np.random.default_rng(0)
    model, target = linear(), linear()
    w, w_target = (rng.normal(size=(3, 2)).astype(np.float32) for _ in range(2))
    model.set_weights([w])
    target.set_weights([w_target])
    batches = tuple(rng.normal(size=(n, 4, 3)).astype(np.float32) for _ in range(2))
    steps = build_steps(model, regression_loss, target=target, prepare=target_outputs)

    losses = steps.update(batches)
    expected_losses, expected_w = hand_updates(w, w_target, batches)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    np.testing.assert_allclose(steps.get_weights()[0], expected_w, rtol=1e-5, atol=1e-6)
    steps.to_keras()
    np.testing.assert_allclose(model.get_weights()[0], expected_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(target.get_weights()[0], w_target)  # an update leaves the target alone
    # A second update takes the call cached by the first (TensorFlow: straight through the eager executor).
    losses = steps.update(batches)
    expected_losses, expected_w = hand_updates(expected_w, w_target, batches)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    np.testing.assert_allclose(steps.get_weights()[0], expected_w, rtol=1e-5, atol=1e-5)


def test_metrics_after_the_loss_come_back_as_columns():
    rng = np.random.default_rng(1)
    model = linear()
    w = rng.normal(size=(3, 2)).astype(np.float32)
    model.set_weights([w])
    x = rng.normal(size=(3, 4, 3)).astype(np.float32)

    def loss_and_mean_output(online, batch, prepared):
        y = online(batch[0], training=True)
        return ops.mean(y**2), ops.mean(y)

    rows = build_steps(model, loss_and_mean_output).update((x,))
    assert rows.shape == (3, 2)
    first = x[0] @ w  # the first minibatch sees the starting weights
    np.testing.assert_allclose(rows[0], [np.mean(first**2), np.mean(first)], rtol=1e-5)


def test_sync_target_copies_the_online_weights_and_later_updates_leave_the_copy():
    rng = np.random.default_rng(2)
    model, target = linear(), linear()
    steps = build_steps(model, regression_loss, target=target, prepare=target_outputs)
    start = steps.get_weights()[0]
    steps.sync_target()
    batches = tuple(rng.normal(size=(2, 4, 3)).astype(np.float32) for _ in range(2))
    batches[1][:] += 1.0  # targets the online network does not already give: the update moves it
    steps.update(batches)
    steps.to_keras()
    np.testing.assert_array_equal(target.get_weights()[0], start)
    assert not np.allclose(model.get_weights()[0], start)


def test_weights_set_through_keras_after_to_keras_are_used_by_the_next_step():
    model = linear()
    steps = build_steps(model, regression_loss)
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    steps.to_keras()
    model.set_weights([np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)])
    actions, y = steps.act(x)
    np.testing.assert_allclose(y, [[4.0, 5.0]])
    assert actions.tolist() == [1]
    steps.set_weights([np.array([[0.0, 1.0], [0.0, 0.0], [2.0, 0.0]], np.float32)])  # without Keras
    np.testing.assert_allclose(steps.act(x)[1], [[6.0, 1.0]])
    np.testing.assert_allclose(steps.get_weights()[0], [[0.0, 1.0], [0.0, 0.0], [2.0, 0.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_act_returns_the_models_outputs_and_their_argmax(dtype):
    model = linear()
    steps = build_steps(model, regression_loss)
    rng = np.random.default_rng(1)
    for n in (1, 5, 1):  # the second call of a shape takes the cached (TensorFlow: direct) path
        wide = (rng.uniform(0, 9, size=(n, 6))).astype(dtype)
        x = wide[:, ::2]  # not contiguous
        actions, q = steps.act(x)
        expected = keras.ops.convert_to_numpy(model(x.astype(np.float32)))
        np.testing.assert_allclose(q, expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(actions, expected.argmax(-1))


def test_outputs_are_the_models_for_every_batch_size_and_follow_the_weights_after_an_update():
    model = linear()
    w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    model.set_weights([w])
    steps = build_steps(model, lambda online, batch, prepared: ops.mean(online(batch[0], training=True) ** 2))
    rng = np.random.default_rng(2)
    for n in (1, 3, 4, 5, 3):  # padded to 1, 4, 4, 8, then 4 again (the cached call)
        x = rng.uniform(-2, 2, size=(n, 3)).astype(np.float32)
        out = steps.outputs(x)
        assert out.shape == (n, 2)
        np.testing.assert_allclose(out, x @ w, rtol=1e-6, atol=1e-6)
    x = rng.normal(size=(1, 4, 3)).astype(np.float32)
    steps.update((x,))  # one step of SGD toward zero outputs
    steps.to_keras()
    np.testing.assert_allclose(steps.outputs(x[0]), x[0] @ model.get_weights()[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.get_weights()[0], w)


def test_act_fn_gets_the_float32_outputs_and_the_extra_inputs():
    model = linear()
    model.set_weights([np.eye(3, 2, dtype=np.float32)])

    def shifted(outputs, shift, scale):
        return (outputs + ops.expand_dims(ops.cast(shift, "float32"), -1)) * ops.cast(scale, "float32")

    steps = build_steps(model, act_fn=lambda out, shift, scale: (shifted(out, shift, scale), ops.sum(out, axis=-1)))
    x = np.array([[1.0, 2.0, 5.0], [3.0, 4.0, 5.0]], np.float32)
    for _ in range(2):
        moved, total = steps.act(x, np.array([10.0, -1.0]), np.array([2.0, 2.0], np.float32))
        np.testing.assert_allclose(moved, [[22.0, 24.0], [4.0, 6.0]])
        np.testing.assert_allclose(total, [3.0, 7.0])


def test_16_bit_models_are_told_apart_through_nested_models():
    inner = linear(policy="mixed_bfloat16")
    x = keras.Input((3,))
    outer = keras.Model(x, keras.layers.Dense(2, dtype="float32")(inner(x)))
    assert computes_in_16_bits(inner) and computes_in_16_bits(outer)
    assert not computes_in_16_bits(linear())


@tf_only
def test_tensorflow_runs_16_bit_models_as_plain_graphs_on_cpu():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("XLA stays on with a GPU")
    assert not build_steps(linear(policy="mixed_bfloat16"), regression_loss)._update.uses_xla
    assert build_steps(linear(), regression_loss)._update.uses_xla


@tf_only
def test_tensorflow_runs_convolutional_models_as_plain_graphs_on_cpu():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("XLA stays on with a GPU")
    x = keras.Input((6, 6, 1))
    inner = keras.Model(x, keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(x)))
    outer = keras.Model(x, keras.layers.Dense(2)(inner(x)))
    outer.compile(optimizer="sgd", loss="mse")
    assert has_convolutions(outer) and not has_convolutions(linear())
    assert not build_steps(outer, regression_loss)._update.uses_xla


@tf_only
def test_tensorflow_falls_back_to_a_plain_graph_once_when_xla_cannot_compile():
    import tensorflow as tf

    def loss_with_a_string_op(online, batch, prepared):  # AsString has no XLA kernel
        text = tf.strings.as_string(batch[0])
        return ops.mean(online(batch[0], training=True) ** 2) + 0.0 * tf.cast(tf.strings.length(text)[0, 0], "float32")

    model = linear()
    w = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], np.float32)
    model.set_weights([w])
    steps = build_steps(model, loss_with_a_string_op)
    x = np.array([[[1.0, 2.0, 0.0]]], np.float32)
    with pytest.warns(UserWarning, match="XLA cannot compile the update step .*AsString.*plain graph"):
        losses = steps.update((x,))
    np.testing.assert_allclose(losses, [2.5])  # (1 + 4) / 2
    assert not steps._update.uses_xla
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        steps.update((x,))


@tf_only
@pytest.mark.parametrize("fast", [True, False])
def test_tensorflow_act_gives_the_same_through_the_direct_and_the_public_call(monkeypatch, fast):
    from kerlym.backend import tensorflow as tf_backend

    if fast:  # this TensorFlow has the internals the direct call needs
        import tensorflow as tf

        fn = tf.function(lambda x: (x * 2.0, x + 1.0)).get_concrete_function(tf.TensorSpec([None, 2], tf.float32))
        fn(tf.constant([[0.0, 0.0]]))
        doubled, plus_one = tf_backend.direct_call(fn)(np.array([[1.0, 2.0]], np.float32))
        np.testing.assert_array_equal(doubled, [[2.0, 4.0]])
        np.testing.assert_array_equal(plus_one, [[2.0, 3.0]])
        summed = tf.function(lambda x: tf.reduce_sum(x, 1)).get_concrete_function(tf.TensorSpec([None, 2], tf.float32))
        summed(tf.constant([[0.0, 0.0]]))  # one tensor out, as an update gives its losses
        np.testing.assert_array_equal(tf_backend.direct_call(summed)(np.array([[1.0, 2.0]], np.float32)), [3.0])
    else:  # a TensorFlow without them: the public call
        monkeypatch.setattr(tf_backend, "direct_call", lambda fn: None)
    model = linear()
    model.set_weights([np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)])
    steps = build_steps(model, regression_loss)
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    for _ in range(3):  # the first call traces; later ones take the cached call
        actions, y = steps.act(x)
        np.testing.assert_allclose(y, [[4.0, 5.0]])
        assert actions.tolist() == [1]


@pytest.mark.skipif(BACKEND != "jax", reason="JAX only")
@pytest.mark.parametrize("chosen", [None, "1"])
def test_building_an_agent_turns_async_cpu_dispatch_off_unless_the_program_chose(chosen):
    import os
    import subprocess
    import sys

    script = (
        "import jax; import kerlym.agents; before = jax.config.values['jax_cpu_enable_async_dispatch'];"
        "from kerlym.agents import DQN; DQN('CartPole-v1');"
        "print(before, jax.config.values['jax_cpu_enable_async_dispatch'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "JAX_CPU_ENABLE_ASYNC_DISPATCH"}
    if chosen is not None:
        env["JAX_CPU_ENABLE_ASYNC_DISPATCH"] = chosen
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    # Importing changes nothing; an agent turns it off, unless the program's environment chose.
    assert out.stdout.split()[-2:] == (["True", "False"] if chosen is None else ["True", "True"])


def test_a_seeded_agent_on_jax_or_torch_does_not_import_tensorflow():
    import subprocess
    import sys

    if keras.config.backend() == "tensorflow":
        pytest.skip("TensorFlow is the backend here")
    code = "import sys, kerlym; kerlym.make('CartPole-v1', 'dqn', seed=0); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_a_checkpoint_on_jax_or_torch_saves_and_loads_without_importing_tensorflow(tmp_path):
    import subprocess
    import sys

    if keras.config.backend() == "tensorflow":
        pytest.skip("TensorFlow is the backend here")
    code = (
        "import sys, numpy as np, kerlym\n"
        f"agent = kerlym.make('CartPole-v1', 'ppo', seed=0, outdir={str(tmp_path)!r})\n"
        "agent.learn(64, verbose=0, eval_episodes=0)\n"
        f"agent.save({str(tmp_path / 'a.keras')!r})\n"
        f"weights = kerlym.checkpoints.load_model({str(tmp_path / 'a.keras')!r}).get_weights()\n"
        "same = all(np.array_equal(a, b) for a, b in zip(weights, agent.greedy_model.get_weights()))\n"
        "print(same, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True False"


@pytest.mark.skipif(BACKEND != "jax", reason="JAX only")
def test_jax_steps_keep_their_arrays_when_keras_only_read_them():
    model = linear()
    steps = build_steps(model, regression_loss, target=None)
    tv = steps.arrays()[0]
    steps.to_keras()  # lent to Keras, as a save or an evaluation does, which only read the variables
    model.get_weights()
    assert steps.arrays()[0][0] is tv[0]  # the same arrays: nothing to copy back
    steps.to_keras()
    model.layers[-1].kernel.assign(np.ones((3, 2), np.float32))  # the user's own change through Keras
    (kernel,) = steps.arrays()[0]
    assert kernel is not tv[0]
    np.testing.assert_array_equal(np.asarray(kernel), np.ones((3, 2)))
    steps.to_keras()
    steps.set_arrays([np.full((3, 2), 2.0, np.float32)], [], steps.arrays()[2])  # new arrays while lent
    np.testing.assert_array_equal(np.asarray(steps.arrays()[0][0]), np.full((3, 2), 2.0))
    steps.to_keras()  # and Keras gets them
    np.testing.assert_array_equal(model.get_weights()[0], np.full((3, 2), 2.0))
