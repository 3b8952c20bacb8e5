"""The fused JAX path: PPO on a gymnax env, a chunk of updates as one compiled program (as PureJaxRL's).

On Keras's JAX backend with a JAX-native env (``-e gymnax:CartPole-v1``) the
env steps, the acting, the rollout, GAE and the clipped-PPO minibatch epochs
all run inside ``jax.lax.scan``: the agent's own Keras model (its usual
factory, config and preset) enters through ``model.stateless_call`` and its
optimizer through ``optimizer.stateless_apply``, so nothing leaves the device
until a chunk of updates is done. The state is explicit, a tuple passed through
the scans, and nothing is mutated.

The runner sees one chunk at a time (:meth:`FusedChunks.train_chunk`): the
episodes that ended in it (their returns, lengths and end steps), and each
update's loss rows. Between chunks it writes rows, checkpoints (the weights
are written back into the Keras model, which saves as usual), evaluates, and
stops on Ctrl-C. The maths is PPO's own: :meth:`kerlym.agents.ppo.PPO.loss_fn`
and :meth:`~kerlym.agents.actor_critic.ActorCriticAgent.act_fn`, here called on
JAX arrays; :func:`gae_scan` is :func:`kerlym.memory.gae` as a reverse scan.

:class:`FusedChunks` is what the fused agents share (the chunk driver, the greedy evaluation, the results
written back); :mod:`kerlym.agents.fused_dqn` is DQN and D2QN on it, and :class:`FusedGroup` trains any of
them as a vmapped group of seeds.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from keras import ops

from kerlym.backend.common import float32
from kerlym.backend.jax import gradient_step

CHUNK_STEPS = 16_384  # env steps per compiled chunk, about: rows, checkpoints and Ctrl-C wait at most this long


def use_compilation_cache() -> str | None:
    """Keep the compiled chunks in JAX's persistent cache, so the next run of the same settings skips compiling.

    The folder is ``$JAX_COMPILATION_CACHE_DIR`` where set (``""`` turns the cache off), else
    ``$XDG_CACHE_HOME/kerlym/jax`` (``~/.cache/kerlym/jax``); a cache the program set up itself is kept.
    Every program is kept, however quick its compiling (unless ``$JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``
    says otherwise). Returns the folder in use, or ``None``.
    """
    import os

    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        # JAX keeps only programs that took a second or more to compile; a run's start-up is many smaller
        # ones (the envs' reset, the evaluation, eager ops), which a second run would compile again.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if jax.config.jax_compilation_cache_dir:  # the user's own, set in code or through the env var
        return jax.config.jax_compilation_cache_dir
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:  # set, but empty: no cache
        return None
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(home, "kerlym", "jax")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:  # a read-only home: compile every time, as without a cache
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    return folder


def gae_scan(rewards, values, next_values, terminated, truncated, discount, lam):
    """:func:`kerlym.memory.gae` in JAX, a reverse ``lax.scan`` over a rollout's ``[T, N]`` arrays.

    ``A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}`` with
    ``delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t``; ``next_values_t`` is
    the value of the observation that followed, an ended episode's final one at a truncation.
    """
    done = jnp.logical_or(terminated, truncated)
    deltas = rewards + discount * jnp.where(terminated, 0.0, next_values) - values

    def back(running, x):
        delta, ended = x
        running = delta + discount * lam * jnp.where(ended, 0.0, running)
        return running, running

    _, advantages = jax.lax.scan(back, jnp.zeros_like(rewards[0]), (deltas, done), reverse=True)
    return advantages


def _linear(initial, progress, linear: bool):
    """``initial``, or with ``linear`` falling to 0 at ``progress`` 1 (``linear_schedule`` on arrays)."""
    return initial * jnp.maximum(0.0, 1.0 - progress) if linear else initial * jnp.ones_like(progress)


class Chunk(NamedTuple):
    """What one compiled chunk did, as NumPy arrays (``U`` updates of ``T`` steps of ``N`` envs).

    Attributes:
        updates: how many updates ran (the arrays' first axis holds ``updates`` rows, then zeros).
        done: bool ``[U, T, N]``: an episode ended at that step.
        returns: ``[U, T, N]``: the ended episode's return (where ``done``).
        lengths: ``[U, T, N]``: its length.
        values: ``[U, T, N]``: the mean of its value estimates.
        losses: ``[U, minibatches, 1 + metrics]``: each update's loss rows (PPO's ``metric_names``).
        trained: bool ``[U]``: that update trained (``None``: all did; a DQN waits for ``learning_starts``).
        min_values: ``[U, T, N]``: the mean of the episode's smallest Q-values (``None``: ``values``).
        epsilon: ``[U, T, N]``: the exploration rate when the episode ended (``None``: NaN, no epsilon).
    """

    updates: int
    done: np.ndarray
    returns: np.ndarray
    lengths: np.ndarray
    values: np.ndarray
    losses: np.ndarray
    trained: np.ndarray | None = None
    min_values: np.ndarray | None = None
    epsilon: np.ndarray | None = None


class FusedChunks:
    """What the fused agents share: the chunk of units scanned with ``lax.cond`` on the active count, the
    greedy evaluation, and the host side (starting the envs, a chunk's call, its results written back).

    A subclass sets ``num_envs``, ``n_steps`` (env steps per env in a unit) and ``rollout_steps`` (env steps
    in a unit), then calls this ``__init__``; it defines :meth:`unit` (one unit: PPO's update, DQN's
    ``update_freq`` steps and their update), :meth:`reset`, :meth:`greedy` and :meth:`results`.

    Args:
        agent: the agent, on a :class:`kerlym.envs.gymnax_envs` env, Keras on JAX.

    Raises:
        ValueError: a setting the fused path does not have (one line).
    """

    def __init__(self, agent, refused: list[str] = ()):
        from kerlym.envs.gymnax_envs import refusals

        c = agent.config
        refused = refusals(c) + list(refused) + (["image observations"] if len(agent.frame_shape) != 1 else [])
        if refused:
            raise ValueError(f"the fused JAX path (-e {agent.env.unwrapped.env_id}) does not take {', '.join(refused)}")
        self.agent = agent
        use_compilation_cache()
        self.env, self.params = agent.env.unwrapped.gymnax_env, agent.env.unwrapped.gymnax_params
        self.model = agent.steps.model
        self.optimizer = self.model.optimizer
        self.chunk_updates = max(1, CHUNK_STEPS // self.rollout_steps)
        self.carry = None  # the envs (and what else a unit carries) between chunks
        self.key = None
        self.evaluations = 0
        self._chunk = jax.jit(self.chunk, static_argnums=(0,))
        self.group: tuple[FusedGroup, int] | None = None  # (the group, this agent's place) when seeds train together
        self._evaluate = jax.jit(self.greedy_returns, static_argnums=(3,))
        self._start = jax.jit(self.start_envs)
        self._prepared: dict = {}  # episodes -> a Future of the evaluation compiled ahead (prepare_evaluation)

    # -- the compiled pieces -------------------------------------------------------
    def env_step(self, key, states, actions):
        keys = jax.random.split(key, actions.shape[0])
        return jax.vmap(self.env.step, in_axes=(0, 0, 0, None))(keys, states, actions, self.params)

    def chunk(self, size, tv, ntv, ov, carry, key, steps, active, step_limit, collecting=0):
        """``size`` units of which the first ``active`` run (a traced count: one compiled program per ``size``).

        ``steps``: the env steps before the chunk; ``step_limit``: where the linear schedules reach 0 (0: none);
        ``collecting``: the first units that cannot learn yet (:meth:`collect_units`). ``active`` and
        ``collecting`` are the same for every seed of a :class:`FusedGroup`, so under ``jax.vmap`` their
        ``lax.cond``-s stay branches, where a seed's own count would turn them into selects that compute both.
        Returns the new weights, optimizer state, carry and key, and the units' outputs ``[size, ...]``.
        """

        def one(c, u):
            tv, ntv, ov, carry, key = c
            key, k = jax.random.split(key)  # only a unit that runs uses up its key: chunks' sizes leave no trace
            before = steps + u * self.rollout_steps
            traced = []  # the unit's outputs as ``run`` was traced: ``skip``'s zeros take their shapes

            def run(_):
                tv2, ntv2, ov2, carry2, out = self.unit(tv, ntv, ov, carry, k, before, step_limit, u >= collecting)
                traced.append(out)
                return (tv2, ntv2, ov2, carry2, key), out

            def skip(_):
                # ``lax.cond`` traces ``run`` first; were it not so, tracing the unit once more gives the shapes
                outs = traced[-1] if traced else jax.eval_shape(run, None)[1]
                return c, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), outs)

            return jax.lax.cond(u < active, run, skip, None)

        (tv, ntv, ov, carry, key), outs = jax.lax.scan(one, (tv, ntv, ov, carry, key), jnp.arange(size))
        return tv, ntv, ov, carry, key, outs

    def greedy_returns(self, tv, ntv, key, episodes):
        """Returns of ``episodes`` greedy episodes played side by side (each to its end or the env's step limit)."""
        obs, states = jax.vmap(self.env.reset, in_axes=(0, None))(jax.random.split(key, episodes), self.params)

        def step(c, key):
            states, obs, total, alive = c
            obs, states, reward, terminated, truncated, _ = self.env_step(key, states, self.greedy(tv, ntv, obs))
            total = total + reward * alive
            alive = alive * jnp.logical_not(jnp.logical_or(terminated, truncated))
            return (states, obs, total, alive), None

        start = (states, obs, jnp.zeros(episodes), jnp.ones(episodes))
        keys = jax.random.split(key, int(self.params.max_steps_in_episode))
        (_, _, total, _), _ = jax.lax.scan(step, start, keys)
        return total

    # -- the host side ---------------------------------------------------------------
    def collect_units(self) -> int:
        """How many of the next chunk's first units cannot learn (the agent waits for data); 0 here."""
        return 0

    def begin(self, seed: int | None, eval_episodes: int = 0) -> None:
        """Start the envs' episodes (a run, or a resumed run, begins them anew); ``seed`` seeds the first.

        ``eval_episodes``: the run's evaluations play that many episodes; their program compiles meanwhile
        (:meth:`prepare_evaluation`; 0: when first used).
        """
        agent = self.agent
        if eval_episodes > 0:
            self.prepare_evaluation(eval_episodes)
        start = seed if seed is not None else int(agent.rng.integers(2**31))
        # A resumed run (total_steps > 0) continues with other random numbers than its start had.
        self.key, obs, states = self._start(jax.random.key(start), np.uint32(agent.total_steps))
        self.carry = self.reset(obs, states)
        if self.group is not None:
            self.group[0].prepare(self)

    def start_envs(self, key, steps):
        """The run's key from ``key`` and ``steps``, and ``num_envs`` fresh episodes: ``(key, obs, env states)``.

        One compiled program (:meth:`begin`'s), where the key's folding and splitting and the envs' reset
        each compiled on its own before.
        """
        key, k_reset = jax.random.split(jax.random.fold_in(key, steps))
        obs, states = jax.vmap(self.env.reset, in_axes=(0, None))(jax.random.split(k_reset, self.num_envs), self.params)
        return key, obs, states

    def prepare_evaluation(self, episodes: int) -> None:
        """Compile :meth:`evaluate`'s program for ``episodes`` in a background thread, beside the first chunk's.

        XLA compiles a program on one core, and the evaluation's takes about a third as long as the chunk's,
        so on two cores it comes at little cost. :meth:`evaluate` waits for it (or, if it failed, compiles).
        """
        import concurrent.futures
        import threading

        future = concurrent.futures.Future()
        if self._prepared.setdefault(int(episodes), future) is not future:  # one already (a group's seeds share)
            return
        tv, ntv = self.greedy_weights()

        def compile_it():
            try:
                future.set_result(self._evaluate.lower(tv, ntv, jax.random.key(0), int(episodes)).compile())
            except Exception:  # noqa: BLE001 -- evaluate() compiles as it would have without this
                future.set_result(None)

        threading.Thread(target=compile_it, name="kerlym-compile-evaluation", daemon=True).start()

    def train_chunk(self, max_updates: int | None, step_limit: int | None) -> Chunk:
        """Train up to ``chunk_updates`` units (at most ``max_updates``) in one compiled call.

        Counts the steps and updates on the agent (the runner keeps the last update's metrics as its ``stats``).
        In a :class:`FusedGroup`, waits for the group's other agents and trains with them.
        """
        if self.carry is None:
            self.begin(None)
        active = self._active(max_updates)
        if self.group is not None:
            group, place = self.group
            return group.train_chunk(place, self, active, step_limit)
        outs = self._chunk(self.chunk_updates, *self.inputs(step_limit), active, step_limit or 0, self.collect_units())
        return self.take(outs, active)

    def prefetch(self, max_updates: int | None, step_limit: int | None) -> None:
        """The runner's next :meth:`train_chunk`, asked for ahead: in a :class:`FusedGroup`, it starts computing
        once every seed has asked. Alone, nothing: the call itself comes soon enough."""
        if self.group is not None and self.carry is not None:
            group, place = self.group
            group.prefetch(place, self, self._active(max_updates), step_limit)

    def _active(self, max_updates: int | None) -> int:
        return self.chunk_updates if max_updates is None else max(1, min(self.chunk_updates, max_updates))

    def inputs(self, step_limit) -> tuple:
        """The chunk's arguments before ``active``: weights, optimizer state, the carry, the key, the steps so far."""
        tv, ntv, ov = self.agent.steps.arrays()
        return tv, ntv, ov, self.carry, self.key, self.agent.total_steps

    def take(self, outs, active: int) -> Chunk:
        """Keep a chunk's results: the new weights in the agent's steps, the carry and key here, the counts."""
        agent = self.agent
        tv, ntv, ov, self.carry, self.key, outs = outs
        agent.steps.set_arrays(tv, ntv, ov)
        chunk = self.results(outs, active)
        agent.total_steps += active * self.rollout_steps
        agent.updates += active if chunk.trained is None else int(chunk.trained.sum())
        return chunk

    def greedy_weights(self) -> tuple:
        """The ``(trainable, non_trainable)`` arrays greedy actions come from."""
        tv, ntv, _ = self.agent.steps.arrays()
        return tv, ntv

    def evaluate(self, episodes: int, seed: int | None = None) -> np.ndarray:
        """Returns of ``episodes`` greedy episodes, all in one compiled call."""
        tv, ntv = self.greedy_weights()
        if seed is None:  # each evaluation its own episodes, without touching the training's random numbers
            seed = (self.agent.seed or 0) * 7919 + 104_729 + self.evaluations
        self.evaluations += 1
        future = self._prepared.get(int(episodes))
        program = future.result() if future is not None else None
        key = jax.random.key(seed)
        returns = program(tv, ntv, key) if program is not None else self._evaluate(tv, ntv, key, int(episodes))
        return np.asarray(returns, dtype=np.float64)


class FusedPPO(FusedChunks):
    """A PPO agent's training on its gymnax env, in compiled chunks of updates; built by the agent.

    Args:
        agent: a :class:`kerlym.agents.ppo.PPO` on a :class:`kerlym.envs.gymnax_envs` env, Keras on JAX.

    Raises:
        ValueError: a setting the fused path does not have (one line).
    """

    def __init__(self, agent):
        c = agent.config
        self.num_envs, self.n_steps = agent.concurrency, int(c.n_steps)
        self.rollout_steps = self.num_envs * self.n_steps
        super().__init__(agent)
        lr = self.optimizer.learning_rate
        self.lr_index = next((i for i, v in enumerate(self.optimizer.variables) if v is lr), None)
        if c.lr_schedule == "linear" and self.lr_index is None:
            raise ValueError("lr_schedule linear needs an optimizer with a plain learning rate (not a schedule)")

    # -- the compiled pieces -------------------------------------------------------
    def policy(self, tv, ntv, obs, noise):
        """The agent's act on ``obs [N, ...]``: sampled action, greedy action, log-probability, value ``[N]``."""
        out, _ = self.model.stateless_call(tv, ntv, ops.cast(obs, "float32"), training=False)
        sampled, greedy, log_prob, value = self.agent.act_fn(float32(out), noise)
        return sampled, greedy, log_prob, value[:, 0]

    def greedy(self, tv, ntv, obs):
        """The greedy actions on ``obs``, as the env takes them."""
        _, greedy, _, _ = self.policy(tv, ntv, obs, jnp.full((obs.shape[0], self.agent.num_actions), 0.5))
        return self.to_env(greedy)

    def noise(self, key, n):
        """The random numbers the agent's ``act_fn`` samples with: uniform (Gumbel-max) or Gaussian."""
        shape = (n, self.agent.num_actions)
        return jax.random.normal(key, shape) if self.agent.continuous else jax.random.uniform(key, shape)

    def to_env(self, actions):
        """Actions as the env takes them: a ``Box`` policy's samples clipped to the bounds."""
        return jnp.clip(actions, self.agent.low, self.agent.high) if self.agent.continuous else actions

    def reset(self, obs, states):
        """The carry of envs just started (:meth:`start_envs`): ``(env states, observations, return, length,
        value sum)``."""
        zeros = np.zeros(self.num_envs, np.float32)  # NumPy: no small program to compile for each
        return states, obs, zeros, np.zeros(self.num_envs, np.int32), zeros

    def rollout(self, tv, ntv, carry, key):
        """``n_steps`` steps of every env; returns the new carry and the transitions ``[T, N, ...]``."""

        def step(c, key):
            states, obs, ep_return, ep_length, ep_value = c
            k_noise, k_env = jax.random.split(key)
            sampled, _, log_prob, value = self.policy(tv, ntv, obs, self.noise(k_noise, self.num_envs))
            next_obs, states, reward, terminated, truncated, info = self.env_step(k_env, states, self.to_env(sampled))
            reward = reward.astype(jnp.float32)
            ep_return, ep_length, ep_value = ep_return + reward, ep_length + 1, ep_value + value
            done = jnp.logical_or(terminated, truncated)
            final = info["final_observation"]  # the observation that followed, before a reset
            out = (obs, sampled, log_prob, value, reward, terminated, truncated, final, done, ep_return, ep_length)
            out = (*out, ep_value / ep_length)
            keep = jnp.logical_not(done)
            carry = (states, next_obs, ep_return * keep, ep_length * keep, ep_value * keep)
            return carry, out

        return jax.lax.scan(step, carry, jax.random.split(key, self.n_steps))

    def learn(self, tv, ntv, ov, batches, lr, clip_range):
        """One optimizer step per minibatch of ``batches`` (leading minibatch axis); returns the loss rows.

        ``lr``: the learning rate to set first (``None``: the optimizer's own); ``clip_range``: PPO's epsilon.
        """
        model, optimizer, loss_fn = self.model, self.optimizer, self.agent.loss_fn
        if lr is not None:  # the linear schedule's rate; otherwise the rate the factory compiled stays
            ov = list(ov)
            ov[self.lr_index] = jnp.asarray(lr, dtype=ov[self.lr_index].dtype)

        def step(carry, batch):
            return gradient_step(model, optimizer, lambda online: loss_fn(online, (*batch, clip_range), None), carry)

        (tv, ntv, ov), rows = jax.lax.scan(step, (tv, ntv, ov), batches)
        return tv, ntv, ov, rows

    def update(self, tv, ntv, ov, carry, key, progress):
        """One PPO update: a rollout, GAE, then ``n_epochs`` of shuffled minibatches. Returns its outputs."""
        c = self.agent.config
        k_roll, k_perm = jax.random.split(key)
        carry, (obs, actions, log_probs, values, rewards, term, trunc, final, done, ep_ret, ep_len, ep_val) = (
            self.rollout(tv, ntv, carry, k_roll)
        )
        t, n = rewards.shape
        flat = lambda x: x.reshape(t * n, *x.shape[2:])  # noqa: E731
        # The value of each observation that followed: the next state's, or at an episode's end its final one.
        _, _, _, next_values = self.policy(tv, ntv, flat(final), jnp.full((t * n, self.agent.num_actions), 0.5))
        advantages = gae_scan(rewards, values, next_values.reshape(t, n), term, trunc, c.discount, c.gae_lambda)
        returns = advantages + values
        size, b = t * n, c.batch_size
        per_epoch = size // b
        perms = jax.vmap(lambda k: jax.random.permutation(k, size)[: per_epoch * b])(
            jax.random.split(k_perm, c.n_epochs)
        )
        idx = perms.reshape(-1, b)
        batches = tuple(flat(x)[idx] for x in (obs, actions, log_probs, values, advantages, returns))
        lr = _linear(c.learning_rate, progress, True) if c.lr_schedule == "linear" else None
        clip_range = _linear(c.clip_range, progress, c.clip_schedule == "linear")
        tv, ntv, ov, rows = self.learn(tv, ntv, ov, batches, lr, clip_range)
        return tv, ntv, ov, carry, (done, ep_ret, ep_len, ep_val, rows)

    def unit(self, tv, ntv, ov, carry, key, before, step_limit, may_learn=True):
        """One update (:meth:`update`), its schedules' progress as the Gymnasium path's, after the rollout.

        ``may_learn`` is not used: PPO learns in every unit.
        """
        after = before + self.rollout_steps
        progress = jnp.where(step_limit > 0, after / jnp.maximum(step_limit, 1), 0.0)
        return self.update(tv, ntv, ov, carry, key, progress)

    def results(self, outs, active: int) -> Chunk:
        done, returns, lengths, values, losses = (np.asarray(x)[:active] for x in outs)
        return Chunk(active, done, returns, lengths, values, losses)


def _is_key(x) -> bool:
    """``x`` is an array of JAX random keys (``jax.random.key``)."""
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def split_evenly(n: int, parts: int) -> list[list[int]]:
    """``range(n)`` in ``min(n, parts)`` parts of one length, in order; a short part repeats its last index.

    ``split_evenly(5, 2) == [[0, 1, 2], [3, 4, 4]]``: every part runs the same compiled program, and the
    repeated member's second results are dropped.
    """
    parts = max(1, min(n, parts))
    size = -(-n // parts)
    chunks = [list(range(n))[k * size : (k + 1) * size] for k in range(parts)]
    return [c + [c[-1]] * (size - len(c)) for c in chunks if c]


class _Request:
    """An agent's request for a chunk: its state as it asked (``inputs``), then the chunk's outputs."""

    def __init__(self, fused: FusedChunks, active: int, step_limit):
        self.fused, self.active, self.step_limit = fused, active, step_limit
        self.inputs = fused.inputs(step_limit)
        self.collecting = fused.collect_units()
        self.outputs, self.ran, self.done, self.error = None, 0, False, None

    def same(self, other: _Request) -> bool:
        """The same chunk: the same updates and step limit asked for, from the same arrays and counts."""
        asked = (self.fused, self.active, self.step_limit, self.collecting)
        if asked != (other.fused, other.active, other.step_limit, other.collecting):
            return False
        mine, theirs = jax.tree.leaves(self.inputs), jax.tree.leaves(other.inputs)
        return len(mine) == len(theirs) and all(
            a is b or (isinstance(a, int | float) and not isinstance(b, jax.Array) and a == b)
            for a, b in zip(mine, theirs)
        )


class FusedGroup:
    """Agents of one config but their seeds (``--seeds``), each in its own session, trained as one program.

    Each agent's session runs in its own thread, with its own runner, run folder and rows. When every
    agent still training has asked for its next chunk, a thread runs them all at once: the compiled chunk
    ``jax.vmap``-ed over the agents (weights, optimizer states, envs and keys stacked on a leading axis),
    with the fewest updates any of them asked for. An agent whose session ends :meth:`leave`-s, and the
    rest go on without it.

    A runner asks for its next chunk ahead (:meth:`prefetch`), as soon as it has the last one, so the
    next chunk computes while the sessions write their rows, checkpoints and evaluations. A chunk asked
    for ahead is taken only if the runner then asks for the same (updates, step limit) from the same
    state (the same weight, optimizer and env arrays); otherwise it is dropped and the chunk computed anew.

    On a CPU the agents are split into as many parts as there are usable cores (:func:`split_evenly`),
    each part's vmapped chunk run in a thread of its own: one vmapped program of small networks keeps only
    about one core busy (timings in ``benchmarks/README.md``, "Fused PPO on gymnax's CartPole"). Every part
    runs the one compiled program, which the first agent to start its envs sets compiling in a thread of
    its own (:meth:`prepare`), while the other agents are still being built.

    Args:
        places: how many agents will join (:meth:`join`), or leave without training.
        parts: how many parts to run side by side (``None``: the usable cores on a CPU, 1 on an accelerator).
    """

    def __init__(self, places: int, parts: int | None = None):
        import threading

        if parts is None:
            from kerlym.resources import usable_cpus

            parts = usable_cpus() if jax.default_backend() == "cpu" else 1
        self.parts = max(1, int(parts))
        self.live = set(range(places))
        self.requests: dict[int, _Request] = {}  # place -> its next chunk's request, until the chunk runs
        self.running: dict[int, _Request] = {}  # place -> its request in a chunk running or done, not taken
        self._threads: list = []  # the threads of the chunks launched
        self.cond = threading.Condition()
        self.interrupted = False
        self.error: BaseException | None = None
        self.first: FusedChunks | None = None
        self._chunks: dict = {}  # a part's argument shapes -> a Future of its compiled program

    def join(self, place: int, agent) -> None:
        """Make ``agent`` (a fused agent) train in this group as ``place``; the first one's programs are shared."""
        fused = agent.fused
        if fused is None:
            raise ValueError("only agents on the fused JAX path (a gymnax env) train as a group")
        fused.group = (self, place)
        with self.cond:
            if self.first is None:
                self.first = fused
            fused._evaluate = self.first._evaluate  # one compiled evaluation for every seed (same network shape)
            fused._start = self.first._start
            fused._prepared = self.first._prepared

    def prepare(self, fused: FusedChunks) -> None:
        """Compile the chunk for parts of the group's size now, in a thread, from ``fused``'s arguments' shapes.

        Called as each agent starts its envs (:meth:`FusedChunks.begin`); the first call starts the compile,
        and the first chunk waits for it. Parts of another size (a seed left before training) compile then.
        """
        import threading

        with self.cond:
            if self.first is None or self._chunks:
                return
            size = len(split_evenly(len(self.live), self.parts)[0])
            inputs = fused.inputs(None)
            impls, args = self._arguments([inputs] * size, [0] * size, fused.chunk_updates, 0)
            future, new = self._future(impls, args)
        if new:
            compiling = (self.first, impls, args, future)
            threading.Thread(target=self._compile, args=compiling, name="kerlym-compile", daemon=True).start()

    def leave(self, place: int) -> None:
        """``place`` trains no more (its session ended, or it had nothing to train)."""
        with self.cond:
            self.live.discard(place)
            self.requests.pop(place, None)
            self.running.pop(place, None)
            self._launch_when_all_asked()

    def interrupt(self) -> None:
        """Stop every session at its next chunk (each raises ``KeyboardInterrupt``, and its runner checkpoints)."""
        with self.cond:
            self.interrupted = True
            self.cond.notify_all()

    def prefetch(self, place: int, fused: FusedChunks, active: int, step_limit) -> None:
        """Ask ahead for ``place``'s next chunk, from its state now (see the class's docstring)."""
        with self.cond:
            if self.interrupted or self.error is not None or place in self.requests or place in self.running:
                return
            self.requests[place] = _Request(fused, active, step_limit)
            self._launch_when_all_asked()

    def train_chunk(self, place: int, fused: FusedChunks, active: int, step_limit) -> Chunk:
        with self.cond:
            if self.interrupted:
                raise KeyboardInterrupt
            asked = self.running.get(place) or self.requests.get(place)
            if asked is not None and not asked.same(_Request(fused, active, step_limit)):
                # asked ahead for something else, or the state changed since: that chunk is not this one
                if self.requests.pop(place, None) is None:
                    self._wait(lambda: asked.done)
                    self.running.pop(place, None)
                asked = None
            if asked is None:
                asked = self.requests[place] = _Request(fused, active, step_limit)
                self._launch_when_all_asked()
            self._wait(lambda: asked.done)
            self.running.pop(place, None)
            if not asked.done and self.interrupted:
                raise KeyboardInterrupt
            error = asked.error if asked.done else self.error
            if error is not None:
                raise RuntimeError(f"another seed's chunk failed: {error}") from error
        return fused.take(asked.outputs, asked.ran)

    def _wait(self, ready) -> None:
        """Wait (the lock held) until ``ready()``, the group is interrupted or a chunk failed."""
        while not ready() and not self.interrupted and self.error is None:
            self.cond.wait()

    def _launch_when_all_asked(self) -> None:
        """Every live agent has asked for a chunk: run them in a thread (called with the lock held)."""
        import threading

        if not self.requests or set(self.requests) != self.live:
            return
        asked, self.requests = self.requests, {}
        self.running.update(asked)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(threading.Thread(target=self._run, args=(asked,), name="kerlym-chunk", daemon=True))
        self._threads[-1].start()

    def close(self) -> None:
        """Wait for a chunk still computing (one asked for ahead by seeds that then stopped) to end."""
        for thread in list(self._threads):
            thread.join()

    def _run(self, asked: dict) -> None:
        """One chunk for every agent of ``asked`` (place -> request), all at once; each request gets its outputs."""
        places = sorted(asked)
        members = [asked[p] for p in places]
        active = min(m.active for m in members)
        try:
            collecting = min(m.collecting for m in members)  # units in which no seed learns
            parts = split_evenly(len(members), self.parts)
            args = [
                self._arguments(
                    [members[i].inputs for i in part], [members[i].step_limit or 0 for i in part], active, collecting
                )
                for part in parts
            ]
            program = self._program(self.first, *args[0])
            call = program[0]
            if len(parts) == 1:
                outs = [call(*args[0][1])]
            else:
                import concurrent.futures

                with concurrent.futures.ThreadPoolExecutor(len(parts), thread_name_prefix="kerlym-seeds") as pool:
                    outs = list(pool.map(lambda a: call(*a[1]), args))
            results = {}
            for part, out in zip(parts, outs):
                for i, mine in zip(part, self._members(program, out, len(part))):
                    results.setdefault(i, mine)  # a part's repeated last member: its second results are dropped
            with self.cond:
                for i, m in enumerate(members):
                    m.outputs, m.ran, m.done = results[i], active, True
                self.cond.notify_all()
        except BaseException as e:  # noqa: BLE001 -- every waiting session hears of it
            with self.cond:
                self.error = e
                for m in members:
                    m.error, m.done = e, True
                self.cond.notify_all()

    @staticmethod
    def _arguments(inputs: list, limits: list, active: int, collecting: int) -> tuple:
        """One part's arguments to its program (:meth:`_compile`): ``(impls, arguments)``.

        The members' :meth:`FusedChunks.inputs` are stacked leaf by leaf on a new leading axis in NumPy (a
        random key as its raw data, its kind of key in ``impls``; ``None`` for other leaves), where each
        leaf's ``jnp.stack`` would be a small program of its own to compile. Then ``active``, the members'
        step limits and ``collecting``.
        """
        leaves, structure = jax.tree.flatten(inputs[0])
        impls = tuple(str(jax.random.key_impl(x)) if _is_key(x) else None for x in leaves)
        columns = zip(*(jax.tree.leaves(i) for i in inputs))
        stacked = [
            np.stack([np.asarray(jax.random.key_data(x) if impl else x) for x in xs])
            for xs, impl in zip(columns, impls)
        ]
        return impls, (jax.tree.unflatten(structure, stacked), active, np.asarray(limits, dtype=np.int32), collecting)

    def _future(self, impls: tuple, args: tuple) -> tuple:
        """The Future of the program for ``args``'s shapes, and whether it is new (the caller compiles it then).

        Called with the lock held.
        """
        import concurrent.futures

        leaves, structure = jax.tree.flatten(args)
        key = impls, structure, tuple((getattr(x, "shape", None), str(getattr(x, "dtype", type(x)))) for x in leaves)
        new = key not in self._chunks
        if new:
            self._chunks[key] = concurrent.futures.Future()
        return self._chunks[key], new

    @staticmethod
    def _compile(first: FusedChunks, impls: tuple, args: tuple, future) -> None:
        """Compile a part's program: the chunk ``jax.vmap``-ed over the members' stacked inputs (their keys
        made keys again inside), its outputs flat, keys as raw data. Sets ``future`` to
        ``(program, the outputs' structure, their keys' impls)``."""
        size = first.chunk_updates
        chunks = jax.vmap(lambda *a: first.chunk(size, *a), in_axes=(0, 0, 0, 0, 0, 0, None, 0, None))
        traced = []

        def run(stacked, active, limits, collecting):
            leaves, structure = jax.tree.flatten(stacked)
            leaves = [jax.random.wrap_key_data(x, impl=impl) if impl else x for x, impl in zip(leaves, impls)]
            outs = chunks(*jax.tree.unflatten(structure, leaves), active, limits, collecting)
            outs, structure = jax.tree.flatten(outs)
            traced.append((structure, tuple(str(jax.random.key_impl(x)) if _is_key(x) else None for x in outs)))
            return [jax.random.key_data(x) if _is_key(x) else x for x in outs]

        try:
            program = jax.jit(run).lower(*args).compile()
            future.set_result((program, *traced[-1]))
        except BaseException as e:  # noqa: BLE001 -- the chunk that waits for it raises it
            future.set_exception(e)

    def _program(self, first: FusedChunks, impls: tuple, args: tuple):
        """The vmapped chunk compiled for ``args`` (one part's), compiled once for all the parts of its shape."""
        with self.cond:
            future, new = self._future(impls, args)
        if new:
            self._compile(first, impls, args, future)
        return future.result()

    @staticmethod
    def _members(program: tuple, outs: list, count: int) -> list:
        """A part's flat outputs taken apart: the first ``count`` members' outputs, each as its chunk's."""
        _, structure, impls = program
        leaves = [np.asarray(x) for x in outs]
        members = []
        for k in range(count):
            mine = jax.device_put([x[k] for x in leaves])
            mine = [jax.random.wrap_key_data(x, impl=impl) if impl else x for x, impl in zip(mine, impls)]
            members.append(jax.tree.unflatten(structure, mine))
        return members
