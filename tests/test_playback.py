"""``--play``'s episodes reported as they end, and the one line an interrupted ``--play`` gives.

The command itself (a saved run played, Ctrl-C'd in a subprocess) is in tests/test_cli.py.
"""

import types

import numpy as np
import pytest

from kerlym import config as C
from kerlym import playback


class _Game:
    """An env that is a two-player game (``kerlym.envs.is_two_player``)."""

    two_player = True
    unwrapped = property(lambda self: self)


class _Agent:
    """Its evaluate plays fixed returns, calling ``on_episode`` as each ends, and is interrupted at ``stop_after``."""

    def __init__(self, returns, env, stop_after=None):
        self.returns, self.env, self.stop_after = returns, env, stop_after

    def evaluate(self, episodes, env=None, seed=None, search=0, on_episode=None):
        for i, total in enumerate(self.returns[:episodes]):
            if i == self.stop_after:
                raise KeyboardInterrupt
            on_episode(i, total)
        return np.asarray(self.returns[:episodes])


def test_a_game_prints_each_episode_with_the_wins_draws_and_losses_so_far(capsys):
    run = C.RunConfig(eval_episodes=4)
    played = {}
    returns = playback._play_episodes(_Agent([1.0, -1.0, 0.0, 1.0], _Game()), run, None, played, None)
    assert returns.tolist() == [1.0, -1.0, 0.0, 1.0] and played == {None: [1.0, -1.0, 0.0, 1.0]}
    assert capsys.readouterr().out.splitlines() == [
        " * Episode 1: reward 1.00 (wins 1, draws 0, losses 0)",
        " * Episode 2: reward -1.00 (wins 1, draws 0, losses 1)",
        " * Episode 3: reward 0.00 (wins 1, draws 1, losses 1)",
        " * Episode 4: reward 1.00 (wins 2, draws 1, losses 1)",
    ]


def test_a_one_player_env_prints_the_reward_alone(capsys):
    run = C.RunConfig(eval_episodes=2)
    playback._play_episodes(_Agent([9.0, 11.5], types.SimpleNamespace()), run, None, {}, None)
    assert capsys.readouterr().out.splitlines() == [" * Episode 1: reward 9.00", " * Episode 2: reward 11.50"]


def test_an_interrupt_keeps_the_finished_episodes_and_says_them_in_one_line(capsys):
    run = C.RunConfig(eval_episodes=10)
    played = {}
    with pytest.raises(KeyboardInterrupt):
        playback._play_episodes(_Agent([1.0, -1.0, 1.0, 0.0, 1.0], _Game(), stop_after=4), run, None, played, None)
    assert played == {None: [1.0, -1.0, 1.0, 0.0]}
    # 2 wins in 4 games: Wilson's 95% interval is 0.15-0.85.
    assert playback.partial_results(played, 10, _Game()) == (
        "4 of 10 episodes finished, mean reward 0.25; wins 2, draws 1, losses 1; win rate 0.50 (95% 0.15-0.85)"
    )
    assert playback.partial_results({None: [3.0, 4.0]}, 5, None) == "2 of 5 episodes finished, mean reward 3.50"
    assert playback.partial_results({None: []}, 5, None) == "no episode finished of 5"
    by_opponent = {"random": [1.0, 1.0], "gnugo:0": []}
    assert playback.partial_results(by_opponent, 2, _Game()) == (
        "against random: 2 of 2 episodes finished, mean reward 1.00; wins 2, draws 0, losses 0; win rate 1.00 "
        "(95% 0.34-1.00); against gnugo:0: no episode finished of 2"
    )
