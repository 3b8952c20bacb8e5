"""kerlym's agents and their registry (CLI name -> class)."""

from kerlym.agents.base import Agent
from kerlym.agents.dqn import D2QN, DQN

AGENTS = {"dqn": DQN, "ddqn": D2QN}

__all__ = ["AGENTS", "Agent", "D2QN", "DQN"]
