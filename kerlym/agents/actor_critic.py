"""What A2C and PPO share: the policy maths as pure functions, the model around a factory's net, and the acting.

The maths comes first, as small module-level functions checked against
hand-computed numbers in ``tests/test_actor_critic.py``:

* :func:`~kerlym.memory.gae` and :func:`~kerlym.memory.n_step_returns` (in
  :mod:`kerlym.memory`, beside the :class:`~kerlym.memory.RolloutBuffer` that
  uses them, and importable from here) turn a rollout ``[T, N]`` into
  advantages and value targets, bootstrapping from the value of the next
  state at a truncation and at the rollout's end, never at a termination;
* :func:`categorical_log_prob` / :func:`categorical_entropy` (discrete actions,
  a softmax over logits) and :func:`gaussian_log_prob` / :func:`gaussian_entropy`
  (``Box`` actions, a diagonal Gaussian with a state-independent log-std);
* :func:`clipped_surrogate`, PPO's policy loss;
* :class:`RunningMeanStd`, the running statistics of SB3's ``VecNormalize``.

The distribution functions and the losses are written in ``keras.ops``, so
they run inside every backend's compiled step and on NumPy arrays alike.

Then :func:`actor_critic_model`, which puts the layers of :mod:`kerlym.layers`
around a factory's two-headed net, and :class:`ActorCriticAgent`, the one class
between :class:`~kerlym.agents.base.Agent` and the learners (:class:`~kerlym.agents.a2c.A2C`,
:class:`~kerlym.agents.ppo.PPO`): it acts, fills a :class:`~kerlym.memory.RolloutBuffer`
with ``n_steps`` steps of each of the ``concurrency`` envs, and hands the
finished :class:`~kerlym.memory.Rollout` to the learner's ``update``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from kerlym.agents.base import Agent
from kerlym.layers import LogStd, ObservationNormalization
from kerlym.memory import Rollout, RolloutBuffer, gae, n_step_returns  # noqa: F401 (gae, n_step_returns: importable here)

LOG_2PI = math.log(2.0 * math.pi)


# -- policy distributions (keras.ops) -----------------------------------------
def categorical_log_prob(logits, actions):
    """``log softmax(logits)[a]`` per row; ``logits [B, A]``, integer ``actions [B]``."""
    log_probs = ops.log_softmax(logits, axis=-1)
    taken = ops.one_hot(ops.cast(actions, "int32"), logits.shape[-1], dtype=log_probs.dtype)
    return ops.sum(log_probs * taken, axis=-1)


def categorical_entropy(logits):
    """``-sum_a p_a log p_a`` per row of ``logits [B, A]``."""
    log_probs = ops.log_softmax(logits, axis=-1)
    return -ops.sum(ops.exp(log_probs) * log_probs, axis=-1)


def gaussian_log_prob(mean, log_std, actions):
    """Log-density of ``actions [B, D]`` under a diagonal Gaussian, summed over the ``D`` dimensions."""
    z = ops.multiply(ops.subtract(actions, mean), ops.exp(ops.negative(log_std)))  # ops: NumPy or tensors
    return ops.sum(-0.5 * z * z - log_std - 0.5 * LOG_2PI, axis=-1)


def gaussian_entropy(log_std):
    """Entropy of a diagonal Gaussian, ``sum_d (log_std_d + 0.5 * log(2 pi e))``, over the last axis."""
    return ops.sum(log_std + 0.5 * (LOG_2PI + 1.0), axis=-1)


def masked_logits(logits, legal):
    """``logits`` with illegal actions pushed to -1e9, so softmax gives them no weight (``legal`` None: unchanged)."""
    if legal is None:
        return logits
    return ops.where(ops.cast(legal, "bool"), logits, ops.cast(-1e9, logits.dtype))


def clipped_surrogate(log_prob, old_log_prob, advantages, clip_range):
    """PPO's clipped policy loss (to minimise), ``-mean(min(rho A, clip(rho, 1 - eps, 1 + eps) A))``.

    ``rho = exp(log_prob - old_log_prob)`` is the probability ratio of the
    taken actions under the new and the rollout's policy.
    """
    ratio = ops.exp(log_prob - old_log_prob)
    clipped = ops.clip(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return -ops.mean(ops.minimum(ratio * advantages, clipped * advantages))


def normalise_advantages(advantages):
    """Zero mean and unit deviation over the minibatch (``1e-8`` guards a constant batch), as SB3 does."""
    advantages = ops.convert_to_tensor(advantages)
    return (advantages - ops.mean(advantages)) / (ops.std(advantages) + 1e-8)


def linear_schedule(initial: float, progress: float) -> float:
    """The RL Zoo's ``lin_`` schedule: ``initial`` at the start, falling linearly to 0 at ``progress`` 1."""
    return initial * max(0.0, 1.0 - progress)


