"""The fused JAX path for DQN and D2QN: ``update_freq`` env steps and their update as one unit of a compiled chunk.

On Keras's JAX backend with a gymnax env (``-e gymnax:CartPole-v1 -a dqn``) the
env steps, epsilon-greedy acting, storing in the replay buffer (flashbax's item
buffer), the TD targets (double-Q for D2QN), the gradient steps, the
target-network syncs and the weight average (``ema_steps``) all run inside
``jax.lax.scan``, over chunks of units; a unit is ``update_freq`` env steps
(``update_freq / concurrency`` steps of each env) and the update at its end.
The maths is the Gymnasium DQN's own: :meth:`kerlym.agents.dqn.DQN.q_loss`
(with D2QN's :meth:`~kerlym.agents.dqn.D2QN.next_state_value`) through the
agent's compiled update (:meth:`kerlym.backend.jax.JaxSteps.update_arrays`).

The settings keep their meaning, with one difference: ``max_memory`` counts
transitions here (each holds its next observation), where the Gymnasium DQN's
ring counts frames. A checkpoint holds what the Gymnasium DQN's does (target
network, weight average, epsilon) and also the envs' states and the random key,
so a resumed run continues exactly; the replay buffer goes in with
``--save_memory``, as the Gymnasium DQN's memory does (without it, a resumed run
refills the buffer to ``learning_starts`` before it trains again).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from keras import ops

from kerlym.agents.fused import Chunk, FusedChunks
from kerlym.backend.common import float32


class Transition(NamedTuple):
    """One transition in the replay buffer (a batch of them: a leading axis on each field)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array  # the observation that followed: at an episode's end, its final one
    terminated: jax.Array


class DQNCarry(NamedTuple):
    """What a unit carries to the next, besides the weights and optimizer state."""

    states: object  # the envs' gymnax states
    obs: jax.Array
    ep_return: jax.Array
    ep_length: jax.Array
    ep_qmax: jax.Array  # the sums over the episode of max_a Q and min_a Q
    ep_qmin: jax.Array
    epsilon: jax.Array
    target: tuple  # the target network's (trainable, non-trainable) arrays
    ema: tuple  # the weight average's (trainable, non-trainable) arrays (empty without ema_steps)
    ema_step: jax.Array  # the env step of the average's last move (-1: none yet)
    buffer: object  # flashbax's buffer state


def linear_epsilon_at(start: float, end: float, steps: int, step):
    """:func:`kerlym.agents.dqn.linear_epsilon` on arrays: ``start`` to ``end`` linearly over ``steps`` env steps."""
    return end + (start - end) * jnp.maximum(0.0, 1.0 - step / steps)


def decayed_epsilon_after(epsilon, ended, decay: float, floor: float):
    """:func:`kerlym.agents.dqn.decayed_epsilon` applied once per ended episode (``ended`` of them; 0: unchanged)."""
    return jnp.where(ended > 0, jnp.maximum(floor, epsilon * (1.0 - decay) ** ended), epsilon)


def replay_bytes(obs_shape, obs_itemsize: int, capacity: int) -> int:
    """Bytes of a replay buffer of ``capacity`` transitions: two observations, an action, a reward, a flag."""
    return int(capacity) * (2 * int(np.prod(obs_shape)) * obs_itemsize + 4 + 4 + 1)


def check_replay_fits(env_id: str, config, seeds: int) -> None:
    """Refuse, in one line, ``seeds`` replay buffers (one per seed) that this machine's memory cannot hold.

    Raises:
        ConfigError: they would not fit (the message says how much they need and what is free).
    """
    import gymnax

    from kerlym.config import ConfigError
    from kerlym.resources import available_memory_bytes

    env, params = gymnax.make(env_id.split(":", 1)[1])
    shape = env.observation_space(params).shape
    need = seeds * replay_bytes(shape, 4, config.max_memory)
    free = available_memory_bytes()
    if need > free:
        whose = f"{seeds} seeds' replay buffers" if seeds > 1 else "a replay buffer"
        raise ConfigError(
            f"{whose} of {config.max_memory:,} transitions {'need' if seeds > 1 else 'needs'} {need / 2**20:,.0f} MiB, "
            f"and {free / 2**20:,.0f} MiB is free: lower --max_mem or the number of seeds"
        )


