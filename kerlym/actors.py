"""Who steps the envs and acts for the learner: this process, or an actor process that runs beside it.

The runner (:mod:`kerlym.runner`) consumes one :class:`Step` per vector step:
the states acted on, the actions, what the envs returned. Where the steps come
from is the choice of ``actors`` (``--actors``):

* ``local`` (:class:`LocalActing`): this process acts and steps the envs, then
  the learner updates, in turn;
* ``process`` (:class:`ProcessActor`): one actor process holds the ``-c N``
  envs and its own copy of the network. It acts (epsilon-greedily for DQN,
  sampling the policy for PG, A2C and PPO) and steps the envs while the learner
  updates, and sends each step through a bounded queue: into the learner's
  replay (DQN, D2QN), its episodes (PG) or its rollout (A2C, A3C, PPO). The
  learner pushes its weights to the actor every ``actor_sync_every`` updates, so
  the actor acts on weights a few updates old: each step records that lag;
* ``ray`` (:class:`RayActors`): the ``-c N`` envs as N Ray actors, on this
  machine or a cluster, each with a copy of the network, feeding the learner
  the same way.

What the learner needs from an act beyond the env's outcome (the log-probability
and value of a sampled action for A2C and PPO, the legal actions acted on for
PG) travels with each step as its ``behaviour`` (:meth:`kerlym.agents.Agent.behaviour`).
A2C and PPO learn from those actions as taken, so with actors their rollouts are
slightly off-policy, as the original's A3C threads were: the weight lag says how much.

The actor process starts with Python's ``spawn`` and builds the agent anew
(its Keras backend and compiled act), so it shares no state with the learner
but the queues.
"""

from __future__ import annotations

import dataclasses
import os
import queue
from typing import NamedTuple

import numpy as np

from kerlym._io import ProcessDied, die_with_parent, native_stderr_silenced
from kerlym.config import ConfigError, field_names
from kerlym.envs import action_masks

AHEAD = 8  # vector steps the actor may run ahead of the learner: the queue's bound, and so the lag's
STOP_POLL = 0.1  # seconds between checks of the actor's stop flag while its queue is full
ACTOR_START = 600.0  # seconds the learner waits for the actor's first message (it imports Keras, builds the net)
ACTOR_STOP = 30.0  # seconds the actor gets to stop before it is terminated
SYNC_STEPS = 400  # env steps between weight pushes by default for DQN (Ape-X's actors pull every 400 frames)
# The actor process is spawned: it imports the __main__ script again, which must not train on import.
UNGUARDED = (
    '--actors process runs your script again in the actor process; put the training under `if __name__ == "__main__":`'
)


class ObservationError(ValueError):
    """An env's observation does not have the shape its observation space declares."""


class WorkerDied(ProcessDied):
    """A process that steps the envs (an env worker, the actor process) died; the message is one line."""


PIPE_ERRORS = (EOFError, BrokenPipeError, ConnectionResetError)  # what a dead worker's pipe raises


def _end_broken(envs) -> str:
    """Stop the workers of ``envs`` (an ``AsyncVectorEnv`` one of whose workers died) and say which died how.

    Gymnasium's ``close`` would first wait for the dead worker's answer and
    raise again, so the processes are ended here and the env marked closed.
    """
    dead = []
    for i, process in enumerate(getattr(envs, "processes", ())):
        process.join(timeout=1.0)
        if process.exitcode is not None:
            dead.append((i, process.exitcode))
    for process in getattr(envs, "processes", ()):
        if process.is_alive():
            process.terminate()
        process.join()
    for pipe in getattr(envs, "parent_pipes", ()):
        if pipe is not None:
            pipe.close()
    envs.closed = True
    if not dead:
        return "an env worker process died"
    s = "s" if len(dead) > 1 else ""
    workers, codes = (", ".join(str(d[k]) for d in dead) for k in (0, 1))
    return f"env worker{s} {workers} of {len(envs.processes)} died (exit code{s} {codes})"


