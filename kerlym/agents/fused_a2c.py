"""The fused JAX path for A2C: fused PPO's rollout and GAE, then one gradient step on the whole rollout.

On Keras's JAX backend with a gymnax env (``-e gymnax:CartPole-v1 -a a2c``) each update is the
rollout of :class:`kerlym.agents.fused.FusedPPO` (``n_steps`` of each of the ``-c`` envs, in
``jax.lax.scan``), its advantages by :func:`kerlym.agents.fused.gae_scan` (n-step returns at
``gae_lambda`` 1), and one gradient step on all of it with A2C's own loss
(:meth:`kerlym.agents.a2c.A2C.loss_fn`), as the Gymnasium A2C's update is.
"""

from __future__ import annotations

import jax.numpy as jnp

from kerlym.agents.fused import FusedPPO, _linear, gae_scan
from kerlym.backend.jax import gradient_step


class FusedA2C(FusedPPO):
    """An A2C agent's training on its gymnax env, in compiled chunks of updates; built by the agent.

    Args:
        agent: a :class:`kerlym.agents.a2c.A2C` on a :class:`kerlym.envs.gymnax_envs` env, Keras on JAX.

    Raises:
        ValueError: a setting the fused path does not have (one line).
    """

    def update(self, tv, ntv, ov, carry, key, progress):
        """One A2C update: a rollout, its advantages and returns, one gradient step. Returns its outputs."""
        c = self.agent.config
        carry, (obs, actions, _, values, rewards, term, trunc, final, done, ep_ret, ep_len, ep_val) = self.rollout(
            tv, ntv, carry, key
        )
        t, n = rewards.shape
        flat = lambda x: x.reshape(t * n, *x.shape[2:])  # noqa: E731
        # The value of each observation that followed: the next state's, or at an episode's end its final one.
        _, _, _, next_values = self.policy(tv, ntv, flat(final), jnp.full((t * n, self.agent.num_actions), 0.5))
        advantages = gae_scan(rewards, values, next_values.reshape(t, n), term, trunc, c.discount, c.gae_lambda)
        batch = (flat(obs), flat(actions), flat(advantages), flat(advantages + values))
        if c.lr_schedule == "linear":  # the rate falls to 0 at the step limit; otherwise the factory's stays
            ov = list(ov)
            ov[self.lr_index] = jnp.asarray(_linear(c.learning_rate, progress, True), dtype=ov[self.lr_index].dtype)
        loss_fn = self.agent.loss_fn
        (tv, ntv, ov), row = gradient_step(
            self.model, self.optimizer, lambda online: loss_fn(online, batch), (tv, ntv, ov)
        )
        return tv, ntv, ov, carry, (done, ep_ret, ep_len, ep_val, row[None])
