"""Observation history and replay memory.

Both are preallocated NumPy ring buffers that store each observation (frame)
exactly once. Every slot remembers the slot of the previous frame of its
episode, so a state is assembled on demand by following those links back
``nframes`` times, and ``(s, a, r, s')`` costs one frame of storage instead of
``2 * nframes``. The links also let several environments write into one
buffer, interleaved (``-c N``). Image frames stay ``uint8``; with
``difference=True`` states are differences of consecutive frames, computed
when a batch is drawn.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


def replay_nbytes(capacity: int, frame_shape, dtype=np.float32, streams: int = 1) -> int:
    """Bytes ``ReplayMemory(capacity, frame_shape, dtype, streams=streams)`` allocates (its ``nbytes``), exactly.

    Computed without allocating, so a caller can refuse a memory that does
    not fit before NumPy tries: per slot, one frame plus the links and the
    transition (``prev``, ``stamp``, ``next``: int64; ``actions``: int32;
    ``rewards``: float32; ``terminated``, ``valid``: bool), and one int64 per stream.
    """
    frame = math.prod(int(n) for n in frame_shape) * np.dtype(dtype).itemsize
    per_slot = frame + 3 * 8 + 4 + 4 + 1 + 1
    return int(capacity) * per_slot + 8 * int(streams)


class Batch(NamedTuple):
    """A minibatch of transitions; states are flat ``[B, input_dim]`` arrays.

    With n-step returns (``n_step > 1``), ``rewards`` holds each sample's discounted
    sum of up to ``n_step`` rewards, ``next_states`` and ``terminated`` are those of its
    last step, and ``n_steps`` says how many rewards were summed (fewer where the
    episode ended or was cut off first). ``next_masks``: the legal actions in each
    next state, when the env gives action masks.
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_states: np.ndarray
    terminated: np.ndarray
    n_steps: np.ndarray | None = None
    next_masks: np.ndarray | None = None

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The fields that are set, in order: what an update's loss unpacks."""
        return tuple(x for x in self if x is not None)


class FrameRing:
    """Ring buffer of frames that can stack the last ``nframes`` of an episode.

    Args:
        capacity: number of frames kept.
        frame_shape: shape of one (preprocessed) observation.
        dtype: storage dtype; ``uint8`` frames are never widened in storage.
        nframes: frames per state.
        difference: states hold ``frame[t] - frame[t-1]`` (zero at an
            episode's first frame) instead of raw frames.
        streams: how many environments write into the buffer, interleaved.
    """

    def __init__(self, capacity, frame_shape, dtype=np.float32, nframes=1, difference=False, streams=1):
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self.frame_shape = tuple(frame_shape)
        self.nframes = int(nframes)
        self.difference = bool(difference)
        self.frames = np.zeros((self.capacity, *self.frame_shape), dtype=dtype)
        self.prev = np.arange(self.capacity, dtype=np.int64)  # previous frame's slot; itself at an episode start
        self.stamp = np.full(self.capacity, -1, dtype=np.int64)  # write order, to spot overwritten history
        self.last = np.full(int(streams), -1, dtype=np.int64)  # newest slot of each stream
        self.ptr = 0  # next slot to write
        self.size = 0
        self.writes = 0

    @property
    def state_dtype(self):
        return np.float32 if self.difference else self.frames.dtype

    def push(self, frame, first: bool, stream: int = 0) -> int:
        """Write one frame of ``stream``; ``first`` marks an episode start. Returns its slot."""
        i = self.ptr
        self.frames[i] = frame
        self.prev[i] = i if first else self.last[stream]
        self.stamp[i] = self.writes
        self.last[stream] = i
        self.writes += 1
        self.ptr = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return i

    def stack(self, idx) -> np.ndarray:
        """Flat states ``[len(idx), nframes * prod(frame_shape)]`` ending at slots ``idx``.

        Frames before an episode's start (or already overwritten) repeat the
        oldest frame available, so a difference there is zero.
        """
        cur = np.asarray(idx, dtype=np.int64)
        cols = [cur]
        for _ in range(self.nframes + self.difference - 1):
            p = self.prev[cur]
            # A real predecessor was written before cur; a self-link or a newer stamp (overwritten) is not.
            cur = np.where(self.stamp[p] < self.stamp[cur], p, cur)
            cols.append(cur)
        f = self.frames[np.stack(cols[::-1], axis=1)]
        if self.difference:
            f = f[:, 1:].astype(np.float32) - f[:, :-1].astype(np.float32)
        return f.reshape(len(cols[0]), -1)

    def latest(self, stream: int = 0) -> np.ndarray:
        """The state ending at ``stream``'s newest frame, shape ``[1, input_dim]`` (a new array)."""
        if self.nframes == 1 and not self.difference:  # the state is the frame: a copy, without stack's gather
            i = self.last[stream]
            return self.frames[i : i + 1].reshape(1, -1).copy()
        return self.stack(self.last[stream : stream + 1])


