"""Compiled act and update steps: the one piece of kerlym that differs per Keras backend.

An agent describes its learning in ``keras.ops`` and :func:`build_steps`
compiles it for the backend Keras runs on: ``tensorflow.py`` (XLA-compiled
``tf.function`` graphs), ``jax.py`` (``jax.jit``, the update looping with
``lax.scan``) or ``torch.py`` (eager). Model outputs are cast to float32
wherever they leave the model, so under a mixed-precision policy the loss,
the targets and what ``act`` returns are float32.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable

from kerlym.backend.common import UNROLL, Steps, compiled_loss, computes_in_16_bits, float32

__all__ = [
    "UNROLL",
    "Steps",
    "build_steps",
    "compiled_loss",
    "computes_in_16_bits",
    "float32",
    "set_random_seed",
    "synchronous_jax_cpu",
]

_BUILDERS = {
    "tensorflow": ("kerlym.backend.tensorflow", "TensorFlowSteps"),
    "jax": ("kerlym.backend.jax", "JaxSteps"),
    "torch": ("kerlym.backend.torch", "TorchSteps"),
}


def build_steps(
    model,
    loss_fn: Callable | None = None,
    *,
    target=None,
    prepare: Callable | None = None,
    act_fn: Callable | None = None,
) -> Steps:
    """Compiled ``act`` and ``update`` for ``model`` on the current Keras backend.

    Args:
        model: a compiled Keras model; each minibatch of an update is one step of the optimizer
            the model factory compiled.
        loss_fn: ``loss_fn(online, batch, prepared) -> loss`` or ``(loss, *metrics)``, written in
            ``keras.ops``. ``online(x, training=False)`` runs the model (float32 outputs), ``batch``
            is one minibatch (a tuple of tensors), ``prepared`` that minibatch's slice of what
            ``prepare`` returned (``None`` without ``prepare``). ``None``: steps that only act.
        target: optional target network, the same architecture as ``model``.
        prepare: optional ``prepare(target, batches) -> tensor or tuple``, run once per update on
            the whole update (every array of ``batches`` has the leading minibatch axis
            ``[steps, B, ...]``); ``target(x)`` runs the target network (float32 outputs, no
            gradient) on such stacked inputs. Its results, with the same leading axes, are
            sliced per minibatch for ``loss_fn``.
        act_fn: ``act_fn(outputs, *extra_inputs) -> tuple of tensors`` in ``keras.ops``, run inside
            the compiled act on the model's float32 outputs and the extra arrays passed to
            ``act``; the default returns ``(argmax(outputs), outputs)``.

    Returns:
        The :class:`Steps` of the backend Keras runs on.
    """
    import keras

    backend = keras.backend.backend()
    if backend not in _BUILDERS:
        raise RuntimeError(f"unsupported Keras backend {backend!r}")
    module, name = _BUILDERS[backend]
    steps_class = getattr(importlib.import_module(module), name)
    return steps_class(model, loss_fn, target=target, prepare=prepare, act_fn=act_fn)


@contextlib.contextmanager
def tensorflow_left_alone():
    """Save or load a Keras model without importing TensorFlow on the JAX or torch backend.

    Keras's serializer asks whether TensorFlow is installed (to recognise its shapes and dtypes), which
    imports it: about 4 s and its C++ start-up lines at a JAX run's first checkpoint. Where TensorFlow is
    neither the backend nor already imported, no TensorFlow object can be in the model, and the question is
    answered "no" for the duration.
    """
    import sys

    import keras

    if keras.config.backend() == "tensorflow" or "tensorflow" in sys.modules:
        yield
        return
    from keras.src.saving import serialization_lib
    from keras.src.utils import module_utils

    serialization_lib.tf = _NotLoaded()
    try:
        yield
    finally:
        serialization_lib.tf = module_utils.tensorflow  # the lazy module itself, whichever thread ends last


class _NotLoaded:
    """Stands in for Keras's lazy TensorFlow module while :func:`set_random_seed` runs without TensorFlow."""

    available = False


def set_random_seed(seed: int) -> None:
    """``keras.utils.set_random_seed``, without importing TensorFlow on the JAX or torch backend.

    Keras seeds TensorFlow's generator whenever TensorFlow is installed, which imports it (about 4 s and
    its C++ start-up lines) into a JAX or torch program that never uses it. Where TensorFlow is neither the
    backend nor already imported, its seed is left alone; Python's, NumPy's, the backend's and Keras's own
    generators are seeded as Keras does.
    """
    import sys

    import keras

    if keras.config.backend() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    from keras.src.utils import rng_utils

    lazy_tensorflow, rng_utils.tf = rng_utils.tf, _NotLoaded()
    try:
        keras.utils.set_random_seed(seed)
    finally:
        rng_utils.tf = lazy_tensorflow


def synchronous_jax_cpu() -> None:
    """On the JAX backend, have the CPU run each compiled call in the thread that calls it.

    A step-by-step loop makes one small call per env step and reads its result at once. JAX's default
    CPU dispatch hands each call to another thread and the caller waits for it: on CartPole's MLP that
    handover cost about 35 us of the 50 us an action took (2026-12-07), and more when the cores are
    busy. Synchronous dispatch (``jax_cpu_enable_async_dispatch`` off) runs the call inline; the results
    are the same. It applies to the CPU client JAX creates on first use, so this is called before any JAX
    array exists (an agent's constructor); later it changes nothing. A program that chose for itself
    (``JAX_CPU_ENABLE_ASYNC_DISPATCH`` set) keeps its choice; other backends are left alone.
    """
    import keras

    if keras.config.backend() != "jax" or "JAX_CPU_ENABLE_ASYNC_DISPATCH" in os.environ:
        return
    import jax

    jax.config.update("jax_cpu_enable_async_dispatch", False)
