"""The ``-c N`` envs as N Ray actors (``--actors ray``, ``-c N --ray``), each with one env and a copy of the policy.

Ray is imported only inside these classes (``pip install "kerlym[ray]"``).
"""

from __future__ import annotations

import time

import numpy as np

from kerlym.actors import LocalActing, ProcessActor, Step, build_actor_agent, pack_recipe, sync_every

RETRY = 0.5  # seconds between calls to an actor that Ray is restarting
CHUNK = 16  # steps each Ray actor collects per call; the learner takes one chunk while the actors collect the next


class EnvActor:
    """One env and a copy of the policy, as a Ray actor (:class:`RayActors` makes it remote).

    Ray restarts it after its process dies; the new one starts a fresh episode,
    which its first :meth:`collect` reports as ``reset``.
    """

    def __init__(self, recipe: bytes, seed, rng_seed: int):
        self.agent = build_actor_agent(recipe, concurrency=1)
        self.agent.rng = np.random.default_rng(rng_seed)
        self.acting = LocalActing(self.agent)
        self.seed, self.version, self.reset = seed, -1, None

    def node_id(self) -> str:
        """The Ray node this actor runs on."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def collect(self, steps: int, epsilon: float, version: int, weights) -> dict:
        """``steps`` steps acting epsilon-greedily with ``weights`` (``None``: the ones it has, ``version``)."""
        if weights is not None and version != self.version:
            self.agent.steps.set_weights(weights)
            self.version = version
        reset = None
        if self.reset is None:  # a new actor (first call, or restarted by Ray): its envs start an episode
            reset = self.reset = self.acting.reset(self.seed)
            self.seed = None
        if self.agent.epsilon is not None:
            self.agent.epsilon = epsilon
        return {"reset": reset, "steps": [self.acting.step(0)._replace(version=self.version) for _ in range(steps)]}


def merge_behaviour(behaviours: list) -> tuple | None:
    """The behaviour of one vector step from the one-env behaviours of several actors (entry by entry)."""
    if behaviours[0] is None:
        return None
    return tuple(None if parts[0] is None else np.concatenate(parts) for parts in zip(*behaviours, strict=True))


def merge_steps(steps: list[Step]) -> Step:
    """One vector step from the one-env steps of several actors, stream ``i`` from ``steps[i]``."""
    values = None if any(s.values is None for s in steps) else np.concatenate([s.values for s in steps])
    masks = None if steps[0].masks is None else np.concatenate([s.masks for s in steps])
    final = [s.final_masks if s.final_masks is not None else s.masks for s in steps]
    return Step(
        np.concatenate([s.states for s in steps]),
        np.concatenate([s.actions for s in steps]),
        values,
        [s.next_frames[0] for s in steps],
        [s.obs[0] for s in steps],
        np.concatenate([s.rewards for s in steps]),
        np.concatenate([s.terminated for s in steps]),
        np.concatenate([s.truncated for s in steps]),
        masks,
        None if masks is None else np.concatenate(final),
        min(s.version for s in steps),
        merge_behaviour([s.behaviour for s in steps]),
    )


class RayActors:
    """The ``-c N`` envs as N Ray actors, each with one env and a copy of the policy, feeding this learner.

    The actors act on weights pushed every ``actor_sync_every`` updates. For
    DQN and D2QN (Ape-X style) they act epsilon-greedily, with the learner's
    epsilon at the time of each call, and their steps go into the learner's
    replay; for A2C, A3C and PPO their steps make up the learner's rollouts
    (A3C's asynchrony: the actions come from weights up to a few updates old),
    and for PG its episodes. Each call collects :data:`CHUNK` steps; the learner
    consumes one chunk of every actor while they collect the next. An actor
    whose process dies is restarted by Ray (``max_restarts``); its chunk in
    flight is lost, and its env starts a new episode (:meth:`restarts`).

    Each actor asks Ray for one CPU, or an equal share of the cluster's CPUs
    when there are fewer than N, so ``-c 16 --ray`` runs on a laptop too.
    Ray starts here if it is not running: on the cluster at ``RAY_ADDRESS`` when set, else on this machine.
    """

    remote = True

    def __init__(self, agent):
        import ray
        from ray import cloudpickle

        self.agent, self.n = agent, agent.concurrency
        self.sync_every = sync_every(agent.config)
        self.started_ray = not ray.is_initialized()
        if self.started_ray:
            ray.init(include_dashboard=False, configure_logging=False)
        cpus = min(1.0, ray.cluster_resources().get("CPU", 1.0) / self.n)
        remote = ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=cpus)(EnvActor)
        recipe = pack_recipe(agent, cloudpickle.dumps)  # cloudpickle: an env may come from a lambda
        seed = agent.reset_seed
        self.actors = [
            remote.remote(recipe, None if seed is None else seed + i, int(agent.rng.integers(2**63)))
            for i in range(self.n)
        ]
        self.pushes: list[int] = []
        self.lags: list[int] = []
        self.restarted: list[tuple[int, tuple]] = []
        self.restart_count = 0
        self.episode_lags, self.episode_steps = np.zeros(self.n), np.zeros(self.n, dtype=np.int64)
        self.ready: list[Step] = []
        self._push()
        self.pending = [self._call(i) for i in range(self.n)]

    def _push(self) -> None:
        import ray

        self.weights = ray.put(self.agent.steps.get_weights())
        self.pushes.append(self.agent.updates)

    def _call(self, i: int):
        epsilon = self.agent.epsilon or 0.0  # DQN's; the policy agents sample their policy
        return self.actors[i].collect.remote(CHUNK, epsilon, self.pushes[-1], self.weights)

    def _chunks(self) -> list[dict]:
        """One chunk from every actor, calling each again at once; an actor that died is called until it answers."""
        import ray
        from ray.exceptions import RayActorError

        chunks = []
        for i in range(self.n):
            while True:
                try:
                    chunk = ray.get(self.pending[i])
                    break
                except RayActorError:  # its process died; Ray restarts it, and the chunk in flight is lost
                    time.sleep(RETRY)  # calls fail until the new process is up
                    self.pending[i] = self._call(i)
            self.pending[i] = self._call(i)
            chunks.append(chunk)
        return chunks

    def reset(self, seed) -> tuple[list, np.ndarray | None]:
        chunks = self._chunks()
        self._queue(chunks)
        resets = [c["reset"] for c in chunks]
        masks = None if resets[0][1] is None else np.concatenate([r[1] for r in resets])
        return [r[0][0] for r in resets], masks

    def _queue(self, chunks) -> None:
        self.ready = [merge_steps(list(group)) for group in zip(*(c["steps"] for c in chunks), strict=True)]
        self.ready.reverse()

    def step(self, total_steps: int) -> Step:
        if not self.ready:
            chunks = self._chunks()
            # A restarted actor's env began a new episode: the learner starts that stream's episode afresh.
            self.restarted = [(i, c["reset"]) for i, c in enumerate(chunks) if c["reset"] is not None]
            self.restart_count += len(self.restarted)
            self._queue(chunks)
        step = self.ready.pop()
        lag = self.agent.updates - step.version
        self.lags.append(lag)
        self.episode_lags += lag
        self.episode_steps += 1
        return step

    def restarts(self) -> list[tuple[int, tuple]]:
        """``(stream, (obs, masks))`` of the actors restarted since the last call (their first observation)."""
        out, self.restarted = self.restarted, []
        for i, _ in out:
            self.episode_lags[i], self.episode_steps[i] = 0.0, 0
        return out

    def after_learning(self) -> None:
        if self.agent.updates // self.sync_every > self.pushes[-1] // self.sync_every:
            self._push()

    episode_stats = ProcessActor.episode_stats

    def summary(self) -> dict:
        lags = np.asarray(self.lags, dtype=np.float64)
        return {
            "actors": f"{self.n} Ray actors",
            "steps": int(len(lags) * self.n),
            "weight_pushes": len(self.pushes),
            "lag_mean": float(lags.mean()) if len(lags) else float("nan"),
            "lag_max": int(lags.max()) if len(lags) else 0,
            "restarts": self.restart_count,
        }

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        if self.started_ray:
            ray.shutdown()
