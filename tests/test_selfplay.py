"""kerlym.agents.selfplay: the opponents' draw, the pool's schedule, batched legal moves, seats, checkpoints."""

import json
import os

import numpy as np
import pytest

import kerlym
from kerlym import checkpoints, session
from kerlym.agents.selfplay import LATEST, draw_opponents

pytest.importorskip("pyspiel", reason="OpenSpiel games need the .[games] extra (open-spiel)")

GAME = "openspiel:tic_tac_toe"
SMALL = {
    "ppo": {"n_steps": 8, "batch_size": 16, "n_epochs": 1},
    "dqn": {"batch_size": 8, "learning_starts": 8, "max_memory": 500},
}


def make(agent="ppo", **settings):
    settings = {"self_play": 2, "self_play_every": 10, "concurrency": 2, "vector_env": "sync", "nframes": 1, **settings}
    return kerlym.make(GAME, agent, seed=0, eval_episodes=2, **SMALL[agent], **settings)


def test_the_draw_is_the_latest_with_probability_p_else_a_frozen_snapshot_uniformly():
    drawn = draw_opponents(np.random.default_rng(7), 60_000, 3, 0.25)
    u = np.random.default_rng(7).random((60_000, 2))  # the rule by hand, on the same numbers
    expected = np.where(u[:, 0] < 0.25, LATEST, np.floor(u[:, 1] * 3).astype(int))
    np.testing.assert_array_equal(drawn, expected)
    counts = np.array([(drawn == k).sum() for k in (LATEST, 0, 1, 2)]) / len(drawn)
    np.testing.assert_allclose(counts, [0.25, 0.25, 0.25, 0.25], atol=0.01)
    assert (draw_opponents(np.random.default_rng(0), 100, 0, 0.1) == LATEST).all()  # nothing frozen yet
    assert (draw_opponents(np.random.default_rng(0), 100, 4, 1.0) == LATEST).all()
    assert (draw_opponents(np.random.default_rng(0), 100, 4, 0.0) != LATEST).all()


def test_snapshots_join_every_interval_and_the_oldest_leave():
    agent = make()
    pool = agent.pool
    for step in range(0, 52, 2):  # a vector step of 2 envs at a time, as training calls it
        pool.snapshot_when_due(step)
        if step == 20:
            weights_at_20 = agent.steps.get_weights()
        agent.steps.set_weights([w + 1.0 for w in agent.steps.get_weights()])  # the learner moves on
    assert pool.steps == [40, 50] and pool.next_snapshot == 60  # joined at 10, 20, 30, 40, 50; K = 2 kept
    pool.snapshot_when_due(67)  # a step past a multiple: labelled with its own step, the next at the multiple after
    assert pool.steps == [50, 67] and pool.next_snapshot == 70
    assert not any(np.array_equal(a, b) for a, b in zip(pool.snapshots[0][1], weights_at_20))
    agent.close()


def test_training_takes_snapshots_at_the_scheduled_steps():
    agent = make()
    agent.learn(max_steps=50, verbose=0, eval_episodes=0)
    assert agent.total_steps == 50
    assert agent.pool.steps == [30, 40] and agent.pool.next_snapshot == 50  # before the steps 10, 20, 30, 40
    agent.close()


@pytest.mark.parametrize("name", ["ppo", "dqn"])
def test_batched_moves_equal_per_env_moves_and_are_legal(name):
    agent = make(name)
    pool = agent.pool
    pool.snapshot_when_due(10)
    pool.snapshot_when_due(20)
    rng = np.random.default_rng(1)
    n = 12
    states = rng.normal(size=(n, agent.input_dim)).astype(np.float32)
    masks = rng.random((n, agent.num_actions)) < 0.4
    masks[np.arange(n), rng.integers(agent.num_actions, size=n)] = True
    pool.opponents = np.array([LATEST, 0, 1] * 4)
    pool.rng = np.random.default_rng(5)
    batched = pool.moves(states, masks, range(n))
    assert masks[np.arange(n), batched].all()  # legal moves only
    # one env at a time, in the order the batch draws its numbers (grouped by opponent: latest, 0, 1)
    pool.rng = np.random.default_rng(5)
    single = np.zeros(n, dtype=np.int64)
    for opponent in (LATEST, 0, 1):
        for i in np.nonzero(pool.opponents == opponent)[0]:
            single[i] = pool.moves(states[i : i + 1], masks[i : i + 1], [i])[0]
    np.testing.assert_array_equal(batched, single)
    if name == "dqn":  # greedy: the legal action of the highest Q of the opponent's own weights
        import keras

        q = keras.ops.convert_to_numpy(agent.model(states, training=False))
        latest = pool.opponents == LATEST
        np.testing.assert_array_equal(batched[latest], np.where(masks, q, -np.inf).argmax(axis=1)[latest])
    agent.close()


