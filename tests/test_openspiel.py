"""kerlym.envs.openspiel: game strings, seats, rewards, masks, opponents, and the one-line refusals."""

import sys

import numpy as np
import pytest
from gymnasium.error import DependencyNotInstalled

from kerlym.envs import is_two_player, make_env
from kerlym.envs.openspiel import IllegalMove, game_string, load_game

pyspiel = pytest.importorskip("pyspiel", reason="OpenSpiel games need the .[games] extra (open-spiel)")


class Scripted:
    """An opponent playing the given OpenSpiel actions in turn."""

    def __init__(self, actions):
        self.actions = actions

    def new_game(self, rng):
        self.next = iter(self.actions)

    def observe(self, state, action):
        pass

    def move(self, state):
        return next(self.next)

    def close(self):
        pass


def tic_tac_toe(script=None, **kwargs):
    env = make_env("openspiel:tic_tac_toe", env_kwargs=kwargs).unwrapped
    if script is not None:
        env.opponent = Scripted(script)
    return env


def test_game_strings_translate_the_query_form_to_openspiels():
    assert game_string("tic_tac_toe") == "tic_tac_toe"
    assert game_string("go?board_size=9&komi=6.5") == "go(board_size=9,komi=6.5)"
    assert game_string("go(board_size=9)") == "go(board_size=9)"
    with pytest.raises(ValueError, match="key=value"):
        game_string("go?board_size")
    assert str(load_game("go?board_size=5")) == "go(board_size=5)"


def test_agent_as_first_player_wins_along_the_top_row():
    env = tic_tac_toe(script=[3, 4])  # O answers on the middle row, too slowly
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 3, 3) and obs.dtype == np.float32
    np.testing.assert_array_equal(info["action_mask"], np.ones(9))
    rewards = []
    for action in (0, 1, 2):
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
    assert rewards == [0.0, 0.0, 1.0] and terminated and not truncated
    # OpenSpiel's planes: empty, O (player 1), X (player 0); X holds the top row
    np.testing.assert_array_equal(obs[2, 0], [1, 1, 1])
    np.testing.assert_array_equal(obs[1].reshape(-1).nonzero()[0], [3, 4])
    np.testing.assert_array_equal(info["action_mask"], np.zeros(9))  # the game is over


def test_agent_as_second_player_sees_its_own_seat_and_loses():
    env = tic_tac_toe(script=[0, 1, 2], player=1)
    obs, info = env.reset(seed=0)
    np.testing.assert_array_equal(obs, np.asarray(env.state.observation_tensor(1)).reshape(3, 3, 3))
    assert info["action_mask"][0] == 0 and info["action_mask"].sum() == 8  # X took the corner at reset
    env.step(3)
    obs, reward, terminated, _, _ = env.step(4)  # X completes the top row
    assert reward == -1.0 and terminated


def test_alternate_seats_switch_every_game():
    env = tic_tac_toe(player="alternate")
    seats = []
    for _ in range(3):
        _, info = env.reset()
        seats.append(info["player"])
    assert seats == [0, 1, 0]


def test_illegal_move_loses_or_raises():
    env = tic_tac_toe(script=[4])
    env.reset(seed=0)
    env.step(0)
    _, reward, terminated, _, _ = env.step(4)  # O's point
    assert reward == -1.0 and terminated
    env = tic_tac_toe(script=[4], illegal_move_mode="raise")
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(IllegalMove):
        env.step(4)


def test_a_draw_returns_zero_and_random_and_mcts_opponents_are_seeded():
    env = tic_tac_toe(script=[4, 2, 3, 7])  # X 0 1 6 5 8 against O 4 2 3 7: a full board, no line
    env.reset(seed=0)
    rewards = [env.step(a)[1] for a in (0, 1, 6, 5, 8)]
    assert rewards == [0.0] * 5 and env.state.is_terminal()
    for opponent in ("random", "mcts:20"):
        games = []
        for _ in range(2):
            env = tic_tac_toe(opponent=opponent, player=1)
            env.reset(seed=3)
            games.append(env.state.history())
        assert games[0] == games[1] and len(games[0]) == 1


