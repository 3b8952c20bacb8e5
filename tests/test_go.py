"""kerlym.envs.go: coordinates, planes, captures, scoring, illegal moves, masks, seeding, opponents, errors.

Positions are set up with a scripted opponent and checked against values
worked out by hand. GnuGo tests need /usr/games/gnugo (``apt-get install gnugo``);
everything past the coordinate maths needs OpenSpiel (``pip install open-spiel``).
"""

import gc
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import DependencyNotInstalled

from kerlym.envs import go, register
from kerlym.envs.go import action_to_gtp, flip_rows, gtp_to_action

needs_gnugo = pytest.mark.skipif(go.find_gnugo() is None, reason="GnuGo is not installed (apt-get install gnugo)")


class Scripted:
    """An opponent playing the given points (this env's actions) in turn."""

    def __init__(self, actions, board_size):
        self.moves = [flip_rows(a, board_size) for a in actions]

    def new_game(self, rng):
        self.next = iter(self.moves)

    def observe(self, state, action):
        pass

    def move(self, state):
        return next(self.next)

    def close(self):
        pass


@pytest.fixture
def make():
    """GoEnv(**kwargs), optionally with a scripted opponent; every env made is closed afterwards."""
    pytest.importorskip("pyspiel")
    made = []

    def make(script=None, **kwargs):
        kwargs.setdefault("opponent", "random")
        env = go.GoEnv(**kwargs)
        made.append(env)
        if script is not None:
            env.opponent = Scripted(script, env.board_size)
        return env

    yield make
    for env in made:
        env.close()


def play(env, actions):
    """Step through ``actions``; the last step's (obs, reward, terminated, truncated, info)."""
    for action in actions:
        result = env.step(action)
    return result


# -- coordinates ----------------------------------------------------------------------------------------------------
def test_gtp_coordinates_by_hand():
    assert [action_to_gtp(a, 9) for a in (0, 8, 40, 72, 80, 81)] == ["A9", "J9", "E5", "A1", "J1", "pass"]
    assert [action_to_gtp(a, 19) for a in (8, 18, 19 * 19 - 1)] == ["J19", "T19", "T1"]
    assert gtp_to_action("j1", 9) == 80 and gtp_to_action("PASS", 9) == 81 and gtp_to_action("H8", 9) == 16
    for n in (5, 9, 19):
        assert all(gtp_to_action(action_to_gtp(a, n), n) == a for a in range(n * n + 1))
    with pytest.raises(ValueError, match="off a 9x9 board"):
        gtp_to_action("T1", 9)


def test_flip_rows_is_openspiels_numbering():
    # OpenSpiel counts rows from the bottom: its 0 is a1, our 0 is A9 (top-left).
    assert [flip_rows(a, 9) for a in (0, 8, 72, 80, 81)] == [72, 80, 0, 8, 81]
    pyspiel = pytest.importorskip("pyspiel")
    state = pyspiel.load_game("go", {"board_size": 9}).new_initial_state()
    assert state.action_to_string(0, flip_rows(0, 9)) == "B a9"
    assert state.action_to_string(0, flip_rows(80, 9)) == "B j1"


# -- the board ------------------------------------------------------------------------------------------------------
def test_planes_after_known_moves(make):
    env = make(script=[40, 80], render_mode="ansi")  # white: E5, J1
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 9, 9) and obs.dtype == np.uint8
    assert obs[2].sum() == 81 and obs[:2].sum() == 0
    obs, reward, terminated, truncated, info = play(env, [0, 10])  # black: A9, B8
    black, white, empty = np.zeros((3, 9, 9), np.uint8)
    black[0, 0] = black[1, 1] = 1
    white[4, 4] = white[8, 8] = 1
    np.testing.assert_array_equal(obs, np.stack([black, white, 1 - black - white]))
    assert (reward, terminated, truncated) == (0.0, False, False)
    lines = env.render().splitlines()
    assert lines[1] == " 9 X . . . . . . . .  9" and lines[5] == " 5 . . . . O . . . .  5"
    assert lines[9] == " 1 . . . . . . . . O  1"


