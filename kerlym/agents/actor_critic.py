"""What A2C and PPO share: the rollout maths as pure functions, the policy distributions, and the rollout agent.

The maths comes first, as small module-level functions checked against
hand-computed numbers in ``tests/test_actor_critic.py``:

* :func:`gae` and :func:`n_step_returns` turn a rollout ``[T, N]`` into
  advantages and value targets, bootstrapping from the value of the next
  state at a truncation and at the rollout's end, never at a termination;
* :func:`categorical_log_prob` / :func:`categorical_entropy` (discrete actions,
  a softmax over logits) and :func:`gaussian_log_prob` / :func:`gaussian_entropy`
  (``Box`` actions, a diagonal Gaussian with a state-independent log-std);
* :func:`clipped_surrogate`, PPO's policy loss;
* :class:`RunningMeanStd`, the running statistics of SB3's ``VecNormalize``.

The distribution functions and the losses are written in ``keras.ops``, so
they run inside every backend's compiled step and on NumPy arrays alike.

Then :class:`ActorCriticAgent`, the agent both learners subclass: it collects
``n_steps`` steps from each of the ``concurrency`` envs, computes advantages,
and hands the rollout to the subclass's :meth:`~ActorCriticAgent.update`.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from kerlym.agents.base import Agent, factory_name

LOG_2PI = math.log(2.0 * math.pi)


# -- returns and advantages (NumPy) -------------------------------------------
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
    z = (actions - mean) * ops.exp(-log_std)
    return ops.sum(-0.5 * z * z - log_std - 0.5 * LOG_2PI, axis=-1)


def gaussian_entropy(log_std):
    """Entropy of a diagonal Gaussian, ``sum_d (log_std_d + 0.5 * log(2 pi e))``, over the last axis."""
    return ops.sum(log_std + 0.5 * (LOG_2PI + 1.0), axis=-1)


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
    mean = ops.mean(advantages)
    return (advantages - mean) / (ops.std(advantages) + 1e-8)


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