def test_connect_four_and_go_load_with_their_shapes():
    env = make_env("openspiel:connect_four")
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 6, 7) and env.action_space.n == 7 and info["action_mask"].sum() == 7
    env = make_env("openspiel:go?board_size=5", env_kwargs={"opponent": "mcts:4"})
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 5, 5) and env.action_space.n == 26
    assert is_two_player(env) and not is_two_player(make_env("CartPole-v1"))


@pytest.mark.parametrize(
    "game, message",
    [
        ("matching_pennies_3p", "has 3 players"),
        ("matrix_rps", "simultaneous moves"),
        ("bargaining", "not zero-sum"),
        ("tic_tac_tot", "did you mean tic_tac_toe"),
        ("go?boardsize=9", "Unknown parameter 'boardsize'"),
    ],
)
def test_games_kerlym_cannot_play_are_refused_in_one_line(game, message):
    with pytest.raises(ValueError, match=message) as e:
        make_env(f"openspiel:{game}")
    assert "\n" not in str(e.value)


def test_gnugo_plays_go_only_and_a_missing_openspiel_names_the_extra(monkeypatch):
    with pytest.raises(ValueError, match="plays Go only"):
        make_env("openspiel:tic_tac_toe", env_kwargs={"opponent": "gnugo:1"})
    monkeypatch.setitem(sys.modules, "pyspiel", None)
    with pytest.raises(DependencyNotInstalled, match=r"\[games\]"):
        make_env("openspiel:tic_tac_toe")


def test_an_external_opponent_waits_for_its_moves_from_outside():
    env = tic_tac_toe(player=0)
    env.external_opponent()
    obs, info = env.reset(seed=0)
    assert info["player"] == 0 and not env.opponent_to_move()
    assert env.play(4) is None and env.opponent_to_move()  # the centre; now the other seat is to move
    seen, mask = env.opponent_view()
    np.testing.assert_array_equal(seen.reshape(-1), env.state.observation_tensor(1))  # from its own side
    assert mask[4] == 0 and mask.sum() == 8
    with pytest.raises(IllegalMove, match="cannot play 4"):
        env.opponent_play(4)
    env.opponent_play(0)
    assert not env.opponent_to_move() and env.state.history() == [4, 0]
    _, reward, terminated, _, info = env.settle()
    assert (reward, terminated, info["action_mask"].sum()) == (0.0, False, 7)
    env.reset()  # seats alternate: the second game's agent moves second, so the other seat is to move first
    assert env.player == 1 and env.opponent_to_move()


def test_self_is_no_opponent_an_env_takes():
    with pytest.raises(ValueError, match="self"):
        tic_tac_toe(opponent="self")


def test_a_saved_game_state_rebuilds_the_game_in_progress_in_a_new_env():
    import json

    def self_play(game):
        env = make_env(f"openspiel:{game}").unwrapped
        env.external_opponent()
        return env

    env, rng = self_play("connect_four"), np.random.default_rng(0)
    env.reset(seed=3)
    env.reset()  # the second game: the agent moves second
    for _ in range(5):  # both seats' moves, the agent's through play() and settle(), as self-play steps them
        env.opponent_play(int(rng.choice(np.flatnonzero(env.opponent_view()[1]))))
        assert env.play(int(rng.choice(np.flatnonzero(env.action_mask())))) is None
    saved = json.loads(json.dumps(env.game_state()))  # as a checkpoint's state.json holds it
    assert len(saved["history"]) == 10 and (saved["player"], saved["games_started"]) == (1, 2)
    back = self_play("connect_four")
    back.restore_game(saved)
    assert back.state.history() == env.state.history() and back.player == 1 and back.opponent_to_move()
    np.testing.assert_array_equal(back.opponent_view()[0], env.opponent_view()[0])
    for e in (env, back):  # the game goes on alike, and the next game has the seat and seed the first would
        e.opponent_play(3)
    (obs, *result, info), (obs_back, *result_back, info_back) = env.settle(), back.settle()
    np.testing.assert_array_equal(obs_back, obs)
    np.testing.assert_array_equal(info_back["action_mask"], info["action_mask"])
    assert result_back == result and info_back["player"] == info["player"]
    for e in (env, back):
        e.reset()
    assert back.player == env.player == 0
    assert back.np_random.random() == env.np_random.random()
