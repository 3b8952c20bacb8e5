"""Self-play (``--self-play K``): the agent plays both seats of an ``openspiel:GAME`` or Go against its own snapshots.

The pool holds the learner's latest weights and up to ``K`` frozen snapshots of them. A snapshot joins
every ``self_play_every`` env steps (before the first vector step at or past each multiple, labelled with
the step count then); with ``K`` snapshots already, the oldest leaves. When a game starts in an env, its
opponent is drawn (:func:`draw_opponents`): the latest weights with probability ``self_play_latest``,
otherwise one of the frozen snapshots, each as likely (the latest while there is none yet). This is
OpenAI Five's rule (the latest 80% of games, past selves the rest), with the share a setting.

The envs are ``concurrency`` OpenSpiel envs in this process whose other seat is played from here
(``OpenSpielEnv.external_opponent``); the seats alternate over each env's games, and the learner always
sees the game from its own seat. On each turn of the other seat, the envs waiting for it are batched: one network call
per opponent in play, never one per env: each opponent is a copy of the network with its own compiled act
(the latest weights' copy refreshed after the learner's updates, a snapshot's given its weights once),
which costs a fraction of a millisecond a call where Keras's eager call or ``stateless_call`` costs about 8.
A2C and PPO opponents sample their policy over the legal moves; DQN and D2QN opponents take the legal
move of the highest Q-value (their ``opponent_moves``).
"""

from __future__ import annotations

import numpy as np

from kerlym.envs import reset_env

LATEST = -1  # an env's opponent: the learner's latest weights (else the index of a frozen snapshot)


def draw_opponents(rng: np.random.Generator, n: int, frozen: int, latest: float) -> np.ndarray:
    """``n`` opponents: :data:`LATEST` with probability ``latest``, else a frozen snapshot's index, uniformly.

    Args:
        rng: the draws' generator; each draw takes two uniform numbers, whatever the pool holds.
        n: how many opponents to draw.
        frozen: how many frozen snapshots there are (none: every draw is the latest).
        latest: the probability of the latest weights.
    """
    u = rng.random((n, 2))
    index = np.minimum((u[:, 1] * frozen).astype(np.int64), max(frozen - 1, 0))
    return np.where((u[:, 0] < latest) | (frozen == 0), LATEST, index)


