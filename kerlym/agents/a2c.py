"""Synchronous advantage actor-critic (A2C), and ``A3C``, the original KeRLym's name for it (the same class).

Each of the ``concurrency`` env copies steps ``n_steps`` times; the rollout's
advantages are n-step returns minus the value (or GAE(lambda) with
``gae_lambda`` below 1), bootstrapped from the value of the next state at a
truncation and at the rollout's end, never at a termination. One gradient step
on the whole rollout then minimises, as SB3's A2C does::

    -mean(A * log pi(a|s)) - ent_coef * mean(entropy) + vf_coef * mean((R - V(s))^2)

with the gradient's global norm clipped to ``clipnorm`` (SB3's max_grad_norm)
by the optimizer the network factory compiled (RMSprop with SB3's decay and
epsilon when the factory is given ``optimizer="rmsprop"``, which A2C asks for
unless ``--optimizer`` says otherwise).
"""

from __future__ import annotations

from keras import ops

from kerlym.agents.actor_critic import ActorCriticAgent, Rollout, normalise_advantages
from kerlym.config import A2CConfig


class A2C(ActorCriticAgent):
    """Synchronous advantage actor-critic over the ``concurrency`` env copies.

    Args:
        env: a Gymnasium env, env id, or zero-argument callable returning one (discrete or ``Box`` actions).
        config: a :class:`kerlym.config.A2CConfig`; keyword arguments override its fields.
        enable_plots: draw the live plot while :meth:`learn` runs.
        **kwargs: :class:`~kerlym.config.A2CConfig` fields, then parameters the model factory names.
    """

    name = "a2c"
    Config = A2CConfig

    def __init__(self, env, config=None, *, enable_plots: bool = False, **kwargs):
        super().__init__(env, config, enable_plots=enable_plots, **kwargs)
        if getattr(self.env.unwrapped, "gymnax_env", None) is not None:  # a JAX-native env: the fused path
            from kerlym.agents.fused_a2c import FusedA2C

            self.fused = FusedA2C(self)

    @staticmethod
    def _compile_settings(config):
        settings = ActorCriticAgent._compile_settings(config)
        settings.setdefault("optimizer", "rmsprop")  # SB3's A2C optimizer
        return settings

    def loss_fn(self, online, batch, prepared=None):
        """The A2C loss of one batch, then its policy loss, value loss and entropy."""
        states, actions, advantages, returns, *legal = batch
        log_prob, entropy, value = self.policy_terms(online(states, training=True), actions, *legal)
        if self.config.normalize_advantage:
            advantages = normalise_advantages(advantages)
        policy_loss = -ops.mean(advantages * log_prob)
        value_loss = ops.mean(ops.square(returns - value))
        entropy = ops.mean(entropy)
        loss = policy_loss - self.config.ent_coef * entropy + self.config.vf_coef * value_loss
        return loss, policy_loss, value_loss, entropy

    def update(self, rollout: Rollout):
        """One gradient step on the whole rollout; returns its row ``[1, 4]``: the loss, then the metrics."""
        batch = (rollout.states, rollout.actions, rollout.advantages, rollout.returns)
        if rollout.legal is not None:
            batch = (*batch, rollout.legal)
        return self.steps.update(tuple(x[None] for x in batch))  # one minibatch: the whole rollout


# The original KeRLym's ``-a a3c``: the same synchronous learner, under the original's name. The original ran
# asynchronous actor-learner threads (A3C, Mnih et al. 2016); kerlym runs A2C, the synchronous form, whose ``-c N``
# env copies step in parallel with their actions from one batched call, which learns as well and uses the hardware
# better. The asynchrony comes back with actors (``--actors process``, ``--ray``).
A3C = A2C
