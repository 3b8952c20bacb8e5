"""The Go env's opponents: uniform random play, OpenSpiel's MCTS bot, and GnuGo over GTP.

An opponent has ``new_game(rng)``, ``observe(state, action)``, ``move(state)`` and ``close()``;
actions are OpenSpiel's, and ``move()`` returns one legal in ``state`` or :data:`RESIGN`.
Also the conversions between this env's actions, OpenSpiel's and GTP's vertices.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np

from kerlym._io import ProcessDied

GNUGO_PATH = "/usr/games/gnugo"  # where Debian's gnugo package puts it, off most users' PATH
GTP_COLUMNS = "ABCDEFGHJKLMNOPQRST"  # GTP skips the letter I
RESIGN = -1  # what an opponent's move() returns to resign
OPPONENT_FORMS = "'random', 'mcts:SIMULATIONS' or 'gnugo:LEVEL'"


def find_gnugo() -> str | None:
    """GnuGo's binary: ``gnugo`` on PATH, else Debian's ``/usr/games/gnugo``; None when neither exists."""
    found = shutil.which("gnugo")
    if found is None and os.access(GNUGO_PATH, os.X_OK):
        found = GNUGO_PATH
    return found


def flip_rows(action: int, board_size: int) -> int:
    """This env's point action <-> OpenSpiel's (OpenSpiel counts rows from the bottom); pass maps to pass."""
    if action >= board_size * board_size:
        return action
    row, col = divmod(action, board_size)
    return (board_size - 1 - row) * board_size + col


def action_to_gtp(action: int, board_size: int) -> str:
    """A point or pass action as a GTP vertex: rows count from the bottom, columns skip I."""
    if action == board_size * board_size:
        return "pass"
    row, col = divmod(action, board_size)
    return f"{GTP_COLUMNS[col]}{board_size - row}"


def gtp_to_action(vertex: str, board_size: int) -> int:
    """A GTP vertex (any case) as this env's action; ``pass`` is ``N * N``."""
    vertex = vertex.strip().upper()
    if vertex == "PASS":
        return board_size * board_size
    col, row = GTP_COLUMNS.index(vertex[0]), board_size - int(vertex[1:])
    if not (0 <= row < board_size and col < board_size):
        raise ValueError(f"GTP vertex {vertex} is off a {board_size}x{board_size} board")
    return row * board_size + col


# -- opponents: new_game(rng), observe(state, action), move(state), close() --------------------------------------
# Actions here are OpenSpiel's; move() returns one legal in ``state`` or RESIGN.
class RandomOpponent:
    """Uniform over OpenSpiel's legal moves (points and pass), drawn from the env's ``np_random``."""

    def new_game(self, rng):
        self.rng = rng

    def observe(self, state, action):
        pass

    def move(self, state):
        return int(self.rng.choice(state.legal_actions()))

    def close(self):
        pass


class MCTSOpponent:
    """OpenSpiel's MCTS bot with ``simulations`` random-rollout simulations a move, seeded per game."""

    def __init__(self, game, simulations: int):
        self.game, self.simulations = game, simulations

    def new_game(self, rng):
        from open_spiel.python.algorithms import mcts

        random_state = np.random.RandomState(int(rng.integers(2**31)))
        evaluator = mcts.RandomRolloutEvaluator(n_rollouts=1, random_state=random_state)
        self.bot = mcts.MCTSBot(
            self.game, uct_c=2.0, max_simulations=self.simulations, evaluator=evaluator, random_state=random_state
        )

    def observe(self, state, action):
        pass

    def move(self, state):
        return self.bot.step(state)

    def close(self):
        pass