def test_mover_planes_put_the_side_to_moves_stones_first_and_say_its_colour(make):
    env = make(script=[40, 80], planes="mover", render_mode="ansi")  # white: E5, J1
    colours = make(script=[40, 80], render_mode="ansi")
    obs, info = env.reset(seed=0)
    colours.reset(seed=0)
    assert env.observation_space.shape == obs.shape == (4, 9, 9) and obs.dtype == np.uint8
    assert obs[2].sum() == 81 and obs[[0, 1, 3]].sum() == 0  # black to move: its colour plane is 0
    obs, *_ = play(env, [0, 10])  # black: A9, B8; black to move again
    black, white = np.zeros((2, 9, 9), np.uint8)
    black[0, 0] = black[1, 1] = 1
    white[4, 4] = white[8, 8] = 1
    np.testing.assert_array_equal(obs, np.stack([black, white, 1 - black - white, np.zeros((9, 9), np.uint8)]))
    # with white to move (after black's third stone, before white's reply) white's stones come first, colour 1s
    env.play(20)  # black: C7
    black[2, 2] = 1
    np.testing.assert_array_equal(
        env._observation(), np.stack([white, black, 1 - black - white, np.ones((9, 9), np.uint8)])
    )
    np.testing.assert_array_equal(env.search_observation(env.state), env._observation())  # no swap: the mover's
    colours.step(0), colours.step(10), colours.play(20)
    assert env.render() == colours.render()  # the board drawn in its real colours
    np.testing.assert_array_equal(go.mover_planes(colours._observation(), True), env._observation())


def test_capture_removes_stones(make):
    # 5x5: black surrounds white's C3 (action 12) at B3, D3, C2, C4; white's other stones are far away.
    env = make(board_size=5, script=[12, 20, 24, 0])  # white: C3, A1, E1, A5
    env.reset(seed=0)
    obs, *_ = play(env, [11, 13, 17, 7])  # black: B3, D3, C2, C4 (captures)
    assert obs[1, 2, 2] == 0 and obs[2, 2, 2] == 1
    assert sorted(np.flatnonzero(obs[1])) == [0, 20, 24]
    assert sorted(np.flatnonzero(obs[0])) == [7, 11, 13, 17]


@pytest.mark.parametrize("komi, reward", [(0.5, 1.0), (5.0, 0.0), (5.5, -1.0)])
def test_two_passes_end_with_the_tromp_taylor_score(make, komi, reward):
    # 5x5, black walls column C and white column D: black owns A-C (15 points), white D-E (10) plus komi.
    env = make(board_size=5, komi=komi, script=[3, 8, 13, 18, 23, 25])
    env.reset(seed=0)
    obs, r, terminated, truncated, info = play(env, [2, 7, 12, 17])
    assert not terminated
    obs, r, terminated, truncated, info = play(env, [22, 25])  # the last column stone, then pass; white passes
    assert (r, terminated, truncated, info["end"]) == (reward, True, False, "two_passes")
    assert obs[0].sum() == 5 and obs[1].sum() == 5


def test_white_wins_when_the_agent_plays_white(make):
    env = make(board_size=5, komi=0.5, player_color="white", script=[2, 7, 12, 17, 22, 25])
    obs, info = env.reset(seed=0)
    assert obs[0].sum() == 1 and obs[0, 0, 2] == 1  # black moved first
    obs, reward, terminated, truncated, info = play(env, [3, 8, 13, 18, 23, 25])
    assert (reward, terminated, info["end"]) == (-1.0, True, "two_passes")  # black 15 > white 10.5