class SelfPlayPool:
    """The agent's frozen snapshots, when the next one is due, and each env's opponent.

    Each opponent in play acts through a copy of the network with compiled steps of its own
    (:func:`kerlym.backend.build_steps`): one copy holds the latest weights, refreshed after the
    learner's updates, and one each frozen snapshot, given its weights once when it joins.

    Args:
        agent: the learning agent (its ``build_model``, ``steps``, ``updates`` and :meth:`opponent_moves`).
        size: ``K``, the most frozen snapshots kept.
        latest: the probability that a game's opponent is the latest weights.
        every: env steps between snapshots.
        seed: seeds the opponents' draws and their sampled moves.
    """

    def __init__(self, agent, size: int, latest: float, every: int, seed: int | None = None):
        self.agent, self.size, self.latest, self.every = agent, int(size), float(latest), int(every)
        self.snapshots: list[tuple[int, list[np.ndarray]]] = []  # (step, weights in get_weights' order), oldest first
        self.next_snapshot = self.every
        self.opponents = np.zeros(0, dtype=np.int64)  # each env's opponent (LATEST or a snapshot's index)
        self.rng = np.random.default_rng(None if seed is None else [int(seed), 0x5E1F])
        self._copies: list = []  # a snapshot's acting copy, by its index; reused when the oldest leaves
        self._latest_copy, self._latest_updates = None, None  # the latest weights' copy, and the updates it holds

    @property
    def steps(self) -> list[int]:
        """The step each frozen snapshot was taken at, oldest first."""
        return [step for step, _ in self.snapshots]

    def snapshot_when_due(self, total_steps: int) -> None:
        """Freeze the latest weights if a snapshot is due at ``total_steps`` (the oldest leaves a full pool)."""
        if total_steps < self.next_snapshot:
            return
        self.next_snapshot = (total_steps // self.every + 1) * self.every
        if self.size == 0:
            return
        if len(self.snapshots) == self.size:  # indices shift down; a game against the oldest goes on with the next
            self.snapshots.pop(0)
            self._copies.append(self._copies.pop(0))
            self.opponents = np.where(self.opponents > 0, self.opponents - 1, self.opponents)
        self.snapshots.append((int(total_steps), self.agent.steps.get_weights()))
        self._give(len(self.snapshots) - 1)

    def _copy(self):
        """A new copy of the agent's network with compiled steps that act only (their act returns the outputs)."""
        from kerlym.backend import build_steps

        return build_steps(self.agent.build_model())

    def _give(self, index: int) -> None:
        """Set snapshot ``index``'s weights on its acting copy, made when first needed."""
        while len(self._copies) <= index:
            self._copies.append(self._copy())
        self._copies[index].set_weights(self.snapshots[index][1])

    def _acting(self, opponent: int):
        if opponent != LATEST:
            return self._copies[opponent]
        if self._latest_copy is None:
            self._latest_copy = self._copy()
        if self._latest_updates != self.agent.updates:  # the learner's weights changed since the copy got them
            self._latest_copy.set_weights(self.agent.steps.get_weights())
            self._latest_updates = self.agent.updates
        return self._latest_copy

    def begin_games(self, envs) -> None:
        """Draw the opponents of the games starting in ``envs`` (indices; the first call sizes the pool's list)."""
        envs = np.asarray(envs, dtype=np.int64)
        if len(self.opponents) <= envs.max(initial=-1):
            self.opponents = np.resize(self.opponents, envs.max() + 1)
        self.opponents[envs] = draw_opponents(self.rng, len(envs), len(self.snapshots), self.latest)

    def moves(self, states: np.ndarray, masks: np.ndarray, envs) -> np.ndarray:
        """The moves of the opponents of ``envs`` on ``states`` ``[B, input_dim]``: one network call per opponent."""
        which = self.opponents[np.asarray(envs, dtype=np.int64)]
        moves = np.zeros(len(which), dtype=np.int64)
        for opponent in np.unique(which):
            rows = which == opponent
            _, outputs = self._acting(int(opponent)).act(states[rows])
            moves[rows] = self.agent.opponent_moves(np.asarray(outputs), masks[rows], self.rng)
        return moves

    # -- checkpoints -------------------------------------------------------------------------------------------------
    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The pool as JSON-able metadata and arrays (each snapshot's weights), for the agent's checkpoint."""
        meta = {
            "steps": self.steps,
            "next_snapshot": self.next_snapshot,
            "opponents": self.opponents.tolist(),
            "rng": self.rng.bit_generator.state,
        }
        arrays = {
            f"self_play/{j}/{k}": w for j, (_, weights) in enumerate(self.snapshots) for k, w in enumerate(weights)
        }
        return meta, arrays

    def set_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`get_state` returned."""
        count = len(self.agent.model.weights)
        self.snapshots = [
            (int(step), [np.asarray(arrays[f"self_play/{j}/{k}"]) for k in range(count)])
            for j, step in enumerate(meta["steps"])
        ]
        for j in range(len(self.snapshots)):
            self._give(j)
        self._latest_updates = None
        self.next_snapshot = int(meta["next_snapshot"])
        self.opponents = np.asarray(meta["opponents"], dtype=np.int64)
        self.rng.bit_generator.state = meta["rng"]


class SelfPlayEnvs:
    """``envs`` (OpenSpiel envs, their other seat played from here) behind the vector-env interface training steps.

    Same-step autoreset, as Gymnasium's ``SyncVectorEnv``: an ended game's last observation is in
    ``info["final_obs"]`` and its legal actions in ``info["final_info"]["action_mask"]``.

    Args:
        agent: the learning agent; its :class:`SelfPlayPool` (``agent.pool``) plays the other seat.
        envs: the envs, each after its ``external_opponent()``.
    """

    def __init__(self, agent, envs):
        self.agent, self.pool, self.envs = agent, agent.pool, list(envs)
        self.games = [env.unwrapped for env in self.envs]
        self.num_envs = len(self.envs)
        self.histories = [agent.frame_history() for _ in self.envs]  # the other seat's frames, per env
        self.fresh = np.ones(self.num_envs, dtype=bool)  # the other seat has not moved yet in this game

    def reset(self, seed=None):
        for i, env in enumerate(self.envs):
            reset_env(env, None if seed is None else seed + i)
        self._begin(range(self.num_envs))
        views = [game.view() for game in self.games]
        return [obs for obs, _ in views], self._info([info for _, info in views])

    def step(self, actions):
        self.pool.snapshot_when_due(self.agent.total_steps)
        results = [game.play(a) for game, a in zip(self.games, actions)]
        waiting = [i for i, r in enumerate(results) if r is None]
        self._others_move(waiting)
        for i in waiting:
            results[i] = self.games[i].settle()
        obs, rewards, terminated, truncated, infos = (list(x) for x in zip(*results))
        done = np.array(terminated) | np.array(truncated)
        ended = done.nonzero()[0]
        if len(ended):  # same-step autoreset: the ended games' last views go to final_obs and final_info
            final_obs = np.array([None] * self.num_envs, dtype=object)
            for i in ended:
                final_obs[i] = obs[i]
            final_info = self._info(infos)
            for i in ended:
                reset_env(self.envs[i])
            self._begin(ended)
            for i in ended:
                obs[i], infos[i] = self.games[i].view()
        info = self._info(infos)
        if len(ended):
            info.update(final_obs=final_obs, _final_obs=done, final_info=final_info)
        return (
            obs,
            np.asarray(rewards, dtype=np.float64),
            np.asarray(terminated, dtype=bool),
            np.asarray(truncated, dtype=bool),
            info,
        )

    def _begin(self, envs) -> None:
        """Games just reset in ``envs``: draw their opponents and play the other seat until the learner's turn."""
        envs = list(envs)
        self.fresh[envs] = True
        self.pool.begin_games(envs)
        self._others_move(envs)

    def _others_move(self, envs) -> None:
        """Play the other seat in ``envs`` until each waits for the learner or has ended, a batch per turn."""
        waiting = [i for i in envs if self.games[i].opponent_to_move()]
        fn = self.agent.preprocessor
        while waiting:
            states, masks = [], []
            for i in waiting:
                obs, mask = self.games[i].opponent_view()
                if fn is not None and not getattr(fn, "wraps_env", False):
                    obs = np.asarray(fn(obs))
                self.histories[i].push(obs.astype(self.agent.frame_dtype, copy=False), first=bool(self.fresh[i]))
                self.fresh[i] = False
                states.append(self.histories[i].latest())
                masks.append(mask)
            moves = self.pool.moves(np.concatenate(states), np.asarray(masks, dtype=bool), waiting)
            for i, move in zip(waiting, moves):
                self.games[i].opponent_play(int(move))
            waiting = [i for i in waiting if self.games[i].opponent_to_move()]

    # -- checkpoints: the games in progress ---------------------------------------------------------------------------
    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """Each env's game (its moves, seat, counters and RNG) and the other seat's frames, for an exact resume.

        The opponents of these games and the draws' RNG are the pool's (:meth:`SelfPlayPool.get_state`).
        """
        meta = {"games": [game.game_state() for game in self.games], "fresh": self.fresh.tolist()}
        arrays = {f"other/{i}/{k}": v for i, h in enumerate(self.histories) for k, v in h.history_arrays().items()}
        return meta, arrays

    def set_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`get_state` returned; the next :meth:`step` goes on with the saved games."""
        if len(meta["games"]) != self.num_envs:
            raise ValueError(f"the checkpoint has {len(meta['games'])} games in progress, not {self.num_envs}")
        for i, (game, saved) in enumerate(zip(self.games, meta["games"])):
            game.restore_game(saved)
            prefix = f"other/{i}/"
            saved_frames = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            self.histories[i].load_history_arrays(saved_frames)
        self.fresh = np.asarray(meta["fresh"], dtype=bool)

    def view(self) -> tuple[list, dict]:
        """Each env's observation and the vector info now, as :meth:`reset` returns them (without resetting)."""
        views = [game.view() for game in self.games]
        return [obs for obs, _ in views], self._info([info for _, info in views])

    def _info(self, infos: list[dict]) -> dict:
        """The envs' infos as one vector-env info: ``action_mask`` ``[N, A]`` and ``player`` ``[N]``."""
        return {
            "action_mask": np.stack([info["action_mask"] for info in infos]),
            "player": np.array([info["player"] for info in infos]),
        }

    def close(self) -> None:
        for env in self.envs:
            env.close()
