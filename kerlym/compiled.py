"""Compiled act and update steps: the one piece of kerlym that differs per Keras backend.

Agents describe learning as a backend-neutral loss written with ``keras.ops``::

    loss_fn(online, target, batch) -> scalar

``online(x, training=False)`` runs the model being trained, ``target(x)``
runs the target network (``None`` when there is none), and ``batch`` is a
tuple of tensors. :class:`Compiled` turns that into

* ``act(x)``: one compiled call returning ``argmax`` and the model outputs;
* ``update(*batches)``: one compiled call that runs every minibatch stacked
  on the leading axis of ``batches``, each a full step of loss, gradients and
  the optimizer that the model factory compiled.

TensorFlow runs both as ``tf.function`` graphs, JAX as ``jax.jit`` over
Keras's stateless API (the update loops with ``lax.scan``), and torch eagerly.

Model outputs are cast to float32 wherever they leave the model, so under a
mixed-precision policy (layers computing in bfloat16) the loss, the TD targets
and the Q-values returned by ``act`` are float32. TensorFlow XLA-compiles its
graphs, except for a model that computes in a 16-bit float on a machine
without a GPU: XLA's CPU backend has no fast bfloat16 kernels, and plain graphs
run TensorFlow's oneDNN ones.

On JAX, importing this module turns off JAX's asynchronous dispatch on CPU
(``jax_cpu_enable_async_dispatch``), unless ``JAX_CPU_ENABLE_ASYNC_DISPATCH``
is set in the environment. The training loop waits for every act call's
result before it can step the env, so dispatching the call to another thread
only adds that thread's wake-up: a small network's act took 60 us that way and
27 us inline on the 2-core machine. It takes effect only if JAX has not yet
run anything on the CPU in this process.
"""

from __future__ import annotations

import functools
import itertools
import os

import keras
import numpy as np
from keras import ops

if keras.backend.backend() == "jax" and "JAX_CPU_ENABLE_ASYNC_DISPATCH" not in os.environ:
    import jax

    try:
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    except AttributeError:  # a JAX without this option: dispatch stays as JAX has it
        pass

# Updates of up to this many minibatch steps are unrolled in the compiled graph. XLA on CPU
# runs convolutions inside a loop (tf.while / lax.scan) 10-20x slower than unrolled;
# an MLP's many small steps are fine inside the loop, and long loops would compile slowly.
UNROLL = 8


def _float32(x):
    """A model's outputs in float32, whatever dtype its last layer computed in (a no-op when float32)."""
    return ops.cast(x, "float32")


def _computes_in_16_bits(model) -> bool:
    """Whether any layer with weights, nested models' included, computes in bfloat16 or float16."""
    layers = model._flatten_layers(include_self=False)
    return any(layer.compute_dtype in ("bfloat16", "float16") for layer in layers if layer.weights)


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


class _TfCall:
    """Runs ``fn`` as a TensorFlow graph with as little per-call overhead as possible.

    Concrete functions are cached per input signature, which skips
    ``tf.function``'s argument matching on every call (about 0.15 ms). Each is
    XLA-compiled (unless ``xla`` is false), or, once XLA cannot compile the
    model, a plain graph from then on. ``batch_polymorphic`` leaves the leading axis of the inputs free.
    """

    def __init__(self, fn, batch_polymorphic: bool, xla: bool = True):
        import tensorflow as tf

        self.tf = tf
        self.xla, self.graph = tf.function(fn, jit_compile=True), tf.function(fn)
        self.uses_xla = xla
        self.batch_polymorphic = batch_polymorphic
        self.cache = {}

    def __call__(self, *args):
        tf = self.tf
        single = len(args) == 1 and isinstance(args[0], np.ndarray)
        if single:  # acting: keyed without tf.nest and called flat, the hot path
            x = args[0]
            key = (x.dtype, x.shape[1:] if self.batch_polymorphic else x.shape)
            fn = self.cache.get(key)
            if fn is not None:
                return fn(x)
            tensors = (tf.constant(x),)
        else:
            tensors = tf.nest.map_structure(tf.convert_to_tensor, args)
            flat = tf.nest.flatten(tensors)
            key = tuple((t.dtype, tuple(t.shape[1:] if self.batch_polymorphic else t.shape)) for t in flat)
            fn = self.cache.get(key)
            if fn is not None:
                return fn(*tensors)
        specs = tf.nest.map_structure(
            lambda t: tf.TensorSpec([None, *t.shape[1:]] if self.batch_polymorphic else t.shape, t.dtype), tensors
        )
        try:
            fn = (self.xla if self.uses_xla else self.graph).get_concrete_function(*specs)
            out = fn(*tensors)
        except Exception:  # XLA cannot compile some ops (it varies by TF version)
            if not self.uses_xla:
                raise
            self.uses_xla = False
            self.cache.clear()
            fn = self.graph.get_concrete_function(*specs)
            out = fn(*tensors)
        self.cache[key] = _flat_call(fn) if single else fn
        return out


