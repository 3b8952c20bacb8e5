"""Behaviour cloning before RL: ``--pretrain gnugo:LEVEL:GAMES`` (Go) or ``--pretrain mcts:SIMULATIONS:GAMES``
(any ``openspiel:`` two-player game).

A teacher plays ``GAMES`` games against itself (a few processes in parallel), and every position it moved in is
kept as the env shows it to the side to move, with its action mask, the teacher's move in the env's actions and
the game's result from the mover's side (+1, 0, -1):

- ``gnugo:LEVEL``: GnuGo at ``LEVEL`` over GTP (one process plays both colours), positions as the Go env's own
  planes (:meth:`kerlym.envs.go.GoEnv.observation`, black, white and empty whoever is to move; a run on
  ``planes="mover"`` learns them as the mover's, :func:`env_planes`) and its mask
  (:meth:`~kerlym.envs.go.GoEnv.action_mask`: the legal points, pass and resign).
- ``mcts:SIMULATIONS``: OpenSpiel's C++ MCTS bot (``pyspiel.MCTSBot``, one random rollout per leaf, UCT
  constant 2, solving proven wins and losses: the ``mcts:N`` opponent's algorithm, run natively) with
  ``SIMULATIONS`` simulations a move; positions as ``state.observation_tensor(mover)``, the env's view
  (:class:`kerlym.envs.openspiel.OpenSpielEnv`), and its most visited move.

The games are saved once as an ``.npz`` dataset in a cache folder (``$KERLYM_CACHE``, else
``~/.cache/kerlym``) and reused by every later run that asks for the same games.

The agent's own network (its model factory's, as the run built it) then learns the games with
Keras's ``fit``: the policy head by cross-entropy over the legal moves of the teacher's move, the value
head by the squared error to the result (for the MCTS teacher, :data:`SEARCH_VALUE_WEIGHT` of the way from
it to the search's value of the move), each position turned by one of the env's symmetries (Go's 8,
connect four's mirror, tic-tac-toe's 8; none for a game without them) drawn afresh each time it is seen.
RL starts from those weights. Actor-critic agents (a2c, ppo) only: they have the policy and value heads to
clone into.

The games vary by their random seeds (GnuGo's ``set_random_seed``, the MCTS bot's rollouts, a new one each
game) and by ``OPENING_MOVES`` uniformly random moves at the start of each game, which are not learnt from.

Ctrl-C (or SIGTERM) stops the pretraining at once: while the games are played, between two moves,
with every finished game saved in the cache (the part files, a part's finished games too) and GnuGo
closed; during ``fit``, at the end of the current batch. Either way :class:`Interrupted` says in one
line what was kept, and RL does not start: the same command again plays only the games still missing,
or clones from the cached games, and goes on.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, wait
from multiprocessing import get_context

import numpy as np

SPEC_FORM = "gnugo:LEVEL:GAMES or mcts:SIMULATIONS:GAMES"
RECORD = "pretrain.json"  # what was cloned, in the run folder
PART_GAMES = 100  # games played, and saved, together
GNUGO_RETRIES = 2  # a GnuGo that dies mid-game (killed from outside) is started again this many times
OPENING_MOVES = 2  # random moves opening each game (not learnt from): GnuGo alone repeats its games often
UCT_C = 2.0  # the MCTS teacher's exploration constant, the mcts:N opponent's (kerlym.envs.go_opponents.MCTSOpponent)
MCTS_MEMORY_MB = 1000  # the C++ MCTS bot's tree, at most
VALUE_WEIGHT = 0.5  # the value's squared error beside the policy's cross-entropy, as PPO's vf_coef
EPOCHS = 10
BATCH_SIZE = 256
LEARNING_RATE = 1e-3  # Adam's, at the start; it falls along a cosine to FINAL_LR_FRACTION of it by the last batch
FINAL_LR_FRACTION = 0.02
SEARCH_VALUE_WEIGHT = 0.5  # the value target's share of the teacher's search value, where it has one (mcts)


class Interrupted(KeyboardInterrupt):
    """A signal stopped the pretraining; the message (one line) says what was kept, ``signum`` which signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class Stopped(Exception):
    """:func:`generate` was stopped before all its games were played; ``games`` of them are saved (with ``parts``)."""

    def __init__(self, games: int):
        super().__init__(f"stopped after {games} games")
        self.games = games


