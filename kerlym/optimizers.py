"""Optimizers Keras lacks: ``rmsprop_tf``, the RMSprop of TensorFlow 1 that the RL Zoo's Atari A2C uses.

SB3 runs A2C on Atari with ``RMSpropTFLike`` (``stable_baselines3.common.sb2_compat``), which steps as
TensorFlow 1's RMSProp did in the original A2C: ``v <- rho v + (1 - rho) g^2`` from ``v = 1``, and
``w <- w - lr g / sqrt(v + epsilon)``, epsilon inside the root. Keras's ``RMSprop`` has epsilon inside the
root too, but starts ``v`` at 0, so its first steps are ``lr / sqrt(1 - rho)``, 10 times ``lr`` per
parameter at ``rho = 0.99``; starting at 1 makes them about ``lr g`` instead, which the Zoo finds steadier
for A2C on Atari. Imported only when a network compiles or a model loads, so Keras stays out of the CLI's
start-up.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerlym")
class RMSpropTF(keras.optimizers.RMSprop):
    """Keras's RMSprop with the mean square started at 1 (TensorFlow 1's, SB3's ``RMSpropTFLike``).

    Defaults are the Zoo's: ``rho`` 0.99 and ``epsilon`` 1e-5, inside the root.
    """

    def __init__(self, learning_rate=7e-4, rho=0.99, epsilon=1e-5, **kwargs):
        super().__init__(learning_rate=learning_rate, rho=rho, epsilon=epsilon, **kwargs)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for velocity in self._velocities:
            velocity.assign(ops.ones(velocity.shape, velocity.dtype))


def get(name: str, **config):
    """The optimizer ``name`` (``rmsprop_tf``, or any Keras name) built with ``config``."""
    if name.lower() == "rmsprop_tf":
        return RMSpropTF(**config)
    return keras.optimizers.get({"class_name": name, "config": config})
