"""KeRLym: deep reinforcement learning agents built on Keras 3 and Gymnasium.

Submodules are imported on first use, so ``import kerlym`` (and the
``kerlym`` command's start-up) does not pay for TensorFlow or Keras.
``kerlym.make`` and ``kerlym.configure`` build what the command builds;
``kerlym.load`` restores a saved run.
"""

import importlib
import sys

from kerlym.make import configure, load, make  # light (standard library only); binds kerlym.make to the function

__version__ = "0.3.0"
__all__ = ["agents", "envs", "networks", "preproc", "memory", "config", "make", "configure", "load", "__version__"]

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


def _register_ale_envs() -> None:
    """Have ale-py register its Atari ids with Gymnasium, so ``gym.make("SpaceInvaders-v0")`` works.

    Importing ale-py (and Gymnasium) costs about a third of a second, too much for ``import kerlym``
    and ``kerlym --help``: it happens when Gymnasium is already imported, and on ``import kerlym.agents``.
    """
    try:
        import ale_py
        import gymnasium
    except ImportError:  # ale-py is a dependency, but an env without Atari still works
        return
    gymnasium.register_envs(ale_py)


if "gymnasium" in sys.modules:  # the user's program uses Gymnasium already: ale-py alone adds about 50 ms
    _register_ale_envs()


def __getattr__(name):
    if name in _MODULES:
        return importlib.import_module(f"kerlym.{name}")
    raise AttributeError(f"module 'kerlym' has no attribute {name!r}")
