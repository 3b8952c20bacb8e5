"""Policy gradient (REINFORCE) with a Keras policy network, after Karpathy's Pong gist.

Each episode the agent keeps its states, actions and rewards. At the end it
computes discounted returns, standardises them into advantages and takes one
gradient step on the whole episode with the loss the factory compiled
(categorical cross-entropy for the built-in policy networks), weighted per
sample by the advantage: ``-A * log pi(a|s)``.
"""

from __future__ import annotations

import os

import numpy as np
from keras import ops

from kerlym import networks
from kerlym.agents.base import Agent
from kerlym.backend import build_steps, compiled_loss


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
    return ops.minimum(ops.sum(ops.cast(cdf < threshold, "int32"), axis=-1), probs.shape[-1] - 1)


def greedy_and_sampled(probs, u):
    """The compiled act's outputs: the most probable action, a sampled one (:func:`inverse_cdf_sample`), ``probs``."""
    return ops.argmax(probs, axis=-1), inverse_cdf_sample(probs, u), probs


def _padded_length(n: int) -> int:
    """Pad episodes to a few fixed sizes so the compiled update is not retraced for every length."""
    return max(64, 1 << (n - 1).bit_length())


class PG(Agent):
    """REINFORCE with a softmax policy network.

    Args:
        env: a Gymnasium env, env id, or zero-argument callable returning one.
        nframes, difference_obs, preprocessor, seed: see :class:`kerlym.agents.base.Agent`.
        discount: reward discount.
        modelfactory: policy network factory (``karpathy_simple_pgnet``, ``pgconvnet``).
        dropout, learning_rate: passed to the model factory.
        reset_on_score: restart the discounted return at every non-zero reward;
            ``None`` turns it on for Pong and off elsewhere.
        save_path: ``.keras`` file the model is saved to every ``save_every`` episodes.
        resume: load ``save_path`` first if it exists.
        **factory_kwargs: passed to the model factory (e.g. ``optimizer="adam"``).
    """

    name = "pg"

    def __init__(
        self,
        env,
        nframes: int = 1,
        discount: float = 0.99,
        modelfactory=networks.karpathy_simple_pgnet,
        dropout: float = 0.5,
        difference_obs: bool = False,
        preprocessor=None,
        learning_rate: float = 1e-4,
        seed: int | None = None,
        reset_on_score: bool | None = None,
        save_path: str | None = None,
        save_every: int = 100,
        resume: bool = False,
        enable_plots: bool = False,
        **factory_kwargs,
    ):
        super().__init__(
            env,
            nframes=nframes,
            difference_obs=difference_obs,
            preprocessor=preprocessor,
            modelfactory=modelfactory,
            dropout=dropout,
            learning_rate=learning_rate,
            seed=seed,
            enable_plots=enable_plots,
            **factory_kwargs,
        )
        self.discount = float(discount)
        if reset_on_score is None:
            env_id = self.env.spec.id if self.env.spec is not None else ""
            reset_on_score = "pong" in env_id.lower()
        self.reset_on_score = bool(reset_on_score)
        self.save_path = save_path
        self.save_every = int(save_every)
        self.loss = compiled_loss(self.model, getattr(modelfactory, "__name__", "modelfactory"))
        self.steps = build_steps(self.model, self.pg_loss, act_fn=greedy_and_sampled)
        if resume and save_path and os.path.exists(save_path):
            from kerlym.runs import load_model

            self.model.set_weights(load_model(save_path).get_weights())
        # Per env: the states, actions and rewards of its episode so far.
        self._episodes: list[tuple[list, list, list]] = [([], [], []) for _ in range(self.concurrency)]

    def pg_loss(self, online, batch, prepared=None):
        """The factory's loss between the taken actions and the policy, weighted by advantage."""
        states, actions, advantages = batch
        probs = online(states, training=True)
        taken = ops.one_hot(ops.cast(actions, "int32"), self.num_actions)
        return self.loss(taken, probs, sample_weight=advantages)

    def act(self, states, explore=True):
        # Greedy acting draws no random numbers (its uniform numbers are unused zeros).
        u = self.rng.random(len(states)) if explore else np.zeros(len(states))
        greedy, sampled, probs = self.steps.act(states, u)
        return (sampled if explore else greedy), probs

    def observe(self, stream, state, action, reward, terminated, truncated, frame):
        states, actions, rewards = self._episodes[stream]
        states.append(state)
        actions.append(action)
        rewards.append(float(reward))

    def begin_episode(self, frame, stream=0):
        self._episodes[stream] = ([], [], [])

    def episode_batch(self, stream=0):
        """A finished episode as padded ``(states, actions, advantages)`` with one minibatch axis."""
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
        return states[None], actions[None], weights[None]

    def end_episode(self, stream=0):
        if self._episodes[stream][1]:
            losses = self.steps.update(self.episode_batch(stream))
            self.updates += 1
            self._losses.extend(losses.tolist())
        if self.save_path and self.episode % self.save_every == 0:
            tmp = self.save_path[: -len(".keras")] + ".tmp.keras"
            self.model.save(tmp)
            os.replace(tmp, self.save_path)
        return {}