class GnuGoOpponent:
    """GnuGo as a GTP subprocess, kept in step with the game by sending it every move.

    GnuGo runs with ``--capture-all-dead --play-out-aftermath`` because the
    score is Tromp-Taylor: without them it passes with dead stones still on
    the board and loses games it has won. ``--chinese-rules`` (area scoring)
    and ``--positional-superko`` make it play by OpenSpiel's rules (no suicide,
    no repeated position), so it avoids the moves with which OpenSpiel would end
    the game as a superko draw. The two then agree on legality; as a safety net,
    should GnuGo propose a move OpenSpiel refuses, the opponent passes instead,
    and should GnuGo refuse a move OpenSpiel played, the move stands; either way
    GnuGo's board is then rebuilt from OpenSpiel's position. GnuGo resigning
    loses it the game.
    """

    def __init__(self, binary: str, level: int, board_size: int, komi: float):
        self.args = [binary, "--mode", "gtp", "--level", str(level), "--seed", "0"]
        self.args += ["--capture-all-dead", "--play-out-aftermath", "--chinese-rules", "--positional-superko"]
        self.board_size, self.komi = board_size, komi
        self.process = None

    def gtp(self, command: str) -> str:
        """Send one GTP command; its answer without the ``=``, or RuntimeError on ``?`` or a dead GnuGo."""
        try:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise ProcessDied(f"GnuGo, the Go opponent, exited (code {self._exit_code()}) before {command!r}") from None
        lines = []
        while True:  # an answer is one or more lines, then an empty line
            line = self.process.stdout.readline()
            if not line:
                raise ProcessDied(f"GnuGo, the Go opponent, exited (code {self._exit_code()}) answering {command!r}")
            if line.strip():
                lines.append(line.strip())
            elif lines:
                break
        answer = "\n".join(lines)
        if answer.startswith("?"):
            raise RuntimeError(f"GnuGo refused {command!r}: {answer[1:].strip()}")
        return answer[1:].strip()

    def _exit_code(self):
        try:
            return self.process.wait(timeout=1.0)  # its pipe closed as it died: a moment for its exit status
        except subprocess.TimeoutExpired:
            return None

    def new_game(self, rng):
        if self.process is None:
            # In a session of its own, so that a terminal's Ctrl-C reaches kerlym only, which then stops it (close).
            self.process = subprocess.Popen(
                self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                start_new_session=True,
            )  # fmt: skip
            self.gtp(f"boardsize {self.board_size}")
            self.gtp(f"komi {self.komi}")
        self.gtp("clear_board")
        self.gtp(f"set_random_seed {int(rng.integers(2**31))}")

    def vertex(self, action: int) -> str:
        return action_to_gtp(flip_rows(action, self.board_size), self.board_size)

    def observe(self, state, action):
        color = "W" if state.current_player() == 0 else "B"  # the side that just moved
        try:
            self.gtp(f"play {color} {self.vertex(action)}")
        except ProcessDied:
            raise
        except RuntimeError:
            self.rebuild(state)

    def move(self, state):
        color = "B" if state.current_player() == 0 else "W"
        answer = self.gtp(f"genmove {color}")
        if answer.lower() == "resign":
            return RESIGN
        action = flip_rows(gtp_to_action(answer, self.board_size), self.board_size)
        if action not in state.legal_actions():
            self.rebuild(state)  # GnuGo's board already holds its move: set it back to OpenSpiel's
            action = self.board_size * self.board_size
        return action

    def rebuild(self, state):
        """Set GnuGo's board to ``state``'s stones (in any order: in a legal position none is ever captured)."""
        n = self.board_size
        planes = np.asarray(state.observation_tensor(0)).reshape(4, n, n)
        self.gtp("clear_board")
        for color, plane in (("B", planes[0]), ("W", planes[1])):
            for action in np.flatnonzero(plane):
                self.gtp(f"play {color} {self.vertex(int(action))}")

    def close(self):
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.stdin.write("quit\n")
            process.stdin.flush()
            process.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            for pipe in (process.stdin, process.stdout):
                try:
                    pipe.close()
                except OSError:  # a dead GnuGo: what was buffered for it cannot be flushed
                    pass


def opponent_text(opponent: str) -> str:
    """``"gnugo:0"`` -> ``"GnuGo level 0"``: an opponent in words, for the user."""
    kind, number = parse_opponent(opponent)
    if kind == "gnugo":
        return f"GnuGo level {number}"
    return f"OpenSpiel's MCTS bot ({number} simulations a move)" if kind == "mcts" else "uniformly random moves"


def parse_opponent(opponent: str) -> tuple[str, int]:
    """``"gnugo:0"`` -> ``("gnugo", 0)``; ``"random"`` -> ``("random", 0)``; ValueError on anything else."""
    kind, _, number = str(opponent).partition(":")
    if kind == "random" and not number:
        return kind, 0
    if kind in ("gnugo", "mcts") and number.isdigit():
        value = int(number)
        if (kind == "gnugo" and value <= 10) or (kind == "mcts" and value >= 1):
            return kind, value
    raise ValueError(f"unknown opponent {opponent!r}; use {OPPONENT_FORMS} (gnugo levels 0-10)")
