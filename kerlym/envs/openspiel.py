"""Any two-player, zero-sum, turn-based OpenSpiel game against a fixed opponent: ``-e openspiel:GAME``.

``openspiel:tic_tac_toe``, ``openspiel:connect_four``, ``openspiel:go?board_size=9&komi=6.5``: the
game's name, then its parameters as ``?key=value&key=value``, which :func:`game_string` turns into
OpenSpiel's own ``go(board_size=9,komi=6.5)`` (that spelling is taken too, quoted for the shell).
OpenSpiel keeps the rules; the agent sees ``state.observation_tensor(player)`` from its own seat,
its legal actions in ``info["action_mask"]``, and plays the seat ``player`` says.
"""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import DependencyNotInstalled

from kerlym._io import install_hint, native_stderr_silenced
from kerlym.envs import OPENSPIEL_PREFIX as PREFIX  # noqa: F401 (kerlym.envs.openspiel API)
from kerlym.envs.go_opponents import GnuGoOpponent, MCTSOpponent, RandomOpponent, find_gnugo, parse_opponent


class IllegalMove(ValueError):
    """The agent played an illegal move with ``illegal_move_mode="raise"``."""


def game_string(name: str) -> str:
    """``go?board_size=9&komi=6.5`` -> ``go(board_size=9,komi=6.5)``; a name without ``?`` is kept as given."""
    game, _, query = name.partition("?")
    if not query:
        return game
    pairs = [p.partition("=") for p in query.split("&") if p]
    bad = [k for k, eq, v in pairs if not (k and eq and v)]
    if bad:
        raise ValueError(f"OpenSpiel game parameters are key=value pairs joined by '&', got {query!r}")
    return f"{game}({','.join(f'{k}={v}' for k, _, v in pairs)})"


