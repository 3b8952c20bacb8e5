"""Policy gradient (REINFORCE) with a Keras policy network, after Karpathy's Pong gist.

Each episode the agent keeps its states, actions and rewards. At the end it
computes discounted returns, standardises them into advantages and takes one
gradient step on the whole episode with the loss the factory compiled
(categorical cross-entropy for the built-in policy networks), weighted per
sample by the advantage: ``-A * log pi(a|s)``.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from kerlym.agents.base import Agent
from kerlym.backend import build_steps, compiled_loss
from kerlym.config import PGConfig


def discounted_returns(rewards, discount: float, reset_on_score: bool = False) -> np.ndarray:
    """``G_t = r_t + discount * G_{t+1}``; with ``reset_on_score`` the sum restarts at every non-zero reward.

    The reset is Pong's rule: each point scored ends a rally, so rewards of
    later rallies say nothing about the actions of earlier ones.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    out = np.zeros_like(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        if reset_on_score and rewards[t] != 0:
            running = 0.0
        running = rewards[t] + discount * running
        out[t] = running
    return out


def standardise(x) -> np.ndarray:
    """Zero mean, unit standard deviation (left centred if the deviation is zero)."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    std = x.std()
    return x / std if std > 1e-8 else x


def inverse_cdf_sample(probs, u):
    """One action per row of ``probs``, drawn by inverse-CDF sampling with the uniform numbers ``u`` in [0, 1).

    Row ``i`` gets the first action whose cumulative probability exceeds
    ``u[i]`` times the row's total (in ``keras.ops``, so it runs inside the
    compiled act; the randomness comes from NumPy through ``u``).
    """
    cdf = ops.cumsum(probs, axis=-1)
    threshold = ops.expand_dims(ops.cast(u, cdf.dtype), -1) * cdf[:, -1:]
    return ops.minimum(ops.sum(ops.cast(cdf <= threshold, "int32"), axis=-1), probs.shape[-1] - 1)


def greedy_and_sampled(probs, u, legal=None):
    """The compiled act's outputs: the most probable action, a sampled one (:func:`inverse_cdf_sample`), ``probs``.

    ``legal`` (0/1 per action, when the env gives action masks) zeroes the illegal actions' probabilities
    before both choices; sampling renormalises over the rest.
    """
    if legal is not None:
        probs = ops.multiply(probs, ops.cast(legal, "float32"))
    return ops.argmax(probs, axis=-1), inverse_cdf_sample(probs, u), probs


def renormalised(probs, legal):
    """The policy restricted to the legal actions: ``probs * legal / sum(probs * legal)``."""
    probs = ops.multiply(probs, ops.cast(legal, "float32"))
    return probs / ops.maximum(ops.sum(probs, axis=-1, keepdims=True), 1e-12)


def _padded_length(n: int) -> int:
    """Pad episodes to a few fixed sizes so the compiled update is not retraced for every length."""
    return max(64, 1 << (n - 1).bit_length())


class PG(Agent):
    """REINFORCE with a softmax policy network.

    Args:
        env: a Gymnasium env, env id, or zero-argument callable returning one.
        config: a :class:`kerlym.config.PGConfig` (``discount``, ``reset_on_score``, and the
            settings every agent shares); keyword arguments override its fields.
        enable_plots: draw the live plot while :meth:`learn` runs.
        **kwargs: :class:`~kerlym.config.PGConfig` fields, then parameters the model factory names.
    """

    name = "pg"
    value_estimates = False  # a policy only: no value of the state to plot
    Config = PGConfig
    default_network = "karpathy_simple_pgnet"

    def __init__(self, env, config: PGConfig | None = None, *, enable_plots: bool = False, **kwargs):
        super().__init__(env, config, enable_plots=enable_plots, **kwargs)
        self.discount = float(self.config.discount)
        reset_on_score = self.config.reset_on_score
        if reset_on_score is None:  # Pong's rule, on for Pong only
            env_id = self.env.spec.id if self.env.spec is not None else ""
            reset_on_score = "pong" in env_id.lower()
        self.reset_on_score = bool(reset_on_score)
        self.loss = compiled_loss(self.model, getattr(self.modelfactory, "__name__", "modelfactory"))
        self.steps = build_steps(self.model, self.pg_loss, act_fn=greedy_and_sampled)
        # Per env: the states, actions and rewards of its episode so far.
        self._episodes: list[tuple[list, list, list]] = [([], [], []) for _ in range(self.concurrency)]
        self._masks: list[list] = [[] for _ in range(self.concurrency)]  # legal actions per state, with masks
        self._act_masks = None  # the masks of the last act

    def pg_loss(self, online, batch, prepared=None):
        """The factory's loss between the taken actions and the policy, weighted by advantage.

        With action masks (a fourth batch element) the policy is renormalised over the legal actions.
        """
        states, actions, advantages, *legal = batch
        probs = online(states, training=True)
        if legal:
            probs = renormalised(probs, legal[0])
        taken = ops.one_hot(ops.cast(actions, "int32"), self.num_actions)
        return self.loss(taken, probs, sample_weight=advantages)

    def act(self, states, explore=True, masks=None):
        # Greedy acting draws no random numbers (its uniform numbers are unused zeros).
        u = self.rng.random(len(states)) if explore else np.zeros(len(states))
        inputs = (states, u) if masks is None else (states, u, masks.astype(np.float32))
        greedy, sampled, probs = self.steps.act(*inputs)
        self._act_masks = masks
        return (sampled if explore else greedy), probs

    def behaviour(self):
        return (self._act_masks,)  # the legal actions acted on

    def adopt(self, states, behaviour):
        (self._act_masks,) = behaviour

    def observe(self, stream, state, action, reward, terminated, truncated, frame, mask=None):
        states, actions, rewards = self._episodes[stream]
        states.append(state)
        actions.append(action)
        rewards.append(float(reward))
        if self._act_masks is not None:  # the legal actions of the state acted on
            self._masks[stream].append(self._act_masks[stream])

    def begin_episode(self, frame, stream=0, mask=None):
        self._episodes[stream] = ([], [], [])
        self._masks[stream] = []

    def episode_batch(self, stream=0):
        """A finished episode as padded ``(states, actions, advantages[, legal])`` with one minibatch axis."""
        states_list, actions_list, rewards = self._episodes[stream]
        n = len(actions_list)
        adv = standardise(discounted_returns(rewards, self.discount, self.reset_on_score))
        size = _padded_length(n)
        states = np.zeros((size, self.input_dim), dtype=self.state_dtype)
        states[:n] = np.asarray(states_list[:n])
        actions = np.zeros(size, dtype=np.int32)
        actions[:n] = actions_list
        # Padding has zero weight; rescale so the mean is over the real steps only.
        weights = np.zeros(size, dtype=np.float32)
        weights[:n] = adv * (size / n)
        masks = self._masks[stream]
        if not masks:
            return states[None], actions[None], weights[None]
        legal = np.ones((size, self.num_actions), dtype=np.float32)  # padding: every action "legal"
        legal[:n] = np.asarray(masks[:n], dtype=np.float32)
        return states[None], actions[None], weights[None], legal[None]

    def update(self, stream=0) -> np.ndarray:
        """One gradient step on env ``stream``'s finished episode (:meth:`episode_batch`); returns its loss."""
        losses = self.steps.update(self.episode_batch(stream))
        self.updates += 1
        return losses

    def end_episode(self, stream=0):
        return {}, (self.update(stream).tolist() if self._episodes[stream][1] else [])