def test_one_network_call_per_opponent_per_turn(monkeypatch):
    agent = make(concurrency=6)
    envs = agent.vector_env()
    calls = []
    envs.reset(seed=0)
    agent.pool.snapshot_when_due(10)
    agent.pool.opponents[:] = [LATEST, 0, LATEST, 0, LATEST, 0]
    for copy in (agent.pool._acting(LATEST), agent.pool._acting(0)):
        act = copy.act
        monkeypatch.setattr(copy, "act", lambda x, act=act: calls.append(len(x)) or act(x))
    actions = [int(np.flatnonzero(envs.games[i].action_mask())[0]) for i in range(6)]
    envs.step(actions)
    assert sorted(calls) == [3, 3]  # six envs' opponents: two calls, one for the latest and one for the snapshot
    agent.close()


def test_seats_alternate_and_the_learner_sees_its_own_side_and_only_legal_moves_are_played():
    agent = make("ppo", concurrency=3)
    envs = agent.vector_env()
    obs, info = envs.reset(seed=0)
    seats = [[p] for p in info["player"]]
    rng = np.random.default_rng(0)
    games = 0
    while games < 30:
        for i, game in enumerate(envs.games):  # at the learner's turn, from its own seat
            assert game.state.current_player() == game.player == info["player"][i]
            np.testing.assert_array_equal(obs[i].reshape(-1), game.state.observation_tensor(game.player))
        masks = info["action_mask"].astype(bool)
        actions = [int(rng.choice(np.flatnonzero(m))) for m in masks]
        obs, rewards, terminated, truncated, info = envs.step(actions)  # an illegal opponent move would raise
        for i in np.flatnonzero(terminated):
            seats[i].append(info["player"][i])
            assert info["final_info"]["action_mask"][i].sum() == 0 and rewards[i] in (-1.0, 0.0, 1.0)
            games += 1
    for played in seats:
        assert played[: len(played)] == [k % 2 for k in range(len(played))]  # 0, 1, 0, 1, ... per env
    agent.close()