class Step(NamedTuple):
    """One vector step of the ``-c N`` envs, as the learner consumes it.

    Attributes:
        states: the flat states acted on, ``[n, input_dim]``.
        actions: the actions taken, ``[n]``.
        values: the network's outputs for ``states`` (``None`` when every action was random).
        next_frames: per env, the observation after the action (an episode's last, where one ended).
        obs: per env, the observation now: a new episode's first where one ended.
        rewards, terminated, truncated: ``[n]`` each.
        masks: the legal actions at ``obs`` ``[n, A]``, when the env gives action masks.
        final_masks: the legal actions at the ended episodes' last observations, when there are masks.
        version: the learner's update count when the weights that chose ``actions`` were pushed.
        behaviour: what the learner's agent needs of the act itself (:meth:`kerlym.agents.Agent.behaviour`):
            a tuple of per-env arrays (or ``None`` entries), or ``None``.
    """

    states: np.ndarray
    actions: np.ndarray
    values: np.ndarray | None
    next_frames: list
    obs: list
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    masks: np.ndarray | None
    final_masks: np.ndarray | None
    version: int
    behaviour: tuple | None = None


def sync_every(config) -> int:
    """Learner updates between weight pushes: ``actor_sync_every``, or by default every update of the policy
    agents, whose updates come a rollout or an episode apart, and about :data:`SYNC_STEPS` env steps for DQN.

    A push costs the learner and the actor milliseconds for a large network (Nature CNN: 6.7 MB of weights),
    so DQN, which updates every few steps, cannot afford one per update.
    """
    if config.actor_sync_every is not None:
        return int(config.actor_sync_every)
    update_freq = getattr(config, "update_freq", None)
    return 1 if update_freq is None else max(1, SYNC_STEPS // int(update_freq))


def _checked(agent, frame, when: str, step: int | None = None):
    """``frame``, if it has the shape the env's observation space declares; else an :class:`ObservationError`.

    ``when`` (followed by ``step``, if given) says where in the message.
    """
    if np.shape(frame) != agent.frame_shape:
        when = when if step is None else f"{when} {step}"
        raise ObservationError(
            f"the env returned an observation of shape {np.shape(frame)}, but its observation_space declares "
            f"{agent.frame_shape} ({when})"
        )
    return frame


class LocalActing:
    """The envs step and the agent acts in this process, in turn with the learner's updates."""

    remote = False  # the learner's agent did the acting itself

    def __init__(self, agent):
        self.agent = agent
        self.n = agent.concurrency
        self.envs = agent.vector_env()
        self.histories = [agent.frame_history() for _ in range(self.n)]
        self.masks = None

    def reset(self, seed) -> tuple[list, np.ndarray | None]:
        """Reset the envs (``seed``: the first reset's); returns the first observations and their legal actions."""
        try:
            obs, info = self.envs.reset(seed=seed)
        except PIPE_ERRORS:
            raise WorkerDied(_end_broken(self.envs)) from None
        self.masks = action_masks(info, self.n)
        for i in range(self.n):
            self.histories[i].push(_checked(self.agent, obs[i], "reset"), first=True)
        return obs, self.masks

    def step(self, total_steps: int) -> Step:
        """Act on the newest states and step the envs; ``total_steps`` (before the step) goes in error messages."""
        agent, n = self.agent, self.n
        states = self.histories[0].latest() if n == 1 else np.concatenate([h.latest() for h in self.histories])
        actions, values = agent.act(states, masks=self.masks)
        try:
            obs, rewards, terminated, truncated, infos = self.envs.step(actions)
        except PIPE_ERRORS:
            raise WorkerDied(_end_broken(self.envs)) from None
        done = terminated | truncated
        masks = action_masks(infos, n)
        final_masks = action_masks(infos.get("final_info"), n) if masks is not None and done.any() else None
        next_frames = []
        for i in range(n):
            nxt = _checked(agent, infos["final_obs"][i] if done[i] else obs[i], "step", total_steps + n)
            self.histories[i].push(nxt, first=False)
            if done[i]:
                self.histories[i].push(_checked(agent, obs[i], "reset after step", total_steps + n), first=True)
            next_frames.append(nxt)
        self.masks = masks
        return Step(
            states, actions, values, next_frames, obs, rewards, terminated, truncated, masks, final_masks,
            agent.updates, agent.behaviour(),
        )  # fmt: skip

    def after_learning(self) -> None:
        """Called after the learner's step (its updates, if any); nothing to do here."""

    def restarts(self) -> list:
        """``(stream, (obs, masks))`` of envs that began anew outside an episode's end (a restarted actor): none."""
        return []

    def episode_stats(self, stream: int) -> dict:
        """Extra statistics for the row of an episode of env ``stream`` that just ended."""
        return {}

    # -- the episodes in progress, for an exact resume where the envs can save theirs (self-play) --------------------
    def get_state(self) -> tuple[dict, dict[str, np.ndarray]] | None:
        """The envs' games in progress, their frame histories and legal actions; ``None`` where the envs cannot
        save their state (Gymnasium's envs: a resumed run resets them)."""
        if not hasattr(self.envs, "get_state"):
            return None
        meta, arrays = self.envs.get_state()
        arrays = {f"envs/{k}": v for k, v in arrays.items()}
        for i, history in enumerate(self.histories):
            arrays.update({f"history/{i}/{k}": v for k, v in history.history_arrays().items()})
        if self.masks is not None:
            arrays["masks"] = self.masks
        return {"envs": meta, "streams": self.n}, arrays

    def set_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> bool:
        """Restore what :meth:`get_state` returned instead of :meth:`reset`; False (nothing changed) where it cannot."""
        if not hasattr(self.envs, "set_state") or int(meta["streams"]) != self.n:
            return False
        self.envs.set_state(meta["envs"], {k[5:]: v for k, v in arrays.items() if k.startswith("envs/")})
        for i, history in enumerate(self.histories):
            prefix = f"history/{i}/"
            history.load_history_arrays({k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)})
        self.masks = np.asarray(arrays["masks"], dtype=bool) if "masks" in arrays else None
        return True

    def summary(self) -> dict | None:
        """What the actors did over the session, or ``None`` when acting was local."""
        return None

    def close(self) -> None:
        """The envs belong to the agent, which closes them."""