def parse_spec(spec: str) -> tuple[str, int, int]:
    """``"gnugo:0:500"`` -> ``("gnugo", 0, 500)``, ``"mcts:4000:2500"`` -> ``("mcts", 4000, 2500)``: the teacher, its
    strength (GnuGo's level, 0-10, or the MCTS bot's simulations a move) and the number of games; ValueError
    otherwise."""
    parts = str(spec).split(":")
    if len(parts) == 3 and parts[0] in ("gnugo", "mcts") and parts[1].isdigit() and parts[2].isdigit():
        teacher, strength, games = parts[0], int(parts[1]), int(parts[2])
        if games >= 1 and (strength <= 10 if teacher == "gnugo" else strength >= 1):
            return teacher, strength, games
    raise ValueError(f"--pretrain takes {SPEC_FORM} (level 0-10, at least 1 simulation and 1 game), got {spec!r}")


def cache_dir() -> str:
    """Where datasets are kept: ``$KERLYM_CACHE``, else ``~/.cache/kerlym``."""
    return os.environ.get("KERLYM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kerlym")


def teacher(spec: str, game) -> tuple:
    """``(play, settings, name)`` for ``spec`` on the env ``game`` (unwrapped): the function that plays the games
    (:func:`play_games` or :func:`play_mcts_games`, called with ``settings`` and the games and seed), and the
    dataset's name without the games and seed."""
    kind, strength, _ = parse_spec(spec)
    if kind == "gnugo":
        settings = {"level": strength, "board_size": game.board_size, "komi": game.komi}
        return play_games, settings, f"gnugo{strength}_go{game.board_size}_komi{game.komi:g}"
    spelled = str(game.game)  # OpenSpiel's own spelling, parameters included: "connect_four()"
    name = "".join(c if c.isalnum() or c in "_." else "-" for c in spelled.replace("()", "")).strip("-")
    return play_mcts_games, {"simulations": strength, "game": spelled}, f"mcts{strength}_{name}"


def dataset_path(spec: str, game, seed: int = 0, folder: str | None = None) -> str:
    """The ``.npz`` file of ``spec``'s games on the env ``game`` in ``folder`` (default :func:`cache_dir`)."""
    _, _, name = teacher(spec, game)
    return os.path.join(folder or cache_dir(), f"{name}_{parse_spec(spec)[2]}games_seed{seed}.npz")


# -- the games --------------------------------------------------------------------------------------------------
def play_games(
    level: int, games: int, board_size: int = 9, komi: float = 7.5, seed: int | list = 0, first: int = 0, stop=None
) -> dict:
    """GnuGo at ``level`` playing itself ``games`` times: every position GnuGo moved in, as the env shows it.

    ``first`` skips that many of the games (their seeds are drawn all the same, so game ``i`` is the same game
    whether or not it follows a skipped one). ``stop()``, asked before each move, ends the play when true: the
    game in progress is dropped, and the games finished so far are returned.

    Returns:
        ``obs`` uint8 ``[M, 3, N, N]`` (the env's planes), ``mask`` int8 ``[M, N*N + 2]`` (its action mask),
        ``action`` int16 ``[M]`` (GnuGo's move in the env's actions; resign is ``N*N + 1``), ``value`` float32
        ``[M]`` (the game's result for the side that moved), ``game`` int32 ``[M]`` (its index among those
        returned) and ``moves`` int16 ``[games played, max moves]``, each game's whole move list in the env's
        actions (random openings included), -1 after its end, for replaying it.

    Raises:
        DependencyNotInstalled: GnuGo or OpenSpiel is missing (one line).
    """
    from gymnasium.error import DependencyNotInstalled

    from kerlym._io import ProcessDied
    from kerlym.envs.go import RESIGN, GnuGoOpponent, GoEnv, find_gnugo

    binary = find_gnugo()
    if binary is None:
        raise DependencyNotInstalled("--pretrain gnugo needs GnuGo: apt-get install gnugo")
    env = GoEnv(board_size, opponent="random", komi=komi)
    gnugo = GnuGoOpponent(binary, level, board_size, komi)
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), 0x6C0])
    rows: dict[str, list] = {"obs": [], "mask": [], "action": [], "value": [], "game": []}
    move_lists = []
    game_seeds = [int(rng.integers(2**31)) for _ in range(games)]
    try:
        for game_seed in game_seeds[first:]:
            for attempt in range(GNUGO_RETRIES + 1):  # a GnuGo killed from outside: a new one plays the game again
                try:
                    game_rows, moves = _one_game(env, gnugo, np.random.default_rng(game_seed), RESIGN, stop)
                    break
                except ProcessDied:
                    gnugo.close()
                    if attempt == GNUGO_RETRIES:
                        raise
            if game_rows is None:  # stopped
                break
            for key, values in game_rows.items():
                rows[key] += values
            rows["game"] += [len(move_lists)] * len(game_rows["action"])
            move_lists.append(moves)
    finally:
        gnugo.close()
        env.close()
    n = board_size
    return {
        "obs": np.asarray(rows["obs"], dtype=np.uint8).reshape(-1, 3, n, n),
        "mask": np.asarray(rows["mask"], dtype=np.int8).reshape(-1, n * n + 2),
        "action": np.asarray(rows["action"], dtype=np.int16),
        "value": np.asarray(rows["value"], dtype=np.float32),
        "game": np.asarray(rows["game"], dtype=np.int32),
        "moves": _move_table(move_lists),
    }


