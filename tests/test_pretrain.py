"""kerlym.pretrain: GnuGo's games as the Go env shows them, their symmetries, behaviour cloning, --pretrain.

Everything past the spec needs OpenSpiel (the ``.[go]`` extra) and GnuGo (``apt-get install gnugo``).
"""

import json
import os

import numpy as np
import pytest

from kerlym import pretrain
from kerlym.config import ConfigError, RunConfig


@pytest.mark.parametrize("spec", ["gnugo:0:500", "gnugo:10:1", "mcts:4000:2500", "mcts:1:1"])
def test_a_spec_names_teacher_strength_and_games(spec):
    teacher, strength, games = spec.split(":")
    assert pretrain.parse_spec(spec) == (teacher, int(strength), int(games))
    assert RunConfig(pretrain=spec).pretrain == spec


@pytest.mark.parametrize(
    "spec", ["gnugo:11:5", "gnugo:0:0", "gnugo:0", "pachi:0:5", "gnugo:a:5", "gnugo:0:5:1", "mcts:0:5", "mcts:100:0"]
)
def test_a_bad_spec_is_one_line(spec):
    with pytest.raises(ValueError, match="gnugo:LEVEL:GAMES"):
        pretrain.parse_spec(spec)
    with pytest.raises(ConfigError, match=r"^--pretrain takes gnugo:LEVEL:GAMES .*got") as e:
        RunConfig(pretrain=spec)
    assert "\n" not in str(e.value)