# -- the actor process ---------------------------------------------------------
def actor_recipe(agent) -> tuple:
    """What an actor process needs to build an agent that acts as ``agent`` does, without learning.

    A DQN actor's replay memory shrinks to one batch and it keeps no weight average: it never updates.
    """
    if agent.env_spec is None:
        raise ConfigError(f"--actors {agent.config.actors} needs an env id or a callable that makes envs, not an env")
    c = agent.config
    names = set(field_names(type(c)))
    changes = {"actors": "local"}
    if "max_memory" in names:  # a DQN actor never updates
        changes.update(max_memory=c.batch_size, ema_steps=None, learning_starts=None)
    config = dataclasses.replace(c, **changes)
    factory_kwargs = {k: v for k, v in agent.factory_kwargs.items() if k not in names}
    return type(agent), agent.env_spec, config, factory_kwargs


def pack_recipe(agent, dumps=None) -> bytes:
    """:func:`actor_recipe` pickled (``dumps``: default ``pickle.dumps``; Ray's cloudpickle for Ray actors).

    The child unpickles it itself (:func:`build_actor_agent`), so that importing
    the agent's module (Keras, TensorFlow) happens after it has quieted TensorFlow's
    start-up logs, not while its process starts.
    """
    import pickle

    return (dumps or pickle.dumps)(actor_recipe(agent))


def build_actor_agent(packed: bytes, **config_changes):
    """The acting agent of an actor process or Ray actor, from :func:`pack_recipe`'s bytes, built quietly.

    TensorFlow's C++ start-up lines are hidden as the command hides them (:func:`kerlym._io.native_stderr_silenced`);
    an exception still surfaces, once stderr is back.
    """
    import pickle

    limit_threads()
    with native_stderr_silenced():
        cls, env_spec, config, factory_kwargs = pickle.loads(packed)
        if config_changes:
            config = dataclasses.replace(config, **config_changes)
        return cls(env_spec, config, **factory_kwargs)