def load_game(name: str):
    """The OpenSpiel game ``name`` names (either spelling), checked to be two-player, zero-sum and turn-based.

    Raises:
        DependencyNotInstalled: OpenSpiel is missing (the line names the extra).
        ValueError: an unknown game, or one of another kind (one line).
    """
    try:
        import pyspiel
    except ImportError:
        raise DependencyNotInstalled(f"OpenSpiel games need OpenSpiel: {install_hint('games')}") from None
    spelled = game_string(name)
    short = spelled.partition("(")[0]
    if short not in pyspiel.registered_names():  # before load_game, which prints every game's name to stderr
        import difflib

        close = difflib.get_close_matches(short, pyspiel.registered_names(), n=3, cutoff=0.6)
        raise ValueError(f"OpenSpiel has no game {short!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    try:
        with native_stderr_silenced():  # OpenSpiel prints its errors to stderr as well as raising them
            game = pyspiel.load_game(spelled)
    except pyspiel.SpielError as e:
        raise ValueError(f"OpenSpiel cannot load {spelled!r}: {str(e).strip().splitlines()[0]}") from None
    kind = game.get_type()
    if game.num_players() != 2:
        raise ValueError(f"{spelled} has {game.num_players()} players; kerlym plays two-player games")
    if kind.utility != pyspiel.GameType.Utility.ZERO_SUM:
        raise ValueError(f"{spelled} is not zero-sum ({kind.utility.name.lower()}); kerlym plays zero-sum games")
    if kind.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
        raise ValueError(f"{spelled} has simultaneous moves; kerlym plays turn-based games")
    if not kind.provides_observation_tensor:
        raise ValueError(f"{spelled} has no observation tensor for an agent to see")
    return game


def make_opponent(game, opponent: str):
    """``random``, ``mcts:N`` (OpenSpiel's MCTSBot, random rollouts), or ``gnugo:LEVEL`` for Go only."""
    kind, number = parse_opponent(opponent)
    if kind == "gnugo":
        params = game.get_parameters()
        if game.get_type().short_name != "go":
            raise ValueError(f"opponent {opponent!r} plays Go only; use 'random' or 'mcts:SIMULATIONS'")
        binary = find_gnugo()
        if binary is None:
            raise DependencyNotInstalled(
                f"the Go opponent {opponent!r} needs GnuGo: apt-get install gnugo "
                "(or play another opponent: --env-kwargs opponent=random)"
            )
        return GnuGoOpponent(binary, number, int(params["board_size"]), float(params["komi"]))
    return MCTSOpponent(game, number) if kind == "mcts" else RandomOpponent()


# Games whose rules a board transformation leaves unchanged: all 8 rotations and reflections of the square, or the
# left-right mirror alone (pieces fall down connect four's columns, so only that reflection keeps the game).
BOARD_SYMMETRIES = {"tic_tac_toe": "dihedral", "connect_four": "mirror"}


def board_symmetries(shape: tuple[int, int, int], num_actions: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """``(obs_index, action_index)`` of a ``(C, H, W)`` board's symmetries (``kind`` ``"dihedral"``: 8 of a square
    board; ``"mirror"``: the identity and the left-right reflection), as :meth:`kerlym.envs.go.GoEnv.symmetries`
    gives Go's: symmetry ``k`` turns a flat observation ``o`` into ``o[obs_index[k]]`` and a per-action vector ``v``
    into ``v[action_index[k]]``. The actions are the points (``H * W``, row by row) or the columns (``W``)."""
    channels, height, width = shape
    planes = np.arange(channels * height * width).reshape(shape)
    points = np.arange(height * width).reshape(height, width)
    if num_actions == width:  # one action per column
        points = np.arange(width)[None]
    elif num_actions != height * width:
        raise ValueError(f"a {height}x{width} board's symmetries need an action per point or column, not {num_actions}")
    turns = [(k, flip) for flip in (False, True) for k in range(4)] if kind == "dihedral" else [(0, False), (0, True)]
    obs_index, action_index = [], []
    for k, flip in turns:
        obs, board = np.rot90(planes, k, axes=(1, 2)), np.rot90(points, k)
        if flip:
            obs, board = obs[:, :, ::-1], board[:, ::-1]
        obs_index.append(obs.reshape(-1))
        action_index.append(board.reshape(-1))
    return np.array(obs_index), np.array(action_index)


class OpenSpielEnv(gym.Env):
    """A two-player OpenSpiel game as a Gymnasium env: the agent plays one seat, a fixed opponent the other.

    Observation: ``state.observation_tensor(player)`` as float32 in the game's tensor shape. Actions:
    ``Discrete(game.num_distinct_actions())``, OpenSpiel's own action numbers. Reward: the agent's
    change in ``state.returns()`` (for win/draw/loss games +1 / 0 / -1 when the game ends).
    ``info["action_mask"]`` (int8, 1 = legal) comes with every reset and step. Chance nodes (dice,
    deals) are sampled from the env's ``np_random``.

    Args:
        game: OpenSpiel's game, ``NAME?key=value&...`` or ``NAME(key=value,...)``, or a loaded ``pyspiel.Game``.
        opponent: ``"random"``, ``"mcts:SIMULATIONS"`` (OpenSpiel's MCTSBot with random rollouts), or for
            Go ``"gnugo:LEVEL"``. Seeded by ``reset(seed=...)``. Self-play (:mod:`kerlym.agents.selfplay`) takes
            it out with :meth:`external_opponent` and plays the other seat through :meth:`opponent_play`.
        player: the agent's seat, ``0`` (moves first), ``1``, or ``"alternate"`` (0, 1, 0, ... over resets).
        illegal_move_mode: ``"lose"`` (an illegal move loses the game at once) or ``"raise"`` (IllegalMove).
        render_mode: ``"ansi"`` (OpenSpiel's text of the state) or ``"human"`` (prints it).
    """

    metadata = {"render_modes": ["human", "ansi"]}
    two_player = True  # evaluations count wins, draws and losses (kerlym.envs.is_two_player)
    self_play = True  # external_opponent() works: the other seat's moves and observations are OpenSpiel's own
    searchable = True  # the agent's actions and observations are OpenSpiel's own, so --search can play it

    def __init__(
        self,
        game: str = "tic_tac_toe",
        opponent: str = "random",
        player: int | str = 0,
        illegal_move_mode: str = "lose",
        render_mode: str | None = None,
    ):
        if str(player) not in ("0", "1", "alternate"):
            raise ValueError(f"player must be 0, 1 or 'alternate', got {player!r}")
        if illegal_move_mode not in ("lose", "raise"):
            raise ValueError(f"illegal_move_mode must be 'lose' or 'raise', got {illegal_move_mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.game = load_game(game) if isinstance(game, str) else game
        self.opponent_name, self.opponent = opponent, make_opponent(self.game, opponent)
        self.external = False  # the other seat is played from outside (self-play: external_opponent)
        self.alternate = str(player) == "alternate"
        self.player = 0 if self.alternate else int(player)
        self.games_started = 0
        self.illegal_move_mode, self.render_mode = illegal_move_mode, render_mode
        shape = tuple(self.game.observation_tensor_shape())
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=shape, dtype=np.float32)
        self.action_space = spaces.Discrete(self.game.num_distinct_actions())
        self.state = self.game.new_initial_state()
        self.done, self.returned, self.end = False, 0.0, None
        kind = BOARD_SYMMETRIES.get(self.game.get_type().short_name)
        if kind is not None and not hasattr(self, "symmetries"):  # Go's are its own (GoEnv.symmetries)
            tables = board_symmetries(shape, self.action_space.n, kind)
            self.symmetries = lambda: tables  # kerlym.symmetries.Symmetries, --average_symmetries, --pretrain

    # -- evaluations against fixed opponents (--eval_opponents) ------------------------------------------------------
    @classmethod
    def evaluation_kwargs(cls, opponent: str) -> dict:
        """The env kwargs of a copy that plays ``opponent`` with the agent's seat alternating over its games."""
        return {"opponent": opponent, "player": "alternate"}

    # -- what a subclass with actions or observations of its own (Go) changes ---------------------------------------
    def search_actions(self) -> np.ndarray:
        """This env's action for each of OpenSpiel's actions (the same numbers here), for a search's moves."""
        return np.arange(self.game.num_distinct_actions())

    def search_observation(self, state) -> np.ndarray:
        """``state`` as the agent sees a position when it is in the seat of the player to move (a search scores it)."""
        return self.observation(state)

    def to_spiel(self, action: int) -> int:
        """This env's action as OpenSpiel's (the same number here)."""
        return action

    def illegal_text(self, action: int) -> str:
        return f"{self.state.action_to_string(self.player, action)} is illegal now"

    def end_reason(self) -> str:
        """``info["end"]`` when the game itself ended (illegal moves and resigning have their own)."""
        return "game_over"

    # -- the game ------------------------------------------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self.alternate:
            self.player = self.games_started % 2
        self.games_started += 1
        self.state = self.game.new_initial_state()
        self.done, self.returned, self.end = False, 0.0, None
        if self.opponent is not None:
            self.opponent.new_game(self.np_random)
        self.done = self._others_move()
        if self.render_mode == "human":
            self.render()
        return self.observation(self.state), self._info()

    def step(self, action):
        decided = self.play(action)
        if decided is not None:
            return decided
        if self._others_move():
            return self._finish(-self.game.min_utility(), "opponent_resigned")
        return self.settle()

    def play(self, action):
        """The agent's move alone: the step's result when that decides it (game over, illegal move), else None."""
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an integer from 0 to {self.action_space.n - 1}, got {action!r}")
        action = int(action)
        if self.done:  # the finished game stays finished
            return self._result(0.0)
        spiel_action = self.to_spiel(action)
        if spiel_action not in self.state.legal_actions():
            if self.illegal_move_mode == "raise":
                raise IllegalMove(self.illegal_text(action))
            return self._finish(self.game.min_utility(), "illegal_move")
        self.state.apply_action(spiel_action)
        if self.opponent is not None and not self.state.is_terminal():
            self.opponent.observe(self.state, spiel_action)
        return None

    def settle(self):
        """The step's result once the other seat has moved: the agent's reward, and the game's end if it ended."""
        now = float(self.state.returns()[self.player])
        if self.state.is_terminal():
            return self._finish(now, self.end_reason())
        reward, self.returned = now - self.returned, now
        return self._result(reward)

    # -- the other seat played from outside (self-play) -------------------------------------------------------------
    def external_opponent(self) -> None:
        """Have the other seat played from outside from the next reset on, seats alternating (self-play).

        :meth:`step` then stops when that seat is to move; :meth:`opponent_view` and :meth:`opponent_play` play it.
        """
        if self.opponent is not None:
            self.opponent.close()
        self.opponent, self.opponent_name, self.external, self.alternate = None, "self", True, True

    def opponent_to_move(self) -> bool:
        """Whether the game waits for the other seat's move (only after :meth:`external_opponent`)."""
        state = self.state
        return self.external and not self.done and not state.is_terminal() and state.current_player() != self.player

    def opponent_view(self) -> tuple[np.ndarray, np.ndarray]:
        """The other seat's observation (from its own side) and its legal actions, while it is to move."""
        return self.observation(self.state), self.action_mask()

    def opponent_play(self, action: int) -> None:
        """Play the other seat's move ``action`` (legal: :meth:`opponent_view`'s mask), then any chance outcomes."""
        spiel_action = self.to_spiel(int(action))
        if not self.opponent_to_move() or spiel_action not in self.state.legal_actions():
            raise IllegalMove(f"the other seat cannot play {int(action)} now")
        self.state.apply_action(spiel_action)
        self._others_move()

    # -- the game in progress, for a checkpoint (self-play's exact resume) ---------------------------------------------
    def game_state(self) -> dict:
        """The game in progress as JSON-able data: its moves (chance outcomes too), the seat, the counters, the RNG.

        :meth:`restore_game` rebuilds the game from its moves (OpenSpiel replays them from the initial state).
        A fixed opponent's own state (GnuGo's process, MCTS's tree) is not in it: only self-play restores exactly.
        """
        return {
            "history": [int(a) for a in self.state.history()],
            "player": self.player,
            "games_started": self.games_started,
            "done": self.done,
            "returned": self.returned,
            "end": self.end,
            "rng": self.np_random.bit_generator.state,
        }

    def restore_game(self, saved: dict) -> None:
        """Put the game back to what :meth:`game_state` returned (the envs' next step goes on from there)."""
        state = self.game.new_initial_state()
        for action in saved["history"]:
            state.apply_action(int(action))
        self.state = state
        self.player, self.games_started = int(saved["player"]), int(saved["games_started"])
        self.done, self.returned, self.end = bool(saved["done"]), float(saved["returned"]), saved["end"]
        self.np_random.bit_generator.state = saved["rng"]

    def view(self) -> tuple[np.ndarray, dict]:
        """The agent's observation and info now, as ``reset`` returns them."""
        return self.observation(self.state), self._info()

    def _finish(self, final_return: float, end: str):
        """End the game with the agent's return ``final_return``; ``info["end"]`` says why."""
        self.done, self.end = True, end
        reward, self.returned = final_return - self.returned, final_return
        return self._result(reward)

    def _others_move(self) -> bool:
        """Chance outcomes and the opponent's moves, until it is the agent's turn or the game is over.

        Returns True when the opponent resigned (GnuGo can), which wins the agent the game.
        """
        while not self.state.is_terminal() and self.state.current_player() != self.player:
            if self.state.is_chance_node():
                actions, probs = zip(*self.state.chance_outcomes())
                self.state.apply_action(int(self.np_random.choice(actions, p=probs)))
                continue
            if self.external:  # the other seat's move comes from outside (opponent_play)
                return False
            move = self.opponent.move(self.state)
            if move < 0:
                return True
            self.state.apply_action(move)
        return False

    def observation(self, state) -> np.ndarray:
        """``state``'s observation tensor from the seat of the player to move (the agent's, outside a search)."""
        seat = state.current_player() if 0 <= state.current_player() < 2 else self.player
        return np.asarray(state.observation_tensor(seat), dtype=np.float32).reshape(self.observation_space.shape)

    def action_mask(self) -> np.ndarray:
        """int8 over the actions, 1 where legal for the agent now (all 0 once the game is over)."""
        mask = np.zeros(self.action_space.n, dtype=np.int8)
        if not self.done and not self.state.is_terminal():
            mask[self.state.legal_actions()] = 1
        return mask

    def _info(self) -> dict:
        info = {"action_mask": self.action_mask(), "player": self.player}
        if self.end is not None:
            info["end"] = self.end
        return info

    def _result(self, reward: float):
        if self.render_mode == "human":
            self.render()
        return self.observation(self.state), float(reward), self.done, False, self._info()

    def render(self):
        text = str(self.state)
        if self.render_mode == "human":
            print(text, file=sys.stdout)
            return None
        return text

    def close(self):
        opponent = getattr(self, "opponent", None)
        if opponent is not None:
            opponent.close()
