"""What every backend's steps share: the interface, the model checks, float32 outputs and the factory's loss."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from keras import ops

# Updates of up to this many minibatch steps are unrolled in the compiled graph; longer ones loop
# (tf.while / lax.scan). XLA on CPU runs convolutions much slower inside a loop than unrolled, while
# an MLP's many small steps are fine inside one, and unrolling a long update would compile slowly.
UNROLL = 8


def float32(x):
    """A model's outputs in float32, whatever dtype its last layer computed in (a no-op when float32)."""
    return ops.cast(x, "float32")


def default_act(outputs):
    """The default ``act_fn``: greedy actions and the model's outputs."""
    return ops.argmax(outputs, axis=-1), outputs


def sublayers(model):
    """Every layer of ``model`` and of the models nested in it, through the public ``layers`` lists."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from sublayers(layer)


def computes_in_16_bits(model) -> bool:
    """Whether any layer with weights, nested models' included, computes in bfloat16 or float16."""
    return any(layer.compute_dtype in ("bfloat16", "float16") for layer in sublayers(model) if layer.weights)


def has_convolutions(model) -> bool:
    """Whether any layer, nested models' included, is a convolution (a Keras ``Conv*`` layer)."""
    return any(type(layer).__name__.startswith("Conv") for layer in sublayers(model))


def compiled_loss(model, factory_name: str = "the model factory"):
    """The loss a model was compiled with, as ``f(y_true, y_pred, sample_weight=None) -> scalar``.

    The result is the mean over the batch of the per-sample loss, each
    multiplied by its ``sample_weight`` when one is given.
    """
    if not getattr(model, "compiled", False) or model.optimizer is None or model.loss is None:
        raise ValueError(f"{factory_name} returned a model that is not compiled; call model.compile(optimizer, loss)")
    loss = model.loss
    if isinstance(loss, (list, tuple, dict)):
        raise ValueError(f"{factory_name} compiled several losses; kerlym needs exactly one")
    if isinstance(loss, keras.losses.Loss):
        # Reduce per sample ourselves so that sample weights mean the same for every loss.
        config = loss.get_config()
        config["reduction"] = None
        fn = type(loss).from_config(config)
    else:
        fn = keras.losses.get(loss)

    def mean_loss(y_true, y_pred, sample_weight=None):
        per_sample = fn(y_true, y_pred)
        if sample_weight is not None:
            per_sample = per_sample * ops.cast(sample_weight, per_sample.dtype)
        return ops.mean(per_sample)

    return mean_loss


def split_loss(result):
    """``loss_fn``'s result as ``(loss, metrics)``: a scalar alone, or the first of a tuple and the rest."""
    if isinstance(result, (tuple, list)):
        return result[0], tuple(result[1:])
    return result, ()


def loss_row(loss, metrics):
    """One minibatch's row of :meth:`Steps.update`'s result: the loss, or the loss then its metrics, in float32."""
    if not metrics:
        return float32(loss)
    return ops.stack([float32(loss), *(float32(m) for m in metrics)])


def merge_leading(x):
    """``[steps, B, ...] -> [steps * B, ...]``, for a model that takes one batch axis."""
    return ops.reshape(x, (x.shape[0] * x.shape[1], *x.shape[2:]))


def split_leading(y, steps: int):
    """The inverse of :func:`merge_leading` for a model's outputs."""
    return ops.reshape(y, (steps, y.shape[0] // steps, *y.shape[1:]))


def slice_prepared(prepared, k):
    """Minibatch ``k``'s part of what ``prepare`` returned: ``None``, one tensor, or a tuple of them."""
    if prepared is None:
        return None
    if isinstance(prepared, (tuple, list)):
        return tuple(p[k] for p in prepared)
    return prepared[k]


class Steps:
    """The compiled act and update steps of one model, built by :func:`kerlym.backend.build_steps`.

    TensorFlow and torch read and write the model's Keras variables. JAX keeps
    the weights and the optimizer state as arrays of its own between calls;
    :meth:`to_keras` writes them into the Keras variables for whatever reads
    or sets those, and the next step reads them back.

    Args:
        model: a compiled Keras model; its optimizer does the updates.
        loss_fn: ``loss_fn(online, batch, prepared) -> loss`` or ``(loss, *metrics)``, in ``keras.ops``;
            ``None`` for steps that only act.
        target: optional target network with the same architecture as ``model``.
        prepare: optional ``prepare(target, batches) -> tensor or tuple``, run once per update.
        act_fn: ``act_fn(outputs, *extra_inputs) -> tuple of tensors``, run inside the compiled act.
    """

    def __init__(self, model, loss_fn=None, target=None, prepare=None, act_fn: Callable | None = None):
        self.model = model
        self.loss_fn = loss_fn
        self.target = target
        self.prepare = prepare
        self.act_fn = act_fn or default_act
        if loss_fn is not None:
            model.optimizer.build(model.trainable_variables)
        # Keras walks every layer to list variables; the lists never change, so list them once.
        self.trainable = list(model.trainable_variables)
        self.non_trainable = list(model.non_trainable_variables)
        self.optimizer_vars = list(model.optimizer.variables) if loss_fn is not None else []
        self.target_vars = list(target.variables) if target is not None else []

    def act(self, x: np.ndarray, *extra: np.ndarray) -> tuple[np.ndarray, ...]:
        """``act_fn(model(x), *extra)`` for a batch of flat states, as NumPy arrays."""
        raise NotImplementedError

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """The model's raw outputs for a batch of flat states, as a NumPy array, compiled as :meth:`act` is.

        For callers with batches of every size (a search scores a position and its children at once):
        the batch is padded with zero states to a power of two, so a few shapes compile, and cut back.
        """
        n = len(x)
        size = 1 << (n - 1).bit_length() if n > 1 else 1
        if size != n:
            x = np.concatenate([x, np.zeros((size - n, *x.shape[1:]), dtype=x.dtype)])
        return self._outputs(x)[:n]

    def _outputs(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def update(self, batches: tuple[np.ndarray, ...]) -> np.ndarray:
        """One optimizer step per minibatch; every array of ``batches`` has a leading minibatch axis.

        Returns each minibatch's loss (before its step), shape ``[steps]``, or
        ``[steps, 1 + k]`` when ``loss_fn`` returns ``k`` metrics after the loss.
        """
        raise NotImplementedError

    def sync_target(self) -> None:
        """Copy the online weights into the target network."""
        for t, v in zip(self.target_vars, self.model.variables, strict=True):
            t.assign(v.value)

    def get_weights(self) -> list[np.ndarray]:
        """The model's current weights as new NumPy arrays, in ``model.get_weights()``'s order."""
        return self.model.get_weights()

    def set_weights(self, weights) -> None:
        """Set the model's weights (``model.set_weights``'s order)."""
        self.model.set_weights(weights)

    def to_keras(self) -> None:
        """Bring the Keras variables up to date before something reads or sets them (see the class docstring)."""

    def from_keras(self) -> None:
        """Read the Keras variables again after something set them."""