def limit_threads() -> None:
    """One compute thread per library in the actor: the learner's update needs the other core."""
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _put(q, item, stop, learner: int | None = None) -> bool:
    """Put ``item`` on ``q``, waiting while it is full; ``False`` if ``stop`` was set meanwhile or the learner
    (PID ``learner``, this process's parent) is gone."""
    while not stop.is_set():
        try:
            q.put(item, timeout=STOP_POLL)
            return True
        except queue.Full:
            if learner is not None and os.getppid() != learner:
                return False
    return False


def _newest_weights(agent, weights_q, version: int, wait: bool = False) -> int:
    """Load the newest of the weights the learner pushed since the last call, if any; returns the version acting."""
    newest = None
    while True:
        try:
            newest = weights_q.get(timeout=ACTOR_START) if wait else weights_q.get_nowait()
        except queue.Empty:
            break
        wait = False
    if newest is None:
        return version
    agent.steps.set_weights(newest[1])
    return newest[0]


def actor_main(recipe, start: dict, steps_q, weights_q, stop) -> None:
    """The actor process: act and step the envs, sending ``("reset" | "step" | "error", payload)`` to the learner.

    Args:
        recipe: :func:`pack_recipe`'s bytes: the agent class, env, config and factory arguments.
        start: the learner's counters (``total_steps``, ``episode``, ``epsilon``), the first reset's seed
            and a seed for the actor's exploration draws.
        steps_q: where the steps go.
        weights_q: where the learner's ``(version, weights)`` arrive.
        stop: set by the learner when it no longer wants steps.
    """
    import signal

    limit_threads()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the learner's to act on: it stops us
    learner = start.get("learner")
    die_with_parent()  # a learner killed by kill -9 takes its actor with it
    if learner is not None and os.getppid() != learner:
        return
    try:
        agent = build_actor_agent(recipe)
        agent.total_steps, agent.episode = start["total_steps"], start["episode"]
        if agent.epsilon is not None:
            agent.epsilon = start["epsilon"]
        agent.rng = np.random.default_rng(start["rng_seed"])
        acting = LocalActing(agent)
        version = _newest_weights(agent, weights_q, -1, wait=True)
        if not _put(steps_q, ("reset", acting.reset(start["reset_seed"])), stop, learner):
            return
        while not stop.is_set():
            version = _newest_weights(agent, weights_q, version)
            step = acting.step(agent.total_steps)._replace(version=version)
            # Epsilon follows the same schedule as the learner's: by steps, or by episodes ended.
            agent.total_steps += acting.n
            agent.schedule_exploration(agent.total_steps)
            for i in (step.terminated | step.truncated).nonzero()[0]:
                agent.episode += 1
                agent.end_episode(i)
            if not _put(steps_q, ("step", step), stop, learner):
                return
    except BaseException as e:  # the learner re-raises it; an exception that does not pickle goes as text
        try:
            steps_q.put(("error", e), timeout=5)
        except Exception:
            steps_q.put(("error", RuntimeError(f"{type(e).__name__}: {e}")), timeout=5)
    finally:
        if "agent" in locals():
            agent.close()


