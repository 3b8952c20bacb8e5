"""KeRLym: deep reinforcement learning agents built on Keras 3 and Gymnasium.

Submodules are imported on first use, so ``import kerlym`` (and the
``kerlym`` command's start-up) does not pay for TensorFlow or Keras.
``kerlym.make`` and ``kerlym.configure`` build what the command builds.
"""

import importlib

from kerlym.make import configure, make  # light (standard library only); binds kerlym.make to the function

__version__ = "0.3.0"
__all__ = ["agents", "envs", "networks", "preproc", "memory", "config", "make", "configure", "__version__"]

_MODULES = (
    "agents",
    "envs",
    "networks",
    "preproc",
    "memory",
    "config",
    "runner",
    "sinks",
    "presets",
    "runs",
    "backend",
)


def __getattr__(name):
    if name in _MODULES:
        return importlib.import_module(f"kerlym.{name}")
    raise AttributeError(f"module 'kerlym' has no attribute {name!r}")