def _flat_call(fn):
    """``fn(x)`` for one array, run through TensorFlow's eager executor with as few Python layers as it allows.

    A concrete function's public call matches its arguments and outputs
    against their structures on every call, and ``tf.constant`` and
    ``call_flat`` add layers of their own. A small model's whole act step on
    the 2-core machine took 171 us through the public call, 105 us through
    the flat entry point (``_inference_function.call_flat``), and 70 us
    executing the function directly (``TFE_Py_Execute``, as TensorFlow's
    ``call_function`` does) on a tensor made straight from the array. Where
    this TensorFlow lacks those internals, the flat entry point or the
    public call is used.
    """
    import tensorflow as tf

    try:
        inference, captured, structure = fn._inference_function, list(fn.captured_inputs), fn.structured_outputs
    except AttributeError:
        return lambda x: fn(tf.constant(x))
    flat_tuple = isinstance(structure, tuple) and len(tf.nest.flatten(structure)) == len(structure)
    call = _execute_directly(inference, captured)
    if call is None:

        def call(x):
            return inference.call_flat(tf.constant(x), *captured)

    if flat_tuple:
        return lambda x: tuple(call(x))  # a flat tuple, as act's is: no repacking
    return lambda x: tf.nest.pack_sequence_as(structure, call(x))


def _execute_directly(inference, captured):
    """``x -> flat outputs`` of a graph function through ``TFE_Py_Execute``; ``None`` where TensorFlow lacks it."""
    try:
        from tensorflow.python import pywrap_tfe
        from tensorflow.python.eager import context
        from tensorflow.python.framework.ops import EagerTensor

        ctx = context.context()
        ctx.ensure_initialized()
        name = inference.name.decode()
        n_out = len(inference.function_type.flat_outputs)
        attrs = tuple(itertools.chain(*ctx.function_call_options.as_attrs().items()))
        execute = pywrap_tfe.TFE_Py_Execute
    except (AttributeError, ImportError):
        return None

    def call(x):
        device = ctx.device_name
        return execute(ctx._handle, device, name, [EagerTensor(x, device), *captured], attrs, n_out)

    return call