def test_a_signal_during_pretraining_is_recorded_then_raised_from_python_or_left_to_the_command():
    import signal

    from kerlym import _io

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):  # from Python: raised once the block ends, not inside it
            with _io.signals_recorded() as received:
                os.kill(os.getpid(), signal.SIGINT)
                assert received() == [signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        _io.defer_signals()  # the command: its deferral goes on, and the runner sees the signal
        with _io.signals_recorded() as received:
            os.kill(os.getpid(), signal.SIGINT)
            assert received() == [signal.SIGINT]
        assert _io.deferred_signals() == [signal.SIGINT]
        _io.end_deferral()
    finally:
        _io.end_deferral()
        signal.signal(signal.SIGINT, before)


# -- the games --------------------------------------------------------------------------------------------------
pytest.importorskip("pyspiel", reason="Go needs the .[go] extra (open-spiel)")
from kerlym.envs import go  # noqa: E402

needs_gnugo = pytest.mark.skipif(go.find_gnugo() is None, reason="GnuGo is not installed (apt-get install gnugo)")
FIVE = {"level": 0, "board_size": 5, "komi": 7.5}  # play_games' settings: GnuGo level 0 on a 5x5 board


class Scripted:
    """An opponent playing the given moves (this env's actions; resign too) in turn."""

    def __init__(self, actions, board_size):
        resign = board_size * board_size + 1
        self.moves = [go.RESIGN if a == resign else go.flip_rows(int(a), board_size) for a in actions]

    def new_game(self, rng):
        self.next = iter(self.moves)

    def observe(self, state, action):
        pass

    def move(self, state):
        return next(self.next)

    def close(self):
        pass


@pytest.fixture(scope="module")
def games():
    if go.find_gnugo() is None:
        pytest.skip("GnuGo is not installed (apt-get install gnugo)")
    return pretrain.play_games(0, 4, board_size=5, komi=7.5, seed=3)


@needs_gnugo
def test_rows_are_the_envs_observations_masks_and_gnugos_moves_of_a_replayed_game(games):
    n, opening = 5, pretrain.OPENING_MOVES
    assert len(games["obs"]) == len(games["mask"]) == len(games["action"]) == len(games["value"])
    assert len(np.unique(games["moves"][:, :8], axis=0)) == 4  # the games differ
    for g, moves in enumerate(games["moves"]):
        moves = [int(m) for m in moves if m >= 0]
        rows = np.flatnonzero(games["game"] == g)
        assert len(rows) == len(moves) - opening  # one row a GnuGo move, none for the random opening
        seen = {}  # the agent's view at each of its moves, in either colour, as the env gives it
        for colour in (0, 1):
            env = go.GoEnv(n, opponent="random", player_color=("black", "white")[colour])
            env.opponent = Scripted(moves[1 - colour :: 2], n)
            obs, info = env.reset(seed=0)
            for k in range(colour, len(moves), 2):
                seen[k] = (obs, info["action_mask"])
                obs, reward, terminated, truncated, info = env.step(moves[k])
                if terminated:
                    break
            outcome = reward  # the agent's result in this colour, as the env scored the game
            env.close()
            for k in range(max(colour, opening + (opening + colour) % 2), len(moves), 2):
                row = rows[k - opening]
                np.testing.assert_array_equal(games["obs"][row], seen[k][0])
                np.testing.assert_array_equal(games["mask"][row], seen[k][1])
                assert games["action"][row] == moves[k] and games["value"][row] == outcome
    assert set(np.unique(games["value"])) <= {-1.0, 0.0, 1.0}


def replayed_observations(data: dict, env) -> list:
    """``env``'s own observation at each row of ``data``, replaying each game from its ``moves``."""
    seen = []
    for g, moves in enumerate(data["moves"]):
        state = env.game.new_initial_state()
        for k, move in enumerate(int(m) for m in moves if m >= 0):
            if k >= pretrain.OPENING_MOVES:
                seen.append(env.observation(state))
            if move == env.resign_action:
                break
            state.apply_action(go.flip_rows(move, env.board_size))
        assert len(seen) == np.count_nonzero(data["game"] <= g)  # a row for each move after the opening
    return seen


@needs_gnugo
def test_cached_rows_become_the_mover_planes_the_env_shows_at_the_same_positions(games):
    mover = go.GoEnv(5, opponent="random", planes="mover")
    assert pretrain.env_planes(games, go.GoEnv(5, opponent="random")) is games  # the default planes: as cached
    converted = pretrain.env_planes(games, mover)
    assert converted["obs"].shape == (len(games["obs"]), 4, 5, 5) and converted["obs"].dtype == np.uint8
    np.testing.assert_array_equal(converted["obs"], np.stack(replayed_observations(games, mover)))
    assert 0 < converted["obs"][:, 3, 0, 0].mean() < 1  # both colours moved
    for key in ("mask", "action", "value", "game", "moves"):
        assert converted[key] is games[key]


def test_rows_of_random_games_with_passes_and_resigning_convert_to_the_mover_planes():
    colours, mover = go.GoEnv(5, opponent="random"), go.GoEnv(5, opponent="random", planes="mover")
    rng = np.random.default_rng(0)
    rows, games, move_lists = [], [], []
    for g in range(6):  # :func:`pretrain.play_games`' layout: rows from the move after the opening on
        state, moves = colours.game.new_initial_state(), []
        while not state.is_terminal() and len(moves) < 40:
            if len(moves) >= pretrain.OPENING_MOVES:
                rows.append(colours.observation(state))
                games.append(g)
            if g == 5 and len(moves) == 9:  # the mover resigns: the game's last row, no move after it
                moves.append(colours.resign_action)
                break
            spiel = int(rng.choice(state.legal_actions()))  # passes too
            moves.append(go.flip_rows(spiel, 5))
            state.apply_action(spiel)
        move_lists.append(moves + [-1] * (60 - len(moves)))
    data = {"obs": np.stack(rows), "game": np.array(games, np.int32), "moves": np.array(move_lists, np.int16)}
    assert (data["moves"] == 25).any()  # a pass among the moves
    np.testing.assert_array_equal(pretrain.env_planes(data, mover)["obs"], np.stack(replayed_observations(data, mover)))


@needs_gnugo
def test_symmetric_batches_move_the_move_with_the_board(games):
    game = go.GoEnv(5, opponent="random")
    batches = pretrain.make_batches(games, game, batch_size=64, seed=0)
    x, y = batches[0]
    obs_index, action_index, action_of = pretrain.symmetry_tables(game)
    played = np.arange(27)
    for k in range(8):
        np.testing.assert_array_equal(action_index[k][action_of[k]], played)
    for state, target in zip(x, y):
        planes = state.reshape(3, 5, 5)
        move, legal = int(target[0]), target[2:]
        assert legal[move] == 1 and legal[25] == legal[26] == 1
        if move < 25:  # the move's point is empty on the turned board too
            assert planes[2].reshape(-1)[move] == 1
        # the turned position is one of the dataset's under some symmetry, its move and mask turned alike
        flat = games["obs"].reshape(len(games["obs"]), -1)
        found = False
        for k in range(8):
            back = np.empty_like(state)
            back[obs_index[k]] = state
            rows = np.flatnonzero((flat == back).all(axis=1))
            for r in rows:
                if games["action"][r] == action_index[k][move] and (games["mask"][r][action_index[k]] == legal).all():
                    found = True
        assert found


@needs_gnugo
@pytest.mark.parametrize("planes", ["colours", "mover"])
def test_a_tiny_behaviour_cloning_lowers_the_cross_entropy_on_the_games(games, planes):
    import kerlym

    kwargs = {"board_size": 5, "opponent": "random", "planes": planes}
    agent = kerlym.make("Go9x9-v0", "ppo", env_kwargs=kwargs, seed=0, nframes=1)
    games = pretrain.env_planes(games, agent.env.unwrapped)
    before = pretrain.policy_cross_entropy(agent, games)
    legal = games["mask"].sum(axis=1)
    assert before[0] == pytest.approx(np.log(legal).mean(), abs=0.1)  # a fresh policy: about uniform over the legal
    epochs = pretrain.fit(agent, games, epochs=15, batch_size=32, learning_rate=3e-3, symmetries=False)
    after = pretrain.policy_cross_entropy(agent, games)
    assert after[0] < before[0] - 0.3 and after[1] < before[1]
    assert epochs[-1]["policy_ce"] < epochs[0]["policy_ce"]
    # Adam's step falls along a cosine from its start to 2% of it at the last batch
    rates = [row["learning_rate"] for row in epochs]
    assert rates[-1] == pytest.approx(3e-3 * pretrain.FINAL_LR_FRACTION, rel=1e-4)
    middle = 3e-3 * (pretrain.FINAL_LR_FRACTION + (1 - pretrain.FINAL_LR_FRACTION) * (1 + np.cos(np.pi * 8 / 15)) / 2)
    assert rates[7] == pytest.approx(middle, rel=1e-4)  # after 8 of the 15 epochs
    agent.close()


def test_pretrain_refuses_agents_without_a_policy_and_a_value_head():
    import kerlym

    agent = kerlym.make("Go9x9-v0", "dqn", env_kwargs={"board_size": 5, "opponent": "random"}, seed=0, nframes=1)
    with pytest.raises(ValueError, match=r"^--pretrain clones into a policy and a value head: -a a2c, a3c or ppo"):
        pretrain.check_agent(agent)
    agent.close()


@needs_gnugo
def test_the_rl_run_starts_from_the_pretrained_weights_and_a_second_run_reuses_the_games(tmp_path, monkeypatch):
    from kerlym.main import main

    monkeypatch.setenv("KERLYM_CACHE", str(tmp_path / "cache"))
    seen = {}
    fit = pretrain.fit

    def recording_fit(agent, data, *args, **kwargs):
        seen.setdefault("before", [w.copy() for w in agent.model.get_weights()])
        result = fit(agent, data, *args, **kwargs)
        seen["after"] = [w.copy() for w in agent.model.get_weights()]
        return result

    monkeypatch.setattr(pretrain, "fit", recording_fit)
    flags = "-e Go9x9-v0 -a ppo --env-kwargs board_size=5 opponent=random --nframes 1 --pretrain gnugo:0:3"
    flags += " --pretrain-epochs 2 --steps 8 --n_steps 64 --seed 0 -q --eval_episodes 1"
    records = []
    for name in ("first", "second"):
        out = tmp_path / name
        assert main([*flags.split(), "--outdir", str(out)]) == 0
        (run,) = os.listdir(out)
        run_dir = str(out / run)
        with open(os.path.join(run_dir, pretrain.RECORD)) as f:
            records.append(json.load(f))
        # no update in 8 steps of a 64-step rollout: the run's weights are the pretrained ones
        import kerlym

        trained = kerlym.load(run_dir, checkpoint="latest")
        for mine, theirs in zip(trained.model.get_weights(), seen["after"]):
            np.testing.assert_array_equal(mine, theirs)
        assert any(not np.array_equal(a, b) for a, b in zip(seen["before"], seen["after"]))
        trained.close()
        seen.clear()
    assert [r["cached"] for r in records] == [False, True] and records[0]["dataset"] == records[1]["dataset"]
    assert records[0]["positions"] == records[1]["positions"] > 0 and records[0]["games"] == 3
    assert records[0]["policy_ce_after"] < records[0]["policy_ce_before"]


def test_pretrain_on_another_env_or_agent_is_one_line(capsys):
    from kerlym.main import main

    cases = {
        ("-e CartPole-v1 -a ppo", "gnugo:0:3"): "--pretrain gnugo:0:3 clones GnuGo's Go: -e Go9x9-v0 or Go19x19-v0 "
        "(an openspiel: game learns from mcts:SIMULATIONS:GAMES)",
        ("-e openspiel:connect_four -a ppo", "gnugo:0:3"): "--pretrain gnugo:0:3 clones GnuGo's Go: -e Go9x9-v0 or "
        "Go19x19-v0 (an openspiel: game learns from mcts:SIMULATIONS:GAMES)",
        ("-e Go9x9-v0 -a ppo --env-kwargs opponent=random", "mcts:10:3"): "--pretrain mcts:10:3 clones OpenSpiel's "
        "MCTS: -e openspiel:GAME, not Go9x9-v0 (Go9x9-v0 learns from gnugo:LEVEL:GAMES)",
        ("-e Go9x9-v0 -a dqn --env-kwargs opponent=random", "gnugo:0:3"): "--pretrain clones into a policy and a "
        "value head: -a a2c, a3c or ppo, not -a dqn",
    }
    for (flags, spec), message in cases.items():
        assert main([*flags.split(), "--pretrain", spec, "--steps", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"kerlym: error: {message}"]


def test_pretrain_without_gnugo_names_the_package(capsys, monkeypatch, tmp_path):
    from kerlym.main import main

    monkeypatch.setenv("KERLYM_CACHE", str(tmp_path))
    import kerlym.envs.go_opponents as opponents

    monkeypatch.setattr(opponents.shutil, "which", lambda name: None)
    monkeypatch.setattr(opponents, "GNUGO_PATH", str(tmp_path / "no-gnugo"))
    flags = "-e Go9x9-v0 -a ppo --env-kwargs opponent=random --pretrain gnugo:0:3 --steps 1"
    assert main(flags.split()) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["kerlym: error: --pretrain gnugo:0:3 has GnuGo play the games: apt-get install gnugo"]


@needs_gnugo
def test_a_gnugo_killed_mid_game_is_restarted_and_saved_parts_are_not_played_again(tmp_path, monkeypatch):
    from kerlym._io import ProcessDied

    monkeypatch.setattr(pretrain, "PART_GAMES", 2)
    whole = pretrain.generate(pretrain.play_games, FIVE, 3, seed=4, workers=1)
    move, calls = go.GnuGoOpponent.move, []

    def dies_once(self, state):
        calls.append(1)
        if len(calls) == 5:
            self.process.kill()
            raise ProcessDied("GnuGo, the Go opponent, exited (code -9) answering 'genmove B'")
        return move(self, state)

    monkeypatch.setattr(go.GnuGoOpponent, "move", dies_once)
    prefix = str(tmp_path / "games")
    again = pretrain.generate(pretrain.play_games, FIVE, 3, seed=4, workers=1, parts=prefix)
    for key in whole:
        np.testing.assert_array_equal(again[key], whole[key])  # the game is played again from its start
    assert sorted(os.listdir(tmp_path)) == ["games.part0.npz", "games.part1.npz"]
    for key, value in pretrain.generate(None, FIVE, 3, seed=4, workers=1, parts=prefix).items():
        np.testing.assert_array_equal(value, whole[key])


# -- Ctrl-C and resuming -------------------------------------------------------------------------------------------
@needs_gnugo
def test_a_stopped_generation_keeps_its_finished_games_and_the_next_call_plays_only_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrain, "PART_GAMES", 2)
    whole = pretrain.generate(pretrain.play_games, FIVE, 3, seed=4, workers=1)
    first_game = int((whole["moves"][0] >= 0).sum())
    asked = []

    def stop():  # asked before each move: true a few moves into the second game
        asked.append(1)
        return len(asked) > first_game + 3

    prefix = str(tmp_path / "games")
    with pytest.raises(pretrain.Stopped) as e:
        pretrain.generate(pretrain.play_games, FIVE, 3, seed=4, workers=1, parts=prefix, stop=stop)
    assert e.value.games == 1 and os.listdir(tmp_path) == ["games.part0.npz"]  # the part's first game, saved
    with np.load(prefix + ".part0.npz") as part:
        np.testing.assert_array_equal(part["moves"], whole["moves"][:1, : part["moves"].shape[1]])
    one_game, played = pretrain._one_game, []
    monkeypatch.setattr(pretrain, "_one_game", lambda *a: played.append(1) or one_game(*a))
    again = pretrain.generate(pretrain.play_games, FIVE, 3, seed=4, workers=1, parts=prefix)
    assert len(played) == 2  # the second game of part 0 and part 1's game
    for key in whole:
        np.testing.assert_array_equal(again[key], whole[key])


@needs_gnugo
def test_fit_stops_at_the_end_of_the_batch_it_was_asked_in(games):
    import kerlym

    agent = kerlym.make("Go9x9-v0", "ppo", env_kwargs={"board_size": 5, "opponent": "random"}, seed=0, nframes=1)
    asked = []
    epochs = pretrain.fit(agent, games, epochs=5, batch_size=8, stop=lambda: asked.append(1) or True)
    assert len(asked) == 1 and len(epochs) == 1  # one batch, then Keras's stop_training
    agent.close()


def _gnugo_processes(marker: str) -> list[int]:
    """The processes whose command line starts with ``marker`` (this test's own GnuGo, by its argv[0])."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(marker.encode()):
                    found.append(int(pid))
        except OSError:
            pass
    return found


@needs_gnugo
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds its GnuGo processes in /proc (Linux)")
def test_ctrl_c_while_gnugo_plays_keeps_the_games_in_one_line(tmp_path):
    import re
    import signal
    import subprocess
    import sys
    import time

    marker = str(tmp_path / "bin" / "gnugo")  # a GnuGo of this test's own, told apart by its argv[0]
    os.makedirs(os.path.dirname(marker))
    with open(marker, "w") as f:
        f.write(f'#!/bin/bash\nexec -a "$0" {go.find_gnugo()} "$@"\n')
    os.chmod(marker, 0o755)
    cache, outdir = tmp_path / "cache", tmp_path / "runs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", "KERLYM_CACHE": str(cache)}
    env["PATH"] = f"{os.path.dirname(marker)}{os.pathsep}{env.get('PATH', '')}"
    flags = "-e Go9x9-v0 -a ppo --env-kwargs board_size=5 opponent=random --nframes 1 --pretrain gnugo:0:100000"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kerlym", *flags.split(), "--steps", "64", "-q", "--outdir", str(outdir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        for line in proc.stdout:
            if line.startswith("pretraining:"):
                break
        deadline = time.monotonic() + 60
        while len(_gnugo_processes(marker)) < 2 and time.monotonic() < deadline:  # both workers play
            time.sleep(0.1)
        time.sleep(1.5)  # a few games each
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: kerlym and its workers
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "Traceback" not in out + err and "Exception ignored" not in err
    last = err.strip().splitlines()[-1]
    kept = re.fullmatch(
        rf"kerlym: interrupted while GnuGo level 0 played the pretraining games: (\d+) of 100000 games are saved in "
        rf"{re.escape(str(cache))}; the same command again plays the rest and goes on",
        last,
    )  # fmt: skip
    assert kept, last
    saved = 0
    for name in os.listdir(cache):
        assert re.fullmatch(r"gnugo0_go5_komi7\.5_100000games_seed0\.npz\.part[01]\.npz", name), name
        with np.load(cache / name) as part:
            saved += len(part["moves"])
    assert saved == int(kept.group(1)) >= 1
    assert _gnugo_processes(marker) == []  # closed before kerlym exited
    assert os.listdir(outdir) == []  # no run folder: nothing was trained


def test_a_pretrained_run_resumes_without_gnugo_or_its_games(tmp_path, monkeypatch):
    import kerlym.envs.go_opponents as opponents
    from kerlym import checkpoints
    from kerlym.main import main

    monkeypatch.setenv("KERLYM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(opponents.shutil, "which", lambda name: None)
    monkeypatch.setattr(opponents, "GNUGO_PATH", str(tmp_path / "no-gnugo"))
    games = pretrain.dataset_path("gnugo:0:3", go.GoEnv(5, opponent="random"))
    os.makedirs(os.path.dirname(games))
    open(games, "w").close()  # the first run's games, as far as the command's check sees
    monkeypatch.setattr(pretrain, "pretrain", lambda agent, spec, *a, **k: {"spec": spec})
    flags = "-e Go9x9-v0 -a ppo --env-kwargs board_size=5 opponent=random --nframes 1 --pretrain gnugo:0:3 -q"
    flags += " --n_steps 32 -b 32"
    assert main([*flags.split(), "--steps", "64", "--outdir", str(tmp_path / "runs")]) == 0
    (run,) = os.listdir(tmp_path / "runs")
    run = str(tmp_path / "runs" / run)
    with open(os.path.join(run, pretrain.RECORD)) as f:
        assert json.load(f) == {"spec": "gnugo:0:3"}
    step = lambda run: int(os.path.basename(checkpoints.resumable_checkpoint(run)[0]).split("-")[1])  # noqa: E731
    assert step(run) == 64
    os.remove(games)

    def no_pretraining(*args, **kwargs):
        raise AssertionError("a resumed run was pretrained again")

    monkeypatch.setattr(pretrain, "pretrain", no_pretraining)
    assert main(["--resume", run, "--steps", "128", "-q"]) == 0
    assert step(run) == 128


# -- an OpenSpiel game's games, from OpenSpiel's MCTS ----------------------------------------------------------------
def test_mcts_games_are_the_envs_views_of_a_replayed_game_and_repeat_under_their_seed():
    import pyspiel

    from kerlym.envs.openspiel import OpenSpielEnv

    data = pretrain.play_mcts_games(30, 3, "connect_four", seed=2)
    again = pretrain.play_mcts_games(30, 3, "connect_four", seed=2, first=1)  # the first game skipped
    env = OpenSpielEnv("connect_four")
    game = pyspiel.load_game("connect_four")
    assert data["obs"].shape[1:] == env.observation_space.shape == (3, 6, 7) and data["mask"].shape[1] == 7
    row = 0
    for g, moves in enumerate(data["moves"]):
        state, movers = game.new_initial_state(), []
        for i, action in enumerate(moves[moves >= 0]):
            if i >= pretrain.OPENING_MOVES:  # every later move is a row: the position as the env shows the mover
                mover = state.current_player()
                np.testing.assert_array_equal(data["obs"][row], env.observation(state) if mover == env.player else
                                              np.reshape(state.observation_tensor(mover), (3, 6, 7)))  # fmt: skip
                assert data["mask"][row].nonzero()[0].tolist() == state.legal_actions()
                assert data["action"][row] == action and data["game"][row] == g
                movers.append(mover)
                row += 1
            state.apply_action(int(action))
        assert state.is_terminal()
        rows = data["game"] == g
        np.testing.assert_array_equal(data["value"][rows], [state.returns()[m] for m in movers])
        if state.returns()[movers[-1]] == 1:  # the winning move was found proven: the teacher's value of it is 1
            assert data["search_value"][rows][-1] == 1.0
    assert np.all(np.abs(data["search_value"]) <= 1)
    targets, w = pretrain.bc_targets(data), pretrain.SEARCH_VALUE_WEIGHT  # the value: from the result to the search's
    np.testing.assert_allclose(targets[:, 1], (1 - w) * data["value"] + w * data["search_value"], rtol=1e-6)
    without = {key: value for key, value in data.items() if key != "search_value"}  # GnuGo's games: the result
    np.testing.assert_array_equal(pretrain.bc_targets(without)[:, 1], data["value"])
    np.testing.assert_array_equal(targets[:, 0], data["action"])
    np.testing.assert_array_equal(targets[:, 2:], data["mask"])
    assert row == len(data["action"])
    later = data["game"] >= 1
    for key in ("obs", "mask", "action", "value", "search_value"):
        np.testing.assert_array_equal(again[key], data[key][later])
    np.testing.assert_array_equal(again["moves"], data["moves"][1:, : again["moves"].shape[1]])


@pytest.mark.parametrize("name, count", [("connect_four", 2), ("tic_tac_toe", 8)])
def test_a_games_symmetries_map_a_position_to_the_position_of_the_mapped_moves(name, count):
    import pyspiel

    from kerlym.envs.openspiel import OpenSpielEnv

    env = OpenSpielEnv(name)
    obs_index, action_index = env.symmetries()
    assert obs_index.shape[0] == action_index.shape[0] == count
    action_of = np.argsort(action_index, axis=1)  # action a of a position is action_of[k, a] of its image
    game = pyspiel.load_game(name)
    rng = np.random.default_rng(0)
    for k in range(count):
        state, image = game.new_initial_state(), game.new_initial_state()
        for _ in range(5):
            action = int(rng.choice(state.legal_actions()))
            state.apply_action(action)
            image.apply_action(int(action_of[k, action]))
            flat = np.asarray(state.observation_tensor(0), np.float32)
            np.testing.assert_array_equal(flat[obs_index[k]], np.asarray(image.observation_tensor(0), np.float32))
            mask = np.zeros(game.num_distinct_actions(), np.int8)
            mask[state.legal_actions()] = 1
            assert mask[action_index[k]].nonzero()[0].tolist() == image.legal_actions()
    assert not hasattr(OpenSpielEnv("breakthrough"), "symmetries")  # a game without a table has none


def test_pretrain_from_mcts_clones_into_a_connect_four_network_and_caches_the_games(tmp_path):
    import kerlym

    agent = kerlym.make("openspiel:connect_four", "ppo", modelfactory="actor_critic_board", nframes=1, seed=0,
                        net_kwargs={"filters": 8, "conv_layers": 2})  # fmt: skip
    lines = []
    first = pretrain.pretrain(agent, "mcts:20:4", epochs=2, folder=str(tmp_path), workers=1, say=lines.append)
    assert lines[0] == "pretraining: behaviour cloning from OpenSpiel's MCTS at 20 simulations a move, 4 games"
    assert first["teacher"] == "mcts:20" and "level" not in first and not first["cached"]
    assert os.path.basename(first["dataset"]) == "mcts20_connect_four_4games_seed0.npz"
    with np.load(first["dataset"]) as saved:
        assert len(saved["moves"]) == 4 and len(saved["action"]) == first["positions"] > 0
    second = pretrain.pretrain(agent, "mcts:20:4", epochs=1, folder=str(tmp_path), workers=1, say=lines.append)
    assert second["cached"] and second["dataset"] == first["dataset"] and second["positions"] == first["positions"]
    with pytest.raises(ValueError, match=r"^--pretrain gnugo plays Go: -e Go9x9-v0 or Go19x19-v0, not OpenSpielEnv"):
        pretrain.pretrain(agent, "gnugo:0:4", folder=str(tmp_path))
    agent.close()