def test_alternate_colours_switch_every_game_as_evaluations_against_opponents_play(make):
    kwargs = go.GoEnv.evaluation_kwargs("mcts:4")
    assert kwargs == {"opponent": "mcts:4", "player_color": "alternate"}
    env = make(board_size=5, script=[12], **{**kwargs, "opponent": "random"})
    stones = []
    for _ in range(3):
        obs, _ = env.reset(seed=0)
        stones.append((int(obs[0].sum()), int(obs[1].sum())))
    assert stones == [(0, 0), (1, 0), (0, 0)]  # black on an empty board; white after black's C3; black again
    assert env.player == 0 and "C3 is illegal for black" in env.illegal_text(12)


# -- illegal moves, masks, resigning --------------------------------------------------------------------------------
def test_illegal_move_loses_in_lose_mode(make):
    env = make(script=[40])
    env.reset(seed=0)
    env.step(0)
    obs, reward, terminated, truncated, info = env.step(0)  # A9 again: occupied
    assert (reward, terminated, truncated, info["end"]) == (-1.0, True, False, "illegal_move")
    assert obs[0].sum() == 1 and obs[1].sum() == 1  # the board is left as it was
    assert env.step(5)[1:3] == (0.0, True)  # the finished game stays finished


def test_illegal_move_raises_in_raise_mode(make):
    env = make(illegal_move_mode="raise", script=[40])
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(go.IllegalMove, match="A9 is illegal for black"):
        env.step(0)


def test_mask_marks_occupied_and_suicide_points_illegal(make):
    env = make(script=[1, 9], illegal_move_mode="lose")  # white: B9, A8 around the corner A9
    env.reset(seed=0)
    obs, _, _, _, info = play(env, [40, 60])  # black: E5, G3
    mask = info["action_mask"]
    assert mask.dtype == np.int8 and mask.shape == (83,)
    assert mask[[1, 9, 40, 60]].tolist() == [0, 0, 0, 0]  # occupied
    assert mask[0] == 0  # A9 would be suicide for black
    assert mask[81] == mask[82] == 1 and mask.sum() == 81 - 5 + 2
    assert env.step(0)[1:3] == (-1.0, True)


def test_resigning_loses(make):
    env = make()
    _, info = env.reset(seed=0)
    assert info["action_mask"][82] == 1
    obs, reward, terminated, truncated, info = env.step(82)
    assert (reward, terminated, info["end"]) == (-1.0, True, "resign")


# -- self-play: the other seat is played from outside (kerlym.agents.selfplay) ----------------------------------------
def self_play_env(make, **kwargs):
    env = make(board_size=5, **kwargs)
    env.external_opponent()
    return env


def test_self_play_opponent_sees_what_the_agent_sees_in_its_colour_and_its_legal_moves(make):
    black, white = [11, 13, 17, 7], [0, 24, 20]  # black: B3, D3, C2, C4 round C3; white: A5, E1, A1
    env = self_play_env(make)
    env.reset(seed=0)
    assert env.player == 0  # the first game: the agent is black, the snapshot white
    views = []
    for b, w in zip(black, white + [None]):
        assert env.play(b) is None and env.opponent_to_move()
        views.append(env.opponent_view())
        if w is not None:
            env.opponent_play(w)
            obs, reward, terminated, truncated, info = env.settle()
            assert (reward, terminated, info["player"]) == (0.0, False, 0) and not env.opponent_to_move()
    # the same position with the agent playing white against black's moves: the same planes and mask
    as_white = make(board_size=5, player_color="white", script=black)
    obs, info = as_white.reset(seed=0)
    seen = [(obs, info["action_mask"])]
    for w in white:
        obs, reward, terminated, truncated, info = as_white.step(w)
        seen.append((obs, info["action_mask"]))
    for (obs, mask), (their_obs, their_mask) in zip(views, seen):
        np.testing.assert_array_equal(obs, their_obs)
        np.testing.assert_array_equal(mask[:25], their_mask[:25])  # the points; pass and resign are the seat's own
        assert mask[25:].tolist() == [0, 0] and their_mask[25:].tolist() == [1, 1]
    obs, mask = views[-1]
    assert sorted(np.flatnonzero(obs[0])) == [7, 11, 13, 17] and sorted(np.flatnonzero(obs[1])) == [0, 20, 24]
    assert mask[12] == 0 and mask[[0, 7, 11]].sum() == 0  # C3 is suicide for white; the stones' points taken
    assert mask.sum() == 25 - 7 - 1  # the other empty points: no passing (the agent did not pass), no resigning
    with pytest.raises(go.IllegalMove):
        env.opponent_play(12)


