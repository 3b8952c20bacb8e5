"""Observation history and replay memory.

Both are preallocated NumPy ring buffers that store each observation (frame)
exactly once. A state is assembled on demand from the last ``nframes`` frames
of the same episode, so a transition ``(s, a, r, s')`` costs one frame of
storage instead of ``2 * nframes``.  Image frames stay ``uint8``; with
``difference=True`` the stacked states are differences of consecutive frames,
computed when a batch is drawn.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    """A minibatch of transitions; states are flat ``[B, input_dim]`` arrays."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_states: np.ndarray
    terminated: np.ndarray


class FrameRing:
    """Ring buffer of frames that can stack the last ``nframes`` of an episode.

    Args:
        capacity: number of frames kept.
        frame_shape: shape of one (preprocessed) observation.
        dtype: storage dtype; ``uint8`` frames are never widened in storage.
        nframes: frames per state.
        difference: states hold ``frame[t] - frame[t-1]`` (zero at an
            episode's first frame) instead of raw frames.
    """

    def __init__(self, capacity, frame_shape, dtype=np.float32, nframes=1, difference=False):
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self.frame_shape = tuple(frame_shape)
        self.nframes = int(nframes)
        self.difference = bool(difference)
        self.frames = np.zeros((self.capacity, *self.frame_shape), dtype=dtype)
        # Frames since the start of the episode the frame belongs to.
        self.age = np.zeros(self.capacity, dtype=np.int64)
        self.ptr = 0  # next slot to write
        self.size = 0
        # Offsets back in time of the frames one state needs, oldest first.
        self._back = np.arange(self.nframes + self.difference - 1, -1, -1)

    @property
    def state_dtype(self):
        return np.float32 if self.difference else self.frames.dtype

    def push(self, frame, first: bool) -> int:
        """Write one frame; ``first`` marks the start of an episode. Returns its slot."""
        i = self.ptr
        self.frames[i] = frame
        self.age[i] = 0 if first else self.age[i - 1] + 1
        self.ptr = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return i

    def stack(self, idx) -> np.ndarray:
        """Flat states ``[len(idx), nframes * prod(frame_shape)]`` ending at slots ``idx``.

        Frames before an episode's start (or already overwritten) repeat the
        oldest frame available, so a difference there is zero.
        """
        idx = np.asarray(idx, dtype=np.int64)
        # Frames still intact behind idx: all of them until the ring wraps.
        intact = (idx - self.ptr) % self.capacity if self.size == self.capacity else idx
        limit = np.minimum(self.age[idx], intact)
        k = np.minimum(self._back[None, :], limit[:, None])
        f = self.frames[(idx[:, None] - k) % self.capacity]
        if self.difference:
            f = f[:, 1:].astype(np.float32) - f[:, :-1].astype(np.float32)
        return f.reshape(len(idx), -1)

    def latest(self) -> np.ndarray:
        """The state ending at the newest frame, shape ``[1, input_dim]``."""
        return self.stack(np.array([(self.ptr - 1) % self.capacity]))


class ReplayMemory(FrameRing):
    """Experience replay: frames plus, per slot, the transition that starts there.

    Call :meth:`start_episode` with the first observation, then :meth:`add`
    once per step with the action taken, the reward, ``terminated`` and the
    next observation. Slot ``i`` holds a transition when its next frame
    ``i + 1`` belongs to the same episode; the final frame of an episode is
    kept only as a next state, which is what lets a truncated episode
    bootstrap from it.
    """

    def __init__(self, capacity, frame_shape, dtype=np.float32, nframes=1, difference=False):
        super().__init__(capacity, frame_shape, dtype, nframes, difference)
        self.actions = np.zeros(self.capacity, dtype=np.int32)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=bool)
        self.valid = np.zeros(self.capacity, dtype=bool)
        self.num_transitions = 0

    def __len__(self) -> int:
        return self.num_transitions

    @property
    def nbytes(self) -> int:
        arrays = (self.frames, self.age, self.actions, self.rewards, self.terminated, self.valid)
        return sum(a.nbytes for a in arrays)

    def _write(self, frame, first):
        if self.valid[self.ptr]:  # overwriting the oldest transition
            self.valid[self.ptr] = False
            self.num_transitions -= 1
        return self.push(frame, first)

    def start_episode(self, obs) -> None:
        self._write(obs, first=True)

    def add(self, action, reward, terminated, next_obs) -> None:
        i = (self.ptr - 1) % self.capacity
        self.actions[i] = action
        self.rewards[i] = reward
        self.terminated[i] = terminated
        self.valid[i] = True
        self.num_transitions += 1
        self._write(next_obs, first=False)

    def _gather(self, idx) -> Batch:
        nxt = (idx + 1) % self.capacity
        return Batch(
            self.stack(idx),
            self.actions[idx],
            self.rewards[idx],
            self.stack(nxt),
            self.terminated[idx],
        )

    def newest_indices(self, n: int) -> np.ndarray:
        """Slots of the ``n`` most recent transitions, newest first."""
        n = min(n, self.num_transitions)
        window = n + 1
        while True:
            cand = (self.ptr - 1 - np.arange(min(window, self.size))) % self.capacity
            cand = cand[self.valid[cand]]
            if len(cand) >= n or window >= self.size:
                return cand[:n]
            window *= 2

    def random_indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` transition slots drawn uniformly with replacement."""
        if self.num_transitions == 0:
            raise ValueError("cannot sample from an empty replay memory")
        out = np.empty(0, dtype=np.int64)
        while len(out) < n:
            # Oversample a little: a few slots (episode ends, the newest frame) hold no transition.
            cand = rng.integers(0, self.size, size=2 * (n - len(out)) + 8)
            out = np.concatenate([out, cand[self.valid[cand]]])
        return out[:n]

    def sample(self, batch_size: int, rng: np.random.Generator, newest: int = 0) -> Batch:
        """A batch of the ``newest`` latest transitions plus random replay to fill it."""
        new = self.newest_indices(newest) if newest else np.empty(0, dtype=np.int64)
        idx = np.concatenate([new, self.random_indices(batch_size - len(new), rng)])
        return self._gather(idx)
