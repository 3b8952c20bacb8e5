"""kerlym's agents and their registry (CLI name -> class)."""

from kerlym.agents.base import Agent
from kerlym.agents.dqn import D2QN, DQN
from kerlym.agents.pg import PG

AGENTS = {"dqn": DQN, "ddqn": D2QN, "pg": PG}

__all__ = ["AGENTS", "PG", "Agent", "D2QN", "DQN"]