def test_self_play_opponent_sees_its_own_mover_planes(make):
    env = self_play_env(make, planes="mover")
    obs, _ = env.reset(seed=0)
    assert env.player == 0 and obs[3].sum() == 0  # the agent is black
    env.play(12)  # black: C3
    view, _ = env.opponent_view()  # white to move: its (no) stones first, then black's, and the colour's 1s
    assert view[0].sum() == 0 and np.flatnonzero(view[1]).tolist() == [12] and view[3].all()
    env.opponent_play(0)  # white: A5
    obs, *_ = env.settle()
    assert np.flatnonzero(obs[0]).tolist() == [12] and np.flatnonzero(obs[1]).tolist() == [0] and obs[3].sum() == 0


def test_self_play_opponent_actions_count_rows_from_the_top(make):
    env = self_play_env(make)
    env.reset(seed=0)
    env.play(24)  # black E1, the bottom-right corner
    env.opponent_play(1)  # white B5: row 0 (the top), column 1
    assert env.state.history() == [flip_rows(24, 5), flip_rows(1, 5)] == [4, 21]  # OpenSpiel's rows from the bottom
    obs, *_ = env.settle()
    assert obs[1, 0, 1] == 1 and obs[0, 4, 4] == 1 and obs[:2].sum() == 2
    assert action_to_gtp(1, 5) == "B5"
    env.play(25)
    env.opponent_play(6)  # black passed, white plays on: the game goes on with black to move
    assert env.state.history()[-1] == flip_rows(6, 5) and not env.state.is_terminal() and not env.opponent_to_move()


@pytest.mark.parametrize("colour, reward", [(0, -1.0), (1, -1.0)])
def test_self_play_two_passes_score_from_the_agents_side(make, colour, reward):
    env = self_play_env(make)  # komi 7.5 on an empty board: white wins; one black stone owns the board: black wins
    for _ in range(colour + 1):
        env.reset(seed=0)
    assert env.player == colour  # seats alternate over games
    if colour == 1:
        env.opponent_play(12)  # black may not pass first
    decided = env.play(25)
    assert decided is None
    env.opponent_play(25)  # a pass in reply to the agent's ends the game
    obs, r, terminated, truncated, info = env.settle()
    assert (r, terminated, info["end"], info["player"]) == (reward, True, "two_passes", colour)


def test_self_play_opponent_never_resigns_and_passes_only_in_reply(make):
    env = self_play_env(make)
    env.reset(seed=0)  # the agent black
    assert env.play(12) is None
    mask = env.opponent_view()[1]
    assert mask[26] == 0 and mask[25] == 0 and mask[:25].sum() == 24  # every empty point, no pass, no resign
    for action, word in ((26, "resign"), (25, "pass")):
        with pytest.raises(go.IllegalMove, match=word):
            env.opponent_play(action)
    env.opponent_play(6)
    assert env.settle()[2] is False
    assert env.view()[1]["action_mask"][[25, 26]].tolist() == [1, 1]  # the agent may pass and resign
    assert env.play(25) is None
    assert env.opponent_view()[1][[25, 26]].tolist() == [1, 0]  # after the agent's pass it may pass
    _, info = env.reset(seed=0)  # the agent white: black, to move first, neither passes nor resigns
    assert info["player"] == 1 and env.opponent_view()[1][[25, 26]].tolist() == [0, 0]
    env.reset(seed=0)  # the agent black resigns: play() is the self-play path, step() the fixed opponent's
    obs, reward, terminated, truncated, info = env.play(26)
    assert (reward, terminated, info["end"]) == (-1.0, True, "resign")


