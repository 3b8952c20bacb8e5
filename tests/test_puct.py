"""kerlym.puct and the agents' --search: winning moves found, visit counts, value signs, batched calls."""

import math

import numpy as np
import pytest

from kerlym import puct
from kerlym.envs import make_env

pytest.importorskip("pyspiel", reason="--search needs the .[games] extra (open-spiel)")


def uniform(observations, masks):
    """An untrained network: a uniform prior over the legal moves and value 0 everywhere."""
    return puct.masked_softmax(np.zeros(masks.shape), masks), np.zeros(len(masks))


def position(moves, **env_kwargs):
    """A tic-tac-toe env whose game stands after ``moves`` (X first)."""
    env = make_env("openspiel:tic_tac_toe", env_kwargs=env_kwargs).unwrapped
    env.reset(seed=0)
    env.state = env.game.new_initial_state()
    for a in moves:
        env.state.apply_action(a)
    return env


def test_masked_softmax_by_hand():
    p = puct.masked_softmax(np.array([[1.0, 2.0, 3.0]]), np.array([[True, False, True]]))
    e1, e3 = math.exp(1), math.exp(3)
    np.testing.assert_allclose(p, [[e1 / (e1 + e3), 0.0, e3 / (e1 + e3)]])


@pytest.mark.parametrize("simulations", [4, 16, 64])
@pytest.mark.parametrize("moves, win", [([0, 3, 1, 4], 2), ([0, 3, 1, 4, 8], 5)])  # X to move, then O to move
def test_search_with_an_untrained_network_finds_the_winning_move(simulations, moves, win):
    env = position(moves)
    root = puct.search(env.state, uniform, env.observation, simulations, seed=0)
    assert root.best_child().action == win
    # the search ran its simulations: the root's first one evaluates the root itself
    assert puct.visit_counts(root, 9).sum() == simulations - 1


def test_the_solver_proves_a_forced_win_and_stops_early():
    # X (0, 8) to move against O (4, 2), who threatens 2-4-6: X must block at 6, which makes two threats
    env = position([0, 4, 8, 2])
    plain = puct.search(env.state, uniform, env.observation, 32, seed=0)
    assert plain.outcome is None and all(c.outcome is None for c in plain.children)  # averages only
    root = puct.search(env.state, uniform, env.observation, 32, seed=0, solve=True)
    assert root.best_child().action == 6 and list(root.outcome) == [1.0, -1.0]  # proven: X wins
    assert {c.action: list(c.outcome) for c in root.children if c.action != 6} == {
        a: [-1.0, 1.0] for a in (1, 3, 5, 7)  # each lets O win at 6
    }
    assert puct.visit_counts(root, 9).sum() < puct.visit_counts(plain, 9).sum() == 31  # stopped once proven


def test_visit_counts_are_deterministic_for_a_seed_and_calls_are_batched():
    env = position([0, 3, 1, 4])
    counts = []
    for _ in range(2):
        evaluator = puct.position_evaluator(uniform, env.observation)
        root = puct.search(env.state, None, None, 16, seed=0, evaluator=evaluator)
        counts.append(puct.visit_counts(root, 9))
    np.testing.assert_array_equal(counts[0], counts[1])
    # 0 1 3 4 are taken; the win (2) takes the visits, each other move is tried once
    np.testing.assert_array_equal(counts[0], [0, 0, 11, 0, 0, 1, 1, 1, 1])
    assert evaluator.calls == 1  # the root and its 5 children in one network call covered all 16 simulations
    # scored alone (as Go's wide positions are), each position takes a call, and the search is the same
    alone = puct.position_evaluator(uniform, env.observation, batch_children=0)
    root = puct.search(env.state, None, None, 16, seed=0, evaluator=alone)
    np.testing.assert_array_equal(puct.visit_counts(root, 9), counts[0])
    assert alone.calls == len(alone.cache) > 1


