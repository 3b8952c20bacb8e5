"""A toy agent in one file, for the registry test: greedy on its Keras network, random while exploring.

It learns nothing useful, but it follows the whole agent protocol: ``act`` returns actions and the
network's outputs, ``end_episode`` runs an ``update`` whose losses join the episode's row, and its
``metric_names`` add a column to ``progress.csv``. Registering it takes one line:
``AGENTS["toy"] = Toy``.
"""

from __future__ import annotations

import numpy as np

from kerlym.agents.base import Agent
from kerlym.config import AgentConfig


class Toy(Agent):
    """Acts uniformly at random when exploring; an update fits the network's output for the last state to 0."""

    name = "toy"
    Config = AgentConfig
    metric_names = ("toy_steps",)

    def __init__(self, env, config=None, **kwargs):
        super().__init__(env, config, **kwargs)
        self.last_state = np.zeros((1, self.input_dim), np.float32)
        self.steps_this_episode = 0

    def act(self, states, explore=True, masks=None):
        values = np.asarray(self.model(np.asarray(states, np.float32), training=False))
        if explore:
            return self.rng.integers(self.num_actions, size=len(states)), values
        return values.argmax(axis=1), values

    def observe(self, stream, state, action, reward, terminated, truncated, frame, mask=None):
        self.last_state = np.asarray(state, np.float32).reshape(1, -1)
        self.steps_this_episode += 1

    def update(self) -> list[float]:
        loss = self.model.train_on_batch(self.last_state, np.zeros((1, self.num_actions), np.float32))
        self.updates += 1
        return [float(np.asarray(loss).reshape(-1)[0])]

    def end_episode(self, stream=0):
        steps, self.steps_this_episode = self.steps_this_episode, 0
        return {"toy_steps": steps}, self.update()