# -- seeding, Gymnasium's checks, rendering -------------------------------------------------------------------------
def random_game(env, seed):
    """A game of uniformly random legal moves (the agent never resigns); every observation, as bytes."""
    rng = np.random.default_rng(1234)
    obs, info = env.reset(seed=seed)
    seen, terminated = [obs.tobytes()], False
    while not terminated:
        mask = info["action_mask"].copy()
        mask[-1] = 0
        obs, reward, terminated, truncated, info = env.step(int(rng.choice(np.flatnonzero(mask))))
        seen.append(obs.tobytes())
    return seen


@pytest.mark.parametrize("opponent", ["random", "mcts:4"])
def test_seeded_games_repeat(make, opponent):
    first = random_game(make(board_size=5, opponent=opponent), seed=7)
    second_env = make(board_size=5, opponent=opponent)
    assert random_game(second_env, seed=7) == first
    assert random_game(second_env, seed=8) != first  # the opponent really follows the seed


def test_gymnasium_env_checker_passes(make):
    from gymnasium.utils.env_checker import check_env

    check_env(make(opponent="random"), skip_render_check=True)


def test_registered_ids_make_go_boards():
    pytest.importorskip("pyspiel")
    register()
    env = gym.make("Go19x19-v0", opponent="random")
    try:
        obs, info = env.reset(seed=0)
        assert obs.shape == (3, 19, 19) and env.action_space.n == 363
    finally:
        env.close()


def test_rgb_array_draws_stones(make):
    env = make(script=[40], render_mode="rgb_array")
    env.reset(seed=0)
    env.step(0)
    image = env.render()
    assert image.shape == (216, 216, 3) and image.dtype == np.uint8
    near_centre = (7, 7)  # off the grid lines, inside the stone
    assert image[near_centre].tolist() == [10, 10, 10]  # black at A9
    assert image[4 * 24 + 7, 4 * 24 + 7].tolist() == [245, 245, 245]  # white at E5
    assert image[24 + 7, 24 + 7].tolist() == [220, 179, 92]  # B8 is empty


# -- errors ---------------------------------------------------------------------------------------------------------
def test_missing_openspiel_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspiel", None)  # import pyspiel now raises ImportError
    with pytest.raises(DependencyNotInstalled) as error:
        go.GoEnv(opponent="random")
    from kerlym._io import install_hint

    assert str(error.value) == f"Go needs OpenSpiel: {install_hint('go')}"


def test_missing_gnugo_is_one_line_naming_the_install_and_the_alternative(monkeypatch):
    pytest.importorskip("pyspiel")
    from kerlym.envs import openspiel

    monkeypatch.setattr(openspiel, "find_gnugo", lambda: None)  # the generic OpenSpiel env makes the opponents
    register()
    with pytest.raises(DependencyNotInstalled) as error:
        gym.make("Go9x9-v0")  # its default opponent is gnugo:0
    message = str(error.value)
    assert "\n" not in message
    assert "apt-get install gnugo" in message and "--env-kwargs opponent=random" in message


@pytest.mark.parametrize("opponent", ["pachi", "gnugo", "gnugo:11", "mcts:0", "random:3"])
def test_unknown_opponent_is_refused(make, opponent):
    with pytest.raises(ValueError, match="unknown opponent"):
        make(opponent=opponent)


# -- GnuGo ----------------------------------------------------------------------------------------------------------
def gnugo_stones(opponent, color, board_size):
    answer = opponent.gtp(f"list_stones {color}")
    return sorted(gtp_to_action(v, board_size) for v in answer.split())


@needs_gnugo
def test_gnugo_follows_the_game(make):
    env = make(opponent="gnugo:0")
    env.reset(seed=0)
    for action in (0, 80, 20):  # A9, J1, C7
        obs, reward, terminated, _, info = env.step(action)
        assert not terminated
        assert gnugo_stones(env.opponent, "black", 9) == sorted(np.flatnonzero(obs[0]))
        assert gnugo_stones(env.opponent, "white", 9) == sorted(np.flatnonzero(obs[1]))
    assert obs[1].sum() == 3  # GnuGo answered every move on the board
    assert sorted(env.opponent.gtp("list_stones black").split()) == ["A9", "C7", "J1"]


