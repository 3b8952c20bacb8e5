"""DQN and double DQN (D2QN).

The update scheme is the original KeRLym's, in today's terms:

* every ``update_freq`` env steps (SB3's ``train_freq``) the agent trains on
  ``update_nsamp`` samples (the CLI's ``--update_size``): the newest
  ``update_freq`` transitions plus uniform replay to fill the rest
  (``replay="newest"``), or all of them drawn uniformly from the replay
  memory, as SB3 and the DQN paper do (``replay="uniform"``);
* those samples are split into minibatches of ``batch_size``, so one update is
  ``update_nsamp // batch_size`` gradient steps (SB3's ``gradient_steps``),
  all run inside a single compiled call (:func:`kerlym.backend.build_steps`);
* the target network is synced every ``target_update_freq`` env steps.  The
  original alternated its two networks after each update; the default
  (``target_update_freq = update_freq``) is the same: targets come from the
  weights as they were before the current update;
* with ``dueling``, the factory's output layer gives way to a value stream and
  an advantage stream on the features that fed it, ``Q = V + A - mean(A)``
  (Wang et al. 2016): one value learnt from every sample, however many actions
  share it (:func:`dueling_model`);
* with ``symmetries``, every replay sample is trained on under a random one of
  the env's symmetries (Go's 8 board rotations and reflections: :class:`Symmetries`);
* with ``average_symmetries``, greedy actions come from Q averaged over those
  symmetries, each mapped back to the state as played (:meth:`Symmetries.mean_q`);
* with ``ema_steps``, greedy actions (evaluation, ``--play``, saved models)
  come from an exponential moving average of the online network's weights,
  updated after every update; training still acts and learns with the online
  network (:mod:`kerlym.agents.ema`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from kerlym.agents.base import Agent
from kerlym.agents.ema import WeightAverage
from kerlym.backend import build_steps, compiled_loss
from kerlym.config import DQNConfig
from kerlym.factories import factory_name
from kerlym.layers import DuelingQ
from kerlym.memory import ReplayMemory
from kerlym.symmetries import Symmetries

EXPLORATION_BLOCK = 4096  # epsilon-greedy draws per NumPy call (two calls per act cost more than the act)


def td_targets(rewards, terminated, next_values, discount):
    """``r + discount * V(s')``, with no bootstrap past a terminal state.

    ``discount``: a number, or one per sample (``gamma ** n`` for an n-step return of ``n`` rewards).

    Truncation (a time limit) is not termination: those transitions keep the
    bootstrap, so pass only Gymnasium's ``terminated`` flag here.
    """
    not_done = 1.0 - ops.cast(terminated, "float32")
    return ops.cast(rewards, "float32") + discount * not_done * next_values


def masked(q, legal):
    """``q`` with illegal actions pushed far below any Q-value (``legal`` None: unchanged).

    A finite floor rather than -inf keeps a terminal state with no legal action at a
    value of 0 once ``td_targets`` multiplies it by ``1 - terminated``.
    """
    return q if legal is None else ops.where(ops.cast(legal, "bool"), q, ops.cast(-1e9, q.dtype))


def masked_argmax(values: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per row, the legal action with the highest value (NumPy; row ``i``'s legal actions are ``masks[i]``)."""
    return np.where(masks, values, -np.inf).argmax(axis=1)


def dueling_model(net, name: str):
    """``net`` with its output layer replaced by a dueling head (:class:`~kerlym.layers.DuelingQ`) on its features.

    The value and advantage layers are initialised as ``net``'s output layer was, with a
    bias where it had one (a zero-initialised output starts every Q-value at zero again); the
    model keeps the optimizer and loss the factory compiled. ``net`` is refused,
    naming ``name``, unless its output layer is one ``Dense`` layer with a single input.
    """
    out = net.layers[-1]
    features = getattr(out, "input", None) if isinstance(out, keras.layers.Dense) else None
    if features is None or isinstance(features, (list, tuple)):
        raise ValueError(
            f"dueling (--dueling) replaces {name}'s output layer with a value and an advantage stream, so that "
            f"layer must be one Dense layer on one input; {name}'s is {type(out).__name__}"
        )

    def head(units, layer_name):
        return keras.layers.Dense(
            units,
            use_bias=out.use_bias,
            kernel_initializer=keras.initializers.deserialize(keras.initializers.serialize(out.kernel_initializer)),
            bias_initializer=keras.initializers.deserialize(keras.initializers.serialize(out.bias_initializer)),
            dtype="float32",
            name=layer_name,
        )(features)

    q = DuelingQ(dtype="float32", name="dueling_q")([head(1, "value"), head(out.units, "advantage")])
    model = keras.Model(net.input, q, name=f"{net.name}_dueling")
    model.compile(optimizer=net.optimizer, loss=net.loss)
    return model


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
        self.n_step = int(c.return_steps)
        self.own_epsilon_schedule = epsilon_schedule is not None  # a caller's function (not on the fused path)
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
        self.symmetries = None  # the env's symmetries, for training samples and/or greedy actions
        if c.symmetries or c.average_symmetries:
            setting = "symmetries" if c.symmetries else "average_symmetries"
            self.symmetries = Symmetries(self.env, self.frame_shape, self.nframes, setting)
        self.loss = compiled_loss(self.model, self.modelfactory.__name__)
        self._target_model = self.build_model()
        self.steps = build_steps(self.model, self.q_loss, target=self._target_model, prepare=self.target_q_values)
        self.steps.sync_target()
        # Epsilon-greedy's uniform numbers and random actions, drawn EXPLORATION_BLOCK at a time.
        self._uniforms, self._random_actions = np.empty(0), np.empty(0, np.int64)
        self.ema_steps = ema_steps
        self.ema = None  # the weight average greedy actions come from, with ema_steps
        if ema_steps is not None:
            ema_model = self.build_model()
            ema_model.set_weights(self.model.get_weights())
            self.ema = WeightAverage(ema_steps, build_steps(ema_model))
        if getattr(self.env.unwrapped, "gymnax_env", None) is not None:  # a JAX-native env: the fused path
            from kerlym.agents.fused_dqn import FusedDQN

            self.fused = FusedDQN(self)

    def build_model(self):
        net = super().build_model()
        return dueling_model(net, factory_name(self.modelfactory)) if self.config.dueling else net

    # -- the maths ----------------------------------------------------------
    def target_q_values(self, target, batches):
        """``Q_target(s')`` for the next states of every minibatch of an update, in one call of the target network.

        The target network does not change during an update, so one large
        product serves all of its minibatches.
        """
        return target(batches[3])  # the next states

    def next_state_value(self, q_target_next, online_next, legal=None):
        """DQN: ``max_a' Q_target(s', a')`` over the legal actions ``a'``. D2QN overrides this one method.

        Args:
            q_target_next: ``Q_target(s')``, shape ``[B, actions]``.
            online_next: ``online_next()`` returns ``Q_online(s')`` (no gradient), computed only if called.
            legal: the next states' legal actions ``[B, actions]``, when the env gives action masks.
        """
        return ops.max(masked(q_target_next, legal), axis=-1)

    def q_loss(self, online, batch, q_target_next):
        """The factory's loss between ``Q(s, a)`` and the TD target, for one minibatch.

        Args:
            online: ``online(x, training=False)`` runs the network being trained.
            batch: ``(states, actions, rewards, next_states, terminated[, n_steps][, next_masks])``
                (:meth:`kerlym.memory.Batch.arrays`; ``n_steps`` with ``n_step > 1``).
            q_target_next: this minibatch's slice of :meth:`target_q_values`.
        """
        states, actions, rewards, next_states, terminated, *rest = batch
        q = online(states, training=True)
        discount = self.discount
        if self.n_step > 1:  # each sample bootstraps after its own number of rewards
            discount = ops.power(discount, ops.cast(rest.pop(0), "float32"))
        legal = rest[0] if rest else None
        next_v = self.next_state_value(q_target_next, lambda: ops.stop_gradient(online(next_states)), legal)
        y = ops.stop_gradient(td_targets(rewards, terminated, next_v, discount))
        q_sa = ops.take_along_axis(q, ops.expand_dims(ops.cast(actions, "int32"), -1), axis=-1)
        return self.loss(ops.expand_dims(y, -1), q_sa)

    # -- acting and learning ------------------------------------------------
    def act(self, states, explore=True, masks=None):
        if not explore:
            acting = self.ema if self.ema is not None else self.steps
            if self.config.average_symmetries:
                q = self.symmetries.mean_q(np.asarray(states), lambda turned: acting.act(turned)[1])
                greedy = q.argmax(axis=1)
            else:
                greedy, q = acting.act(states)
            return (greedy if masks is None else masked_argmax(q, masks)), q
        n = len(states)
        u, actions = self._exploration_draws(n)
        if masks is not None:  # explore among the legal actions only
            actions = masked_argmax(self.rng.random(masks.shape), masks)
        # Nothing for the network to decide (most steps while epsilon is near 1); one env's test is a scalar's.
        if u[0] < self.epsilon if n == 1 else (u < self.epsilon).all():
            return actions, None
        greedy, q = self.steps.act(states)
        if masks is not None:
            greedy = masked_argmax(q, masks)
        if n == 1:  # its draw was not random (that returned above): np.where's result without its cost
            return greedy.astype(actions.dtype, copy=False), q
        return np.where(u < self.epsilon, actions, greedy), q

    def opponent_moves(self, outputs, masks, rng):
        """The legal move of the highest Q-value (greedy, as the final evaluation plays)."""
        return masked_argmax(np.asarray(outputs), masks)

    def position_values(self, states, masks):
        # The prior is a softmax of Q over the legal actions, the value the largest legal Q (greedy play's).
        from kerlym.puct import masked_softmax

        _, q = self.act(states, explore=False)
        q = np.asarray(q, dtype=np.float64)
        return masked_softmax(q, masks), np.where(masks, q, -np.inf).max(axis=1)

    def _exploration_draws(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` uniform numbers in [0, 1) and ``n`` random actions, taken from blocks drawn ahead."""
        if len(self._uniforms) < n:
            size = max(EXPLORATION_BLOCK, n)
            self._uniforms, self._random_actions = self.rng.random(size), self.rng.integers(self.num_actions, size=size)
        u, self._uniforms = self._uniforms[:n], self._uniforms[n:]
        actions, self._random_actions = self._random_actions[:n], self._random_actions[n:]
        return u, actions

    def begin_episode(self, frame, stream=0, mask=None):
        self.memory.start_episode(frame, stream, mask)

    def schedule_exploration(self, total_steps):
        if self._step_epsilon is not None:
            self.epsilon = self._step_epsilon(total_steps)

    def observe(self, stream, state, action, reward, terminated, truncated, frame, mask=None):
        self.memory.add(action, reward, terminated, frame, stream, mask)

    def after_step(self, steps_before):
        losses = []
        t = self.total_steps
        self.schedule_exploration(t)
        # Counting transitions held (not steps taken) makes a run resumed without
        # its replay memory refill it before training again.
        # A full memory also starts them: each episode's first frame takes a slot without a transition,
        # so a memory can fill up holding fewer than learning_starts transitions.
        # One update per multiple of update_freq crossed; with -c N a step can cross several.
        first, end = steps_before // self.update_freq + 1, t // self.update_freq + 1
        if first < end and (len(self.memory) >= self.learning_starts or self.memory.size == self.memory.capacity):
            for k in range(first, end):
                losses.extend(self.update(step=k * self.update_freq).tolist())
        if t // self.target_update_freq > steps_before // self.target_update_freq:
            self.steps.sync_target()
        return losses

    def sample_update(self):
        """The samples of one update as arrays of shape ``[steps, batch_size, ...]``."""
        steps = self.update_nsamp // self.batch_size
        n = steps * self.batch_size
        newest = min(self.update_freq, n) if self.replay == "newest" else 0
        batch = self.memory.sample(n, self.rng, newest=newest, n_step=self.n_step, discount=self.discount)
        if self.config.symmetries:
            batch = self.symmetries.apply(batch, self.rng.integers(len(self.symmetries), size=n))
        if steps == 1:  # one minibatch: its loss is a mean, so the order changes only float rounding
            return tuple(x[None] for x in batch.arrays())
        order = self.rng.permutation(n)  # spread the newest transitions over the minibatches
        return tuple(x[order].reshape(steps, self.batch_size, *x.shape[1:]) for x in batch.arrays())

    def update(self, step: int | None = None) -> np.ndarray:
        """One update: ``update_nsamp // batch_size`` gradient steps in one compiled call.

        ``step``: the env step the update belongs to, which times the weight average
        (default: ``total_steps``). Returns the loss of each gradient step.
        """
        losses = self.steps.update(self.sample_update())
        self.updates += 1
        if self.ema is not None:
            self.average_weights(step)
        return losses

    def average_weights(self, step: int | None = None) -> None:
        """Move the weight average (``ema_steps``) toward the online weights; ``step`` defaults to ``total_steps``."""
        self.ema.update(self.steps.get_weights(), self.total_steps if step is None else step)

    # -- the networks as Keras models -----------------------------------------
    @property
    def target_model(self):
        """The target network, its weights current (see :attr:`kerlym.agents.base.Agent.model`)."""
        self.steps.to_keras()
        return self._target_model

    @property
    def ema_model(self):
        """The network that holds the weight average (``None`` without ``ema_steps``)."""
        return None if self.ema is None else self.ema.model

    @property
    def greedy_model(self):
        """The network greedy actions come from: the weight average with ``ema_steps``, else the online network."""
        return self.model if self.ema is None else self.ema.model

    # -- checkpoint state -----------------------------------------------------
    def get_state(self, include_memory: bool = False):
        """Adds the target network, the weight average and, if asked, the replay memory to the base state."""
        meta, arrays = super().get_state()
        for i, v in enumerate(self.target_model.variables):
            arrays[f"target/{i}"] = np.asarray(v.numpy())
        if self.ema is not None:
            self.ema.get_state(meta, arrays)
        arrays["exploration/uniforms"], arrays["exploration/actions"] = self._uniforms, self._random_actions
        if include_memory:
            meta["memory"], memory = self.memory.state_dict()
            arrays.update({f"memory/{k}": v for k, v in memory.items()})
        if self.fused is not None:  # its envs, key and (with include_memory) replay buffer
            self.fused.get_state(arrays, include_memory)
        return meta, arrays

    def set_state(self, meta, arrays):
        super().set_state(meta, arrays)
        for i, v in enumerate(self.target_model.variables):
            v.assign(arrays[f"target/{i}"])
        if self.ema is not None:
            self.ema.set_state(meta, arrays, self.steps.get_weights())
        if "exploration/uniforms" in arrays:  # the draws not yet used; older checkpoints draw afresh
            self._uniforms, self._random_actions = arrays["exploration/uniforms"], arrays["exploration/actions"]
        if "memory" in meta:
            prefix = "memory/"
            memory = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            self.memory.load_state_dict(meta["memory"], memory)
        if self.fused is not None:
            self.fused.set_state(arrays)

    def start_from(self, weights):
        """Also the target network and the weight average (``ema_steps``) start at ``weights``."""
        super().start_from(weights)
        self.steps.sync_target()
        if self.ema is not None:
            self.ema.set_state({}, {}, self.steps.get_weights())

    def in_flight_state(self):
        """Nothing beyond the replay memory, which holds the episodes in progress (saved with ``save_memory``)."""
        return {}, {}

    def restore_in_flight(self, meta, arrays):
        # Only a restored memory has each env's episode so far; a new one starts them anew.
        return self.fused is None and len(self.memory) > 0 and bool((self.memory.last >= 0).all())

    def end_episode(self, stream=0):
        if self.epsilon_schedule is not None and self._step_epsilon is None:
            self.epsilon = float(self.epsilon_schedule(self.episode, self.epsilon))
        return {}, []


class D2QN(DQN):
    """Double DQN: the online network picks the next action, the target network values it."""

    name = "ddqn"

    def next_state_value(self, q_target_next, online_next, legal=None):
        best = ops.argmax(masked(online_next(), legal), axis=-1)
        return ops.take_along_axis(q_target_next, ops.expand_dims(best, -1), axis=-1)[:, 0]
