"""An exponential moving average of a network's weights, and the copy of the network that acts with it.

A DQN's greedy policy can swing between good and poor from one update to the
next; the average over the last few thousand steps swings less. Training still
acts and learns with the online network; greedy actions (evaluation,
``--play``, saved models) come from the average.
"""

from __future__ import annotations

import math

import numpy as np


def keep_fraction(steps_since: int, ema_steps: float) -> float:
    """How much of the old average stays after ``steps_since`` env steps: ``exp(-steps_since / ema_steps)``."""
    return math.exp(-max(steps_since, 0) / ema_steps)


class WeightAverage:
    """The average of the online weights with time constant ``ema_steps`` env steps.

    After each update the average moves toward the new weights by
    ``1 - exp(-steps since the last move / ema_steps)``; the first move copies
    them.

    Args:
        ema_steps: the time constant, in env steps.
        steps: the :class:`~kerlym.backend.Steps` of a second copy of the network (only its
            ``act`` is used), which acts with the average; ``None`` keeps the average alone.
    """

    def __init__(self, ema_steps: float, steps=None):
        self.ema_steps = ema_steps
        self.steps = steps
        self.weights: list[np.ndarray] | None = None  # None until the first move
        self.step = 0  # the env step of the last move
        self._stale = False  # the average moved since the acting copy last got it

    def update(self, weights, step: int) -> None:
        """Move the average toward ``weights`` (``model.get_weights()``'s order) at env step ``step``."""
        weights = [np.array(w, dtype=np.float32) for w in weights]
        if self.weights is None:
            self.weights = weights
        else:
            keep = keep_fraction(step - self.step, self.ema_steps)
            for average, w in zip(self.weights, weights):
                average *= keep
                average += (1.0 - keep) * w
        self.step = step
        self._stale = True

    def _sync(self) -> None:
        if self._stale:  # copied only when greedy actions are wanted, not after every update
            self.steps.set_weights(self.weights)
            self._stale = False

    def act(self, states, *extra):
        """The acting copy's ``act`` with the average's weights."""
        self._sync()
        return self.steps.act(states, *extra)

    @property
    def model(self):
        """The acting copy as a Keras model holding the average (weights set on it are acted with)."""
        self._sync()
        self.steps.to_keras()
        return self.steps.model

    def get_state(self, meta: dict, arrays: dict) -> None:
        """Add the average to a checkpoint's ``meta`` and ``arrays`` (nothing before the first move)."""
        if self.weights is not None:
            meta["ema_step"] = self.step
            arrays.update({f"ema/{i}": w for i, w in enumerate(self.weights)})

    def set_state(self, meta: dict, arrays: dict, online_weights) -> None:
        """Restore what :meth:`get_state` saved; a checkpoint without an average starts it at ``online_weights``."""
        if "ema_step" in meta:
            self.weights = [np.array(arrays[f"ema/{i}"], dtype=np.float32) for i in range(len(online_weights))]
            self.step = int(meta["ema_step"])
        else:  # saved before the first update: the average starts at the online weights
            self.weights = None
            self.steps.set_weights(online_weights)
        self._stale = self.weights is not None
