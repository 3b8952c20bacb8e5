"""The training session: the env loop, episode rows, the checkpoint and evaluation schedule, signals.

The runner owns time: when the envs step, when an episode's row is written,
when to checkpoint and evaluate, and when to stop. The agent owns learning: it
chooses actions (``act``), sees each transition (``observe``), and decides
after each step whether to update (``after_step``). Rows go to small sinks
(:mod:`kerlym.sinks`): the console, ``progress.csv``, the live plot.

Data flows one way: env -> preprocessor (inside the env) -> frame history ->
``agent.act`` -> env step -> ``agent.observe`` -> ``agent.after_step`` (memory,
updates) -> episode rows -> sinks.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

from kerlym import actors, checkpoints
from kerlym._io import first_line, take_deferred_signals
from kerlym.actors import ObservationError  # noqa: F401 (kerlym.runner's API)
from kerlym.config import ConfigError

SNAPSHOT_EVERY = 10_000  # env steps between the in-memory copies of the agent's state of a run without a run folder


class NonFiniteLoss(RuntimeError):
    """An update produced a NaN or infinite loss; training stops before it can be checkpointed."""


class Runner:
    """Runs an agent's training session.

    Args:
        agent: a :class:`kerlym.agents.base.Agent`.
        run_dir: the run folder to checkpoint into (``None``: no checkpoints).
        sinks: objects with ``on_episode(runner, row)`` and optionally ``on_tick(runner)``
            (about every 100 env steps), ``on_update(runner, losses)`` (after a step or episode
            end that trained, with its new losses), ``on_eval(runner, mean, std, best)``, ``on_games(runner,
            games)`` (with ``eval_opponents``: :func:`kerlym.stats.opponent_results` by opponent) and ``close()``.
        checkpoint_every: env steps between checkpoints (with ``run_dir``).
        eval_every: env steps between greedy evaluations (with ``run_dir``, the best is kept as ``best.keras``).
        eval_episodes: episodes per evaluation.
        search: play evaluation moves by a PUCT search of this many simulations (0: the network's greedy move).
        eval_opponents: two-player games: each evaluation plays each of these fixed opponents (``"random"``,
            ``"mcts:N"``, ``"gnugo:L"``) instead of the training env's, on envs ``opponent_env(name)`` makes
            (the agent's seat alternating); the first one's results are the evaluation's mean and pick
            ``best.keras``. The sinks' ``on_games(runner, games)`` hears of each opponent's results.
        opponent_env: ``opponent_env(name)`` -> a new env playing that opponent (with ``eval_opponents``).
        save_memory: include the replay memory in checkpoints.
        signals: the signals that stop training after the current step (and save, with a run folder);
            a second one while saving is ignored with a message. Handled only in the main thread. The
            command passes SIGINT and SIGTERM; ``agent.learn`` only SIGINT (Ctrl-C), so that a SIGTERM
            still ends a Python program as usual.
    """

    def __init__(
        self,
        agent,
        run_dir: str | None = None,
        sinks=(),
        checkpoint_every: int | None = None,
        eval_every: int | None = None,
        eval_episodes: int = 20,
        search: int = 0,
        save_memory: bool = False,
        signals=(signal.SIGINT, signal.SIGTERM),
        eval_opponents=(),
        opponent_env: Callable | None = None,
    ):
        self.agent = agent
        self.run_dir = run_dir
        self.sinks = list(sinks)
        self.checkpoint_every = checkpoint_every if run_dir else None
        # In memory, with a run folder or without: the state a non-finite loss puts the agent back to.
        self.snapshot_every = checkpoint_every or SNAPSHOT_EVERY
        self.finite_state: tuple | None = None
        self.eval_every = eval_every
        self.eval_episodes = eval_episodes
        self.search = search
        self.eval_opponents = tuple(eval_opponents or ())
        if self.eval_opponents and opponent_env is None:
            raise ValueError("eval_opponents needs opponent_env, which makes an env playing each")
        self.opponent_env = opponent_env
        self.last_games: dict | None = None  # the newest evaluation's results by opponent (with eval_opponents)
        self.save_memory = save_memory
        self.signals = tuple(signals)
        self.interrupted: list[int] = []
        self.saving = False
        self.last_checkpoint: str | None = None
        self._checkpointed: tuple | None = None  # :meth:`_stamp` when the last checkpoint was written
        self.evaluations = 0  # made by :meth:`evaluate`
        self.last_evaluation: tuple[int, np.ndarray] | None = None  # (step, greedy returns) of the newest
        self.finishing = False  # True during the final evaluation, after the loop
        self.will_evaluate = False  # whether this run evaluates (the fused path compiles the evaluation early)
        self.actor_summary: dict | None = None  # with actors: weight pushes and lag (kerlym.actors)
        # While the env loop runs: who acts, and each env's episode so far (return, length, outputs) with the
        # losses not yet in a row, which a checkpoint keeps where the envs can save their games (self-play).
        self.acting = None
        self.progress: tuple | None = None
        self.t0 = time.perf_counter()
        self.steps0 = agent.total_steps

    # -- schedule ---------------------------------------------------------
    @staticmethod
    def _next(step: int, every: int | None) -> int | None:
        return None if every is None else (step // every + 1) * every

    def speed(self) -> float:
        """Env steps per second since this runner started."""
        return (self.agent.total_steps - self.steps0) / max(time.perf_counter() - self.t0, 1e-9)

    # -- the loop -----------------------------------------------------------
    def run(
        self,
        max_steps: int | None = None,
        max_episodes: int | None = None,
        callback: Callable | None = None,
        step_callback: Callable | None = None,
        final_evaluation: bool = False,
    ) -> list[dict]:
        """Train until ``max_steps`` more env steps or ``max_episodes`` more episodes (forever if neither).

        ``callback(agent, row)`` runs after each episode; returning ``True`` stops training.
        ``step_callback(agent)`` runs about every 100 env steps. With a run folder a final
        checkpoint is written however training stops (limit, callback, signal, error).
        ``final_evaluation``: unless a signal stopped training, end with a greedy evaluation of
        ``eval_episodes`` episodes (none if one was just made at this step), which the sinks hear of.
        Returns the agent's per-episode rows.
        """
        agent = self.agent
        previous = self._install_signals()
        self.t0, self.steps0 = time.perf_counter(), agent.total_steps
        self.will_evaluate = self.eval_episodes > 0 and (final_evaluation or bool(self.eval_every))
        try:
            if max_steps != 0 and max_episodes != 0 and not self.interrupted:
                self._snapshot()
                self._loop(max_steps, max_episodes, callback, step_callback)
        except NonFiniteLoss as error:  # never checkpoint non-finite weights; the last finite checkpoint stays
            step = self._restore_snapshot()
            if step is None:
                raise
            raise NonFiniteLoss(f"{error}; the agent is back at step {step}, its last finite weights") from None
        except BaseException as error:  # an env or a callback failed: keep the work done so far, then re-raise
            if self.run_dir is not None:
                self._checkpoint_after(error)
            raise
        else:
            if self.run_dir is not None and self._checkpointed != self._stamp():  # not one just written
                self.checkpoint()
            done = self.last_evaluation is not None and self.last_evaluation[0] == agent.total_steps
            if final_evaluation and self.eval_episodes > 0 and not self.interrupted and not done:
                self.finishing = True
                self.evaluate()
        finally:
            self._restore_signals(previous)
            for sink in self.sinks:
                if hasattr(sink, "close"):
                    sink.close()
        return agent.episodes

    def _loop(self, max_steps, max_episodes, callback, step_callback):
        if self.agent.fused is not None:  # a JAX-native env: the agent trains in compiled chunks
            self._consume_chunks(max_steps, max_episodes, callback, step_callback)
            return
        acting = acting_for(self.agent)  # this process, or an actor process that steps the envs
        try:
            self._consume(acting, max_steps, max_episodes, callback, step_callback)
        finally:
            acting.close()
            self.actor_summary = acting.summary()

    def _consume(self, acting, max_steps, max_episodes, callback, step_callback):
        agent = self.agent
        n = agent.concurrency
        step_limit = None if max_steps is None else agent.total_steps + max_steps
        agent.begin_run(step_limit)
        episode_limit = None if max_episodes is None else agent.episode + max_episodes
        tick_every = max(1, 100 // n)
        next_checkpoint = self._next(agent.total_steps, self.checkpoint_every)
        next_eval = self._next(agent.total_steps, self.eval_every)
        next_snapshot = self._next(agent.total_steps, self.snapshot_every)
        # wall_time goes on from the last row (a resumed run's rows were read back from progress.csv).
        last_wall = float(agent.episodes[-1].get("wall_time", 0.0)) if agent.episodes else 0.0
        start = time.perf_counter() - (last_wall if math.isfinite(last_wall) else 0.0)
        # Per env: the episode's return and length so far, and the network's outputs at each step it was consulted.
        ep_reward, ep_len = [0.0] * n, [0] * n
        ep_values: list[list[np.ndarray]] = [[] for _ in range(n)]

        losses: list[float] = []  # the updates' losses since any env's last episode ended: that row's loss
        self.acting, self.progress = acting, (ep_reward, ep_len, ep_values, losses)
        if not self._restore_in_flight():  # a checkpoint's games in progress go on; else every env starts anew
            obs, masks = acting.reset(agent.reset_seed)
            for i in range(n):
                agent.begin_episode(obs[i], i, mask=None if masks is None else masks[i])
        agent.reset_seed = None  # seed only the first reset; later resets continue each env's RNG
        vector_steps = 0
        while True:
            s = acting.step(agent.total_steps)
            if acting.remote and s.behaviour is not None:  # an actor acted: its act becomes the agent's own
                agent.adopt(s.states, s.behaviour)
            for i, (first, first_masks) in acting.restarts():  # a restarted actor's env: its episode begins anew
                ep_reward[i], ep_len[i], ep_values[i] = 0.0, 0, []
                agent.begin_episode(first[0], i, mask=None if first_masks is None else first_masks[0])
            done = s.terminated | s.truncated
            dones, rewards, values = done.tolist(), s.rewards.tolist(), s.values
            steps_before = agent.total_steps
            agent.total_steps += n
            # The legal actions at each next frame: an ended episode's last frame has its own.
            next_masks = s.final_masks if s.final_masks is not None and True in dones else s.masks
            for i in range(n):
                ep_reward[i] += rewards[i]
                ep_len[i] += 1
                if values is not None:  # statistics over the steps where the network was consulted
                    ep_values[i].append(values[i])
                mask = None if s.masks is None else (next_masks if dones[i] else s.masks)[i]
                a, r, term, trunc = s.actions[i], s.rewards[i], s.terminated[i], s.truncated[i]
                agent.observe(i, s.states[i], a, r, term, trunc, s.next_frames[i], mask=mask)
            new = agent.after_step(steps_before)
            if new:
                losses.extend(new)
                self._updated(new)
            acting.after_learning()
            stop = False
            for i in [i for i, d in enumerate(dones) if d] if True in dones else ():
                agent.episode += 1
                epsilon = math.nan if agent.epsilon is None else agent.epsilon  # the episode's own (PG has none)
                extra, new = agent.end_episode(i)  # DQN decays epsilon here; PG updates, so its loss joins this row
                if new:
                    losses.extend(new)
                    self._updated(new)
                max_q, min_q = mean_extremes(ep_values[i])
                row = {
                    "episode": agent.episode,
                    "total_steps": agent.total_steps,
                    "reward": float(ep_reward[i]),
                    "length": int(ep_len[i]),
                    "epsilon": epsilon,
                    "loss": float(np.mean(losses)) if losses else float("nan"),
                    "max_q": max_q,
                    "min_q": min_q,
                    "wall_time": time.perf_counter() - start,
                }
                losses.clear()
                row.update(extra)
                row.update(acting.episode_stats(i))
                agent.episodes.append(row)
                ep_reward[i], ep_len[i], ep_values[i] = 0.0, 0, []
                agent.begin_episode(s.obs[i], i, mask=None if s.masks is None else s.masks[i])
                if self._episode_ended(row, callback, episode_limit):
                    stop = True
            # Checkpoints and evaluations come after the step's episodes are counted, so a checkpoint's
            # episode count and the rows kept on resume always agree.
            vector_steps += 1
            if vector_steps % tick_every == 0:
                self._tick(step_callback)
            if next_checkpoint is not None or next_eval is not None:
                next_checkpoint, next_eval = self._checkpoint_and_evaluate_when_due(next_checkpoint, next_eval)
            if agent.total_steps >= next_snapshot:
                self._snapshot()
                next_snapshot = self._next(agent.total_steps, self.snapshot_every)
            at_limit = step_limit is not None and agent.total_steps >= step_limit
            if stop or agent.stop_requested or self.interrupted or at_limit:
                agent.stop_requested = False
                return

    def _consume_chunks(self, max_steps, max_episodes, callback, step_callback):
        """The loop of a fused agent: a chunk of updates at a time, then its episodes' rows, checkpoints, evaluations.

        Each chunk trains whole rollouts and ends at the first rollout that reaches the step budget, the
        next checkpoint or the next evaluation (or after ``fused.chunk_updates`` updates), so those come
        at most a rollout after their step.
        """
        agent, fused = self.agent, self.agent.fused
        step_limit = None if max_steps is None else agent.total_steps + max_steps
        agent.begin_run(step_limit)
        episode_limit = None if max_episodes is None else agent.episode + max_episodes
        next_checkpoint = self._next(agent.total_steps, self.checkpoint_every)
        next_eval = self._next(agent.total_steps, self.eval_every)
        last_wall = float(agent.episodes[-1].get("wall_time", 0.0)) if agent.episodes else 0.0
        start = time.perf_counter() - (last_wall if math.isfinite(last_wall) else 0.0)
        fused.begin(agent.reset_seed, self.eval_episodes if self.will_evaluate else 0)
        agent.reset_seed = None
        losses: list[float] = []

        def rollouts_to_due(steps, next_checkpoint, next_eval):  # the next chunk's updates: whole rollouts
            due = [x for x in (step_limit, next_checkpoint, next_eval) if x is not None]
            return -(-(min(due) - steps) // fused.rollout_steps) if due else None

        while True:
            steps_before = agent.total_steps
            chunk = fused.train_chunk(rollouts_to_due(steps_before, next_checkpoint, next_eval), step_limit)
            steps_after, wall = agent.total_steps, time.perf_counter() - start
            if step_limit is None or steps_after < step_limit:
                # Ask for the next chunk now: seeds trained together compute it while this one's rows,
                # checkpoint and evaluation are written.
                following = self._following(steps_after, next_checkpoint, next_eval)
                fused.prefetch(rollouts_to_due(steps_after, *following), step_limit)
            stop, used = False, 0
            metrics = np.mean(chunk.losses[:, :, 1:], axis=1)  # each update's mean metrics
            trained = np.ones(chunk.updates, bool) if chunk.trained is None else chunk.trained
            for u, t, i in zip(*chunk.done.nonzero()):  # in the order the episodes ended
                for k in range(used, u):  # the updates before this episode's end: its row's loss
                    if trained[k]:
                        losses.extend(chunk.losses[k, :, 0].tolist())
                        self._updated(chunk.losses[k, :, 0].tolist())
                used = max(used, u)
                agent.total_steps = steps_before + int(u * fused.n_steps + t + 1) * fused.num_envs
                agent.episode += 1
                row = {
                    "episode": agent.episode,
                    "total_steps": agent.total_steps,
                    "reward": float(chunk.returns[u, t, i]),
                    "length": int(chunk.lengths[u, t, i]),
                    "epsilon": math.nan if chunk.epsilon is None else float(chunk.epsilon[u, t, i]),
                    "loss": float(np.mean(losses)) if losses else float("nan"),
                    "max_q": float(chunk.values[u, t, i]),
                    "min_q": float((chunk.values if chunk.min_values is None else chunk.min_values)[u, t, i]),
                    "wall_time": wall,
                }
                losses = []
                last = getattr(agent, "stats", None)  # a DQN's run has none before its first chunk ends
                if u > 0 or last:  # the metrics of the last update before the episode ended
                    row.update(last if u == 0 else dict(zip(agent.metric_names, map(float, metrics[u - 1]))))
                agent.episodes.append(row)
                if self._episode_ended(row, callback, episode_limit):
                    stop = True
            for k in range(used, chunk.updates):
                if trained[k]:
                    losses.extend(chunk.losses[k, :, 0].tolist())
                    self._updated(chunk.losses[k, :, 0].tolist())
            agent.total_steps = steps_after
            agent.stats = dict(zip(agent.metric_names, map(float, metrics[-1])))
            self._tick(step_callback)
            next_checkpoint, next_eval = self._checkpoint_and_evaluate_when_due(next_checkpoint, next_eval)
            at_limit = step_limit is not None and agent.total_steps >= step_limit
            if stop or agent.stop_requested or self.interrupted or at_limit:
                agent.stop_requested = False
                return

    def _in_flight(self) -> tuple[dict, dict[str, np.ndarray]] | None:
        """The episodes in progress between two steps, for a checkpoint: each env's game, its return, length and
        outputs so far, the losses not yet in a row and the agent's partial rollout; ``None`` where the envs or
        the agent cannot save theirs (a resumed run then starts new episodes)."""
        if self.acting is None or self.progress is None or not hasattr(self.acting, "get_state"):
            return None
        acting, agent = self.acting.get_state(), self.agent.in_flight_state()
        if acting is None or agent is None:
            return None
        ep_reward, ep_len, ep_values, losses = self.progress
        meta = {"acting": acting[0], "agent": agent[0], "reward": list(ep_reward), "length": list(ep_len)}
        meta["losses"] = list(losses)
        arrays = {f"acting/{k}": v for k, v in acting[1].items()} | {f"agent/{k}": v for k, v in agent[1].items()}
        arrays |= {f"values/{i}": np.stack(values) for i, values in enumerate(ep_values) if values}
        return meta, arrays

    def _restore_in_flight(self) -> bool:
        """Go on with the episodes in progress of the checkpoint the agent was restored from, where they fit."""
        saved, self.agent.in_flight = self.agent.in_flight, None
        if saved is None or not hasattr(self.acting, "set_state"):
            return False
        meta, arrays = saved
        ep_reward, ep_len, ep_values, losses = self.progress

        def part(prefix: str) -> dict:
            return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

        # The envs first, the agent last: where either fails part-way, the reset that follows starts every env's
        # episode anew (and a rollout's row count is restored last of all).
        try:
            if len(meta["reward"]) != len(ep_reward):  # another -c N: the games start anew
                return False
            restored = (
                [float(r) for r in meta["reward"]],
                [int(k) for k in meta["length"]],
                [list(arrays[f"values/{i}"]) if f"values/{i}" in arrays else [] for i in range(len(ep_values))],
                [float(x) for x in meta["losses"]],
            )
            if not self.acting.set_state(meta["acting"], part("acting/")):
                return False
            if not self.agent.restore_in_flight(meta["agent"], part("agent/")):
                note("the checkpoint's games in progress need the agent's replay memory, which checkpoints keep "
                     "with --save_memory; each env starts a new game")  # fmt: skip
                return False
        except (ValueError, KeyError, TypeError, IndexError) as e:
            note(f"the checkpoint's games in progress are unreadable ({first_line(e)}); each env starts a new game")
            return False
        for mine, values in zip((ep_reward, ep_len, ep_values, losses), restored):
            mine[:] = values
        return True

    def _episode_ended(self, row: dict, callback, episode_limit) -> bool:
        """Hand an ended episode's row to the sinks and the callback; whether training should stop."""
        for sink in self.sinks:
            sink.on_episode(self, row)
        stop = callback is not None and bool(callback(self.agent, row))
        return stop or (episode_limit is not None and self.agent.episode >= episode_limit)

    def _tick(self, step_callback) -> None:
        for sink in self.sinks:
            if hasattr(sink, "on_tick"):
                sink.on_tick(self)
        if step_callback is not None:
            step_callback(self.agent)

    def _checkpoint_and_evaluate_when_due(self, next_checkpoint, next_eval) -> tuple:
        """A checkpoint and an evaluation where their step has come; the steps of the next ones."""
        steps = self.agent.total_steps
        if next_checkpoint is not None and steps >= next_checkpoint:
            self.checkpoint()
        if next_eval is not None and steps >= next_eval:
            self.evaluate()
        return self._following(steps, next_checkpoint, next_eval)

    def _following(self, steps: int, next_checkpoint, next_eval) -> tuple:
        """The steps of the checkpoint and evaluation after those due by ``steps``."""
        if next_checkpoint is not None and steps >= next_checkpoint:
            next_checkpoint = self._next(steps, self.checkpoint_every)
        if next_eval is not None and steps >= next_eval:
            next_eval = self._next(steps, self.eval_every)
        return next_checkpoint, next_eval

    def _updated(self, new: list[float]) -> None:
        """After an update: stop on a non-finite loss, then give its losses to the sinks that want them."""
        self._check_finite(new)
        for sink in self.sinks:
            if hasattr(sink, "on_update"):
                sink.on_update(self, new)

    def _check_finite(self, losses: list[float]) -> None:
        bad = [x for x in losses if not math.isfinite(x)]
        if bad:
            raise NonFiniteLoss(
                f"the loss became {bad[0]} at step {self.agent.total_steps} (update {self.agent.updates}); "
                "training stopped and no checkpoint was written after it. Lower the learning rate or check the "
                "env's rewards"
            )

    def _snapshot(self) -> None:
        """Keep a copy of the agent's learned state (weights, optimizer, counters) if all of it is finite."""
        agent = self.agent
        weights = [np.array(w) for w in agent.model.get_weights()]  # copies: a backend may share its buffers
        meta, arrays = agent.get_state()
        arrays = {k: np.array(v) for k, v in arrays.items()}
        if not checkpoints.non_finite_arrays({**{f"weight {i}": w for i, w in enumerate(weights)}, **arrays}):
            self.finite_state = (weights, meta, arrays)

    def _restore_snapshot(self) -> int | None:
        """Put the agent back to the last finite state kept (its rows after it dropped); returns its step."""
        if self.finite_state is None:
            return None
        agent = self.agent
        weights, meta, arrays = self.finite_state
        agent.model.set_weights(weights)
        agent.set_state(meta, arrays)
        agent.episodes = [row for row in agent.episodes if row["episode"] <= agent.episode]
        return agent.total_steps

    def _checkpoint_after(self, error: BaseException) -> None:
        from kerlym import runs

        self.progress = None  # the step the error came from is half done: its episodes start anew on resume
        try:
            self.checkpoint()
        except runs.CheckpointError as e:  # the original error is the one to report; say what else went wrong
            print(f"kerlym: note: no checkpoint after the error: {e}", flush=True)
        else:
            if hasattr(error, "add_note"):  # Python 3.11+
                error.add_note(f"kerlym: at step {self.agent.total_steps}; checkpoint saved in {self.last_checkpoint}")

    # -- checkpoints and evaluations ---------------------------------------
    def checkpoint(self) -> str:
        """Write a checkpoint now; a second signal meanwhile is ignored with a message."""

        self.saving = True
        try:
            self.last_checkpoint = checkpoints.save_checkpoint(
                self.run_dir, self.agent, include_memory=self.save_memory, in_flight=self._in_flight()
            )
            self._checkpointed = self._stamp()
        finally:
            self.saving = False
        return self.last_checkpoint

    def _stamp(self) -> tuple:
        """What a checkpoint's contents follow: the agent's steps, episodes and updates, and the evaluations made
        (one may move the agent's random numbers on)."""
        agent = self.agent
        return agent.total_steps, agent.episode, agent.updates, self.evaluations

    def evaluate(self) -> tuple[float, float]:
        """Greedy evaluation; with a run folder, a row in evaluations.csv and best.keras when it is the best.

        With ``eval_opponents``, ``eval_episodes`` games against each (a row each); the first one's are the
        mean and std returned and the returns kept in ``last_evaluation``.
        """
        from kerlym.stats import opponent_results

        games = None
        if self.eval_opponents:
            played = {name: self._play_opponent(name) for name in self.eval_opponents}
            returns = played[self.eval_opponents[0]]
            games = {name: opponent_results(r) for name, r in played.items()}
        else:
            returns = self.agent.evaluate(self.eval_episodes, seed=self.agent.seed, search=self.search)
        self.last_evaluation = (self.agent.total_steps, returns)
        self.evaluations += 1
        self.last_games = games
        mean, std = float(returns.mean()), float(returns.std())
        best = False
        if self.run_dir is not None:
            best = checkpoints.record_evaluation(self.run_dir, self.agent, mean, std, games=games)
        for sink in self.sinks:
            if hasattr(sink, "on_eval"):
                sink.on_eval(self, mean, std, best)
            if games is not None and hasattr(sink, "on_games"):
                sink.on_games(self, games)
        return mean, std

    def _play_opponent(self, name: str) -> np.ndarray:
        """The greedy returns of ``eval_episodes`` games against ``name`` on a new env (seeded by the agent's seed)."""
        env = self.opponent_env(name)
        try:
            return self.agent.evaluate(self.eval_episodes, env=env, seed=self.agent.seed, search=self.search)
        finally:
            env.close()

    # -- signals ------------------------------------------------------------
    def _install_signals(self):
        if not self.signals or threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum, frame):
            if self.saving:
                print("\nkerlym: still saving the checkpoint; it finishes before kerlym exits", flush=True)
            elif not self.interrupted:
                kept = "saving a checkpoint" if self.run_dir else "the agent keeps what it learned (no run folder)"
                print(f"\nkerlym: stopping after this step; {kept} ...", flush=True)
            self.interrupted.append(signum)

        previous = {s: signal.signal(s, on_signal) for s in self.signals}
        # A signal the command caught while it set up (kerlym._io.defer_signals) stops training before it starts.
        self.interrupted.extend(take_deferred_signals())
        return previous

    @staticmethod
    def _restore_signals(previous) -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)


def note(text: str) -> None:
    """One ``kerlym: note:`` line on stderr."""
    print(f"kerlym: note: {text}", file=sys.stderr, flush=True)


def mean_extremes(values: list[np.ndarray]) -> tuple[float, float]:
    """The means over an episode's steps of the largest and the smallest network output (NaN without any).

    ``values``: the outputs of each step where the network was consulted. The sums run step by step in
    float64 (``np.cumsum``), as a running total kept during the episode would.
    """
    if not values:
        return math.nan, math.nan
    q = np.stack(values)
    return (
        float(np.cumsum(q.max(axis=1), dtype=np.float64)[-1] / len(values)),
        float(np.cumsum(q.min(axis=1), dtype=np.float64)[-1] / len(values)),
    )


def acting_for(agent):
    """What steps the envs for ``agent``'s training: :class:`LocalActing` or :class:`ProcessActor`."""
    mode = agent.config.actors
    if mode == "local":
        return actors.LocalActing(agent)
    if mode == "process":
        return actors.ProcessActor(agent)
    if mode == "ray":
        from kerlym.ray_actors import RayActors

        return RayActors(agent)
    raise ConfigError(f"unknown actors {mode!r}")
