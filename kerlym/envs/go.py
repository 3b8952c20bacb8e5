"""Go against a fixed opponent: the original KeRLym's ``Go9x9-v0`` and ``Go19x19-v0``, rebuilt on OpenSpiel.

The old gym's Go env wrapped Pachi, which is gone. Here OpenSpiel's ``go`` game
keeps the rules and the score, and the opponent is GnuGo (over GTP), OpenSpiel's
MCTS bot, or uniform random play. The game loop is the generic OpenSpiel env's
(:class:`kerlym.envs.openspiel.OpenSpielEnv`); Go keeps its own planes, actions
(rows from the top, resign), end reasons, komi and GnuGo.

Rules, from OpenSpiel: suicide and simple-ko recaptures are illegal; the game
ends after two passes in a row and is scored by Tromp-Taylor area counting
with ``komi`` for white. OpenSpiel ends a game in two more ways: a move that
repeats an earlier position (positional superko) ends it as a draw, and after
``max_game_length`` moves (``2 N**2`` unless given) the position is scored as
it stands. Resigning is this env's own: the resigning side loses.

Coordinates: an action ``row * N + col`` is a point counted from the top-left
corner (row 0 is the top, as in the observation); ``N * N`` passes and
``N * N + 1`` resigns. In GTP's letters, on 9x9 action 0 is A9, 8 is J9 and 80 is J1.

Self-play (``--self-play``, :mod:`kerlym.agents.selfplay`): the other seat is a snapshot of the agent
and plays this env's actions too (rows from the top, pass), from the legal moves of its own colour.
The planes say black, white and empty whoever is to move, so the snapshot sees what the agent sees
when it plays that colour; with ``planes="mover"`` each seat sees its own stones first, as the agent
does. The snapshot never resigns, and passes only in reply to the agent's pass
(ending the game, scored) or when no point is legal for it: an untrained snapshot's greedy move is
often resign or pass, and games it ends at once (2.2 moves on average for an untrained DQN's
snapshots) teach the agent nothing of Go. The agent itself may pass and resign as against any
opponent; resigning loses.
"""

from __future__ import annotations

import math
import numbers
import sys

import numpy as np
from gymnasium import spaces
from gymnasium.error import DependencyNotInstalled

from kerlym._io import install_hint
from kerlym.envs.go_opponents import (  # noqa: F401 (kerlym.envs.go's API)
    GTP_COLUMNS,
    OPPONENT_FORMS,
    RESIGN,
    GnuGoOpponent,
    MCTSOpponent,
    RandomOpponent,
    action_to_gtp,
    find_gnugo,
    flip_rows,
    gtp_to_action,
    parse_opponent,
)
from kerlym.envs.openspiel import IllegalMove, OpenSpielEnv  # noqa: F401 (IllegalMove: kerlym.envs.go's API)

PLANES = {"colours": 3, "mover": 4}  # GoEnv's ``planes`` settings and their planes' count


