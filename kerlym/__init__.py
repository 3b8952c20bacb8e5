"""KeRLym: deep reinforcement learning agents built on Keras 3 and Gymnasium.

Submodules are imported on first use, so ``import kerlym`` (and the
``kerlym`` command's start-up) does not pay for TensorFlow or Keras.
``kerlym.make`` and ``kerlym.configure`` build what the command builds;
``kerlym.load`` restores a saved run.
"""

import importlib
import importlib.abc
import importlib.util
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


class _RegisterAleWithGymnasium(importlib.abc.MetaPathFinder):
    """Registers ale-py's ids once Gymnasium is imported, for programs that ``import kerlym`` first.

    It lets the normal finders find Gymnasium and only runs ``_register_ale_envs`` after the module has
    executed, so ``import kerlym`` stays light and Gymnasium imports as it would without kerlym.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "gymnasium":
            return None
        sys.meta_path.remove(self)  # once; and the lookup below must not come back here
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ThenRegister(spec.loader)
        return spec


class _ThenRegister(importlib.abc.Loader):
    """A loader that executes the module with ``loader``, then registers ale-py's envs."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        module.__spec__.loader = module.__loader__ = self.loader  # as if kerlym had not been there
        _register_ale_envs()

    def __getattr__(self, name):  # get_resource_reader, is_package, ...: the wrapped loader's
        return getattr(self.loader, name)


if "gymnasium" in sys.modules:  # the user's program uses Gymnasium already: ale-py alone adds about 50 ms
    _register_ale_envs()
else:
    sys.meta_path.insert(0, _RegisterAleWithGymnasium())


def __getattr__(name):
    if name in _MODULES:
        return importlib.import_module(f"kerlym.{name}")
    raise AttributeError(f"module 'kerlym' has no attribute {name!r}")
