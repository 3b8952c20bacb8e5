"""Observation history, replay memory and rollout storage.

The first two are preallocated NumPy ring buffers that store each observation (frame)
exactly once. Every slot remembers the slot of the previous frame of its
episode, so a state is assembled on demand by following those links back
``nframes`` times, and ``(s, a, r, s')`` costs one frame of storage instead of
``2 * nframes``. The links also let several environments write into one
buffer, interleaved (``-c N``). Image frames stay ``uint8``; with
``difference=True`` states are differences of consecutive frames, computed
when a batch is drawn.

:class:`RolloutBuffer` holds the on-policy agents' (A2C, PPO) ``n_steps x N``
transitions and hands them over as a :class:`Rollout`, with advantages from
the pure :func:`gae`.
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
        if self.size < self.capacity:
            self.size += 1
        return i

    def stack(self, idx) -> np.ndarray:
        """Flat states ``[len(idx), nframes * prod(frame_shape)]`` ending at slots ``idx``.

        Frames before an episode's start (or already overwritten) repeat the
        oldest frame available, so a difference there is zero.
        """
        cur = np.asarray(idx, dtype=np.int64)
        if self.nframes == 1 and not self.difference:  # each state is its own frame
            return self.frames[cur].reshape(len(cur), -1)
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

    def history_arrays(self) -> dict[str, np.ndarray]:
        """The ring as arrays (its counters too), for a checkpoint of the episodes in progress."""
        counters = np.array([self.ptr, self.size, self.writes], dtype=np.int64)
        return {"frames": self.frames, "prev": self.prev, "stamp": self.stamp, "last": self.last, "counters": counters}

    def load_history_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`history_arrays` returned (same shapes, else ValueError)."""
        for name in ("frames", "prev", "stamp", "last"):
            mine = getattr(self, name)
            if np.shape(arrays[name]) != mine.shape:
                raise ValueError(f"saved frames' {name} has shape {np.shape(arrays[name])}, expected {mine.shape}")
            mine[...] = arrays[name]
        self.ptr, self.size, self.writes = (int(x) for x in arrays["counters"])


class LatestFrame:
    """The frame history of a state that is one frame (``nframes=1``, no differences): the newest frame alone.

    What :class:`FrameRing` gives for one stream, without its bookkeeping: :meth:`push` keeps a
    copy of the frame in ``dtype``, :meth:`latest` returns it as ``[1, input_dim]``. The array
    :meth:`latest` returns is replaced at the next push, never written into.
    """

    nframes, difference = 1, False

    def __init__(self, frame_shape, dtype=np.float32):
        self.frame_shape = tuple(frame_shape)
        self.dtype = np.dtype(dtype)
        self.size = int(np.prod(self.frame_shape, dtype=np.int64))
        self.state: np.ndarray | None = None

    def push(self, frame, first: bool, stream: int = 0) -> None:
        """Keep ``frame`` (a copy); ``first`` (an episode start) changes nothing for one frame."""
        self.state = np.array(frame, dtype=self.dtype).reshape(1, self.size)

    def latest(self, stream: int = 0) -> np.ndarray:
        """The state of the newest frame, shape ``[1, input_dim]``."""
        return self.state

    def history_arrays(self) -> dict[str, np.ndarray]:
        """The newest frame (none yet: no arrays), for a checkpoint of the episodes in progress."""
        return {} if self.state is None else {"state": self.state}

    def load_history_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`history_arrays` returned."""
        if "state" not in arrays:
            self.state = None
            return
        if np.size(arrays["state"]) != self.size:
            raise ValueError(f"saved frame has {np.size(arrays['state'])} values, expected {self.size}")
        self.state = np.array(arrays["state"], dtype=self.dtype).reshape(1, self.size)


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
        self.next[i] = j = self.push(next_obs, False, stream)
        if mask is not None:
            self._store_mask(j, mask)
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
        # Oversample a little: a few slots (episode ends, the newest frames) hold no transition.
        cand = rng.integers(0, self.size, size=2 * n + 8)
        out = cand[self.valid[cand]]
        while len(out) < n:
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


# -- on-policy rollouts -----------------------------------------------------------
def gae(rewards, values, next_values, terminated, truncated, discount: float, lam: float) -> np.ndarray:
    """Generalised advantage estimates (Schulman et al. 2016) of a rollout, all arrays ``[T, N]``.

    Args:
        rewards: ``r_t``.
        values: ``V(s_t)``, the value of the state acted on.
        next_values: ``V(s_{t+1})``, the value of the state that followed; at a truncation the
            value of the episode's final observation. Ignored where ``terminated``.
        terminated: the episode ended in a terminal state (its next value is 0).
        truncated: the episode was cut off (time limit); its next value bootstraps the return.
        discount: ``gamma``.
        lam: ``lambda``; 1 gives n-step returns minus ``values``, 0 one-step TD errors.

    Returns:
        ``A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}`` with
        ``delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t``; the
        recursion stops at every episode end and at the rollout's last step. float64.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    terminated = np.asarray(terminated, dtype=bool)
    done = terminated | np.asarray(truncated, dtype=bool)
    deltas = rewards + discount * np.where(terminated, 0.0, next_values) - np.asarray(values, dtype=np.float64)
    out = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[1:])
    for t in range(len(rewards) - 1, -1, -1):
        running = deltas[t] + discount * lam * np.where(done[t], 0.0, running)
        out[t] = running
    return out