def _move_table(move_lists: list[list[int]]) -> np.ndarray:
    """Each game's moves as a row of an int16 table, -1 after its end."""
    table = np.full((len(move_lists), max((len(m) for m in move_lists), default=0)), -1, dtype=np.int16)
    for g, m in enumerate(move_lists):
        table[g, : len(m)] = m
    return table


def _one_game(env, gnugo, rng, resign: int, stop=None) -> tuple[dict | None, list[int] | None]:
    """One game of GnuGo against itself after :data:`OPENING_MOVES` random ones: its rows (the positions GnuGo
    moved in) and its whole move list, in the env's actions; ``(None, None)`` once ``stop()`` is true."""
    from kerlym.envs.go import flip_rows

    n = env.board_size
    env.reset(seed=int(rng.integers(2**31)))
    state = env.state
    gnugo.new_game(rng)
    rows: dict[str, list] = {"obs": [], "mask": [], "action": []}
    moves, movers, resigned = [], [], None
    while not state.is_terminal():
        if stop is not None and stop():
            return None, None
        mover = state.current_player()
        if len(moves) < OPENING_MOVES:
            spiel = int(rng.choice([a for a in state.legal_actions() if a != n * n]))
            gnugo.gtp(f"play {'BW'[mover]} {gnugo.vertex(spiel)}")
        else:
            spiel = gnugo.move(state)  # genmove: GnuGo's board holds the move already
            action = env.resign_action if spiel == resign else flip_rows(spiel, n)
            rows["obs"].append(env.observation(state))
            rows["mask"].append(env.action_mask())
            rows["action"].append(action)
            movers.append(mover)
            if spiel == resign:
                moves.append(action)
                resigned = mover
                break
        moves.append(flip_rows(spiel, n))
        state.apply_action(spiel)
    returns = state.returns() if resigned is None else [1.0 - 2.0 * (p == resigned) for p in (0, 1)]
    rows["value"] = [float(returns[m]) for m in movers]
    return rows, moves