class ReplayMemory(FrameRing):
    """Experience replay: frames plus, per slot, the transition that starts there.

    Call :meth:`start_episode` with the first observation, then :meth:`add`
    once per step with the action taken, the reward, ``terminated`` and the
    next observation (per ``stream`` when several envs share the memory).
    The final frame of an episode is kept only as a next state, which is what
    lets a truncated episode bootstrap from it.
    """

    def __init__(self, capacity, frame_shape, dtype=np.float32, nframes=1, difference=False, streams=1):
        super().__init__(capacity, frame_shape, dtype, nframes, difference, streams)
        self.next = np.zeros(self.capacity, dtype=np.int64)
        self.actions = np.zeros(self.capacity, dtype=np.int32)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=bool)
        self.valid = np.zeros(self.capacity, dtype=bool)
        self.masks: np.ndarray | None = None  # [capacity, actions] legal actions per frame, once an env gives masks
        self.num_transitions = 0

    ARRAYS = ("frames", "prev", "stamp", "last", "next", "actions", "rewards", "terminated", "valid")

    def __len__(self) -> int:
        return self.num_transitions

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self.ARRAYS)

    def push(self, frame, first: bool, stream: int = 0) -> int:
        # The transition stored in the slot being overwritten is gone. Its successor frame
        # was written later, so no surviving transition ever points at an overwritten slot.
        if self.valid[self.ptr]:
            self.valid[self.ptr] = False
            self.num_transitions -= 1
        return super().push(frame, first, stream)

    def start_episode(self, obs, stream: int = 0, mask=None) -> None:
        self._store_mask(self.push(obs, True, stream), mask)

    def add(self, action, reward, terminated, next_obs, stream: int = 0, mask=None) -> None:
        """Record the transition from ``stream``'s newest frame; ``mask``: the legal actions at ``next_obs``."""
        i = self.last[stream]
        self.actions[i] = action
        self.rewards[i] = reward
        self.terminated[i] = terminated
        self.next[i] = self.push(next_obs, False, stream)
        self._store_mask(self.next[i], mask)
        self.valid[i] = True
        self.num_transitions += 1

    def _store_mask(self, slot: int, mask) -> None:
        if mask is None:
            return
        if self.masks is None:  # the first mask says how many actions there are
            self.masks = np.ones((self.capacity, len(mask)), dtype=bool)
        self.masks[slot] = mask

    def _gather(self, idx, n_step: int = 1, discount: float = 1.0) -> Batch:
        """The transitions starting at slots ``idx``; with ``n_step > 1``, their n-step returns.

        An n-step chain follows each transition's ``next`` slot while the episode
        goes on: it stops at a termination, at a frame with no transition (an
        episode's last frame, or the newest frame of one still running) and after
        ``n_step`` rewards. A chain never reaches an overwritten slot: a slot holding
        a transition was written before its successor, so the ring overwrites it first.
        """
        idx = np.asarray(idx, dtype=np.int64)
        # Indexing with an array copies, so the n-step sums below write into arrays of their own.
        rewards, terminated, nxt = self.rewards[idx], self.terminated[idx], self.next[idx]
        n_steps = None
        if n_step > 1:
            n_steps = np.ones(len(idx), dtype=np.int32)
            for k in range(1, n_step):
                go = ~terminated & self.valid[nxt]
                if not go.any():
                    break
                j = nxt[go]
                rewards[go] += np.float32(discount**k) * self.rewards[j]
                terminated[go] = self.terminated[j]
                n_steps[go] += 1
                nxt = np.where(go, self.next[nxt], nxt)
        masks = None if self.masks is None else self.masks[nxt]
        return Batch(self.stack(idx), self.actions[idx], rewards, self.stack(nxt), terminated, n_steps, masks)

    def newest_indices(self, n: int) -> np.ndarray:
        """Slots of the ``n`` most recent transitions, newest first."""
        n = min(n, self.num_transitions)
        window = n + len(self.last)
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
            # Oversample a little: a few slots (episode ends, the newest frames) hold no transition.
            cand = rng.integers(0, self.size, size=2 * (n - len(out)) + 8)
            out = np.concatenate([out, cand[self.valid[cand]]])
        return out[:n]

    def sample(
        self, batch_size: int, rng: np.random.Generator, newest: int = 0, n_step: int = 1, discount: float = 1.0
    ) -> Batch:
        """A batch of the ``newest`` latest transitions plus random replay to fill it (see :meth:`_gather`)."""
        new = self.newest_indices(newest) if newest else np.empty(0, dtype=np.int64)
        idx = np.concatenate([new, self.random_indices(batch_size - len(new), rng)])
        return self._gather(idx, n_step, discount)

    def state_dict(self) -> tuple[dict, dict[str, np.ndarray]]:
        """Counters and arrays that restore this memory exactly."""
        meta = {"ptr": self.ptr, "size": self.size, "writes": self.writes, "num_transitions": self.num_transitions}
        arrays = {name: getattr(self, name) for name in self.ARRAYS}
        if self.masks is not None:
            arrays["masks"] = self.masks
        return meta, arrays

    def load_state_dict(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        for name in self.ARRAYS:
            mine = getattr(self, name)
            if arrays[name].shape != mine.shape:
                raise ValueError(f"saved replay {name} has shape {arrays[name].shape}, expected {mine.shape}")
            mine[...] = arrays[name]
        self.masks = np.array(arrays["masks"], dtype=bool) if "masks" in arrays else None
        self.ptr, self.size, self.writes, self.num_transitions = (
            int(meta[k]) for k in ("ptr", "size", "writes", "num_transitions")
        )