class ProcessActor:
    """One actor process steps the ``-c N`` envs and acts; this process learns from what it sends.

    The learner's counters and epsilon stay its own: the actor follows the same
    schedule, so the rows' epsilon is the one the actions used. Episode rows,
    checkpoints and resume work as with local acting; the steps the actor ran
    ahead when training stops are dropped, as unfinished episodes are.

    Args:
        agent: the learner.
    """

    remote = True

    def __init__(self, agent):
        import multiprocessing

        # The check multiprocessing makes before it refuses with a long traceback: a spawned child, still
        # importing the user's __main__ script, has reached a training run again.
        if getattr(multiprocessing.current_process(), "_inheriting", False):
            raise SystemExit(f"kerlym: error: {UNGUARDED}")
        self.agent = agent
        self.n = agent.concurrency
        self.received = False  # whether the actor has sent anything yet
        self.sync_every = sync_every(agent.config)
        ctx = multiprocessing.get_context("spawn")
        self.steps_q = ctx.Queue(maxsize=AHEAD)
        self.weights_q = ctx.Queue()
        self.stop = ctx.Event()
        start = {
            "total_steps": agent.total_steps,
            "episode": agent.episode,
            "epsilon": float(agent.epsilon if agent.epsilon is not None else 0.0),
            "reset_seed": agent.reset_seed,
            "rng_seed": int(agent.rng.integers(2**63)),
            "learner": os.getpid(),
        }
        self.process = ctx.Process(
            target=actor_main,
            args=(pack_recipe(agent), start, self.steps_q, self.weights_q, self.stop),
            name="kerlym-actor",
        )
        self.process.start()
        self.pushes: list[int] = []  # the learner's update count at each weight push
        self.lags: list[int] = []  # per vector step: learner updates since the acting weights were pushed
        self.episode_lags = np.zeros(self.n)
        self.episode_steps = np.zeros(self.n, dtype=np.int64)
        self._push()

    def _push(self) -> None:
        """Send the learner's weights; the actor loads the newest of those waiting before each act.

        The weights' queue is unbounded, so a push never waits for an actor that
        is itself waiting for the learner to take its steps.
        """
        self.weights_q.put((self.agent.updates, self.agent.steps.get_weights()))
        self.pushes.append(self.agent.updates)

    def _receive(self, timeout: float = 1.0):
        """The actor's next message; an error the actor sent, or its death, raises here."""
        waited = 0.0
        while True:
            try:
                kind, payload = self.steps_q.get(timeout=timeout)
                break
            except queue.Empty:
                waited += timeout
                if not self.process.is_alive():
                    hint = "" if self.received else f"; if it printed nothing else: {UNGUARDED}"
                    raise WorkerDied(f"the actor process died (exit code {self.process.exitcode}){hint}") from None
                if waited > ACTOR_START:
                    raise RuntimeError(f"no step from the actor process in {ACTOR_START:.0f} s") from None
        self.received = True
        if kind == "error":
            raise payload
        return payload

    def reset(self, seed) -> tuple[list, np.ndarray | None]:
        """The actor's first observations and their legal actions (it reset the envs with ``seed``)."""
        return self._receive()

    def step(self, total_steps: int) -> Step:
        step = self._receive()
        lag = self.agent.updates - step.version
        self.lags.append(lag)
        self.episode_lags += lag
        self.episode_steps += 1
        return step

    restarts = LocalActing.restarts  # the actor process is not restarted: its death ends training (Ray's are)

    def after_learning(self) -> None:
        """Push the weights once ``actor_sync_every`` more updates have run since the last push."""
        if self.agent.updates // self.sync_every > self.pushes[-1] // self.sync_every:
            self._push()

    def episode_stats(self, stream: int) -> dict:
        """The mean weight lag over the episode's steps, as ``weight_lag``."""
        lag = self.episode_lags[stream] / max(self.episode_steps[stream], 1)
        self.episode_lags[stream], self.episode_steps[stream] = 0.0, 0
        return {"weight_lag": float(lag)}

    def summary(self) -> dict:
        """Weight pushes and the weight lag (learner updates) over the session's steps."""
        lags = np.asarray(self.lags, dtype=np.float64)
        return {
            "actors": "actor process",
            "steps": int(len(lags) * self.n),
            "weight_pushes": len(self.pushes),
            "lag_mean": float(lags.mean()) if len(lags) else float("nan"),
            "lag_max": int(lags.max()) if len(lags) else 0,
        }

    def close(self) -> None:
        """Stop the actor process and wait for it."""
        self.stop.set()
        for _ in range(int(ACTOR_STOP / STOP_POLL)):  # drain, so an actor blocked on a full queue sees the flag
            if not self.process.is_alive():
                break
            try:
                self.steps_q.get(timeout=STOP_POLL)
            except queue.Empty:
                pass
            self.process.join(timeout=STOP_POLL)
        if self.process.is_alive():  # still building its agent, or stuck in an env
            self.process.terminate()
        self.process.join()
        self.steps_q.close()
        self.weights_q.close()
        self.weights_q.cancel_join_thread()  # weights the stopped actor never read must not hold up exit