def test_checkpoints_keep_the_pool_and_a_resumed_run_keeps_its_schedule(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    agent = make(steps=60, checkpoint_every=30)
    session.train(agent, agent.run_config, run_dir, verbose=False, console=False, final_evaluation=False)
    restored = make(steps=60)
    checkpoints.restore_checkpoint(os.path.join(run_dir, "checkpoints", "step-0000000060"), restored)
    pool, back = agent.pool, restored.pool
    assert back.steps == pool.steps == [40, 50] and back.next_snapshot == pool.next_snapshot == 60
    for (_, a), (_, b) in zip(pool.snapshots, back.snapshots):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(pool.snapshots[0][1][0], pool.snapshots[1][1][0])  # the learner moved in between
    np.testing.assert_array_equal(back.opponents, pool.opponents)
    assert back.rng.bit_generator.state == pool.rng.bit_generator.state
    # the restored snapshots act as the saved ones did
    states = np.random.default_rng(0).normal(size=(4, agent.input_dim)).astype(np.float32)
    np.testing.assert_array_equal(back._acting(1).act(states)[1], pool._acting(1).act(states)[1])

    # resumed from the checkpoint at step 30, a run takes its snapshots at the steps the uninterrupted one did,
    # also from a checkpoint written before checkpoints held the games in progress (new games start, with a note)
    resumed = make(steps=60, checkpoint_every=30)
    checkpoint = os.path.join(run_dir, "checkpoints", "step-0000000030")
    with open(os.path.join(checkpoint, "state.json")) as f:
        meta = json.load(f)
    del meta["in_flight"]
    with open(os.path.join(checkpoint, "state.json"), "w") as f:
        json.dump(meta, f)
    quiet = {"verbose": False, "console": False, "final_evaluation": False}
    session.train(resumed, resumed.run_config, run_dir, resume_from=checkpoint, **quiet)
    assert "holds no games in progress" in capsys.readouterr().err
    assert resumed.total_steps == 60 and resumed.pool.steps == [40, 50] and resumed.pool.next_snapshot == 60
    for a in (agent, restored, resumed):
        a.close()


def test_self_play_refuses_a_one_player_env_and_an_agent_without_an_opponent_policy():
    with pytest.raises(ValueError, match=r"--self-play needs a two-player OpenSpiel game .*CartPole-v1"):
        kerlym.make("CartPole-v1", "ppo", self_play=2)
    with pytest.raises(ValueError, match="-a pg cannot play itself"):
        kerlym.make(GAME, "pg", self_play=2)
    with pytest.raises(ValueError, match="must be at least 0"):
        kerlym.make(GAME, "ppo", self_play=-1)
    with pytest.raises(ValueError, match="must be an integer"):
        kerlym.make(GAME, "ppo", self_play=1.5)


@pytest.mark.parametrize("name", ["dqn", "ppo"])
def test_self_play_on_go_trains_with_legal_moves_and_checkpoints_the_pool(tmp_path, name):
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    net = {"dqn": "simple_dnn", "ppo": "actor_critic_mlp"}[name]
    settings = {"self_play": 2, "self_play_every": 10, "concurrency": 2, "vector_env": "sync", "steps": 40}
    go = {"env_kwargs": {"board_size": 5}, "modelfactory": net, "seed": 0, "nframes": 1, "eval_episodes": 2}
    agent = kerlym.make("Go9x9-v0", name, checkpoint_every=20, **go, **SMALL[name], **settings)
    assert agent.run_config.env_kwargs == {"opponent": "random", "board_size": 5}  # GnuGo is not started
    quiet = {"verbose": False, "console": False, "final_evaluation": False}
    session.train(agent, agent.run_config, run_dir, **quiet)  # an illegal move of the snapshots would raise
    envs = agent.vector_env()
    assert agent.total_steps == 40 and [g.board_size for g in envs.games] == [5, 5]
    assert all(g.opponent is None and g.external for g in envs.games)
    assert agent.pool.steps == [20, 30] and agent.pool.next_snapshot == 40
    restored = kerlym.make("Go9x9-v0", name, **go, **SMALL[name], **settings)
    checkpoints.restore_checkpoint(os.path.join(run_dir, "checkpoints", "step-0000000040"), restored)
    assert restored.pool.steps == [20, 30]
    for (_, a), (_, b) in zip(agent.pool.snapshots, restored.pool.snapshots):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    for a in (agent, restored):
        a.close()


def test_go_self_play_games_are_scored_from_the_learners_seat_over_alternating_colours():
    agent = kerlym.make(
        "Go9x9-v0", "dqn", self_play=1, concurrency=2, vector_env="sync", env_kwargs={"board_size": 5},
        seed=0, nframes=1, **SMALL["dqn"],
    )  # fmt: skip
    envs = agent.vector_env()
    finished = {}  # each game's last position and why it ended, as the env finishes it (autoreset follows)
    for i, game in enumerate(envs.games):

        def finish(final_return, end, game=game, i=i, original=game._finish):
            finished[i] = (game.player, end, final_return, game.state.clone())
            return original(final_return, end)

        game._finish = finish
    rng = np.random.default_rng(0)

    def moves(states, masks, envs):  # the snapshots' legal moves, passing one time in ten where they may
        assert not masks[:, 26].any()  # the snapshots never resign
        return [
            25 if m[25] and (rng.random() < 0.1 or not m[:25].any()) else int(rng.choice(np.flatnonzero(m[:25])))
            for m in masks
        ]

    agent.pool.moves = moves
    obs, info = envs.reset(seed=0)
    seats, ends = [[p] for p in info["player"]], []
    while len(ends) < 20:
        for i, game in enumerate(envs.games):  # the learner's turn, in its own colour, on the same planes
            assert game.state.current_player() == game.player == info["player"][i]
            np.testing.assert_array_equal(obs[i], game.observation(game.state))
        masks = info["action_mask"].astype(bool)
        masks[:, -1] = False  # the learner plays on
        obs, rewards, terminated, truncated, info = envs.step([int(rng.choice(np.flatnonzero(m))) for m in masks])
        for i in np.flatnonzero(terminated):
            player, end, final_return, state = finished.pop(i)
            assert player == info["final_info"]["player"][i] and rewards[i] == final_return
            seats[i].append(info["player"][i])
            ends.append(end)
            assert end in ("two_passes", "superko", "move_limit") and state.is_terminal()  # scored by OpenSpiel
            assert rewards[i] == state.returns()[player] and rewards[i] == -state.returns()[1 - player]
    for played in seats:
        assert played == [k % 2 for k in range(len(played))]
    assert "two_passes" in ends
    agent.close()


@pytest.mark.parametrize("name", ["dqn", "ddqn"])
def test_go_self_play_greedy_snapshots_that_would_resign_play_games_out(name):
    """Q-networks whose greedy move is resign, then pass, everywhere: their games still run to a scored end."""
    agent = kerlym.make(
        "Go9x9-v0", name, self_play=1, concurrency=2, vector_env="sync", env_kwargs={"board_size": 5},
        seed=0, nframes=1, **SMALL["dqn"],
    )  # fmt: skip
    envs = agent.vector_env()
    bias = agent.model.layers[-1].weights[-1]
    favour = np.zeros(bias.shape, dtype="float32")
    favour[-2:] = [50.0, 100.0]  # pass, resign: above every point's Q-value, whatever the planes
    bias.assign(favour + np.asarray(bias))
    _, outputs = agent.steps.act(np.zeros((3, agent.input_dim), dtype=np.float32))
    assert (np.asarray(outputs).argmax(axis=1) == 26).all()
    finished = []  # each game's move count and why it ended
    for game in envs.games:

        def finish(final_return, end, game=game, original=game._finish):
            finished.append((len(game.state.history()), end))
            return original(final_return, end)

        game._finish = finish
    rng = np.random.default_rng(0)
    obs, info = envs.reset(seed=0)
    while len(finished) < 4:
        masks = info["action_mask"].astype(bool)
        masks[:, 25:] = ~masks[:, :25].any(axis=1, keepdims=True)  # the learner plays points while it can
        obs, rewards, terminated, truncated, info = envs.step([int(rng.choice(np.flatnonzero(m))) for m in masks])
    lengths, ends = zip(*finished)
    assert "opponent_resigned" not in ends and "two_passes" not in ends  # neither side passed while it had a point
    assert min(lengths) >= 10  # the greedy snapshots resigned at once before: about 2 moves a game
    agent.close()


def rows_and_weights(agent, run_dir):
    """progress.csv's rows as numbers' text without wall_time (a resumed run's clock differs), and the final weights.

    A resume rewrites the rows it keeps, a metric not yet known as ``nan`` where the first writing left it empty.
    """
    import csv

    with open(os.path.join(run_dir, "progress.csv")) as f:
        rows = [{k: repr(float(v or "nan")) for k, v in row.items() if k != "wall_time"} for row in csv.DictReader(f)]
    return rows, agent.model.get_weights()


@pytest.mark.parametrize("name", ["ppo", "dqn"])
def test_a_run_resumed_from_a_checkpoint_mid_game_goes_on_exactly_as_the_uninterrupted_one(name, tmp_path):
    quiet = {"verbose": False, "console": False, "final_evaluation": False}
    # DQN's episodes in progress are in its replay memory, which the checkpoints keep; an update every 8 steps
    # (and states of 2 frames, so each env's frame ring and the other seat's are saved part-way too)
    memory = {"save_memory": True, "update_freq": 8, "update_nsamp": 16, "nframes": 2} if name == "dqn" else {}
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    whole = make(name, steps=240, checkpoint_every=100, **memory)
    session.train(whole, whole.run_config, run_dir, **quiet)
    rows, weights = rows_and_weights(whole, run_dir)
    checkpoint = os.path.join(run_dir, "checkpoints", "step-0000000200")  # kept with the final one at 240
    with open(os.path.join(checkpoint, "state.json")) as f:
        in_flight = json.load(f)["in_flight"]
    assert any(game["history"] for game in in_flight["acting"]["envs"]["games"])  # games were under way
    if name == "ppo":
        assert in_flight["agent"]["t"] == 4  # and half a rollout: step 200 is 100 vector steps, rollouts are 8
    # interrupted at step 200 and resumed: the same games, moves, updates and rows as the run that went on
    resumed = make(name, steps=240, checkpoint_every=100, **memory)
    session.train(resumed, resumed.run_config, run_dir, resume_from=checkpoint, **quiet)
    rows_after, weights_after = rows_and_weights(resumed, run_dir)
    assert len(rows) > 40 and rows_after == rows
    assert resumed.pool.steps == whole.pool.steps and resumed.updates == whole.updates > 2
    for a, b in zip(weights, weights_after):
        np.testing.assert_array_equal(a, b)
    for agent in (whole, resumed):
        agent.close()