def test_root_dirichlet_noise_is_seeded_and_moves_visits_from_the_prior():
    env = position([])  # the empty board: 9 moves, a uniform prior and value 0 everywhere
    plain = puct.visit_counts(puct.search(env.state, uniform, env.observation, 64, seed=3), 9)
    noisy = [
        puct.visit_counts(puct.search(env.state, uniform, env.observation, 64, seed=3, dirichlet_noise=(0.5, 0.3)), 9)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(noisy[0], noisy[1])  # the noise comes from the seed's random state
    assert plain.sum() == noisy[0].sum() == 63
    assert plain.max() - plain.min() <= 1  # a uniform prior spreads the visits evenly
    assert noisy[0].max() - noisy[0].min() > 5  # the noisy prior does not


def test_value_signs_on_terminal_and_scored_positions():
    env = position([0, 3, 1, 4])  # X to move; X at 2 wins
    won = env.state.child(2)
    assert won.is_terminal() and won.returns() == [1.0, -1.0]  # by hand: X (player 0) won
    root = puct.search(env.state, uniform, env.observation, 8, seed=0)
    child = next(c for c in root.children if c.action == 2)
    assert child.player == 0 and child.outcome == [1.0, -1.0]
    assert child.total_reward == child.explore_count  # every visit scored +1 for X, the player who moved

    # a network that says "the player to move is winning by 0.5" scores O's turn +0.5 for O, -0.5 for X
    def confident(observations, masks):
        return uniform(observations, masks)[0], np.full(len(masks), 0.5)

    evaluator = puct.position_evaluator(confident, env.observation)
    o_to_move = env.state.child(8)
    np.testing.assert_array_equal(evaluator.evaluate(o_to_move), [-0.5, 0.5])
    np.testing.assert_array_equal(evaluator.evaluate(env.state), [0.5, -0.5])


@pytest.mark.parametrize("name", ["ppo", "dqn"])
def test_untrained_agents_search_to_the_win_and_predict_takes_the_env(name):
    import kerlym

    agent = kerlym.make("openspiel:tic_tac_toe", name, seed=0, nframes=1)
    env = position([0, 3, 1, 4])
    priors, values = agent.position_values(
        np.zeros((2, agent.input_dim), np.float32), np.array([[True] * 9, [False] * 8 + [True]])
    )
    np.testing.assert_allclose(priors.sum(axis=1), 1.0)
    assert priors[1, 8] == 1.0 and values.shape == (2,)
    assert agent.search_action(env, 16) == 2
    obs = env.observation(env.state)
    assert agent.predict(obs, search=16, env=env) == (2, None)
    with pytest.raises(ValueError, match="give env="):
        agent.predict(obs, search=16)
    with pytest.raises(ValueError, match="openspiel:GAME"):
        agent.search_action(make_env("CartPole-v1"), 4)
    agent.close()


@pytest.mark.parametrize("kind", ["colours", "mover"])
def test_go_searches_in_its_own_actions_and_scores_each_position_from_its_movers_side(kind, monkeypatch):
    import kerlym

    monkeypatch.setattr(puct, "BATCH_CHILDREN", 26)  # the 5x5 root's children in its call, to see what they show
    go = {"opponent": "random", "board_size": 5, "planes": kind}
    count = 3 if kind == "colours" else 4
    agent = kerlym.make("Go9x9-v0", "ppo", modelfactory="actor_critic_mlp", seed=0, nframes=1, env_kwargs=go)
    seen = []

    def top_left(states, masks):  # a network sure of the top-left point, A5 (Go9x9-v0's action 0)
        seen.append((np.array(states).reshape(-1, count, 5, 5), masks))
        logits = np.where(np.arange(masks.shape[1]) == 0, 10.0, 0.0)
        return puct.masked_softmax(np.tile(logits, (len(masks), 1)), masks), np.zeros(len(masks))

    agent.position_values = top_left
    env = make_env("Go9x9-v0", env_kwargs=go).unwrapped
    env.reset(seed=0)  # black, the agent, to move on the empty board
    assert agent.search_action(env, 8) == 0  # Go's action 0, which is OpenSpiel's 20 (its rows count from the bottom)
    planes, masks = seen[0]  # the root and, in the same call, its children: white to move after each black move
    assert masks.shape == (27, 27) and masks[:, 26].sum() == 0 and masks[:, 25].all()  # pass legal, resign not
    assert planes[:, 0].sum() == 0  # no stone in the mover's own plane: white has none, black's show as the other's
    stones = [tuple(map(tuple, np.argwhere(p[1]))) for p in planes[1:]]  # the 25 points black can take, and pass
    assert sorted(stones) == sorted([((r, c),) for r in range(5) for c in range(5)] + [()])
    if kind == "mover":  # the mover's planes as the env gives them: white to move in the children, 1s
        assert planes_of(seen[0][0][0]) == 0 and all(planes_of(p) == 25 for p in seen[0][0][1:])
    agent.close()


def planes_of(position: np.ndarray) -> int:
    """The colour plane's count of 1s (``planes="mover"``: 1s when white is to move)."""
    return int(position[3].sum())


def test_search_is_refused_in_one_line_where_it_cannot_run():
    from kerlym import config as C
    from kerlym.make import check_env, configure

    with pytest.raises(C.ConfigError, match="OpenSpiel games"):
        check_env(*configure("CartPole-v1", "ppo", search=8))
    check_env(*configure("Go9x9-v0", "ppo", search=8, env_kwargs={"opponent": "random"}))  # Go searches too
    with pytest.raises(C.ConfigError, match="value estimate"):
        check_env(*configure("openspiel:tic_tac_toe", "pg", search=8))