class GoEnv(OpenSpielEnv):
    """Go on an N x N board against a fixed opponent; the agent plays ``player_color``.

    Observation: uint8 ``(3, N, N)`` planes of black, white and empty points, row 0 at the top; with
    ``planes="mover"``, ``(4, N, N)`` planes of the stones of the side to move, the other side's stones,
    the empty points and the colour to move (all 1 when white is to move), AlphaGo Zero's convention.
    Actions: ``Discrete(N*N + 2)``, points row-major, then pass and resign. Reward: +1 / -1 / 0 for the
    agent's win, loss or draw when the game ends (``terminated``), 0 before. ``info["action_mask"]`` (int8,
    1 = legal) comes with every reset and step; pass and resign are always
    legal. ``info["player"]`` is the agent's colour, 0 black and 1 white.
    At the end ``info["end"]`` says why: ``"two_passes"``, ``"resign"``,
    ``"opponent_resigned"``, ``"illegal_move"``, ``"superko"`` or ``"move_limit"``.

    Args:
        board_size: N, 2 to 19 (OpenSpiel's limits).
        opponent: ``"random"``, ``"mcts:SIMULATIONS"`` (OpenSpiel's MCTS with random rollouts) or
            ``"gnugo:LEVEL"`` (GnuGo 3.8, level 0-10). Every one is seeded by ``reset(seed=...)``.
        player_color: ``"black"`` (moves first), ``"white"`` (the opponent moves first at reset), or
            ``"alternate"`` (black, white, black, ... over resets).
        illegal_move_mode: ``"lose"`` (an illegal move loses: reward -1, terminated) or ``"raise"`` (IllegalMove).
        komi: points added to white's score. OpenSpiel's default 7.5; the old gym's Pachi board had komi 0.
        max_game_length: OpenSpiel's move cap, after which the position is scored; None for its ``2 N**2``.
        planes: ``"colours"`` (black, white, empty: the original env's 3 planes, which do not say whose turn it is)
            or ``"mover"`` (the side to move's stones, the other side's, empty, and a plane of 1s when white is to
            move): they say whose turn it is, so a value head can learn the result for the side to move, and a
            search scores either side's positions as they are.
        render_mode: ``"ansi"`` (text), ``"rgb_array"`` (an image, for videos) or ``"human"`` (prints the text).
    """

    metadata = {"render_modes": ["human", "ansi", "rgb_array"], "render_fps": 4}
    searchable = True  # --search: OpenSpiel's actions map to Go's (search_actions); search_observation
    self_play = True  # the other seat plays Go's actions (no resigning) on the same planes: opponent_play

    def __init__(
        self,
        board_size: int = 9,
        opponent: str = "gnugo:0",
        player_color: str = "black",
        illegal_move_mode: str = "lose",
        komi: float = 7.5,
        max_game_length: int | None = None,
        render_mode: str | None = None,
        planes: str = "colours",
    ):
        try:
            import pyspiel
        except ImportError:
            raise DependencyNotInstalled(f"Go needs OpenSpiel: {install_hint('go')}") from None
        if not (str(board_size).isdigit() and 2 <= int(board_size) <= 19):  # "9" too, as a command line gives it
            raise ValueError(f"board_size must be an integer from 2 to 19, got {board_size!r}")
        if isinstance(komi, bool) or not isinstance(komi, numbers.Real) or not math.isfinite(komi):
            raise ValueError(f"komi must be a finite number, got {komi!r}")
        length = max_game_length
        if length is not None and (isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 1):
            raise ValueError(f"max_game_length must be a positive integer or None, got {max_game_length!r}")
        if player_color not in ("black", "white", "alternate"):
            raise ValueError(f"player_color must be 'black', 'white' or 'alternate', got {player_color!r}")
        if planes not in PLANES:
            raise ValueError(
                f"planes must be 'colours' (black, white, empty) or 'mover' (the side to move's), got {planes!r}"
            )
        self.planes = planes
        self.board_size = n = int(board_size)
        self.player_color, self.komi = player_color, float(komi)
        self.pass_action, self.resign_action = n * n, n * n + 1
        params = {"board_size": n, "komi": self.komi}
        if max_game_length is not None:
            params["max_game_length"] = int(max_game_length)
        game = pyspiel.load_game("go", params)
        # OpenSpiel's player numbers: black 0, white 1. The opponent (GnuGo's error names the way out) and
        # the rules come from the generic env; the observation and the actions are Go's own, below.
        seat = {"black": 0, "white": 1, "alternate": "alternate"}[player_color]
        super().__init__(game, opponent, seat, illegal_move_mode, render_mode)
        self.max_game_length = self.game.max_game_length()
        self.observation_space = spaces.Box(0, 1, shape=(PLANES[planes], n, n), dtype=np.uint8)
        self.action_space = spaces.Discrete(n * n + 2)

    # -- Go's actions and observation over the generic game ---------------------------------------------------------
    def play(self, action):
        if self.action_space.contains(action) and int(action) == self.resign_action and not self.done:
            return self._finish(-1.0, "resign")
        return super().play(action)

    def opponent_view(self) -> tuple[np.ndarray, np.ndarray]:
        """The other seat's planes and legal moves: never resign, pass only in reply to a pass or with no point left
        (the module's docstring says why)."""
        obs, mask = super().opponent_view()
        mask[self.resign_action] = 0
        history = self.state.history()
        if mask[: self.pass_action].any() and not (history and history[-1] == self.pass_action):
            mask[self.pass_action] = 0
        return obs, mask

    def opponent_play(self, action: int) -> None:
        """Play the other seat's move ``action``, one :meth:`opponent_view`'s mask allows (else IllegalMove)."""
        action = int(action)
        if action >= self.pass_action and self.opponent_to_move() and not self.opponent_view()[1][action]:
            raise IllegalMove(f"the other seat cannot {('pass', 'resign')[action - self.pass_action]} now")
        super().opponent_play(action)

    def to_spiel(self, action: int) -> int:
        return flip_rows(action, self.board_size)

    def search_actions(self) -> np.ndarray:
        n = self.board_size
        return np.array([flip_rows(a, n) for a in range(n * n + 1)])  # points and pass; resign is not OpenSpiel's

    def search_observation(self, state) -> np.ndarray:
        """The mover's planes of ``state`` (``planes="mover"``); black-white-empty planes with the colours swapped
        when the other side is to move: there an agent's network knows its own colour from training only, since
        the planes do not say whose turn it is."""
        planes = self.observation(state)
        if self.planes == "mover":
            return planes
        mover = state.current_player()
        return planes[[1, 0, 2]] if 0 <= mover < 2 and mover != self.player else planes

    @classmethod
    def evaluation_kwargs(cls, opponent: str) -> dict:
        return {"opponent": opponent, "player_color": "alternate"}

    def illegal_text(self, action: int) -> str:
        return f"{action_to_gtp(action, self.board_size)} is illegal for {('black', 'white')[self.player]}"

    def end_reason(self) -> str:
        history = self.state.history()
        if history[-2:] == [self.pass_action, self.pass_action]:
            return "two_passes"
        return "move_limit" if len(history) >= self.max_game_length else "superko"

    def observation(self, state) -> np.ndarray:
        """The env's planes of ``state``, row 0 at the top: black, white and empty (whoever is to move), or with
        ``planes="mover"`` the side to move's stones, the other side's, empty and the colour to move."""
        planes = self.spiel_planes(state)
        # OpenSpiel's 4th plane is 1s when white is to move (at the end too: the side whose turn it would be)
        return planes[:3] if self.planes == "colours" else mover_planes(planes[:3], planes[3, 0, 0])

    def spiel_planes(self, state) -> np.ndarray:
        """OpenSpiel's 4 planes of ``state`` (black, white, empty, 1s when white is to move), row 0 at the top."""
        n = self.board_size
        planes = np.asarray(state.observation_tensor(0), dtype=np.float32).reshape(4, n, n)
        return np.ascontiguousarray(planes[:, ::-1], dtype=np.uint8)  # OpenSpiel's row 0 is the bottom

    def _observation(self) -> np.ndarray:
        return self.observation(self.state)

    def symmetries(self) -> tuple[np.ndarray, np.ndarray]:
        """The board's 8 rotations and reflections as index arrays ``(obs_index [8, P N²], action_index [8, N² + 2])``,
        P the planes (3, or 4 with ``planes="mover"``).

        Symmetry ``k`` turns a flat observation ``o`` into ``o[obs_index[k]]`` and a per-action
        vector ``v`` (the action mask) into ``v[action_index[k]]``; pass and resign stay put.
        Row 0 is the identity. Go's rules and scoring (komi included) do not change under
        them, so a transformed game is as real as the one played
        (:class:`kerlym.symmetries.Symmetries` uses them).
        """
        n = self.board_size
        count = self.observation_space.shape[0]
        planes = np.arange(count * n * n).reshape(count, n, n)
        points = np.arange(n * n).reshape(n, n)
        obs_index, action_index = [], []
        for flip in (False, True):
            for k in range(4):
                obs = np.rot90(planes, k, axes=(1, 2))
                board = np.rot90(points, k)
                if flip:
                    obs, board = obs[:, :, ::-1], board[:, ::-1]
                obs_index.append(obs.reshape(-1))
                action_index.append(np.concatenate([board.reshape(-1), [self.pass_action, self.resign_action]]))
        return np.array(obs_index), np.array(action_index)

    def action_mask(self) -> np.ndarray:
        """int8 over the actions, 1 where legal for the side to move (the agent's, or in self-play the other
        seat's while :meth:`opponent_to_move`); pass and resign always."""
        mask = np.zeros(self.action_space.n, dtype=np.int8)
        if not self.done and not self.state.is_terminal():
            mask[[flip_rows(a, self.board_size) for a in self.state.legal_actions()]] = 1
        mask[self.pass_action] = mask[self.resign_action] = 1
        return mask

    def _info(self) -> dict:
        info = {"action_mask": self.action_mask(), "player": self.player}
        if self.end is not None:
            info["end"] = self.end
        return info

    # -- rendering and closing -----------------------------------------------------------------------------------
    def render(self):
        if self.render_mode == "rgb_array":
            return board_image(self.spiel_planes(self.state))
        text = board_text(self.spiel_planes(self.state), self.komi)  # real colours, whatever ``planes`` is
        if self.render_mode == "human":
            print(text, file=sys.stdout)
            return None
        return text

    def __del__(self):
        try:
            self.close()
        except Exception:  # at interpreter exit the pipes or the subprocess module may be gone already
            pass