class Compiled:
    """Compiled act/update for ``model`` (and an optional ``target`` copy) on the current backend.

    Args:
        model: a compiled Keras model; its optimizer does the updates.
        loss_fn: ``loss_fn(online, target, batch) -> scalar`` in ``keras.ops``.
        target: optional target network with the same architecture.
        target_input: index of the batch element that ``loss_fn`` passes to
            ``target`` (its only call of it). The target network is fixed during
            an update, so TensorFlow and JAX then run it once on the minibatches
            of the whole update, one large matrix product instead of one per
            minibatch, and ``target(x)`` inside ``loss_fn`` returns that slice.
    """

    def __init__(self, model, loss_fn, target=None, target_input: int | None = None):
        self.model = model
        self.target = target
        self.loss_fn = loss_fn
        self.target_input = target_input if target is not None else None
        self.backend = keras.backend.backend()
        model.optimizer.build(model.trainable_variables)
        # Keras walks every layer to list variables; the lists never change, so list them once.
        self._vars = {
            "trainable": list(model.trainable_variables),
            "non_trainable": list(model.non_trainable_variables),
            "optimizer": list(model.optimizer.variables),
            "target_trainable": list(target.trainable_variables) if target is not None else [],
            "target_non_trainable": list(target.non_trainable_variables) if target is not None else [],
        }
        build = {"tensorflow": self._build_tf, "jax": self._build_jax, "torch": self._build_torch}
        if self.backend not in build:
            raise RuntimeError(f"unsupported Keras backend {self.backend!r}")
        build[self.backend]()

    def sync_target(self) -> None:
        """Copy the online weights into the target network."""
        for t, v in zip(self.target.variables, self.model.variables, strict=True):
            t.assign(ops.copy(v.value))  # its own buffer: JAX updates donate the online weights

    def _with_target_outputs(self, batches, target_fn):
        """``batches`` plus the target network's outputs on every minibatch, when ``target_input`` is set."""
        if self.target_input is None:
            return batches
        x = batches[self.target_input]
        n, b = x.shape[0], x.shape[1]
        out = target_fn(ops.reshape(x, (n * b, *x.shape[2:])))
        return (*batches, ops.reshape(out, (n, b, *out.shape[1:])))

    def _target_for_step(self, batch, target_fn):
        """One minibatch's ``(batch, target)`` for ``loss_fn``, the target's outputs looked up if precomputed."""
        if self.target is None:
            return batch, None
        if self.target_input is None:
            return batch, target_fn
        *batch, outputs = batch
        expected = batch[self.target_input]

        def target_call(x):
            # The outputs were computed from batch[target_input]; any other input would get wrong values.
            if x is not expected:
                raise ValueError(
                    f"loss_fn called target() on something other than batch[{self.target_input}]; "
                    "pass target_input=None to Compiled when the target sees other inputs"
                )
            return outputs

        return tuple(batch), target_call

    # -- TensorFlow -------------------------------------------------------
    def _build_tf(self):
        import tensorflow as tf

        model, target, optimizer = self.model, self.target, self.model.optimizer
        tvars = self._vars["trainable"]

        def forward(x):
            out = _float32(model(ops.cast(x, "float32"), training=False))
            return ops.argmax(out, axis=-1), out

        def online(x, training=False):
            return _float32(model(ops.cast(x, "float32"), training=training))

        def target_fn(x):
            return _float32(target(ops.cast(x, "float32"), training=False))

        def step(batch):
            batch, target_call = self._target_for_step(batch, target_fn)
            with tf.GradientTape() as tape:
                loss = self.loss_fn(online, target_call, batch)
            optimizer.apply(tape.gradient(loss, tvars), tvars)
            return tf.cast(loss, tf.float32)

        def update(batches):
            n = batches[0].shape[0]  # static: each input signature gets its own graph
            batches = self._with_target_outputs(batches, target_fn)
            if n <= UNROLL:
                return tf.stack([step(tuple(b[k] for b in batches)) for k in range(n)])
            losses = tf.TensorArray(tf.float32, size=n)
            for k in tf.range(n):
                losses = losses.write(k, step(tuple(b[k] for b in batches)))
            return losses.stack()

        xla = not (_computes_in_16_bits(model) and not tf.config.list_physical_devices("GPU"))
        self._tf_act = _TfCall(forward, batch_polymorphic=True, xla=xla)
        self._tf_update = _TfCall(update, batch_polymorphic=False, xla=xla)

    # -- JAX --------------------------------------------------------------
    def _build_jax(self):
        import jax

        model, optimizer = self.model, self.model.optimizer
        loss_fn = self.loss_fn

        def forward(tv, ntv, x):
            out, _ = model.stateless_call(tv, ntv, ops.cast(x, "float32"), training=False)
            out = _float32(out)
            return ops.argmax(out, axis=-1), out

        def run_target(target_tv, target_ntv, x):
            return _float32(model.stateless_call(target_tv, target_ntv, ops.cast(x, "float32"), training=False)[0])

        def step(carry, batch):
            tv, ntv, ov, target_tv, target_ntv = carry

            def loss_of(tv, ntv):
                state = {"ntv": ntv}

                def online(x, training=False):
                    out, new_ntv = model.stateless_call(tv, state["ntv"], ops.cast(x, "float32"), training=training)
                    if training:
                        state["ntv"] = new_ntv
                    return _float32(out)

                target_fn = functools.partial(run_target, target_tv, target_ntv)
                inputs, target_call = self._target_for_step(batch, target_fn)
                return loss_fn(online, target_call, inputs), state["ntv"]

            (loss, ntv), grads = jax.value_and_grad(loss_of, has_aux=True)(tv, ntv)
            tv, ov = optimizer.stateless_apply(ov, grads, tv)
            return (tv, ntv, ov, target_tv, target_ntv), loss

        def update(tv, ntv, ov, target_tv, target_ntv, batches):
            carry = (tv, ntv, ov, target_tv, target_ntv)
            n = batches[0].shape[0]
            batches = self._with_target_outputs(batches, functools.partial(run_target, target_tv, target_ntv))
            if n <= UNROLL:
                losses = []
                for k in range(n):
                    carry, loss = step(carry, tuple(b[k] for b in batches))
                    losses.append(loss)
                losses = ops.stack(losses)
            else:
                carry, losses = jax.lax.scan(step, carry, batches)
            return carry[0], carry[1], carry[2], losses

        self._jax_act = jax.jit(forward)
        # Donating the weights and optimizer state lets XLA update them in place rather than
        # allocate fresh buffers each call (Pong's Nature CNN update: 64 -> 41 ms on this CPU).
        self._jax_update = jax.jit(update, donate_argnums=(0, 1, 2))

    # -- torch ------------------------------------------------------------
    def _build_torch(self):
        pass

    # -- public -----------------------------------------------------------
    def act(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Greedy actions and model outputs for a batch of flat states."""
        if self.backend == "tensorflow":
            a, out = self._tf_act(x)
            return a.numpy(), out.numpy()
        if self.backend == "jax":
            a, out = self._jax_act(self._values("trainable"), self._values("non_trainable"), x)
            return np.asarray(a), np.asarray(out)  # keras's convert_to_numpy costs more than the call
        import torch

        with torch.no_grad():
            out = _float32(self.model(ops.cast(ops.convert_to_tensor(x), "float32"), training=False))
            a = ops.argmax(out, axis=-1)
        return ops.convert_to_numpy(a), ops.convert_to_numpy(out)

    def update(self, *batches) -> np.ndarray:
        """Run one optimizer step per minibatch; ``batches`` share a leading minibatch axis.

        Returns the loss of each minibatch (before its step).
        """
        if self.backend == "tensorflow":
            return self._tf_update(batches).numpy()
        if self.backend == "jax":
            return self._update_jax(batches)
        return self._update_torch(batches)

    def _values(self, group: str) -> list:
        return [v.value for v in self._vars[group]]

    def _update_jax(self, batches):
        tv, ntv, ov, losses = self._jax_update(
            self._values("trainable"),
            self._values("non_trainable"),
            self._values("optimizer"),
            self._values("target_trainable"),
            self._values("target_non_trainable"),
            batches,
        )
        for group, new in (("trainable", tv), ("non_trainable", ntv), ("optimizer", ov)):
            for v, value in zip(self._vars[group], new):
                v.assign(value)
        return np.asarray(losses)

    def _update_torch(self, batches):
        import torch

        model, target, optimizer = self.model, self.target, self.model.optimizer
        tvars = self._vars["trainable"]

        def online(x, training=False):
            return _float32(model(ops.cast(x, "float32"), training=training))

        def target_fn(x):
            with torch.no_grad():
                return _float32(target(ops.cast(x, "float32"), training=False))

        losses = []
        for k in range(len(batches[0])):
            batch = tuple(ops.convert_to_tensor(b[k]) for b in batches)
            model.zero_grad()
            loss = self.loss_fn(online, target_fn if target is not None else None, batch)
            loss.backward()
            with torch.no_grad():
                optimizer.apply([v.value.grad for v in tvars], tvars)
            losses.append(float(loss.detach()))
        return np.asarray(losses, dtype=np.float32)