# -- running statistics ---------------------------------------------------------
class RunningMeanStd:
    """Running mean and variance of a stream of batches (Chan et al.'s parallel update), as SB3's.

    Args:
        shape: the shape of one sample.
        epsilon: the initial count, which keeps the first batch from dividing by zero.
    """

    def __init__(self, shape=(), epsilon: float = 1e-4):
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)

    def update(self, batch) -> None:
        """Fold a batch ``[B, *shape]`` into the statistics."""
        batch = np.asarray(batch, dtype=np.float64)
        b_mean, b_var, b_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    def state(self, prefix: str) -> tuple[dict, dict]:
        """``(meta, arrays)`` for a checkpoint, keys starting with ``prefix``."""
        return {f"{prefix}/count": self.count}, {f"{prefix}/mean": self.mean, f"{prefix}/var": self.var}

    def restore(self, prefix: str, meta: dict, arrays: dict) -> None:
        self.count = float(meta[f"{prefix}/count"])
        self.mean = np.array(arrays[f"{prefix}/mean"], dtype=np.float64)
        self.var = np.array(arrays[f"{prefix}/var"], dtype=np.float64)


# -- the model ------------------------------------------------------------------
def actor_critic_model(
    net, name: str, continuous: bool, num_actions: int, normalize_obs: bool, log_std_init: float = 0.0
):
    """The agent's model around a factory's two-output ``net``: one float32 output ``[policy, (log_std,) value]``.

    One output keeps the compiled steps those of any single-output model;
    :meth:`ActorCriticAgent.split` takes it apart again. The optimizer is the
    one the factory compiled; a Gaussian's log-std starts at ``log_std_init``. ``net`` is refused,
    naming ``name``, unless it has a policy head of ``num_actions`` and a value head of 1.
    """
    shapes = [tuple(s) for s in net.output_shape] if isinstance(net.output_shape, list) else None
    if shapes is None or len(shapes) != 2 or shapes[0] != (None, num_actions) or shapes[1] != (None, 1):
        raise ValueError(
            f"{name} outputs {net.output_shape}; an actor-critic network needs two outputs, the policy "
            f"(None, {num_actions}) and the value (None, 1), e.g. actor_critic_mlp or actor_critic_cnn"
        )
    x = keras.Input(shape=net.input_shape[1:], name="state")
    h = ObservationNormalization(name="obs_norm")(x) if normalize_obs else x
    policy, value = net(h)
    parts = [policy, LogStd(log_std_init, dtype="float32", name="log_std")(policy)] if continuous else [policy]
    out = keras.layers.Concatenate(dtype="float32", name="policy_value")([*parts, value])
    model = keras.Model(x, out, name=f"{net.name}_agent")
    model.compile(optimizer=net.optimizer)
    return model


