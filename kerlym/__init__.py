"""KeRLym: deep reinforcement learning agents built on Keras 3 and Gymnasium.

Submodules are imported on first use, so ``import kerlym`` (and the
``kerlym`` command's start-up) does not pay for TensorFlow or Keras.
"""

import importlib

__version__ = "0.2.0"
__all__ = ["agents", "envs", "networks", "preproc", "memory", "__version__"]


def __getattr__(name):
    if name in ("agents", "envs", "networks", "preproc", "memory", "backend"):
        return importlib.import_module(f"kerlym.{name}")
    raise AttributeError(f"module 'kerlym' has no attribute {name!r}")