@needs_gnugo
def test_gnugo_game_ends_with_the_score_gnugo_agrees_with(make):
    # The agent passes throughout; GnuGo fills its area, then passes: white owns all 25 points.
    env = make(board_size=5, opponent="gnugo:0")
    env.reset(seed=0)
    terminated, steps = False, 0
    while not terminated:
        obs, reward, terminated, truncated, info = env.step(25)
        steps += 1
        assert steps < 50
    assert (reward, info["end"]) == (-1.0, "two_passes")
    assert obs[0].sum() == 0 and obs[1].sum() > 0
    assert env.opponent.gtp("final_score") == "W+32.5"  # 25 points + komi 7.5


@needs_gnugo
def test_gnugo_plays_a_full_9x9_game_against_random_moves(make):
    env = make(opponent="gnugo:0")
    seen = random_game(env, seed=3)
    assert env.done and env.end in ("two_passes", "opponent_resigned", "move_limit", "superko")
    assert len(seen) > 5
    assert random_game(make(opponent="gnugo:0"), seed=3) == seen  # --seed / set_random_seed make it repeat


@needs_gnugo
def test_gnugo_disagreements_resync_its_board():
    pyspiel = pytest.importorskip("pyspiel")
    state = pyspiel.load_game("go", {"board_size": 5}).new_initial_state()
    opponent = go.GnuGoOpponent(go.find_gnugo(), 0, 5, 7.5)
    try:
        opponent.new_game(np.random.default_rng(0))
        # GnuGo is not told of black's C3, proposes C3 itself (OpenSpiel: occupied), and passes instead.
        state.apply_action(flip_rows(12, 5))
        assert opponent.move(state) == 25
        assert gnugo_stones(opponent, "black", 5) == [12] and gnugo_stones(opponent, "white", 5) == []
        # GnuGo holds a stone OpenSpiel lacks, so it refuses black's move there: its board is rebuilt.
        state.apply_action(25)
        opponent.gtp("play W B2")
        state.apply_action(flip_rows(16, 5))
        opponent.observe(state, flip_rows(16, 5))
        assert gnugo_stones(opponent, "black", 5) == [12, 16] and gnugo_stones(opponent, "white", 5) == []
    finally:
        opponent.close()


@needs_gnugo
def test_gnugo_process_ends_on_close_and_on_garbage_collection(make):
    env = make(opponent="gnugo:0")
    env.reset(seed=0)
    process = env.opponent.process
    env.close()
    assert process.returncode is not None  # exited and reaped: no zombie
    env = go.GoEnv(opponent="gnugo:0")
    env.reset(seed=0)
    process = env.opponent.process
    del env
    gc.collect()
    assert process.returncode is not None


