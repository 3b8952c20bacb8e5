"""DQN and double DQN (D2QN).

The update scheme is the original KeRLym's, in today's terms:

* every ``update_freq`` env steps (SB3's ``train_freq``) the agent trains on
  ``update_nsamp`` samples (the CLI's ``--update_size``): the newest
  ``update_freq`` transitions plus uniform replay to fill the rest
  (``replay="newest"``), or all of them drawn uniformly from the replay
  memory, as SB3 and the DQN paper do (``replay="uniform"``);
* those samples are split into minibatches of ``batch_size``, so one update is
  ``update_nsamp // batch_size`` gradient steps (SB3's ``gradient_steps``),
  all run inside a single compiled call;
* the target network is synced every ``target_update_freq`` env steps.  The
  original alternated its two networks after each update; the default
  (``target_update_freq = update_freq``) is the same: targets come from the
  weights as they were before the current update;
* with ``ema_steps``, greedy actions (evaluation, ``--play``, saved models)
  come from an exponential moving average of the online network's weights,
  updated after every update; training still acts and learns with the online
  network. A DQN's greedy policy can swing between good and poor from one
  update to the next; the average over the last few thousand steps swings less.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from keras import ops

from kerlym.agents.base import Agent
from kerlym.compiled import Compiled, compiled_loss
from kerlym.config import DQNConfig
from kerlym.memory import ReplayMemory


def td_targets(rewards, terminated, next_values, discount):
    """``r + discount * V(s')``, with no bootstrap past a terminal state.

    Truncation (a time limit) is not termination: those transitions keep the
    bootstrap, so pass only Gymnasium's ``terminated`` flag here.
    """
    not_done = 1.0 - ops.cast(terminated, "float32")
    return ops.cast(rewards, "float32") + discount * not_done * next_values


def decayed_epsilon(episode: int, epsilon: float, decay: float, floor: float) -> float:
    """The original's per-episode schedule: ``epsilon *= (1 - decay)``, never below ``floor``."""
    return max(floor, epsilon * (1.0 - decay))


def linear_epsilon(start: float, end: float, steps: int) -> Callable[[int], float]:
    """Epsilon annealed linearly from ``start`` to ``end`` over ``steps`` env steps."""

    def schedule(step: int) -> float:
        return end + (start - end) * max(0.0, 1.0 - step / steps)

    return schedule


class DQN(Agent):
    """Deep Q-learning with experience replay and a target network.

    Args:
        env: a Gymnasium env, env id, or zero-argument callable returning one.
        config: a :class:`kerlym.config.DQNConfig`, where each setting is documented
            (``epsilon``, ``update_freq``, ``update_nsamp``, ``batch_size``, ``max_memory``,
            ``replay``, ``learning_starts``, ``ema_steps``, ...); keyword arguments override its fields.
        epsilon_schedule: ``f(episode, epsilon) -> epsilon``, called after each episode (the
            original's API); by default ``epsilon_decay`` decays it. Not used with ``epsilon_decay_steps``.
        enable_plots: draw the live plot while :meth:`learn` runs.
        **kwargs: :class:`~kerlym.config.DQNConfig` fields, then parameters the model factory names.
    """

    name = "dqn"
    Config = DQNConfig
    # The batch element the target network sees (next states; see q_loss). A subclass whose loss
    # feeds the target anything else sets None: the target then runs inside each minibatch step.
    target_input: int | None = 3

    def __init__(
        self,
        env,
        config: DQNConfig | None = None,
        *,
        epsilon_schedule: Callable[[int, float], float] | None = None,
        enable_plots: bool = False,
        **kwargs,
    ):
        super().__init__(env, config, enable_plots=enable_plots, **kwargs)
        c = self.config
        self.epsilon = float(c.epsilon)
        self.discount = float(c.discount)
        self.update_freq = int(c.update_freq)
        self.update_nsamp = int(c.update_nsamp)
        self.batch_size = int(c.batch_size)
        self.replay = c.replay
        if epsilon_schedule is None and c.epsilon_decay > 0:
            epsilon_schedule = functools.partial(decayed_epsilon, decay=c.epsilon_decay, floor=c.epsilon_min)
        self.epsilon_schedule = epsilon_schedule
        self._step_epsilon = (
            linear_epsilon(c.epsilon, c.epsilon_min, c.epsilon_decay_steps) if c.epsilon_decay_steps else None
        )
        self.target_update_freq = int(c.target_update_freq or c.update_freq)
        # By default the first update waits for one batch (a memory no larger than that still updates).
        self.learning_starts = (
            c.learning_starts if c.learning_starts is not None else min(c.batch_size, c.max_memory - 1)
        )
        max_memory = c.max_memory
        ema_steps = c.ema_steps
        self.memory = ReplayMemory(
            max_memory, self.frame_shape, self.frame_dtype, self.nframes, self.difference_obs, self.concurrency
        )
        self.loss = compiled_loss(self.model, self.modelfactory.__name__)
        self.target_model = self.build_model()
        self.compiled = Compiled(self.model, self.q_loss, target=self.target_model, target_input=self.target_input)
        self.compiled.sync_target()
        self.ema_steps = ema_steps
        self.ema_model = None
        self.greedy_compiled = self.compiled  # what act(explore=False) calls; the average's own with ema_steps
        self._ema: list[np.ndarray] | None = None  # the averaged weights; None until the first update
        self._ema_step = 0  # total_steps at the average's last move
        self._ema_stale = False  # _ema has moved since it was copied into ema_model
        if ema_steps is not None:
            self.ema_model = self.build_model()
            self.ema_model.set_weights(self.model.get_weights())
            self.greedy_compiled = Compiled(self.ema_model, self.q_loss)  # only its act is used

    # -- the maths ----------------------------------------------------------
    def next_state_value(self, online, target, next_states):
        """DQN: ``max_a' Q_target(s', a')``. D2QN overrides this one method."""
        return ops.max(target(next_states), axis=-1)

    def q_loss(self, online, target, batch):
        """The factory's loss between ``Q(s, a)`` and the TD target, for one minibatch."""
        states, actions, rewards, next_states, terminated = batch
        q = online(states, training=True)
        next_v = self.next_state_value(lambda x: ops.stop_gradient(online(x)), target, next_states)
        y = ops.stop_gradient(td_targets(rewards, terminated, next_v, self.discount))
        q_sa = ops.take_along_axis(q, ops.expand_dims(ops.cast(actions, "int32"), -1), axis=-1)
        return self.loss(ops.expand_dims(y, -1), q_sa)

    # -- acting and learning ------------------------------------------------
    def act(self, states, explore=True):
        if not explore:
            self._sync_ema_model()
            return self.greedy_compiled.act(states)
        n = len(states)
        random = self.rng.random(n) < self.epsilon
        actions = self.rng.integers(self.num_actions, size=n)
        if random.all():  # nothing for the network to decide (most steps while epsilon is near 1)
            return actions, None
        greedy, q = self.compiled.act(states)
        return np.where(random, actions, greedy), q

    def begin_episode(self, frame, stream=0):
        self.memory.start_episode(frame, stream)

    def observe(self, stream, state, action, reward, terminated, truncated, frame):
        self.memory.add(action, reward, terminated, frame, stream)

    def after_step(self, steps_before):
        t = self.total_steps
        if self._step_epsilon is not None:
            self.epsilon = self._step_epsilon(t)
        # Counting transitions held (not steps taken) makes a run resumed without
        # its replay memory refill it before training again.
        if len(self.memory) >= self.learning_starts:
            # One update per multiple of update_freq crossed; with -c N a step can cross several.
            for k in range(steps_before // self.update_freq + 1, t // self.update_freq + 1):
                self.update(step=k * self.update_freq)
        if t // self.target_update_freq > steps_before // self.target_update_freq:
            self.compiled.sync_target()

    def sample_update(self):
        """The samples of one update as arrays of shape ``[steps, batch_size, ...]``."""
        steps = self.update_nsamp // self.batch_size
        n = steps * self.batch_size
        newest = min(self.update_freq, n) if self.replay == "newest" else 0
        batch = self.memory.sample(n, self.rng, newest=newest)
        order = self.rng.permutation(n)  # spread the newest transitions over the minibatches
        return tuple(x[order].reshape(steps, self.batch_size, *x.shape[1:]) for x in batch)

    def update(self, step: int | None = None) -> np.ndarray:
        """One update: ``update_nsamp // batch_size`` gradient steps in one compiled call.

        ``step``: the env step the update belongs to, which times the weight average
        (default: ``total_steps``).
        """
        losses = self.compiled.update(*self.sample_update())
        self.updates += 1
        self._losses.extend(losses.tolist())
        if self.ema_steps is not None:
            self.average_weights(step)
        return losses

    def average_weights(self, step: int | None = None) -> None:
        """Move the weight average toward the online weights (``ema_steps``); the first call copies them.

        The move is ``1 - exp(-(step - the last move's step) / ema_steps)``; ``step`` defaults to
        ``total_steps``.
        """
        step = self.total_steps if step is None else step
        weights = [np.array(w, dtype=np.float32) for w in self.model.get_weights()]
        if self._ema is None:
            self._ema = weights
        else:
            keep = math.exp(-max(step - self._ema_step, 0) / self.ema_steps)
            for average, w in zip(self._ema, weights):
                average *= keep
                average += (1.0 - keep) * w
        self._ema_step = step
        self._ema_stale = True

    @property
    def greedy_model(self):
        """The network greedy actions come from: the weight average with ``ema_steps``, else the online network."""
        self._sync_ema_model()
        return self.model if self.ema_model is None else self.ema_model

    def _sync_ema_model(self) -> None:
        if self._ema_stale:  # copied only when greedy actions are wanted, not after every update; never without one
            self.ema_model.set_weights(self._ema)
            self._ema_stale = False

    def get_state(self, include_memory: bool = False):
        """Adds the target network, the weight average and, if asked, the replay memory to the base state."""
        meta, arrays = super().get_state()
        for i, v in enumerate(self.target_model.variables):
            arrays[f"target/{i}"] = np.asarray(v.numpy())
        if self._ema is not None:
            meta["ema_step"] = self._ema_step
            arrays.update({f"ema/{i}": w for i, w in enumerate(self._ema)})
        if include_memory:
            meta["memory"], memory = self.memory.state_dict()
            arrays.update({f"memory/{k}": v for k, v in memory.items()})
        return meta, arrays

    def set_state(self, meta, arrays):
        super().set_state(meta, arrays)
        for i, v in enumerate(self.target_model.variables):
            v.assign(arrays[f"target/{i}"])
        if self.ema_model is not None:
            if "ema_step" in meta:
                self._ema = [np.array(arrays[f"ema/{i}"], dtype=np.float32) for i in range(len(self.model.weights))]
                self._ema_step = int(meta["ema_step"])
            else:  # saved before the first update: the average starts at the online weights
                self._ema = None
                self.ema_model.set_weights(self.model.get_weights())
            self._ema_stale = self._ema is not None
        if "memory" in meta:
            prefix = "memory/"
            memory = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            self.memory.load_state_dict(meta["memory"], memory)

    def end_episode(self, stream=0):
        if self.epsilon_schedule is not None and self._step_epsilon is None:
            self.epsilon = float(self.epsilon_schedule(self.episode, self.epsilon))
        return {}


class D2QN(DQN):
    """Double DQN: the online network picks the next action, the target network values it."""

    name = "ddqn"

    def next_state_value(self, online, target, next_states):
        best = ops.argmax(online(next_states), axis=-1)
        q_target = target(next_states)
        return ops.take_along_axis(q_target, ops.expand_dims(best, -1), axis=-1)[:, 0]
