"""kerlym's agents and their registry (CLI name -> class)."""

from kerlym import _register_ale_envs
from kerlym.agents.a2c import A2C, A3C
from kerlym.agents.base import Agent
from kerlym.agents.dqn import D2QN, DQN
from kerlym.agents.pg import PG
from kerlym.agents.ppo import PPO

_register_ale_envs()  # Keras has just cost seconds; ale-py's Atari ids cost little more here

AGENTS = {"dqn": DQN, "ddqn": D2QN, "pg": PG, "a2c": A2C, "a3c": A3C, "ppo": PPO}

__all__ = ["A2C", "A3C", "AGENTS", "PG", "PPO", "Agent", "D2QN", "DQN"]
