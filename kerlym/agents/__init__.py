"""kerlym's agents and their registry: the name the command and ``kerlym.make`` take -> the agent class.

A new agent is its own file (the class, with ``name``, ``Config`` and the hooks of
:class:`~kerlym.agents.base.Agent`) and one line here. Everything else follows from the
registry: the command's ``-a`` choices and flag groups (from each agent's config
class), the presets' checks, the progress columns (its ``metric_names``).

The built-in agents are listed by module path and imported on first use, so this
package stays light: the command's ``--help`` reads the config classes without
importing Keras. A class may be registered as well (``AGENTS["mine"] = MyAgent``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping

from kerlym import config as C


class Registry(MutableMapping):
    """Agent name -> agent class; a built-in entry, ``"module:Class"``, is imported when first looked up."""

    def __init__(self):
        self._entries: dict[str, tuple[str | type, type[C.AgentConfig]]] = {}

    def add(self, name: str, path: str, config: type[C.AgentConfig]) -> None:
        """Register the class at ``path`` (``"module:Class"``), whose config class is ``config``, as ``name``."""
        self._entries[name] = (path, config)

    def config(self, name: str) -> type[C.AgentConfig]:
        """The config class of agent ``name``, without importing the agent (:class:`KeyError` if unknown)."""
        return self._entries[name][1]

    def __getitem__(self, name: str) -> type:
        target, config = self._entries[name]
        if isinstance(target, str):
            from kerlym import _register_ale_envs
            from kerlym._io import quiet_keras_import

            module, _, attr = target.partition(":")
            quiet_keras_import()  # a program's first agent: Keras loads here, without TensorFlow's start-up lines
            target = getattr(importlib.import_module(module), attr)
            self._entries[name] = (target, config)
            _register_ale_envs()  # Keras has just cost seconds; ale-py's Atari ids cost little more here
        return target

    def __setitem__(self, name: str, cls: type) -> None:
        self._entries[name] = (cls, cls.Config)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class _Configs(Mapping):
    """Agent name -> its config class: a live view of :data:`AGENTS` that imports no agent."""

    def __getitem__(self, name: str) -> type[C.AgentConfig]:
        return AGENTS.config(name)

    def __iter__(self) -> Iterator[str]:
        return iter(AGENTS)

    def __len__(self) -> int:
        return len(AGENTS)


AGENTS = Registry()
AGENTS.add("dqn", "kerlym.agents.dqn:DQN", C.DQNConfig)
AGENTS.add("ddqn", "kerlym.agents.dqn:D2QN", C.DQNConfig)
AGENTS.add("pg", "kerlym.agents.pg:PG", C.PGConfig)
AGENTS.add("a2c", "kerlym.agents.a2c:A2C", C.A2CConfig)
AGENTS.add("a3c", "kerlym.agents.a2c:A3C", C.A2CConfig)  # the original's name; the same synchronous learner
AGENTS.add("ppo", "kerlym.agents.ppo:PPO", C.PPOConfig)

AGENT_CONFIGS: Mapping[str, type[C.AgentConfig]] = _Configs()

_CLASSES = {"DQN": "dqn", "D2QN": "ddqn", "PG": "pg", "A2C": "a2c", "A3C": "a3c", "PPO": "ppo"}


def __getattr__(name: str):
    if name in _CLASSES:
        return AGENTS[_CLASSES[name]]
    if name == "Agent":
        from kerlym.agents.base import Agent

        return Agent
    raise AttributeError(f"module 'kerlym.agents' has no attribute {name!r}")


__all__ = ["A2C", "A3C", "AGENTS", "AGENT_CONFIGS", "PG", "PPO", "Agent", "D2QN", "DQN", "Registry"]