class FusedDQN(FusedChunks):
    """A DQN (or D2QN) agent's training on its gymnax env, in compiled chunks; built by the agent.

    Args:
        agent: a :class:`kerlym.agents.dqn.DQN` on a :class:`kerlym.envs.gymnax_envs` env, Keras on JAX.

    Raises:
        ValueError: a setting the fused path does not have, or a buffer that does not fit (one line).
    """

    def __init__(self, agent):
        import flashbax

        c = agent.config
        self.num_envs = agent.concurrency
        # The rest it refuses (-f not a multiple of -c, ...) are in kerlym.envs.gymnax_envs.refusals.
        refused = ["an epsilon_schedule function"] if agent.own_epsilon_schedule and not c.epsilon_decay_steps else []
        self.n_steps = max(1, agent.update_freq // self.num_envs)
        self.rollout_steps = self.n_steps * self.num_envs
        super().__init__(agent, refused)
        self.capacity = int(c.max_memory)
        check_replay_fits(agent.env.unwrapped.env_id, c, 1)
        self.samples = (agent.update_nsamp // agent.batch_size) * agent.batch_size
        self.buffer = flashbax.make_item_buffer(
            max_length=self.capacity, min_length=1, sample_batch_size=self.samples, add_batches=True
        )
        self.restored: dict | None = None  # the envs, key and buffer a checkpoint held, for the next begin
        # Where each of model.weights sits: (0, i) in the trainable arrays, (1, i) in the non-trainable.
        where = {id(v): (0, i) for i, v in enumerate(self.model.trainable_variables)}
        where.update({id(v): (1, i) for i, v in enumerate(self.model.non_trainable_variables)})
        self.weight_index = [where[id(v)] for v in self.model.weights]

    # -- the compiled pieces -------------------------------------------------------
    def q_values(self, tv, ntv, obs):
        """``Q(obs)``, ``[N, actions]``, float32."""
        out, _ = self.model.stateless_call(tv, ntv, ops.cast(obs, "float32"), training=False)
        return float32(out)

    def greedy(self, tv, ntv, obs):
        return jnp.argmax(self.q_values(tv, ntv, obs), axis=1)

    def next_epsilon(self, epsilon, steps_after, done):
        """The epsilon each ended episode's row shows, and the one the next step acts with (the Gymnasium DQN's)."""
        agent, c = self.agent, self.agent.config
        if c.epsilon_decay_steps:  # annealed by the steps taken
            now = linear_epsilon_at(c.epsilon, c.epsilon_min, c.epsilon_decay_steps, steps_after)
            return jnp.full(done.shape, now), now
        if agent.epsilon_schedule is None:
            return jnp.full(done.shape, epsilon), epsilon
        ended = done.astype(jnp.int32)
        before = jnp.cumsum(ended) - ended  # episodes ended at this step before each env's, in the rows' order
        shown = decayed_epsilon_after(epsilon, before, c.epsilon_decay, c.epsilon_min)
        return shown, decayed_epsilon_after(epsilon, ended.sum(), c.epsilon_decay, c.epsilon_min)

    def sample(self, buffer, key):
        """An update's samples, ``[steps, batch_size, ...]`` per field (the Gymnasium DQN's ``sample_update``)."""
        agent = self.agent
        k_sample, k_order = jax.random.split(key)
        batch = self.buffer.sample(buffer, k_sample).experience
        if agent.replay == "newest":  # the newest update_freq transitions, then uniform replay
            newest = min(agent.update_freq, self.samples, self.capacity)
            idx = (buffer.current_index - 1 - jnp.arange(newest)) % self.capacity
            batch = jax.tree.map(lambda b, x: b.at[:newest].set(x[0, idx]), batch, buffer.experience)
        steps = self.samples // agent.batch_size
        if steps == 1:  # one minibatch: its loss is a mean, which no order changes (a sort and a gather saved)
            return tuple(x[None] for x in batch)
        order = jax.random.permutation(k_order, self.samples)  # spread the newest over the minibatches
        return tuple(x[order].reshape(steps, agent.batch_size, *x.shape[1:]) for x in batch)

    def unit(self, tv, ntv, ov, carry, key, before, step_limit, may_learn=True):
        """``update_freq`` env steps, then (once the buffer holds ``learning_starts``) one update, target syncs.

        ``may_learn``: false where the host knows the buffer is still short (:meth:`collect_units`); the unit
        then only collects, and computes no update (the same results: one would not have trained).
        """
        agent = self.agent
        n, actions_n = self.num_envs, agent.num_actions
        k_steps, k_sample = jax.random.split(key)

        def step(c, xs):
            key, i = xs
            k_explore, k_action, k_env = jax.random.split(key, 3)
            q = self.q_values(tv, ntv, c.obs)
            explore = jax.random.uniform(k_explore, (n,)) < c.epsilon
            actions = jnp.where(explore, jax.random.randint(k_action, (n,), 0, actions_n), jnp.argmax(q, axis=1))
            next_obs, states, reward, terminated, truncated, info = self.env_step(k_env, c.states, actions)
            reward = reward.astype(jnp.float32)
            moved = Transition(c.obs, actions.astype(jnp.int32), reward, info["final_observation"], terminated)
            buffer = self.buffer.add(c.buffer, moved)
            ep_return, ep_length = c.ep_return + reward, c.ep_length + 1
            ep_qmax, ep_qmin = c.ep_qmax + q.max(axis=1), c.ep_qmin + q.min(axis=1)
            done = jnp.logical_or(terminated, truncated)
            shown, epsilon = self.next_epsilon(c.epsilon, before + (i + 1) * n, done)
            out = (done, ep_return, ep_length, ep_qmax / ep_length, ep_qmin / ep_length, shown)
            keep = jnp.logical_not(done)
            c = c._replace(
                states=states, obs=next_obs, ep_return=ep_return * keep, ep_length=ep_length * keep,
                ep_qmax=ep_qmax * keep, ep_qmin=ep_qmin * keep, epsilon=epsilon, buffer=buffer,
            )  # fmt: skip
            return c, out

        keys = jax.random.split(k_steps, self.n_steps)
        carry, (done, ep_return, ep_length, qmax, qmin, shown) = jax.lax.scan(
            step, carry, (keys, jnp.arange(self.n_steps))
        )
        after = before + self.rollout_steps
        buffer = carry.buffer
        held = jnp.where(buffer.is_full, self.capacity, buffer.current_index)
        trains = jnp.logical_or(held >= agent.learning_starts, buffer.is_full)
        period = agent.target_update_freq
        # The Gymnasium DQN syncs at the step that crosses a multiple of the period: before the unit's last
        # step, the online weights are those before this unit's update; at the last step, those after it.
        early = (after - n) // period > before // period
        late = after // period > (after - n) // period
        choose = lambda now, new, old: jax.tree.map(lambda a, b: jnp.where(now, a, b), new, old)  # noqa: E731
        target = choose(early, (tv, ntv), carry.target)

        def learn(_):
            tv2, ntv2, ov2, rows = agent.steps.update_arrays(tv, ntv, ov, *target, self.sample(buffer, k_sample))
            ema, ema_step = carry.ema, carry.ema_step
            if agent.ema is not None:  # WeightAverage.update at each update, in env steps; its first move copies
                keep = jnp.where(ema_step < 0, 0.0, jnp.exp(-(after - ema_step) / agent.ema_steps))
                ema = jax.tree.map(lambda e, w: keep * e + (1.0 - keep) * w, ema, (tv2, ntv2))
                ema_step = jnp.asarray(after, ema_step.dtype)
            return tv2, ntv2, ov2, rows, ema, ema_step

        shapes = jax.eval_shape(learn, None)

        def wait(_):
            return tv, ntv, ov, jnp.zeros(shapes[3].shape, shapes[3].dtype), carry.ema, carry.ema_step

        def learn_if_ready(_):  # under jax.vmap, trains differs by seed: a select, which computes both
            return jax.lax.cond(trains, learn, wait, None)

        tv, ntv, ov, rows, ema, ema_step = jax.lax.cond(may_learn, learn_if_ready, wait, None)
        carry = carry._replace(target=choose(late, (tv, ntv), target), ema=ema, ema_step=ema_step)
        return tv, ntv, ov, carry, (done, ep_return, ep_length, qmax, qmin, shown, rows, trains)

    # -- the host side ---------------------------------------------------------------
    def collect_units(self) -> int:
        """The next chunk's first units that end with fewer than ``learning_starts`` transitions held (or a
        buffer not yet full, where it holds fewer): they cannot train, so they run without the update."""
        buffer = self.carry.buffer
        if bool(buffer.is_full):
            return 0
        short = min(self.agent.learning_starts, self.capacity) - int(buffer.current_index)
        return max(0, -(-short // self.rollout_steps) - 1)

    def reset(self, obs, states) -> DQNCarry:
        """The envs just started (:meth:`start_envs`), with the agent's epsilon, target network, weight average
        and buffer."""
        agent = self.agent
        zeros = np.zeros(self.num_envs, np.float32)
        tv, ntv, _ = agent.steps.arrays()
        target = (list(agent.steps.target_tv), list(agent.steps.target_ntv))
        if agent.ema is not None and agent.ema.weights is not None:
            ema, ema_step = self.split_weights(agent.ema.weights), agent.ema.step
        else:
            ema, ema_step = ((list(tv), list(ntv)) if agent.ema is not None else ()), -1
        if self.carry is not None:  # the buffer carries on into the next run, as the Gymnasium DQN's memory
            buffer = self.carry.buffer
        else:
            example = Transition(obs[0], jnp.int32(0), jnp.float32(0), obs[0], jnp.bool_(False))
            buffer = self.buffer.init(example)
        return DQNCarry(
            states, obs, zeros, np.zeros(self.num_envs, np.int32), zeros, zeros,
            np.float32(agent.epsilon), target, ema, np.int32(ema_step), buffer,
        )  # fmt: skip

    def begin(self, seed: int | None, eval_episodes: int = 0) -> None:
        """Start the envs, or, after a checkpoint was loaded, take up its envs, key and buffer where they were."""
        restored, self.restored = self.restored, None
        super().begin(seed, eval_episodes)
        if restored is not None:
            envs = jax.tree.leaves((self.carry.states, *self.carry[1:6]))
            if len(envs) == len(restored["envs"]):
                treedef = jax.tree.structure((self.carry.states, *self.carry[1:6]))
                states, *stats = jax.tree.unflatten(treedef, [jnp.asarray(x) for x in restored["envs"]])
                self.carry = self.carry._replace(states=states, **dict(zip(DQNCarry._fields[1:6], stats)))
                self.key = jax.random.wrap_key_data(jnp.asarray(restored["key"]))
            if restored["buffer"] is not None:
                treedef = jax.tree.structure(self.carry.buffer)
                self.carry = self.carry._replace(
                    buffer=jax.tree.unflatten(treedef, [jnp.asarray(x) for x in restored["buffer"]])
                )

    def split_weights(self, weights) -> tuple:
        """``model.get_weights()``'s order -> ``(trainable, non_trainable)`` arrays."""
        groups = ([None] * len(self.model.trainable_variables), [None] * len(self.model.non_trainable_variables))
        for (g, i), w in zip(self.weight_index, weights):
            groups[g][i] = jnp.asarray(w, jnp.float32)
        return groups

    def take(self, outs, active: int) -> Chunk:
        chunk = super().take(outs, active)
        agent, carry = self.agent, self.carry
        agent.epsilon = float(carry.epsilon)
        agent.steps.set_target_arrays(*carry.target)
        if agent.ema is not None and int(carry.ema_step) >= 0:
            weights = {f"ema/{k}": np.asarray(carry.ema[g][i]) for k, (g, i) in enumerate(self.weight_index)}
            agent.ema.set_state({"ema_step": int(carry.ema_step)}, weights, list(weights.values()))
        return chunk

    def results(self, outs, active: int) -> Chunk:
        done, returns, lengths, qmax, qmin, shown, losses, trained = (np.asarray(x)[:active] for x in outs)
        losses = losses.reshape(active, losses.shape[1], -1)  # [U, gradient steps, 1 + metrics]
        return Chunk(active, done, returns, lengths, qmax, losses, trained, qmin, shown)

    def greedy_weights(self) -> tuple:
        agent = self.agent
        if agent.ema is not None and agent.ema.weights is not None:
            return self.split_weights(agent.ema.weights)
        return super().greedy_weights()

    # -- checkpoint state -----------------------------------------------------------
    def get_state(self, arrays: dict, include_memory: bool) -> None:
        """Add the envs, the key and (``include_memory``) the replay buffer to a checkpoint's ``arrays``."""
        if self.carry is None:
            return
        c = self.carry
        arrays.update({f"fused/envs/{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves((c.states, *c[1:6])))})
        arrays["fused/key"] = np.asarray(jax.random.key_data(self.key))
        if include_memory:
            arrays.update({f"fused/buffer/{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(c.buffer))})

    def set_state(self, arrays: dict) -> None:
        """Keep what :meth:`get_state` saved for the next :meth:`begin` (a checkpoint without it: fresh envs)."""
        if "fused/key" not in arrays:
            return

        def numbered(prefix):
            keys = sorted((k for k in arrays if k.startswith(prefix)), key=lambda k: int(k[len(prefix) :]))
            return [arrays[k] for k in keys] or None

        envs, buffer = numbered("fused/envs/"), numbered("fused/buffer/")
        self.restored = {"envs": envs, "key": arrays["fused/key"], "buffer": buffer}
        self.carry = None