def mover_planes(colours: np.ndarray, white_to_move) -> np.ndarray:
    """Black, white and empty planes ``[..., 3, N, N]`` as the mover's ``[..., 4, N, N]`` (``planes="mover"``): the
    side to move's stones, the other side's, empty, and 1s when white is to move (``white_to_move``, a bool, or
    one for each board of a batch)."""
    colours = np.asarray(colours, dtype=np.uint8)
    white = np.asarray(white_to_move, dtype=bool)[..., None, None]
    black_stones, white_stones, empty = colours[..., 0, :, :], colours[..., 1, :, :], colours[..., 2, :, :]
    own, other = np.where(white, white_stones, black_stones), np.where(white, black_stones, white_stones)
    colour = np.broadcast_to(white, empty.shape)
    return np.stack([own, other, empty, colour], axis=-3).astype(np.uint8)


def board_text(planes: np.ndarray, komi: float) -> str:
    """The board as text, black X and white O, GTP's letters and numbers round it."""
    n = planes.shape[1]
    letters = "   " + " ".join(GTP_COLUMNS[:n])
    rows = [letters]
    for r in range(n):
        cells = ["X" if planes[0, r, c] else "O" if planes[1, r, c] else "." for c in range(n)]
        rows.append(f"{n - r:2d} {' '.join(cells)} {n - r:2d}")
    rows.append(letters)
    rows.append(f"komi {komi:g}, stones: black {int(planes[0].sum())}, white {int(planes[1].sum())}")
    return "\n".join(rows)


def board_image(planes: np.ndarray, cell: int = 24) -> np.ndarray:
    """The board as an RGB uint8 image, ``cell`` pixels a point: wood, grid lines, black and white stones."""
    n = planes.shape[1]
    size = n * cell
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = (220, 179, 92)
    centre = np.arange(n) * cell + cell // 2
    lo, hi = centre[0], centre[-1] + 1
    image[centre, lo:hi] = 0  # horizontal lines
    image[lo:hi, centre] = 0  # vertical lines
    yy, xx = np.mgrid[:cell, :cell] - (cell - 1) / 2
    disc = yy**2 + xx**2 <= (0.45 * cell) ** 2
    for colour, plane in (((10, 10, 10), planes[0]), ((245, 245, 245), planes[1])):
        for r, c in zip(*np.nonzero(plane)):
            image[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell][disc] = colour
    return image