def play_mcts_games(
    simulations: int, games: int, game: str = "connect_four", seed: int | list = 0, first: int = 0, stop=None
) -> dict:
    """OpenSpiel's C++ MCTS bot with ``simulations`` simulations a move playing itself ``games`` times at the
    OpenSpiel game ``game``: every position it moved in, as the env shows it to the mover.

    ``first`` and ``stop`` as :func:`play_games`'. Chance outcomes (dice, deals) are drawn from each game's seed.

    Returns:
        :func:`play_games`' arrays: ``obs`` float32 ``[M, *observation_tensor_shape]``
        (``state.observation_tensor(mover)``), ``mask`` int8 ``[M, actions]``, ``action`` int16 ``[M]`` (the most
        visited move, a proven win first), ``value`` float32 ``[M]`` (the mover's return), ``search_value``
        float32 ``[M]`` (the teacher's value of its move for the mover: proven, else its mean return over the
        simulations through it), ``game`` int32 ``[M]`` and ``moves`` int16 ``[games played, max moves]`` (every
        action, chance outcomes and openings included).
    """
    import pyspiel

    from kerlym.envs.openspiel import load_game

    spiel = load_game(game)
    actions = spiel.num_distinct_actions()
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), 0x3C7])
    rows: dict[str, list] = {"obs": [], "mask": [], "action": [], "search_value": [], "value": [], "game": []}
    move_lists = []
    for game_seed in [int(rng.integers(2**31)) for _ in range(games)][first:]:
        game_rng = np.random.default_rng(game_seed)
        bot = pyspiel.MCTSBot(
            spiel, pyspiel.RandomRolloutEvaluator(1, game_seed), UCT_C, int(simulations), MCTS_MEMORY_MB, True,
            game_seed, False,
        )  # fmt: skip
        state, moves, movers = spiel.new_initial_state(), [], []
        game_rows: dict[str, list] = {"obs": [], "mask": [], "action": [], "search_value": []}
        while not state.is_terminal():
            if stop is not None and stop():
                break
            if state.is_chance_node():
                outcomes, chances = zip(*state.chance_outcomes())
                action = int(game_rng.choice(outcomes, p=np.asarray(chances) / sum(chances)))
            elif len(moves) < OPENING_MOVES:
                action = int(game_rng.choice(state.legal_actions()))
            else:
                mover = state.current_player()
                best = bot.mcts_search(state).best_child()
                action = int(best.action)
                game_rows["search_value"].append(  # the teacher's estimate of the move for the mover: proven, or mean
                    best.outcome[mover] if best.outcome else best.total_reward / max(1, best.explore_count)
                )
                mask = np.zeros(actions, dtype=np.int8)
                mask[state.legal_actions()] = 1
                game_rows["obs"].append(np.asarray(state.observation_tensor(mover), dtype=np.float32))
                game_rows["mask"].append(mask)
                game_rows["action"].append(action)
                movers.append(mover)
            moves.append(action)
            state.apply_action(action)
        if not state.is_terminal():  # stopped: the game in progress is dropped
            break
        for key, values in game_rows.items():
            rows[key] += values
        rows["value"] += [float(state.returns()[m]) for m in movers]
        rows["game"] += [len(move_lists)] * len(movers)
        move_lists.append(moves)
    return {
        "obs": np.asarray(rows["obs"], dtype=np.float32).reshape(-1, *spiel.observation_tensor_shape()),
        "mask": np.asarray(rows["mask"], dtype=np.int8).reshape(-1, actions),
        "action": np.asarray(rows["action"], dtype=np.int16),
        "value": np.asarray(rows["value"], dtype=np.float32),
        "search_value": np.asarray(rows["search_value"], dtype=np.float32),
        "game": np.asarray(rows["game"], dtype=np.int32),
        "moves": _move_table(move_lists),
    }


_worker_stop = None  # in a worker process of generate(): the event the parent sets to stop the games


def _start_worker(stop_event) -> None:
    """A worker of :func:`generate`: Ctrl-C and SIGTERM are the parent's to act on (a terminal sends them to the
    whole process group); it stops when the parent sets ``stop_event``, and dies with the parent."""
    import signal

    from kerlym._io import die_with_parent

    global _worker_stop
    _worker_stop = stop_event
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    die_with_parent(signal.SIGKILL)  # its GnuGo, its stdin closed, then ends too


def _play_part(job, stop=None) -> dict:
    """One part's games: those an earlier call saved in the part's file, then the rest, saved as they end (a
    stopped part's finished games too)."""
    play, settings, games, seed, part = job
    saved = _load(part) if part and os.path.exists(part) else None
    played = 0 if saved is None else len(saved["moves"])
    if played >= games:
        return saved
    if stop is None and _worker_stop is not None:
        stop = _worker_stop.is_set
    new = play(**settings, games=games, seed=seed, first=played, stop=stop)
    data = new if saved is None else _concatenate([saved, new])
    if part and len(new["moves"]):
        _save(part, data)
    return data