def n_step_returns(rewards, next_values, terminated, truncated, discount: float) -> np.ndarray:
    """Discounted returns to the end of the rollout or episode, bootstrapped as :func:`gae` does (``[T, N]``).

    ``R_t = r_t + gamma * R_{t+1}`` within an episode; at a truncation and at the
    rollout's last step ``R_{t+1}`` is ``next_values_t``; at a termination it is 0.
    Equal to ``gae(..., lam=1) + values``.
    The arguments are :func:`gae`'s.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    terminated = np.asarray(terminated, dtype=bool)
    done = terminated | np.asarray(truncated, dtype=bool)
    out = np.zeros_like(rewards)
    following = np.asarray(next_values[-1], dtype=np.float64)
    for t in range(len(rewards) - 1, -1, -1):
        bootstrap = np.where(done[t] | (t == len(rewards) - 1), next_values[t], following)
        following = rewards[t] + discount * np.where(terminated[t], 0.0, bootstrap)
        out[t] = following
    return out


class Rollout(NamedTuple):
    """A rollout flattened over ``[T * N]`` (time major), with its advantages and value targets."""

    states: np.ndarray
    actions: np.ndarray  # int32 [B], or float32 [B, D] unclipped Gaussian samples
    log_probs: np.ndarray
    values: np.ndarray
    advantages: np.ndarray
    returns: np.ndarray
    legal: np.ndarray | None = None  # [B, actions] 0/1, when the env gives action masks


class RolloutBuffer:
    """``n_steps`` transitions of each of ``streams`` envs, and one frame history per env.

    Per step, :meth:`add` writes each env's transition into row ``t`` and pushes its
    next frame into that env's history; :meth:`advance` then moves to the next row.
    Once :attr:`full`, the returns bootstrap from the values of
    :meth:`bootstrap_states` (each env's newest state, then the final state of each
    episode truncated in the rollout) and :meth:`finish` returns the :class:`Rollout`;
    :meth:`reset` starts the next one.

    Args:
        n_steps: the rollout's length ``T``, in steps of every env.
        streams: the envs ``N`` that step together.
        frame_shape: the shape of one (preprocessed) observation; with ``frame_dtype``, ``nframes``
            and ``difference`` it says how states are built, as for :class:`FrameRing`.
        action_shape: ``()`` for discrete actions, ``(D,)`` for a ``Box`` of ``D`` dimensions.
        action_dtype: ``int32`` for discrete actions, ``float32`` for ``Box`` actions.
    """

    def __init__(
        self,
        n_steps: int,
        streams: int,
        frame_shape,
        frame_dtype=np.float32,
        nframes: int = 1,
        difference: bool = False,
        action_shape=(),
        action_dtype=np.int32,
    ):
        self.n_steps, self.streams = int(n_steps), int(streams)
        shape = (self.n_steps, self.streams)
        self.histories = [
            FrameRing(nframes + difference + 1, frame_shape, frame_dtype, nframes, difference) for _ in range(streams)
        ]
        state_dim = int(nframes) * math.prod(int(n) for n in frame_shape)
        self.states = np.zeros((*shape, state_dim), dtype=self.histories[0].state_dtype)
        self.actions = np.zeros((*shape, *action_shape), dtype=action_dtype)
        self.log_probs = np.zeros(shape)
        self.values = np.zeros(shape)
        self.rewards = np.zeros(shape)
        self.terminated = np.zeros(shape, dtype=bool)
        self.truncated = np.zeros(shape, dtype=bool)
        self.next_values = np.zeros(shape)  # V(s_{t+1}), set by finish
        self.legal: np.ndarray | None = None  # [T, N, actions] 0/1, allocated once an env gives masks
        self.truncations: list[tuple[int, int, np.ndarray]] = []  # (t, stream, the state after the truncation)
        self.t = 0  # the row being written

    @property
    def full(self) -> bool:
        return self.t == self.n_steps

    def start_episode(self, frame, stream: int = 0) -> None:
        """Begin env ``stream``'s history with its episode's first frame."""
        self.histories[stream].push(frame, first=True)

    def add(self, stream, state, action, log_prob, value, reward, terminated, truncated, next_frame, legal=None):
        """Write env ``stream``'s transition into row ``t`` and push its next frame into its history.

        ``state`` is the flat state acted on; ``action`` the sampled action (a ``Box`` action before
        clipping), ``log_prob`` and ``value`` what the acting policy gave it; ``next_frame`` the frame
        that followed (an episode's final one where it ended), whose state bootstraps a truncated
        return; ``legal`` the legal actions of ``state`` (0/1), when the env gives action masks.
        The agent may rescale row ``t``'s rewards before :meth:`advance`.
        """
        t = self.t
        if legal is not None:
            if self.legal is None:
                self.legal = np.ones((self.n_steps, self.streams, len(legal)), dtype=np.float32)
            self.legal[t, stream] = legal
        self.states[t, stream] = state
        self.actions[t, stream] = action
        self.log_probs[t, stream] = log_prob
        self.values[t, stream] = value
        self.rewards[t, stream] = reward
        self.terminated[t, stream] = terminated
        self.truncated[t, stream] = truncated
        history = self.histories[stream]
        history.push(next_frame, first=False)
        if truncated and not terminated:
            self.truncations.append((t, stream, history.latest()))

    def advance(self) -> bool:
        """Move on to the next row once every env has added its step; returns :attr:`full`."""
        self.t += 1
        return self.full

    def bootstrap_states(self) -> np.ndarray:
        """The states whose values :meth:`finish` takes: each env's newest, then each truncation's, in order."""
        states = [history.latest() for history in self.histories]
        return np.concatenate(states + [state for _, _, state in self.truncations])

    def finish(self, bootstrap_values, discount: float, lam: float) -> Rollout:
        """The full rollout, with :func:`gae` advantages and value targets (advantages plus values).

        Args:
            bootstrap_values: ``V`` of :meth:`bootstrap_states`, in its order.
            discount: ``gamma``.
            lam: GAE's ``lambda``.
        """
        n = self.streams
        self.next_values[:-1] = self.values[1:]
        self.next_values[-1] = bootstrap_values[:n]
        for (t, i, _), v in zip(self.truncations, bootstrap_values[n:]):
            self.next_values[t, i] = v
        advantages = gae(self.rewards, self.values, self.next_values, self.terminated, self.truncated, discount, lam)
        size = self.n_steps * n
        return Rollout(
            self.states.reshape(size, -1),
            self.actions.reshape(size, *self.actions.shape[2:]),
            self.log_probs.reshape(size).astype(np.float32),
            self.values.reshape(size).astype(np.float32),
            advantages.reshape(size).astype(np.float32),
            (advantages + self.values).reshape(size).astype(np.float32),
            None if self.legal is None else self.legal.reshape(size, -1),
        )

    def reset(self) -> None:
        """Start the next rollout (the histories go on: episodes run across rollouts)."""
        self.t = 0
        self.truncations = []

    ROWS = ("states", "actions", "log_probs", "values", "rewards", "terminated", "truncated")

    def state_dict(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The rollout so far (rows before ``t``) and each env's frame history, as a counter and arrays."""
        arrays = {name: getattr(self, name)[: self.t] for name in self.ROWS}
        if self.legal is not None:
            arrays["legal"] = self.legal[: self.t]
        for i, history in enumerate(self.histories):
            arrays.update({f"history/{i}/{k}": v for k, v in history.history_arrays().items()})
        for k, (_, _, state) in enumerate(self.truncations):
            arrays[f"truncation/{k}"] = state
        meta = {"t": self.t, "truncations": [[t, stream] for t, stream, _ in self.truncations]}
        return meta, arrays

    def load_state_dict(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned into a buffer of the same shape (else ValueError)."""
        t = int(meta["t"])
        for name in self.ROWS:
            mine = getattr(self, name)
            if np.shape(arrays[name])[1:] != mine.shape[1:] or t > self.n_steps:
                raise ValueError(f"saved rollout {name} has shape {np.shape(arrays[name])}, expected {mine.shape}")
            mine[:t] = arrays[name]
        if "legal" in arrays:
            self.legal = np.ones((self.n_steps, self.streams, np.shape(arrays["legal"])[-1]), dtype=np.float32)
            self.legal[:t] = arrays["legal"]
        for i, history in enumerate(self.histories):
            prefix = f"history/{i}/"
            history.load_history_arrays({k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)})
        self.truncations = [
            (int(row), int(stream), np.asarray(arrays[f"truncation/{k}"]))
            for k, (row, stream) in enumerate(meta["truncations"])
        ]
        self.t = t
