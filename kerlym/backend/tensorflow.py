"""TensorFlow steps: act and update as XLA-compiled ``tf.function`` graphs.

A model that computes in a 16-bit float on a machine without a GPU runs as
plain graphs instead: XLA's CPU backend has no fast bfloat16 kernels, and
plain graphs run TensorFlow's oneDNN ones. Each graph that XLA cannot compile
falls back to a plain graph, with a warning.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import tensorflow as tf
from keras import ops

from kerlym.backend.common import (
    UNROLL,
    Steps,
    computes_in_16_bits,
    float32,
    has_convolutions,
    loss_row,
    merge_leading,
    slice_prepared,
    split_leading,
    split_loss,
)

# What XLA raises for a graph it cannot compile ("Detected unsupported operations ...").
XLA_COMPILE_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError)


def direct_call(fn):
    """``fn(*arrays)`` for a concrete function, run straight through TensorFlow's eager executor.

    The one use of TensorFlow internals in kerlym. A concrete function's
    public call converts and matches its arguments and outputs against their
    structures on every call; for a small network that is most of an act's
    time (``benchmarks/README.md``, "Per-backend steps"). This executes the
    graph as TensorFlow's own ``call_function`` does, on tensors made
    straight from the arrays. ``None`` where this TensorFlow lacks those
    internals; callers then use the public call. ``fn`` must have been called
    once the public way, which registers its graph with the eager context.
    """
    try:
        from tensorflow.python import pywrap_tfe
        from tensorflow.python.eager import context
        from tensorflow.python.framework.ops import EagerTensor

        inference, captured = fn._inference_function, list(fn.captured_inputs)
        structure = fn.structured_outputs
        ctx = context.context()
        ctx.ensure_initialized()
        name = inference.name.decode()
        n_out = len(inference.function_type.flat_outputs)
        attrs = tuple(itertools.chain(*ctx.function_call_options.as_attrs().items()))
        execute = pywrap_tfe.TFE_Py_Execute
    except (AttributeError, ImportError):
        return None
    single = tf.is_tensor(structure)  # one tensor out (an update's losses)
    if not single and not (isinstance(structure, tuple) and len(tf.nest.flatten(structure)) == len(structure)):
        return None  # outputs other than one tensor or a flat tuple would need repacking

    # An EagerTensor made for a named device ("" included: the default) is made on the host and then
    # copied there; on a host-only machine the inputs are made where they stay (no device, no copy).
    host_only = not tf.config.list_logical_devices("GPU")

    def call(*arrays):
        device = ctx.device_name
        at = None if host_only and not device else device
        inputs = [EagerTensor(a, at) for a in arrays] + captured
        out = execute(ctx._handle, device, name, inputs, attrs, n_out)
        return out[0] if single else tuple(out)

    return call


def public_call(fn):
    """``fn(*arrays)`` for a concrete function through its public call."""
    return lambda *arrays: fn(*(tf.constant(a) for a in arrays))


class Graph:
    """``fn`` on NumPy arrays as TensorFlow graphs, one concrete function per input signature.

    Concrete functions are cached per signature, which skips
    ``tf.function``'s argument matching on every call. Each is XLA-compiled
    (unless ``xla`` is false) or, once XLA cannot compile ``fn``, a plain graph
    from then on. ``batch_polymorphic`` leaves the leading axis of the inputs
    free; ``fast`` calls the graphs through :func:`direct_call` where it can.
    """

    def __init__(self, fn, name: str, batch_polymorphic: bool, xla: bool = True, fast: bool = False):
        self.name = name
        self.xla, self.plain = tf.function(fn, jit_compile=True), tf.function(fn)
        self.uses_xla = xla
        self.batch_polymorphic = batch_polymorphic
        self.fast = fast
        self.cache = {}

    def __call__(self, *arrays):
        if self.batch_polymorphic:
            key = tuple([(a.dtype, a.shape[1:]) for a in arrays])
        else:
            key = tuple([(a.dtype, a.shape) for a in arrays])
        call = self.cache.get(key)
        if call is not None:
            return call(*arrays)
        return self._first_call(key, arrays)

    def _first_call(self, key, arrays):
        tensors = [tf.constant(a) for a in arrays]
        specs = [tf.TensorSpec([None, *t.shape[1:]] if self.batch_polymorphic else t.shape, t.dtype) for t in tensors]
        try:
            fn = (self.xla if self.uses_xla else self.plain).get_concrete_function(*specs)
            out = fn(*tensors)  # XLA compiles here
        except XLA_COMPILE_ERRORS as e:
            if not self.uses_xla:
                raise
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            warnings.warn(f"XLA cannot compile {self.name} ({message}); running it as a plain graph", stacklevel=3)
            self.uses_xla = False
            self.cache.clear()
            fn = self.plain.get_concrete_function(*specs)
            out = fn(*tensors)
        call = direct_call(fn) if self.fast else None
        self.cache[key] = call if call is not None else public_call(fn)
        return out


class TensorFlowSteps(Steps):
    """:class:`~kerlym.backend.common.Steps` as TensorFlow graphs."""

    def __init__(self, model, loss_fn=None, target=None, prepare=None, act_fn=None):
        super().__init__(model, loss_fn, target, prepare, act_fn)
        # On a CPU, XLA's convolutions (their gradients above all) ran far slower than TensorFlow's own oneDNN
        # kernels (a PPO update of 1024 Pong frames: 113 s against 1.9 s), and it has no fast bfloat16 matmuls.
        on_cpu = not tf.config.list_physical_devices("GPU")
        xla = not (on_cpu and (computes_in_16_bits(model) or has_convolutions(model)))
        self._act = Graph(self._forward, "the act step", batch_polymorphic=True, xla=xla, fast=True)
        self._update = Graph(self._update_graph, "the update step", batch_polymorphic=False, xla=xla, fast=True)
        self._raw = Graph(lambda x: (self.online(x),), "the network", batch_polymorphic=True, xla=xla, fast=True)

    def online(self, x, training=False):
        return float32(self.model(ops.cast(x, "float32"), training=training))

    def run_target(self, x):
        """The target network on stacked minibatches ``[steps, B, ...]``."""
        return split_leading(float32(self.target(ops.cast(merge_leading(x), "float32"), training=False)), x.shape[0])

    def _forward(self, x, *extra):
        return tuple(self.act_fn(self.online(x), *extra))

    def _step(self, batch, prepared):
        tvars = self.trainable
        with tf.GradientTape() as tape:
            loss, metrics = split_loss(self.loss_fn(self.online, batch, prepared))
        self.model.optimizer.apply(tape.gradient(loss, tvars), tvars)
        return loss_row(loss, metrics)

    def _update_graph(self, *batches):
        n = batches[0].shape[0]  # static: each input signature gets its own graph
        prepared = self.prepare(self.run_target, batches) if self.prepare is not None else None

        def minibatch(k):
            return tuple(b[k] for b in batches), slice_prepared(prepared, k)

        if n <= UNROLL:
            return tf.stack([self._step(*minibatch(k)) for k in range(n)])
        rows = tf.TensorArray(tf.float32, size=n)
        for k in tf.range(n):
            rows = rows.write(k, self._step(*minibatch(k)))
        return rows.stack()

    def act(self, x, *extra):
        return tuple([t.numpy() for t in self._act(x, *extra)])

    def _outputs(self, x):
        return self._raw(x)[0].numpy()

    def update(self, batches):
        return self._update(*(np.asarray(b) for b in batches)).numpy()
