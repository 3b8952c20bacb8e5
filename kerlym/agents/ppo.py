"""Proximal policy optimisation (PPO, Schulman et al. 2017) with the clipped surrogate objective.

Each rollout (``n_steps`` from each of the ``concurrency`` env copies) gets
GAE(lambda) advantages; then ``n_epochs`` passes over it in shuffled
minibatches of ``batch_size``, all in one compiled update call: the
minibatches of every epoch are drawn here in NumPy and stacked on a leading
axis. Each minibatch minimises, as SB3's PPO does::

    clipped_surrogate(log pi(a|s), log pi_old(a|s), A, clip_range)
        - ent_coef * mean(entropy) + vf_coef * mean((R - V(s))^2)

with the advantages standardised per minibatch, the value optionally kept
within ``clip_range_vf`` of the rollout's, and the gradient's global norm
clipped to ``clipnorm``. The learning rate and clip range may fall linearly
to 0 over the run (``lr_schedule``, ``clip_schedule``: the RL Zoo's ``lin_``).
A rollout of ``n_steps * concurrency`` samples that ``batch_size`` does not
divide leaves a different few samples out of each epoch.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from kerlym.agents.actor_critic import (
    ActorCriticAgent,
    Rollout,
    clipped_surrogate,
    linear_schedule,
    normalise_advantages,
)
from kerlym.config import PPOConfig


class PPO(ActorCriticAgent):
    """PPO with a categorical (discrete) or diagonal Gaussian (``Box``) policy.

    Args:
        env: a Gymnasium env, env id, or zero-argument callable returning one.
        config: a :class:`kerlym.config.PPOConfig`; keyword arguments override its fields.
        enable_plots: draw the live plot while :meth:`learn` runs.
        **kwargs: :class:`~kerlym.config.PPOConfig` fields, then parameters the model factory names.
    """

    name = "ppo"
    Config = PPOConfig
    metric_names = ("policy_loss", "value_loss", "entropy", "clip_fraction", "approx_kl")

    def __init__(self, env, config=None, *, enable_plots: bool = False, **kwargs):
        super().__init__(env, config, enable_plots=enable_plots, **kwargs)
        if getattr(self.env.unwrapped, "gymnax_env", None) is not None:  # a JAX-native env: the fused path
            from kerlym.agents.fused import FusedPPO

            self.fused = FusedPPO(self)

    def loss_fn(self, online, batch, prepared=None):
        """The PPO loss of one minibatch, then its policy loss, value loss, entropy, clip fraction and KL estimate."""
        states, actions, old_log_prob, old_value, advantages, returns, clip_range, *legal = batch
        c = self.config
        log_prob, entropy, value = self.policy_terms(online(states, training=True), actions, *legal)
        if c.normalize_advantage:
            advantages = normalise_advantages(advantages)
        policy_loss = clipped_surrogate(log_prob, old_log_prob, advantages, clip_range)
        if c.clip_range_vf is not None:
            value = old_value + ops.clip(value - old_value, -c.clip_range_vf, c.clip_range_vf)
        value_loss = ops.mean(ops.square(returns - value))
        entropy = ops.mean(entropy)
        loss = policy_loss - c.ent_coef * entropy + c.vf_coef * value_loss
        log_ratio = log_prob - old_log_prob
        clip_fraction = ops.mean(ops.cast(ops.abs(ops.exp(log_ratio) - 1.0) > clip_range, "float32"))
        approx_kl = ops.mean(ops.exp(log_ratio) - 1.0 - log_ratio)  # SB3's low-variance estimator
        return loss, policy_loss, value_loss, entropy, clip_fraction, approx_kl

    def minibatch_indices(self, size: int) -> np.ndarray:
        """``[n_epochs * (size // batch_size), batch_size]`` indices: each epoch a fresh permutation of the rollout."""
        b = self.config.batch_size
        per_epoch = size // b
        perms = [self.rng.permutation(size)[: per_epoch * b] for _ in range(self.config.n_epochs)]
        return np.concatenate(perms).reshape(-1, b)

    def update(self, rollout: Rollout):
        """``n_epochs`` passes of minibatches over the rollout, in one compiled call; returns a row per minibatch.

        Each row is the minibatch's loss, then :meth:`loss_fn`'s metrics (``metric_names``).
        """
        clip_range = self.config.clip_range
        if self.config.clip_schedule == "linear":
            clip_range = linear_schedule(clip_range, self.progress())
        idx = self.minibatch_indices(len(rollout.advantages))
        r = rollout
        batches = tuple(x[idx] for x in (r.states, r.actions, r.log_probs, r.values, r.advantages, r.returns))
        legal = () if r.legal is None else (r.legal[idx],)
        return self.steps.update((*batches, np.full(len(idx), clip_range, dtype=np.float32), *legal))