@pytest.mark.parametrize("board_size", [1, 20, 9.5, "nine"])
def test_bad_board_size_is_refused(make, board_size):
    with pytest.raises(ValueError, match="board_size must be an integer from 2 to 19"):
        make(board_size=board_size)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"komi": "(nan,nan)"}, "komi must be a finite number, got '\\(nan,nan\\)'"),
        ({"komi": float("inf")}, "komi must be a finite number, got inf"),
        ({"max_game_length": 2.5}, "max_game_length must be a positive integer or None, got 2.5"),
        ({"max_game_length": 0}, "max_game_length must be a positive integer or None, got 0"),
        ({"planes": "alphago"}, "planes must be 'colours' \\(black, white, empty\\) or 'mover' .*, got 'alphago'"),
    ],
)
def test_bad_arguments_are_refused_by_type(make, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(board_size=5, **kwargs)


@pytest.mark.parametrize("planes", ["colours", "mover"])
def test_symmetries_map_a_played_game_onto_the_same_game_rotated_and_reflected(make, planes):
    env, replay = make(board_size=5, planes=planes), make(board_size=5, planes=planes)
    count = go.PLANES[planes]
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    for _ in range(12):  # a real position: captures and the random opponent's replies included
        legal = np.flatnonzero(env.action_mask()[: env.pass_action])
        obs, _, done, _, info = env.step(int(rng.choice(legal)))
        if done:
            break
    obs_index, action_index = env.symmetries()
    assert obs_index.shape == (8, count * 25) and action_index.shape == (8, 27)
    np.testing.assert_array_equal(obs_index[0], np.arange(count * 25))  # row 0: the identity
    assert len({row.tobytes() for row in obs_index}) == 8  # eight distinct symmetries
    new_action = np.argsort(action_index, axis=1)
    for k in range(8):
        # Replay the game's moves, each moved by symmetry k, on a fresh board.
        replay.state = replay.game.new_initial_state()
        for move in env.state.history():
            moved = new_action[k, flip_rows(move, 5)] if move != env.pass_action else move
            replay.state.apply_action(flip_rows(int(moved), 5))
        np.testing.assert_array_equal(replay._observation().reshape(-1), obs.reshape(-1)[obs_index[k]])
        np.testing.assert_array_equal(replay.action_mask(), info["action_mask"][action_index[k]])
    # By hand: a quarter turn (np.rot90, anticlockwise) moves the top row's second point to the left column's
    # second point from the bottom, and the reflection after it to the right column's.
    assert new_action[1, 0 * 5 + 1] == 3 * 5 + 0 and new_action[5, 0 * 5 + 1] == 3 * 5 + 4
    assert (new_action[:, [25, 26]] == [25, 26]).all()  # pass and resign stay put


@needs_gnugo
def test_gnugo_runs_in_its_own_session_so_a_terminals_ctrl_c_reaches_kerlym_alone(make):
    import os

    env = make(opponent="gnugo:0")
    env.reset(seed=0)
    gnugo = env.opponent.process.pid
    assert os.getsid(gnugo) == gnugo != os.getsid(0)  # its own session and process group: not the terminal's
    env.close()
    assert env.opponent.process is None  # kerlym stops it


@needs_gnugo
def test_a_killed_gnugo_ends_a_run_in_one_line_with_the_checkpoint_kept(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip("pyspiel", reason='Go needs OpenSpiel: pip install ".[go]"')
    args = ["-e", "Go9x9-v0", "-a", "dqn", "-q", "--steps", "10000000", "--checkpoint_every", "100"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "kerlym", *args, "--outdir", str(tmp_path)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        gnugo = None
        while gnugo is None and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.5)
            checkpoints = list(tmp_path.glob("*/checkpoints/latest"))
            for entry in filter(str.isdigit, os.listdir("/proc")) if checkpoints else ():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        if b"gnugo" in f.read().split(b"\0")[0]:
                            gnugo = int(entry)
                except OSError:
                    continue
        assert gnugo is not None
        os.kill(gnugo, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    (run,) = tmp_path.iterdir()
    assert proc.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("kerlym: error: GnuGo, the Go opponent, exited (code -9)"), err
    assert f"; checkpoint kept: {run}/checkpoints/step-" in last and last.endswith(f"kerlym --resume {run}")
    assert "Traceback" not in err


def test_a_saved_self_play_game_state_rebuilds_the_board_and_the_other_seats_moves(make):
    env = self_play_env(make)
    env.reset(seed=0)
    assert env.play(12) is None
    env.opponent_play(7)  # the snapshot's move; the agent's step has not settled yet
    back = self_play_env(make)
    back.restore_game(env.game_state())
    assert back.state.history() == [flip_rows(12, 5), flip_rows(7, 5)] == env.state.history()
    np.testing.assert_array_equal(back._observation(), env._observation())
    for mine, theirs in zip(back.opponent_view(), env.opponent_view(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