def _concatenate(parts: list[dict]) -> dict:
    """:func:`play_games`' arrays of consecutive games as one set of them (games numbered on, move lists padded)."""
    offsets = np.cumsum([0] + [len(p["moves"]) for p in parts[:-1]])
    longest = max(p["moves"].shape[1] for p in parts)
    keys = [key for key in parts[0] if key not in ("game", "moves")]  # obs, mask, action, value (, search_value)
    out = {key: np.concatenate([p[key] for p in parts]) for key in keys}
    out["game"] = np.concatenate([p["game"] + o for p, o in zip(parts, offsets)]).astype(np.int32)
    out["moves"] = np.concatenate(
        [np.pad(p["moves"], ((0, 0), (0, longest - p["moves"].shape[1])), constant_values=-1) for p in parts]
    )
    return out


def generate(
    play, settings: dict, games: int, seed: int = 0, workers: int = 2, parts: str | None = None, stop=None
) -> dict:
    """``play(**settings, games=..., seed=...)`` (:func:`play_games`, :func:`play_mcts_games`) in parts of
    :data:`PART_GAMES` games, ``workers`` processes (each its own GnuGo) at once.

    Part ``i`` is seeded ``(seed, i)``, so the games do not depend on ``workers``. With ``parts`` (a path
    prefix), each part is saved as it ends, and a part saved by an earlier, interrupted call is loaded
    instead of played again (a part stopped before its end: its finished games, and the rest are played).

    Raises:
        Stopped: ``stop()``, asked between moves, was true before every game was played; each part's
            finished games are saved first (with ``parts``) and the GnuGo processes closed.
    """
    sizes = [min(PART_GAMES, games - start) for start in range(0, games, PART_GAMES)]
    jobs = [(play, settings, size, [int(seed), i], parts and f"{parts}.part{i}.npz") for i, size in enumerate(sizes)]
    workers = max(1, min(int(workers), len(jobs)))
    stopping = stop or (lambda: False)
    if workers == 1:
        done = []
        for job in jobs:
            if stopping():
                break
            done.append(_play_part(job, stopping))
    else:
        context = get_context("spawn")
        stop_event = context.Event()
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(stop_event,))
        with pool:
            futures = [pool.submit(_play_part, job) for job in jobs]
            pending = set(futures)
            while pending:
                pending = wait(pending, timeout=0.25).not_done
                if pending and not stop_event.is_set() and stopping():
                    stop_event.set()  # the running parts save their finished games; the others never start
                    for future in pending:
                        future.cancel()
            done = [future.result() for future in futures if not future.cancelled()]
    played = sum(len(p["moves"]) for p in done)
    if played < games:
        raise Stopped(played)
    return _concatenate(done)