# -- the agent A2C and PPO share --------------------------------------------------
class ActorCriticAgent(Agent):
    """Collects ``n_steps`` steps from each env copy in a :class:`~kerlym.memory.RolloutBuffer`, then :meth:`update`.

    Discrete actions are drawn from a softmax over the policy's logits, ``Box``
    actions from a diagonal Gaussian around its means with a learned log-std;
    those are clipped to the action space's bounds when sent to the env, while
    the rollout keeps the unclipped sample for its log-probability. Random
    numbers come from NumPy and enter the compiled act as arrays. Subclasses
    write ``loss_fn`` and :meth:`update`, which returns the update's loss rows.
    """

    continuous_actions = True
    default_network = "actor_critic_mlp"

    def __init__(self, env, config=None, *, enable_plots: bool = False, **kwargs):
        super().__init__(env, config, enable_plots=enable_plots, **kwargs)
        from kerlym.backend import build_steps

        c = self.config
        self.discount = float(c.discount)
        self.n_steps = int(c.n_steps)
        n = self.concurrency
        if self.continuous:
            space = self.env.action_space
            self.low, self.high = space.low.reshape(-1), space.high.reshape(-1)
        self.obs_rms = RunningMeanStd((self.input_dim,)) if c.normalize_obs else None
        self.symmetries = None  # with average_symmetries: the env's, for greedy actions
        if c.average_symmetries:
            if self.continuous:
                raise ValueError("average_symmetries=True needs discrete actions")
            from kerlym.symmetries import Symmetries

            self.symmetries = Symmetries(self.env, self.frame_shape, self.nframes, "average_symmetries")
        self.ret_rms = RunningMeanStd(()) if c.normalize_reward else None
        self.running_returns = np.zeros(n)
        self.step_limit = None
        self.steps = build_steps(self.model, self.loss_fn, act_fn=self.act_fn)
        action_shape = (self.num_actions,) if self.continuous else ()
        self.buffer = RolloutBuffer(
            self.n_steps,
            n,
            self.frame_shape,
            self.frame_dtype,
            self.nframes,
            self.difference_obs,
            action_shape,
            np.float32 if self.continuous else np.int32,
        )
        self.last_act = None  # (sampled actions, their log-probabilities, values) of the last exploring act
        self.last_masks = None  # the legal actions at the last act, with action masks
        self.stats: dict = {}  # the last update's mean metrics, for each episode row until the next

    # -- the model ---------------------------------------------------------------
    def check_outputs(self, model, name):
        pass  # actor_critic_model checks the two heads

    def build_model(self):
        net = super().build_model()
        name = getattr(self.modelfactory, "__name__", repr(self.modelfactory))
        config = self.config
        return actor_critic_model(
            net, name, self.continuous, self.num_actions, config.normalize_obs, config.log_std_init
        )

    def split(self, outputs):
        """The model's one output as ``(policy, log_std or None, value [B])``."""
        a = self.num_actions
        log_std = outputs[:, a : 2 * a] if self.continuous else None
        return outputs[:, :a], log_std, outputs[:, -1]

    def policy_terms(self, outputs, actions, legal=None):
        """Log-probabilities of ``actions``, the policy's entropy and the value, per row.

        ``legal`` (0/1 per action, with action masks) restricts a discrete policy to the legal actions.
        """
        policy, log_std, value = self.split(outputs)
        policy = masked_logits(policy, legal)
        if self.continuous:
            return gaussian_log_prob(policy, log_std, actions), gaussian_entropy(log_std), value
        return categorical_log_prob(policy, actions), categorical_entropy(policy), value

    def act_fn(self, outputs, noise, legal=None):
        """Inside the compiled act: the sampled action, the greedy one, its log-probability, the value ``[N, 1]``."""
        policy, log_std, value = self.split(outputs)
        policy = masked_logits(policy, legal)
        if self.continuous:
            sampled = policy + ops.exp(log_std) * noise
            log_prob = gaussian_log_prob(policy, log_std, sampled)
            greedy = policy
        else:  # Gumbel-max: argmax(logits + Gumbel noise) is a sample of softmax(logits)
            gumbel = -ops.log(-ops.log(ops.clip(noise, 1e-12, 1.0 - 1e-7)))
            sampled = ops.argmax(policy + gumbel, axis=-1)
            log_prob = categorical_log_prob(policy, sampled)
            greedy = ops.argmax(policy, axis=-1)
        return sampled, greedy, log_prob, ops.expand_dims(value, -1)

    def _noise(self, n: int, explore: bool) -> np.ndarray:
        shape = (n, self.num_actions)
        if not explore:  # greedy acting draws no random numbers
            return np.full(shape, 0.5, dtype=np.float32)
        if self.continuous:
            return self.rng.standard_normal(shape, dtype=np.float32)
        return self.rng.random(shape, dtype=np.float32)

    def values_of(self, states) -> np.ndarray:
        """``V(s)`` for a batch of states, ``[B]``."""
        return self.steps.act(states, self._noise(len(states), False))[3][:, 0].astype(np.float64)

    def act(self, states, explore=True, masks=None):
        if not explore and self.config.average_symmetries:
            return self.symmetric_greedy(np.asarray(states), masks)
        inputs = (states, self._noise(len(states), explore))
        if masks is not None and not self.continuous:
            inputs = (*inputs, masks.astype(np.float32))
        sampled, greedy, log_prob, value = self.steps.act(*inputs)
        self.last_masks = masks
        actions = sampled if explore else greedy
        if explore:
            self.last_act = (sampled, log_prob, value[:, 0])
            if self.obs_rms is not None:
                self.obs_rms.update(states)
        if self.continuous:
            actions = np.clip(actions, self.low, self.high)
        return actions, value

    def opponent_moves(self, outputs, masks, rng):
        """A sample of the policy over the legal moves (Gumbel-max, as :meth:`act_fn`)."""
        logits = np.where(masks, self.split(np.asarray(outputs, dtype=np.float64))[0], -np.inf)
        return np.argmax(logits - np.log(-np.log(rng.random(logits.shape))), axis=-1)

    def position_values(self, states, masks):
        """The policy over the legal moves and the value; with ``average_symmetries``, both averaged over the
        env's symmetries (:meth:`symmetric_policy`), as DQN's search averages Q."""
        from kerlym.puct import masked_softmax

        if self.symmetries is not None:
            probs, value = self.symmetric_policy(np.asarray(states), masks)
            return probs.astype(np.float64), value.astype(np.float64)
        logits, _, value = self.split(self.steps.outputs(np.asarray(states)))
        return masked_softmax(logits, masks), np.asarray(value, dtype=np.float64).reshape(len(states))

    def symmetric_policy(self, states, masks=None):
        """The policy ``[N, actions]`` and value ``[N]`` of ``states``, averaged over the env's symmetries.

        The network scores every state under every symmetry (one call); each policy's logits are mapped
        back to the actions of the state as played, softmaxed over its legal actions and averaged.
        """
        outputs = self.steps.outputs(self.symmetries.turn(states))
        logits, _, value = self.split(outputs)
        logits = self.symmetries.back(logits)  # [N, symmetries, actions]
        legal = None if masks is None else np.asarray(masks)[:, None]
        probs = ops.convert_to_numpy(ops.softmax(masked_logits(logits, legal), axis=-1))
        return probs.mean(axis=1), np.asarray(value).reshape(len(states), -1).mean(axis=1)

    def symmetric_greedy(self, states, masks=None):
        """Greedy actions from :meth:`symmetric_policy`, and the mean value ``[N, 1]``."""
        probs, value = self.symmetric_policy(states, masks)
        return probs.argmax(axis=1), value[:, None]

    def behaviour(self):
        """The sampled (unclipped) actions, their log-probabilities and values, and the legal actions acted on."""
        return (*self.last_act, self.last_masks)

    def adopt(self, states, behaviour):
        """An actor's act on ``states``; the observation statistics learn from its states as from this agent's."""
        self.last_act, self.last_masks = tuple(behaviour[:3]), behaviour[3]
        if self.obs_rms is not None:
            self.obs_rms.update(states)

    # -- the rollout -------------------------------------------------------------
    def begin_run(self, step_limit):
        if step_limit is None and "linear" in (self.config.lr_schedule, getattr(self.config, "clip_schedule", "")):
            raise ValueError("a linear schedule falls to 0 at the step limit, so it needs one (--steps)")
        self.step_limit = step_limit

    def progress(self) -> float:
        """How far training is towards the step limit, for the linear schedules."""
        return self.total_steps / self.step_limit if self.step_limit else 0.0

    def begin_episode(self, frame, stream=0, mask=None):
        self.buffer.start_episode(frame, stream)

    def observe(self, stream, state, action, reward, terminated, truncated, frame, mask=None):
        sampled, log_prob, value = self.last_act  # what the policy did; ``action`` is that clipped to the bounds
        legal = self.last_masks[stream] if self.last_masks is not None and not self.continuous else None
        self.buffer.add(
            stream, state, sampled[stream], log_prob[stream], value[stream], reward, terminated, truncated, frame, legal
        )

    def after_step(self, steps_before):
        b, t = self.buffer, self.buffer.t
        if self.ret_rms is not None:  # VecNormalize's reward scaling, by the deviation of the discounted return
            rewards = b.rewards[t]
            self.running_returns = self.running_returns * self.discount + rewards
            self.ret_rms.update(self.running_returns)
            b.rewards[t] = np.clip(rewards / np.sqrt(self.ret_rms.var + 1e-8), -10.0, 10.0)
            self.running_returns[b.terminated[t] | b.truncated[t]] = 0.0
        return self.finish_rollout() if b.advance() else []

    def finish_rollout(self) -> list[float]:
        """Bootstrap, compute advantages, update, and start the next rollout; returns the update's losses."""
        states = self.buffer.bootstrap_states()
        # Padded to a multiple of N rows, so the compiled act sees few batch sizes (each new one compiles anew).
        rows = -(-len(states) // self.concurrency) * self.concurrency
        padded = np.concatenate([states, np.repeat(states[-1:], rows - len(states), axis=0)])
        bootstrap = self.values_of(padded)[: len(states)]
        rollout = self.buffer.finish(bootstrap, self.discount, self.config.gae_lambda)
        if self.config.lr_schedule == "linear":
            self.set_learning_rate(linear_schedule(self.config.learning_rate, self.progress()))
        losses = np.atleast_2d(self.update(rollout))  # [minibatches, 1 + metrics]: the loss, then metric_names
        self.updates += 1
        self.stats = {name: float(np.mean(losses[:, i + 1])) for i, name in enumerate(self.metric_names)}
        if self.obs_rms is not None:  # the next rollout, and its update, normalise with these statistics
            self.steps.to_keras()
            layer = self.model.get_layer("obs_norm")
            layer.mean.assign(self.obs_rms.mean.astype(np.float32))
            layer.var.assign(self.obs_rms.var.astype(np.float32))
        self.buffer.reset()
        return losses[:, 0].tolist()

    metric_names = ("policy_loss", "value_loss", "entropy")

    def set_learning_rate(self, value: float) -> None:
        self.steps.to_keras()  # the optimizer's learning rate is one of its variables
        self.model.optimizer.learning_rate.assign(value)

    def update(self, rollout: Rollout) -> np.ndarray:
        """Learn from a rollout; returns the loss rows of :meth:`kerlym.backend.Steps.update`."""
        raise NotImplementedError

    def end_episode(self, stream=0):
        return dict(self.stats), []  # the rollout's update, not the episode's end, trains

    # -- checkpoints ---------------------------------------------------------------
    def get_state(self):
        self.steps.to_keras()
        meta, arrays = super().get_state()
        meta["running_returns"] = self.running_returns.tolist()
        meta["stats"] = dict(self.stats)  # the last update's metrics, in each row until the next update
        for prefix, rms in (("obs_rms", self.obs_rms), ("ret_rms", self.ret_rms)):
            if rms is not None:
                m, a = rms.state(prefix)
                meta.update(m)
                arrays.update(a)
        return meta, arrays

    def set_state(self, meta, arrays):
        self.steps.to_keras()
        super().set_state(meta, arrays)
        self.running_returns = np.asarray(meta.get("running_returns", self.running_returns), dtype=np.float64)
        self.stats = dict(meta.get("stats", self.stats))
        for prefix, rms in (("obs_rms", self.obs_rms), ("ret_rms", self.ret_rms)):
            if rms is not None:
                rms.restore(prefix, meta, arrays)

    def in_flight_state(self):
        """The rollout so far and each env's frame history (:meth:`kerlym.memory.RolloutBuffer.state_dict`)."""
        return self.buffer.state_dict()

    def restore_in_flight(self, meta, arrays):
        self.buffer.load_state_dict(meta, arrays)
        return True
