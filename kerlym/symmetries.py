"""An env's symmetries (Go's 8 board rotations and reflections), for training samples and greedy actions.

DQN and D2QN train on each replay sample under a random one (``symmetries``); DQN, D2QN and the
discrete actor-critic agents can average their greedy choice over all of them
(``average_symmetries``). The contract an env meets: docs/custom-environments.md#symmetries.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kerlym.memory import Batch


class Symmetries:
    """An env's symmetries: replay samples each under one drawn at random, or Q averaged over all.

    The env (``env.unwrapped``) defines ``symmetries() -> (obs_index, action_index)``, two
    integer arrays of one row per symmetry: symmetry ``k`` turns a flat observation ``o``
    into ``o[obs_index[k]]`` and any per-action vector ``v`` (an action mask, Q-values)
    into ``v[action_index[k]]``, so action ``a`` becomes the ``b`` with
    ``action_index[k][b] == a``. Go's are the board's 8 rotations and reflections
    (:meth:`kerlym.envs.go.GoEnv.symmetries`). Rewards, terminations and n-step counts are
    unchanged; stacked frames each get the same symmetry.
    """

    def __init__(self, env, frame_shape, nframes: int, setting: str = "symmetries"):
        source = getattr(env.unwrapped, "symmetries", None)
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        if source is None:
            raise ValueError(f"{setting}=True needs an env that defines symmetries(); {name} does not")
        obs_index, action_index = (np.asarray(x, dtype=np.int64) for x in source())
        frame_size = int(np.prod(frame_shape))
        if obs_index.shape[1] != frame_size or tuple(env.unwrapped.observation_space.shape) != tuple(frame_shape):
            raise ValueError(
                f"{name}'s symmetries permute its raw observations of shape "
                f"{env.unwrapped.observation_space.shape}, but the agent's frames have shape {tuple(frame_shape)} "
                "(a preprocessor changed them)"
            )
        # One index row per symmetry over a whole stacked state: frame f's entries sit at f * frame_size.
        self.state_index = np.concatenate([obs_index + f * frame_size for f in range(nframes)], axis=1)
        self.action_index = action_index
        self.new_action = np.argsort(action_index, axis=1)  # the inverse permutation: action a -> new_action[k, a]

    def __len__(self) -> int:
        return len(self.action_index)

    def turn(self, states: np.ndarray) -> np.ndarray:
        """Every state under every symmetry, ``[len(states) * len(self), ...]``: state ``i``'s in a row."""
        n = len(states)
        return states.reshape(n, -1)[:, self.state_index].reshape(n * len(self), *states.shape[1:])

    def back(self, values: np.ndarray) -> np.ndarray:
        """Per-action vectors of :meth:`turn`'s states, ``[n * len(self), actions]``, mapped back to the
        actions of the states as played: ``[n, len(self), actions]``."""
        values = np.asarray(values).reshape(-1, len(self), self.action_index.shape[1])
        # Action a of the state as played is action new_action[j, a] of its symmetry j.
        return np.take_along_axis(values, self.new_action[None], axis=2)

    def mean_q(self, states: np.ndarray, q_values: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Q of ``states`` averaged over the symmetries: each state's Q under every symmetry, mapped back.

        ``q_values`` takes a batch of states and returns their Q-values; it is called once,
        on all ``len(self) * len(states)`` transformed states.
        """
        return self.back(q_values(self.turn(states))).mean(axis=1)

    def apply(self, batch: Batch, which: np.ndarray) -> Batch:
        """``batch`` with sample ``i`` under symmetry ``which[i]``."""
        index = self.state_index[which]
        next_masks = batch.next_masks
        if next_masks is not None:
            next_masks = np.take_along_axis(next_masks, self.action_index[which], axis=1)
        return batch._replace(
            states=np.take_along_axis(batch.states, index, axis=1),
            actions=self.new_action[which, batch.actions].astype(batch.actions.dtype),
            next_states=np.take_along_axis(batch.next_states, index, axis=1),
            next_masks=next_masks,
        )