def _save(path: str, data: dict) -> None:
    """``data`` as an ``.npz`` at ``path``, whole or not at all (written aside, then renamed)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp.npz"
    np.savez_compressed(temporary, **data)
    os.replace(temporary, path)


def _load(path: str) -> dict:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def load_or_generate(
    spec: str, game, seed: int = 0, folder: str | None = None, workers: int = 2, stop=None
) -> tuple[dict, str, bool]:
    """The dataset of ``spec``'s games on the env ``game`` from the cache, or generated and saved there:
    ``(arrays, path, was cached)``.

    Raises:
        Stopped: ``stop()`` was true before the games were all played (:func:`generate`); those played are saved.
    """
    path = dataset_path(spec, game, seed, folder)
    if os.path.exists(path):
        return _load(path), path, True
    play, settings, _ = teacher(spec, game)
    games = parse_spec(spec)[2]
    data = generate(play, settings, games, seed, workers, parts=path, stop=stop)
    _save(path, data)
    for i in range(-(-games // PART_GAMES)):
        part = f"{path}.part{i}.npz"
        if os.path.exists(part):
            os.remove(part)
    return data, path, False


# -- learning the games -------------------------------------------------------------------------------------------
def check_agent(agent, spec: str | None = None) -> None:
    """Refuse, in one line (ValueError), an agent or env behaviour cloning (from ``spec``'s teacher) cannot work
    with."""
    from kerlym.envs.openspiel import OpenSpielEnv

    game = agent.env.unwrapped
    if getattr(agent.config, "network_kind", None) != "actor_critic" or agent.continuous:
        raise ValueError(f"--pretrain clones into a policy and a value head: -a a2c, a3c or ppo, not -a {agent.name}")
    go = hasattr(game, "resign_action")
    kind = None if spec is None else parse_spec(spec)[0]
    if kind == "gnugo" and not go:
        raise ValueError(f"--pretrain gnugo plays Go: -e Go9x9-v0 or Go19x19-v0, not {type(game).__name__}")
    if kind == "mcts" and (go or not isinstance(game, OpenSpielEnv)):
        raise ValueError(f"--pretrain mcts plays OpenSpiel's games as -e openspiel:GAME shows them (Go9x9-v0 learns "
                         f"from gnugo:LEVEL:GAMES), not {type(game).__name__}")  # fmt: skip
    if agent.nframes != 1 or agent.difference_obs or agent.frame_shape != game.observation_space.shape:
        raise ValueError("--pretrain learns single board positions: it needs --nframes 1, no difference frames and "
                         "no preprocessor")  # fmt: skip


def env_planes(data: dict, game) -> dict:
    """``data`` (:func:`play_games`' arrays, whose planes are black, white and empty) with the planes the Go env
    ``game`` shows: the same for its default planes, the mover's (:func:`kerlym.envs.go.mover_planes`) for
    ``planes="mover"``.

    The mover of a row follows from the rows' order: a game's rows are its consecutive moves after
    :data:`OPENING_MOVES` random ones, black moving first and passes counting as moves.
    """
    if getattr(game, "planes", "colours") == "colours":
        return data
    from kerlym.envs.go import mover_planes

    games = data["game"]
    _, first, which = np.unique(games, return_index=True, return_inverse=True)
    move = OPENING_MOVES + np.arange(len(games)) - first[which]  # the move's number in its game, from 0
    return {**data, "obs": mover_planes(data["obs"], move % 2 == 1)}


def symmetry_tables(game) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(obs_index [S, P N²], action_index [S, A], action_of [S, A])`` of the env ``game``'s ``S`` symmetries (the
    identity alone for an env without ``symmetries()``): symmetry ``k`` takes flat planes ``o`` to
    ``o[obs_index[k]]``, an action mask ``m`` to ``m[action_index[k]]`` and the action ``a`` to ``action_of[k, a]``."""
    if callable(getattr(game, "symmetries", None)):
        obs_index, action_index = game.symmetries()
    else:
        obs_index = np.arange(int(np.prod(game.observation_space.shape)))[None]
        action_index = np.arange(game.action_space.n)[None]
    action_of = np.argsort(action_index, axis=1)  # the inverse permutations: action_index[k][action_of[k][a]] == a
    return obs_index, action_index, action_of


def value_targets(data: dict) -> np.ndarray:
    """The value head's target per position: the mover's result, or where the teacher searched (``search_value``)
    :data:`SEARCH_VALUE_WEIGHT` of the way from it to the search's value of the move played."""
    if "search_value" not in data:
        return data["value"].astype(np.float32)
    return ((1 - SEARCH_VALUE_WEIGHT) * data["value"] + SEARCH_VALUE_WEIGHT * data["search_value"]).astype(np.float32)


def bc_targets(data: dict) -> np.ndarray:
    """One float32 row per position for Keras: ``[the teacher's move, the value target, the action mask...]``."""
    return np.concatenate(
        [data["action"][:, None].astype(np.float32), value_targets(data)[:, None], data["mask"].astype(np.float32)],
        axis=1,
    )


def bc_losses(num_actions: int):
    """``(loss, policy cross-entropy, value error)`` as Keras losses of :func:`bc_targets`' rows on the model's output
    ``[policy logits, value]``; the loss is the cross-entropy over the legal moves plus :data:`VALUE_WEIGHT` times the
    value's squared error, per position."""
    from keras import ops

    def policy_ce(y_true, y_pred):
        legal = ops.cast(y_true[:, 2:], "bool")
        logits = ops.where(legal, y_pred[:, :num_actions], ops.cast(-1e9, y_pred.dtype))  # the legal moves only
        moves = ops.one_hot(ops.cast(y_true[:, 0], "int32"), num_actions, dtype=y_pred.dtype)
        return -ops.sum(moves * ops.log_softmax(logits, axis=-1), axis=-1)

    def value_mse(y_true, y_pred):
        return ops.square(y_pred[:, -1] - y_true[:, 1])

    def bc_loss(y_true, y_pred):
        return policy_ce(y_true, y_pred) + VALUE_WEIGHT * value_mse(y_true, y_pred)

    return bc_loss, policy_ce, value_mse


def make_batches(data: dict, game, batch_size: int, seed: int, symmetries: bool = True):
    """A ``keras.utils.PyDataset`` of shuffled ``(states, targets)`` batches, each position under a random symmetry."""
    import keras

    obs_index, action_index, action_of = symmetry_tables(game)
    states = data["obs"].reshape(len(data["obs"]), -1)
    targets = bc_targets(data)

    class Positions(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng([int(seed), 0xBC])
            self.order = self.rng.permutation(len(states))

        def __len__(self):
            return -(-len(states) // batch_size)

        def __getitem__(self, i):
            rows = self.order[i * batch_size : (i + 1) * batch_size]
            x, y = states[rows], targets[rows].copy()
            if symmetries:
                k = self.rng.integers(len(obs_index), size=len(rows))
                x = np.take_along_axis(x, obs_index[k], axis=1)
                y[:, 2:] = np.take_along_axis(y[:, 2:], action_index[k], axis=1)
                y[:, 0] = action_of[k, y[:, 0].astype(np.int64)]
            return x.astype(np.float32), y

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(states))

    return Positions()


def policy_cross_entropy(agent, data: dict, batch_size: int = 4096) -> tuple[float, float]:
    """The agent's mean cross-entropy over the legal moves of the teacher's moves, and its value's mean squared
    error."""
    from keras import ops

    _, policy_ce, value_mse = bc_losses(agent.num_actions)
    model = agent.model
    targets, states = bc_targets(data), data["obs"].reshape(len(data["obs"]), -1).astype(np.float32)
    ce, mse = 0.0, 0.0
    for i in range(0, len(states), batch_size):
        out = model(states[i : i + batch_size], training=False)
        y = targets[i : i + batch_size]
        ce += float(ops.sum(policy_ce(y, out)))
        mse += float(ops.sum(value_mse(y, out)))
    return ce / len(states), mse / len(states)


def fit(agent, data: dict, epochs: int = EPOCHS, batch_size: int = BATCH_SIZE, learning_rate: float = LEARNING_RATE,
        seed: int = 0, symmetries: bool = True, verbose: int = 0, stop=None) -> list[dict]:  # fmt: skip
    """Behaviour cloning of ``data`` (:func:`play_games`' arrays) into the agent's network with Keras's ``fit``.

    The agent's own model is trained through a second ``keras.Model`` over the same layers, compiled with
    its own Adam, so the agent's optimizer and compiled steps are left as they were; its weights are the
    agent's from then on. Adam's step starts at ``learning_rate`` and decays along a cosine (Keras's
    ``CosineDecay``) to :data:`FINAL_LR_FRACTION` of it at the last batch of the last epoch. ``stop()``,
    asked after each batch, ends the fit there when true (Keras's ``stop_training``). Returns the per-epoch
    means (``loss``, ``policy_ce``, ``value_mse``) of the epochs begun, each with Adam's ``learning_rate`` at
    the epoch's end.
    """
    import keras

    check_agent(agent)
    model = agent.model
    cloner = keras.Model(model.inputs, model.outputs, name="behaviour_cloning")
    loss, policy_ce, value_mse = bc_losses(agent.num_actions)
    batches = make_batches(data, agent.env.unwrapped, batch_size, seed, symmetries)
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=max(1, int(epochs) * len(batches)), alpha=FINAL_LR_FRACTION
    )
    cloner.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=[policy_ce, value_mse])

    rates = []

    class Progress(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if stop is not None and stop():
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            rates.append(float(self.model.optimizer.learning_rate))

    history = cloner.fit(batches, epochs=int(epochs), verbose=verbose, shuffle=False, callbacks=[Progress()])
    names = ("loss", "policy_ce", "value_mse")
    rows = [{name: float(history.history[name][e]) for name in names} for e in range(len(history.history["loss"]))]
    return [row | {"learning_rate": rate} for row, rate in zip(rows, rates)]


def pretrain(agent, spec: str, epochs: int = EPOCHS, seed: int = 0, folder: str | None = None,
             workers: int = 2, say=print) -> dict:  # fmt: skip
    """``--pretrain gnugo:LEVEL:GAMES`` or ``mcts:SIMULATIONS:GAMES``: the games (cached, or played now), then
    :func:`fit`; a summary for the run.

    Args:
        agent: an a2c, a3c or ppo agent on Go (gnugo) or an ``openspiel:`` game (mcts) (:func:`check_agent`).
        spec: ``gnugo:LEVEL:GAMES`` or ``mcts:SIMULATIONS:GAMES``.
        epochs: passes over the positions.
        seed: the games' seed (their cache file's too) and the batches' order and symmetries.
        folder: the datasets' folder (default :func:`cache_dir`).
        workers: processes playing the games at once.
        say: where the progress lines go.

    Returns:
        What was done: ``teacher`` (``gnugo:LEVEL`` or ``mcts:SIMULATIONS``), ``dataset``, ``games``, ``positions``,
        ``cached``, ``epochs``, the cross-entropy and value error before and after, ``seconds`` (playing and
        learning); for GnuGo ``level`` too.

    Raises:
        ValueError: a bad spec, or an agent or env it cannot clone into (one line).
        DependencyNotInstalled: GnuGo is needed to play the games and is missing.
        Interrupted: Ctrl-C or SIGTERM (see the module's docstring); the message says what was kept.
    """
    import time

    from kerlym._io import signals_recorded

    kind, strength, games = parse_spec(spec)
    check_agent(agent, spec)
    game = agent.env.unwrapped
    who = f"GnuGo level {strength}" if kind == "gnugo" else f"OpenSpiel's MCTS at {strength} simulations a move"
    t0 = time.perf_counter()
    say(f"pretraining: behaviour cloning from {who}, {games} games")
    with signals_recorded() as received:

        def stop() -> bool:
            return bool(received())

        try:
            data, path, cached = load_or_generate(spec, game, seed, folder, workers, stop=stop)
        except Stopped as e:
            where = os.path.dirname(dataset_path(spec, game, seed, folder))
            kept = f"{e.games} of {games} games are saved in {where}" if e.games else f"none of the {games} games ended"
            raise Interrupted(
                f"interrupted while {who} played the pretraining games: {kept}; the same command again plays the "
                "rest and goes on", received()[0],
            ) from None  # fmt: skip
        played = time.perf_counter() - t0
        say(f"{'games from' if cached else 'games saved in'} {path}: {len(data['action'])} positions")
        data = env_planes(data, game)  # the cache keeps black, white and empty, whatever the env shows
        before = policy_cross_entropy(agent, data)
        history = fit(agent, data, epochs, seed=seed, stop=stop)
        if received():
            raise Interrupted(
                f"interrupted while learning {who}'s games (epoch {len(history)} of {epochs}), before RL: the "
                f"games are kept in {path}; the same command again learns from them and goes on", received()[0],
            )  # fmt: skip
        after = policy_cross_entropy(agent, data)
    say(f"pretrained: cross-entropy {before[0]:.3f} -> {after[0]:.3f}, value error {before[1]:.3f} -> {after[1]:.3f}")
    return {
        "teacher": f"{kind}:{strength}", **({"level": strength} if kind == "gnugo" else {}), "games": games,
        "positions": int(len(data["action"])), "dataset": path, "cached": cached,
        "epochs": int(epochs), "policy_ce_before": before[0], "policy_ce_after": after[0],
        "value_mse_before": before[1], "value_mse_after": after[1], "epoch_losses": history,
        "play_seconds": played, "seconds": time.perf_counter() - t0,
    }  # fmt: skip
