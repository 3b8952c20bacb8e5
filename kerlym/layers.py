"""The custom Keras layers kerlym's agents add to a factory's model, registered for saving in one place.

Each is registered as ``kerlym>ClassName``, the names saved ``.keras`` files and
run folders already hold, so importing this module is all that loading one
needs. It imports only Keras and NumPy.

* :class:`LogStd`: a Gaussian policy's learned, state-independent log-std (PPO, A2C with ``Box`` actions);
* :class:`ObservationNormalization`: VecNormalize's observation scaling, its statistics set by the agent;
* :class:`DuelingQ`: DQN's dueling head, ``Q = V + A - mean(A)``;
* :class:`Orthogonal`: Keras's orthogonal initializer, computed in NumPy on JAX (an initializer, not a layer).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="kerlym")
class LogStd(keras.layers.Layer):
    """A Gaussian policy's learned, state-independent log-std, broadcast to the batch of the means it is given.

    Args:
        initial: its value before training (SB3's ``log_std_init``): 0 starts every dimension at a
            standard deviation of 1, -2 at 0.135.
        **kwargs: ``keras.layers.Layer``'s (``name``, ``dtype``).
    """

    def __init__(self, initial: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.initial = float(initial)

    def build(self, input_shape):
        self.log_std = self.add_weight(
            shape=(input_shape[-1],), initializer=keras.initializers.Constant(self.initial), name="log_std"
        )

    def call(self, means):
        return ops.zeros_like(means) + ops.cast(self.log_std, means.dtype)

    def get_config(self):
        return {**super().get_config(), "initial": self.initial}


@keras.saving.register_keras_serializable(package="kerlym")
class ObservationNormalization(keras.layers.Layer):
    """``clip((x - mean) / sqrt(var + 1e-8), -clip, clip)`` with ``mean`` and ``var`` set by the agent (VecNormalize).

    The statistics are non-trainable weights, so that a saved model (a
    checkpoint, ``best.keras``) normalises as the agent did.

    Args:
        clip: the bound of the normalised observations.
        **kwargs: ``keras.layers.Layer``'s (``name``, ``dtype``).
    """

    def __init__(self, clip: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.clip = float(clip)

    def build(self, input_shape):
        shape = (input_shape[-1],)
        self.mean = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="mean")
        self.var = self.add_weight(shape=shape, initializer="ones", trainable=False, name="var")

    def call(self, x):
        x = (ops.cast(x, "float32") - self.mean) / ops.sqrt(self.var + 1e-8)
        return ops.clip(x, -self.clip, self.clip)

    def get_config(self):
        return {**super().get_config(), "clip": self.clip}


@keras.saving.register_keras_serializable(package="kerlym")
class DuelingQ(keras.layers.Layer):
    """``Q = V + A - mean_a A``, from a value ``[B, 1]`` and advantages ``[B, actions]`` (Wang et al. 2016, eq. 9).

    Subtracting the mean advantage makes ``V`` the mean Q-value over the actions, so the
    two streams are identifiable; the greedy action is the advantages' argmax.
    """

    def call(self, inputs):
        value, advantages = inputs
        return value + advantages - ops.mean(advantages, axis=-1, keepdims=True)


def orthogonal_matrix(shape, gain: float, seed: int) -> np.ndarray:
    """An orthogonal ``shape`` array as Keras's ``Orthogonal`` draws one, in NumPy (float64).

    A standard normal ``[max(rows, cols), min(rows, cols)]`` matrix (``rows``: the product of all but the
    last axis), the Q of its QR with the signs of ``diag(R)`` (so Q is uniform over the orthogonal
    matrices), transposed when ``rows < cols``, times ``gain``.
    """
    rows, cols = int(np.prod(shape[:-1])), int(shape[-1])
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((max(rows, cols), min(rows, cols))))
    q = q * np.sign(np.diag(r))
    return gain * (q.T if rows < cols else q).reshape(shape)


@keras.saving.register_keras_serializable(package="kerlym")
class Orthogonal(keras.initializers.Orthogonal):
    """Keras's ``Orthogonal`` initializer (the same maths and config), computed in NumPy on the JAX backend.

    On JAX, Keras's own runs its normal draw, QR, diagonal and sign as separate eager ops, and JAX
    compiles each for each new shape: about 1 s a layer on two CPU cores, most of the start-up of a
    small actor-critic. :func:`orthogonal_matrix` gives the same distribution at once, from the
    initializer's integer seed; other backends (and a ``SeedGenerator`` seed) use Keras's.
    """

    def __call__(self, shape, dtype=None):
        if keras.backend.backend() != "jax" or not isinstance(self.seed, int) or len(shape) < 2:
            return super().__call__(shape, dtype)
        return ops.convert_to_tensor(
            orthogonal_matrix(shape, self.gain, self.seed), dtype=dtype or keras.config.floatx()
        )
