"""TD targets, double Q-learning and the compiled update, checked against hand-computed numbers."""

import json
from copy import deepcopy

import keras
import numpy as np
import pytest
from keras import layers, ops

from kerlym import checkpoints
from kerlym.agents import D2QN, DQN
from kerlym.agents.dqn import EXPLORATION_BLOCK, td_targets


def linear_q(agent, env, dropout=0.0, learning_rate=0.1, **kwargs):
    """Q(s) = s @ W: gradients that are easy to compute by hand. Trained with plain SGD."""
    s = keras.Input((agent.input_dim,))
    q = layers.Dense(int(env.action_space.n), use_bias=False)(s)
    model = keras.Model(s, q)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    return model


def make_agent(cls, **kw):
    args = dict(modelfactory=linear_q, nframes=1, batch_size=2, update_nsamp=2, seed=0, discount=0.9, learning_rate=0.1)
    args.update(kw)
    return cls("CartPole-v1", **args)


def hand_sgd_step(cls, w, w_target, batch, discount):
    """The mean squared TD error of ``Q(s) = s @ w`` on one minibatch, and its gradient in ``w``, by hand."""
    s, a, r, s2, term = batch
    rows = np.arange(len(s))
    if cls is DQN:
        v_next = (s2 @ w_target).max(axis=1)
    else:  # D2QN: the online network picks the action, the target network values it
        v_next = (s2 @ w_target)[rows, (s2 @ w).argmax(axis=1)]
    y = r + discount * (1 - term) * v_next
    q_sa = (s @ w)[rows, a]
    grad = np.zeros_like(w)
    for i in rows:
        grad[:, a[i]] += -2.0 / len(s) * (y[i] - q_sa[i]) * s[i]
    return np.mean((y - q_sa) ** 2), grad


def np_(x):
    return ops.convert_to_numpy(x)


def test_td_targets_by_hand():
    y = td_targets(np.array([1.0, 2.0, 3.0]), np.array([False, True, False]), np.array([10.0, 10.0, -5.0]), 0.9)
    np.testing.assert_allclose(np_(y), [1 + 9, 2, 3 - 4.5], rtol=1e-6)


def test_dqn_takes_max_and_d2qn_lets_online_pick():
    q_online = np.array([[1.0, 5.0], [3.0, 2.0]], np.float32)
    q_target = np.array([[7.0, 4.0], [6.0, 9.0]], np.float32)
    dqn, ddqn = make_agent(DQN), make_agent(D2QN)

    def online_next():
        raise AssertionError("DQN never needs the online network's next-state values")

    np.testing.assert_allclose(np_(dqn.next_state_value(q_target, online_next)), [7.0, 9.0])
    np.testing.assert_allclose(np_(ddqn.next_state_value(q_target, lambda: q_online)), [4.0, 6.0])


@pytest.mark.parametrize("cls", [DQN, D2QN])
def test_update_matches_hand_computed_sgd_step(cls):
    agent = make_agent(cls)
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 2)).astype(np.float32)
    w_target = rng.normal(size=(4, 2)).astype(np.float32)
    agent.model.set_weights([w])
    agent.target_model.set_weights([w_target])

    s = np.array([[1.0, 0.5, -1.0, 2.0], [0.0, -1.0, 1.0, 0.5]], np.float32)
    s2 = np.array([[0.5, 0.5, 0.0, 1.0], [1.0, 1.0, -2.0, 0.0]], np.float32)
    a = np.array([1, 0], np.int32)
    r = np.array([1.0, -0.5], np.float32)
    term = np.array([False, True])
    expected_loss, grad = hand_sgd_step(cls, w, w_target, (s, a, r, s2, term), 0.9)

    losses = agent.steps.update((s[None], a[None], r[None], s2[None], term[None]))
    np.testing.assert_allclose(losses, [expected_loss], rtol=1e-5)
    np.testing.assert_allclose(agent.model.get_weights()[0], w - 0.1 * grad, rtol=1e-5, atol=1e-6)
    # The target network is untouched by an update.
    np.testing.assert_array_equal(agent.target_model.get_weights()[0], w_target)


def test_several_minibatches_run_in_one_call_in_order():
    agent = make_agent(DQN)
    w = np.ones((4, 2), np.float32)
    agent.model.set_weights([w])
    agent.target_model.set_weights([np.zeros((4, 2), np.float32)])
    s = np.eye(4, dtype=np.float32)[:2]
    batch = (s, np.array([0, 1], np.int32), np.ones(2, np.float32), s, np.ones(2, bool))
    stacked = [np.stack([x, x]) for x in batch]
    losses = agent.steps.update(stacked)
    # Step 1: y = 1, Q(s,a) = 1 -> loss 0, no change; step 2 sees the same weights.
    np.testing.assert_allclose(losses, [0.0, 0.0], atol=1e-7)
    batch2 = (s, np.array([0, 1], np.int32), np.full(2, 3.0, np.float32), s, np.ones(2, bool))
    losses = agent.steps.update([np.stack([x, x]) for x in batch2])
    # Step 1: error 2 on each sample -> loss 4; W[0,0] and W[1,1] move by 0.1 * 2 = 0.2 -> error 1.8.
    np.testing.assert_allclose(losses, [4.0, 1.8**2], rtol=1e-5)


def test_truncation_bootstraps_and_termination_does_not():
    agent = make_agent(DQN)
    o0, o1, o2 = (np.full(4, v, np.float32) for v in (0.0, 1.0, 2.0))
    agent.learning_starts = 10**9  # record only, no automatic updates
    # Episode 1 ends by time limit, episode 2 by termination; same transition otherwise.
    agent.begin_episode(o0)
    agent.observe(0, o0[None], 0, 1.0, False, True, o1)
    agent.begin_episode(o0)
    agent.observe(0, o0[None], 0, 1.0, True, False, o2)
    agent.model.set_weights([np.zeros((4, 2), np.float32)])
    agent.target_model.set_weights([np.ones((4, 2), np.float32)])
    batch = agent.memory._gather(agent.memory.newest_indices(2)[::-1])
    np.testing.assert_array_equal(batch.terminated, [False, True])
    v_next = np.array([4.0, 8.0])  # max over actions of sum(next_state) with all-ones target weights
    y = np.array([1.0, 1.0]) + 0.9 * np.array([1.0, 0.0]) * v_next
    np.testing.assert_allclose(y, [4.6, 1.0])
    losses = agent.steps.update(tuple(x[None] for x in batch.arrays()))
    np.testing.assert_allclose(losses, [np.mean(y**2)], rtol=1e-5)  # Q(s, a) = 0 everywhere


def test_compiled_loss_is_the_factorys_loss():
    def huber_q(agent, env, **kw):
        model = linear_q(agent, env)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.Huber(delta=1.0))
        return model

    agent = make_agent(DQN, modelfactory=huber_q)
    agent.model.set_weights([np.zeros((4, 2), np.float32)])
    s = np.zeros((2, 4), np.float32)
    r = np.array([3.0, 0.5], np.float32)  # errors 3 (linear part) and 0.5 (quadratic part)
    losses = agent.steps.update((s[None], np.zeros((1, 2), np.int32), r[None], s[None], np.ones((1, 2), bool)))
    np.testing.assert_allclose(losses, [np.mean([3.0 - 0.5, 0.5 * 0.5**2])], rtol=1e-5)


def test_act_is_greedy_without_exploration_and_returns_q_values():
    agent = make_agent(DQN, epsilon=1.0)
    agent.model.set_weights([np.array([[1.0, 2.0]] * 4, np.float32)])
    state = np.ones((1, 4), np.float32)
    actions, q = agent.act(state, explore=False)
    assert actions.tolist() == [1]
    np.testing.assert_allclose(q, [[4.0, 8.0]])
    explored = {int(agent.act(state)[0][0]) for _ in range(50)}
    assert explored == {0, 1}
    batch_actions, _ = agent.act(np.ones((64, 4), np.float32))
    assert batch_actions.shape == (64,) and set(batch_actions.tolist()) == {0, 1}


def test_exploration_draws_come_in_blocks_and_continue_after_a_checkpoint():
    agent = make_agent(DQN, epsilon=0.5)
    agent.model.set_weights([np.zeros((4, 2), np.float32)])  # Q = 0 everywhere: the greedy action is 0
    rng = deepcopy(agent.rng)  # replays the agent's draws: a block of uniforms, then one of actions
    u, random_actions = rng.random(EXPLORATION_BLOCK), rng.integers(2, size=EXPLORATION_BLOCK)
    expected = np.where(u < 0.5, random_actions, 0)
    state = np.ones((1, 4), np.float32)
    assert [int(agent.act(state)[0][0]) for _ in range(10)] == expected[:10].tolist()
    batch_actions, _ = agent.act(np.ones((3, 4), np.float32))  # several envs take consecutive draws
    assert batch_actions.tolist() == expected[10:13].tolist()

    meta, arrays = agent.get_state()
    restored = make_agent(DQN, epsilon=0.5)
    restored.model.set_weights([np.zeros((4, 2), np.float32)])
    restored.set_state(json.loads(json.dumps(meta)), arrays)
    assert [int(restored.act(state)[0][0]) for _ in range(5)] == expected[13:18].tolist()


def remember_thirty_steps(agent):
    """Steps 1..30 of one episode in memory, no update: state t - 1 led to reward t (the state is t, 4 times)."""
    agent.learning_starts = 10**9
    agent.begin_episode(np.zeros(4, np.float32))
    for t in range(1, 31):
        agent.observe(0, None, 0, float(t), False, False, np.full(4, t, np.float32))


def test_update_scheme_samples_newest_then_replay():
    agent = make_agent(DQN, batch_size=4, update_nsamp=12, update_freq=5)
    remember_thirty_steps(agent)
    batches = agent.sample_update()
    assert batches[0].shape == (3, 4, 4)  # 12 samples -> 3 gradient steps of 4
    rewards = batches[2].ravel()
    assert set(range(26, 31)) <= set(rewards.tolist())  # the newest update_freq transitions are all there


def test_uniform_replay_draws_every_sample_from_memory():
    agent = make_agent(DQN, batch_size=4, update_nsamp=12, update_freq=5, replay="uniform")
    remember_thirty_steps(agent)
    rng = deepcopy(agent.rng)  # replays the agent's draws: 12 uniform indices, then the shuffle
    drawn = agent.memory._gather(agent.memory.random_indices(12, rng)).rewards
    expected = drawn[rng.permutation(12)]
    batches = agent.sample_update()
    np.testing.assert_array_equal(batches[2].ravel(), expected)
    np.testing.assert_array_equal(batches[0][..., 0].ravel(), expected - 1.0)  # state t - 1 led to reward t
    assert not set(range(26, 31)) <= set(expected.tolist())  # unlike "newest", which forces these in


def test_single_minibatch_update_keeps_the_drawn_order():
    # One minibatch per update (CleanRL's settings): its loss is a mean, so no shuffle is drawn.
    agent = make_agent(DQN, batch_size=6, update_nsamp=6, update_freq=5, replay="uniform")
    remember_thirty_steps(agent)
    rng = deepcopy(agent.rng)
    expected = agent.memory._gather(agent.memory.random_indices(6, rng)).rewards
    batches = agent.sample_update()
    assert batches[0].shape == (1, 6, 4)
    np.testing.assert_array_equal(batches[2][0], expected)
    np.testing.assert_array_equal(batches[0][0, :, 0], expected - 1.0)
    assert agent.rng.random() == rng.random()  # the update drew nothing beyond the samples


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"epsilon": 1.5}, "epsilon"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_memory": 8, "batch_size": 16, "update_nsamp": 16}, r"max_mem \(8\) must be at least the batch size"),
        ({"replay": "fifo"}, "unknown replay 'fifo'; choose one of: newest, uniform"),
    ],
)
def test_bad_arguments_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        make_agent(DQN, **kw)


def test_weights_read_before_an_update_stay_as_they_were():
    # The JAX update reuses (donates) the weights' buffers; arrays handed out earlier must not change.
    agent = D2QN(
        "CartPole-v1", seed=0, dropout=0.0, update_freq=100, update_nsamp=64, batch_size=32, learning_starts=200
    )
    agent.learn(max_steps=300)
    weights = agent.model.get_weights()
    target = agent.target_model.get_weights()
    copies = [w.copy() for w in weights + target]
    agent.learn(max_steps=700)
    assert agent.updates == 9
    for held, copy in zip(weights + target, copies):
        np.testing.assert_array_equal(held, copy)
    assert any(not np.array_equal(w, c) for w, c in zip(agent.model.get_weights(), copies))


@pytest.mark.parametrize("cls", [DQN, D2QN])
def test_one_call_of_many_minibatches_equals_one_call_each(cls):
    # Twelve minibatches run in one compiled call: a loop (more than UNROLL steps), the target
    # network evaluated once for all of them. The same minibatches one call at a time must give
    # the same losses and weights: each step sees the weights the step before left.
    def mlp_q(agent, env, **kw):
        s = keras.Input((agent.input_dim,))
        h = layers.Dense(8, activation="tanh")(s)
        model = keras.Model(s, layers.Dense(int(env.action_space.n))(h))
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="huber")
        return model

    agents = [make_agent(cls, modelfactory=mlp_q) for _ in range(2)]
    agents[1].model.set_weights(agents[0].model.get_weights())
    rng = np.random.default_rng(0)
    target_weights = [rng.normal(size=w.shape).astype(np.float32) for w in agents[0].target_model.get_weights()]
    for agent in agents:
        agent.target_model.set_weights(target_weights)
    n, b = 12, 5
    batches = (
        rng.normal(size=(n, b, 4)).astype(np.float32),
        rng.integers(2, size=(n, b)).astype(np.int32),
        rng.normal(size=(n, b)).astype(np.float32),
        rng.normal(size=(n, b, 4)).astype(np.float32),
        rng.random((n, b)) < 0.3,
    )
    together = agents[0].steps.update(batches)
    apart = np.concatenate([agents[1].steps.update(tuple(x[k : k + 1] for x in batches)) for k in range(n)])
    assert len(set(np.round(together, 4).tolist())) > 1  # the steps differ
    np.testing.assert_allclose(together, apart, rtol=2e-4, atol=1e-5)
    for w1, w2 in zip(agents[0].model.get_weights(), agents[1].model.get_weights()):
        np.testing.assert_allclose(w1, w2, rtol=2e-4, atol=1e-5)
    for w, held in zip(agents[0].target_model.get_weights(), target_weights):
        np.testing.assert_array_equal(w, held)


def test_each_episode_row_reports_the_epsilon_it_ran_with():
    agent = make_agent(DQN, epsilon=0.5, epsilon_schedule=lambda episode, eps: eps * 0.5, learning_starts=10**6)
    agent.learn(max_episodes=3)
    assert [row["epsilon"] for row in agent.episodes] == [0.5, 0.25, 0.125]
    assert agent.epsilon == 0.0625  # decayed after the third episode, for the fourth


def test_weight_average_by_hand_and_greedy_actions_come_from_it():
    agent = make_agent(DQN, epsilon=0.0, ema_steps=500)
    w1, w2, w3 = (np.full((4, 2), v, np.float32) for v in (1.0, 3.0, -2.0))
    w1[:, 1] = 2.0  # action 1 greedy under w1
    state = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(agent.act(state, explore=False)[1], agent.act(state)[1])  # no update yet: equal

    agent.total_steps = 100
    agent.model.set_weights([w1])
    agent.average_weights()  # the first move copies
    agent.total_steps = 200
    agent.model.set_weights([w2])
    agent.average_weights()  # 100 steps later
    agent.total_steps = 500
    agent.model.set_weights([w3])
    agent.average_weights()  # 300 steps later
    k1, k2 = np.exp(-100 / 500), np.exp(-300 / 500)
    expected = k2 * (k1 * w1 + (1 - k1) * w2) + (1 - k2) * w3
    np.testing.assert_allclose(agent.ema.weights[0], expected, rtol=1e-6)

    greedy_actions, greedy_q = agent.act(state, explore=False)
    np.testing.assert_allclose(greedy_q, state @ expected, rtol=1e-5)
    assert greedy_actions.tolist() == [int(np.argmax(state @ expected))]
    _, online_q = agent.act(state)  # training acts with the online network (epsilon 0: greedy)
    np.testing.assert_allclose(online_q, state @ w3, rtol=1e-5)
    np.testing.assert_allclose(agent.greedy_model.get_weights()[0], expected, rtol=1e-6)


def record_updates(agent):
    """A list that gets (total_steps, the online weights) after each of the agent's compiled updates."""
    after_update = []
    update = agent.steps.update

    def recording_update(batches):
        losses = update(batches)
        after_update.append((agent.total_steps, [w.copy() for w in agent.model.get_weights()]))
        return losses

    agent.steps.update = recording_update
    return after_update


def test_every_update_moves_the_average_by_the_steps_since_the_last():
    kw = dict(update_freq=50, update_nsamp=64, batch_size=32, learning_starts=100, ema_steps=300)
    agent = D2QN("CartPole-v1", seed=0, **kw)
    after_update = record_updates(agent)
    agent.learn(max_steps=400)
    assert [step for step, _ in after_update] == [100, 150, 200, 250, 300, 350, 400]
    expected = after_update[0][1]
    keep = np.exp(-50 / 300)  # every update comes 50 steps after the one before
    for _, weights in after_update[1:]:
        expected = [keep * e + (1 - keep) * w for e, w in zip(expected, weights)]
    for got, want in zip(agent.ema.weights, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert not np.allclose(agent.ema.weights[0], agent.model.get_weights()[0])


def test_weight_average_survives_get_and_set_state_and_save(tmp_path):
    agent = make_agent(DQN, ema_steps=200)
    agent.model.set_weights([np.full((4, 2), 2.0, np.float32)])
    agent.total_steps = 50
    agent.average_weights()
    agent.model.set_weights([np.full((4, 2), -1.0, np.float32)])
    agent.total_steps = 250
    agent.average_weights()
    meta, arrays = agent.get_state()
    assert meta["ema_step"] == 250

    restored = make_agent(DQN, ema_steps=200)
    restored.model.set_weights(agent.model.get_weights())
    restored.set_state(json.loads(json.dumps(meta)), arrays)
    state = np.array([[1.0, 0.0, 0.0, 0.0]], np.float32)
    np.testing.assert_allclose(restored.act(state, explore=False)[1], agent.act(state, explore=False)[1])
    restored.model.set_weights([np.zeros((4, 2), np.float32)])
    restored.total_steps = 450
    restored.average_weights()  # continues from the saved step: 200 steps later
    keep = np.exp(-200 / 200)
    np.testing.assert_allclose(restored.ema.weights[0], keep * agent.ema.weights[0], rtol=1e-6)

    agent.save(str(tmp_path / "greedy.keras"))  # the network greedy actions come from
    saved = keras.saving.load_model(str(tmp_path / "greedy.keras"), compile=False)
    np.testing.assert_allclose(saved.get_weights()[0], agent.ema.weights[0])


def test_with_several_updates_per_step_each_moves_the_average_by_its_own_steps():
    # 4 env copies, an update every 2 steps: each step of the 4 copies crosses two multiples of 2.
    kw = dict(update_freq=2, update_nsamp=64, batch_size=32, learning_starts=40, ema_steps=30, concurrency=4)
    agent = DQN("CartPole-v1", seed=0, **kw)
    after_update = record_updates(agent)
    agent.learn(max_steps=60)
    assert [step for step, _ in after_update] == [40, 40, 44, 44, 48, 48, 52, 52, 56, 56, 60, 60]
    # The first update (for step 38, run once 40 transitions are held) copies; every later one
    # belongs to a step 2 after the one before, even when two run after the same env step.
    expected = after_update[0][1]
    keep = np.exp(-2 / 30)
    for _, weights in after_update[1:]:
        expected = [keep * e + (1 - keep) * w for e, w in zip(expected, weights)]
    for got, want in zip(agent.ema.weights, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert agent.ema.step == 60


@pytest.mark.parametrize(
    "bad, message",
    [
        (0, "ema must be positive and finite"),
        (-5, "ema must be positive and finite"),
        (float("nan"), "--ema_steps/--ema must be an integer, got nan"),
        (float("inf"), "--ema_steps/--ema must be an integer, got inf"),
    ],
)
def test_ema_steps_must_be_positive_and_finite(bad, message):
    with pytest.raises(ValueError, match=message):
        make_agent(DQN, ema_steps=bad)


def test_masked_td_target_takes_the_max_over_legal_next_actions_only():
    import keras

    from kerlym.agents.dqn import DQN, masked, td_targets

    q_next = np.array([[1.0, 5.0, 2.0], [3.0, -1.0, 4.0]], dtype=np.float32)
    legal = np.array([[1, 0, 1], [0, 1, 0]], dtype=bool)
    value = keras.ops.convert_to_numpy(DQN.next_state_value(None, q_next, None, legal))
    np.testing.assert_array_equal(value, [2.0, -1.0])  # 5 and 4 are illegal
    y = keras.ops.convert_to_numpy(td_targets(np.array([0.5, 1.0]), np.array([False, True]), value, 0.9))
    np.testing.assert_allclose(y, [0.5 + 0.9 * 2.0, 1.0])  # the terminal one never bootstraps
    floor = keras.ops.convert_to_numpy(masked(q_next, np.zeros_like(legal)))
    assert (floor == -1e9).all()  # finite: 0 * floor stays 0 at a terminal state


def test_d2qn_picks_the_next_action_among_legal_ones():
    import keras

    from kerlym.agents.dqn import D2QN

    q_target = np.array([[10.0, 20.0, 30.0]], dtype=np.float32)
    q_online = np.array([[0.0, 9.0, 1.0]], dtype=np.float32)  # online's best legal action is 2, not 1
    legal = np.array([[1, 0, 1]], dtype=bool)
    value = D2QN.next_state_value(None, q_target, lambda: q_online, legal)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(value), [30.0])


def test_masked_acting_explores_and_exploits_legal_actions_only():
    agent = DQN("CartPole-v1", seed=0, epsilon=0.5)
    states = np.zeros((500, agent.input_dim), dtype=np.float32)
    masks = np.zeros((500, 2), dtype=bool)
    masks[::2, 0] = True
    masks[1::2, 1] = True
    actions, _ = agent.act(states, masks=masks)
    np.testing.assert_array_equal(actions, np.tile([0, 1], 250))
    greedy, _ = agent.act(states, explore=False, masks=masks)
    np.testing.assert_array_equal(greedy, np.tile([0, 1], 250))
    agent.close()


def test_replay_keeps_each_next_states_mask():
    from kerlym.memory import ReplayMemory

    mem = ReplayMemory(8, (1,))
    mem.start_episode(np.array([0.0]), mask=np.array([1, 1, 0], bool))
    mem.add(2, 1.0, False, np.array([1.0]), mask=np.array([0, 1, 0], bool))
    mem.add(1, 0.0, True, np.array([2.0]), mask=np.array([0, 0, 0], bool))
    batch = mem._gather(np.array([0, 1]))
    np.testing.assert_array_equal(batch.next_states[:, 0], [1.0, 2.0])
    np.testing.assert_array_equal(batch.next_masks, [[0, 1, 0], [0, 0, 0]])


def test_a_full_memory_starts_updates_even_below_learning_starts():
    # CleanRL's CartPole settings: 10k frames of memory, 10k transitions before learning. Each episode's first
    # frame takes a slot without a transition, so the memory fills holding fewer than 10k transitions.
    agent = DQN(
        "CartPole-v1", seed=0, max_memory=300, learning_starts=300, batch_size=16, update_nsamp=16, update_freq=1
    )
    agent.learn(max_steps=400, verbose=0)
    assert len(agent.memory) < 300 and agent.memory.size == 300
    assert agent.updates > 0
    agent.close()


@pytest.mark.parametrize("cls", [DQN, D2QN])
def test_n_step_td_target_by_hand(cls):
    agent = make_agent(cls, n_step=2)
    agent.learning_starts = 10**9  # record only
    o = [np.full(4, v, np.float32) for v in (0.0, 1.0, 2.0, 3.0)]
    agent.begin_episode(o[0])
    for t, (r, term) in enumerate(((1.0, False), (2.0, False), (3.0, True))):
        agent.observe(0, o[t][None], 0, r, term, False, o[t + 1])
    agent.model.set_weights([np.zeros((4, 2), np.float32)])  # Q(s, a) = 0, so the loss is mean(y ** 2)
    agent.target_model.set_weights([np.ones((4, 2), np.float32)])  # Q_target(s, .) = sum(s) for both actions
    batch = agent.memory._gather(np.arange(3), n_step=2, discount=0.9)
    y = np.array(
        [
            1.0 + 0.9 * 2.0 + 0.9**2 * 8.0,  # 0 -> 1 -> 2, bootstraps from sum(o[2]) = 8
            2.0 + 0.9 * 3.0,  # 1 -> 2 -> 3, terminated: no bootstrap
            3.0,
        ]
    )
    np.testing.assert_array_equal(batch.n_steps, [2, 2, 1])
    losses = agent.steps.update(tuple(x[None] for x in batch.arrays()))
    np.testing.assert_allclose(losses, [np.mean(y**2)], rtol=1e-5)
    agent.close()


def test_n_step_update_takes_the_mask_of_the_chains_last_state():
    agent = make_agent(DQN, n_step=3, update_nsamp=4, batch_size=4)
    agent.learning_starts = 10**9
    o = [np.full(4, v, np.float32) for v in (0.0, 1.0, 2.0)]
    agent.begin_episode(o[0], mask=np.array([1, 1], bool))
    agent.observe(0, o[0][None], 0, 0.0, False, False, o[1], mask=np.array([1, 0], bool))
    agent.observe(0, o[1][None], 1, 0.0, False, False, o[2], mask=np.array([0, 1], bool))
    states, actions, rewards, next_states, terminated, n_steps, legal = agent.sample_update()
    from_first = states[0, :, 0] == 0.0
    assert 0 < from_first.sum() < 4  # both transitions drawn
    np.testing.assert_array_equal(next_states[0, from_first, 0], 2.0)
    np.testing.assert_array_equal(legal[0, from_first], [[False, True]] * int(from_first.sum()))
    np.testing.assert_array_equal(n_steps[0], np.where(from_first, 2, 1))
    agent.close()


def test_n_step_must_be_positive():
    with pytest.raises(ValueError, match="n_step"):
        make_agent(DQN, n_step=0)


def dueling_q(s, wv, wa):
    """``Q(s) = s @ wv + s @ wa - mean_a (s @ wa)``: a dueling head on the linear factory's input, by hand."""
    adv = s @ wa
    return s @ wv + adv - adv.mean(axis=1, keepdims=True)


def test_dueling_head_is_value_plus_centred_advantages_and_keeps_the_factorys_output_layer_settings():
    agent = make_agent(DQN, dueling=True)
    model = agent.model
    assert [layer.name for layer in model.layers[1:]] == ["value", "advantage", "dueling_q"]
    assert not model.get_layer("value").use_bias and not model.get_layer("advantage").use_bias  # as linear_q's
    assert isinstance(model.optimizer, keras.optimizers.SGD)  # the factory's optimizer and loss
    rng = np.random.default_rng(5)
    wv, wa = rng.normal(size=(4, 1)).astype(np.float32), rng.normal(size=(4, 2)).astype(np.float32)
    model.set_weights([wv, wa])
    s = rng.normal(size=(3, 4)).astype(np.float32)
    q = np_(model(s))
    np.testing.assert_allclose(q, dueling_q(s, wv, wa), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q.mean(axis=1), (s @ wv)[:, 0], rtol=1e-5, atol=1e-6)  # V is the mean Q-value
    greedy, _ = agent.act(s, explore=False)
    np.testing.assert_array_equal(greedy, (s @ wa).argmax(axis=1))  # the advantages pick the action


@pytest.mark.parametrize("cls", [DQN, D2QN])
def test_dueling_update_matches_a_hand_computed_sgd_step(cls):
    agent = make_agent(cls, dueling=True)
    rng = np.random.default_rng(7)
    wv, wa, wv_t, wa_t = (rng.normal(size=shape).astype(np.float32) for shape in [(4, 1), (4, 2)] * 2)
    agent.model.set_weights([wv, wa])
    agent.target_model.set_weights([wv_t, wa_t])
    s = np.array([[1.0, 0.5, -1.0, 2.0], [0.0, -1.0, 1.0, 0.5]], np.float32)
    s2 = np.array([[0.5, 0.5, 0.0, 1.0], [1.0, 1.0, -2.0, 0.0]], np.float32)
    a, r, term = np.array([1, 0], np.int32), np.array([1.0, -0.5], np.float32), np.array([False, True])

    rows = np.arange(2)
    q_next_target = dueling_q(s2, wv_t, wa_t)
    picked = q_next_target.argmax(axis=1) if cls is DQN else dueling_q(s2, wv, wa).argmax(axis=1)
    y = r + 0.9 * (1 - term) * q_next_target[rows, picked]
    q_sa = dueling_q(s, wv, wa)[rows, a]
    g = -2.0 / 2 * (y - q_sa)  # d loss / d Q(s_i, a_i)
    grad_wv = (g[:, None] * s).sum(axis=0)[:, None]  # every action's Q moves with V
    centred = np.eye(2)[a] - 0.5  # d Q(s, a) / d A(s, b) = [a == b] - 1 / actions
    grad_wa = s.T @ (g[:, None] * centred)

    losses = agent.steps.update((s[None], a[None], r[None], s2[None], term[None]))
    np.testing.assert_allclose(losses, [np.mean((y - q_sa) ** 2)], rtol=1e-5)
    new_wv, new_wa = agent.model.get_weights()
    np.testing.assert_allclose(new_wv, wv - 0.1 * grad_wv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_wa, wa - 0.1 * grad_wa, rtol=1e-5, atol=1e-6)


def test_dueling_needs_one_dense_output_layer():
    def two_heads(agent, env, dropout=0.0, learning_rate=0.1, **kwargs):
        s = keras.Input((agent.input_dim,))
        q = layers.Concatenate()([layers.Dense(1)(s), layers.Dense(1)(s)])
        model = keras.Model(s, q)
        model.compile(optimizer="sgd", loss="mse")
        return model

    with pytest.raises(ValueError, match="two_heads's output layer .* must be one Dense layer on one input; .* Concat"):
        make_agent(DQN, modelfactory=two_heads, dueling=True)


def test_dueling_model_saves_and_reloads_with_identical_outputs(tmp_path):

    agent = make_agent(D2QN, modelfactory="simple_dnn", dropout=0.0, dueling=True)
    model = agent.model
    model.set_weights([np.random.default_rng(i).normal(size=w.shape) for i, w in enumerate(model.get_weights())])
    path = str(tmp_path / "dueling.keras")
    model.save(path)
    s = np.random.default_rng(9).normal(size=(5, agent.input_dim)).astype(np.float32)
    np.testing.assert_array_equal(np_(checkpoints.load_model(path)(s)), np_(model(s)))


def test_symmetries_turn_each_sample_its_stacked_frames_action_and_next_mask_alike():
    pytest.importorskip("pyspiel")
    from kerlym.envs import make_env
    from kerlym.memory import Batch

    env = make_env("Go9x9-v0", env_kwargs={"opponent": "random", "board_size": 5})
    agent = DQN(env, nframes=2, modelfactory="simple_dnn", seed=0, symmetries=True, update_freq=100, update_nsamp=64)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 2, size=(2, 2, 2, 3, 5, 5), dtype=np.uint8)  # [sample, state/next, frame, planes]
    masks = rng.integers(0, 2, size=(2, 27), dtype=np.int8)
    batch = Batch(
        frames[:, 0].reshape(2, -1),
        np.array([1, 25]),
        np.array([0.5, -1.0], np.float32),
        frames[:, 1].reshape(2, -1),
        np.array([False, True]),
        next_masks=masks,
    )
    turned = agent.symmetries.apply(batch, np.array([1, 5]))  # a quarter turn; a quarter turn, then a reflection

    def quarter(x, reflect):  # np.rot90 over the board's two axes, then a left-right flip
        x = np.rot90(x, 1, axes=(-2, -1))
        return x[..., ::-1] if reflect else x

    for i, reflect in enumerate([False, True]):
        np.testing.assert_array_equal(turned.states[i], quarter(frames[i, 0], reflect).reshape(-1))
        np.testing.assert_array_equal(turned.next_states[i], quarter(frames[i, 1], reflect).reshape(-1))
        points = quarter(masks[i, :25].reshape(5, 5), reflect).reshape(-1)
        np.testing.assert_array_equal(turned.next_masks[i], np.concatenate([points, masks[i, 25:]]))
    assert turned.actions.tolist() == [3 * 5 + 0, 25]  # point (0, 1) turns to (3, 0); pass stays pass
    np.testing.assert_array_equal(turned.rewards, batch.rewards)
    np.testing.assert_array_equal(turned.terminated, batch.terminated)
    agent.learn(max_steps=600, verbose=0)  # sampling and updating with symmetries
    assert agent.updates > 0


def test_symmetries_need_an_env_that_defines_them():
    with pytest.raises(ValueError, match="symmetries=True needs an env that defines symmetries\\(\\); CartPole-v1"):
        make_agent(DQN, symmetries=True)


def test_average_symmetries_maps_each_q_back_to_the_board_as_played():
    pytest.importorskip("pyspiel")
    from kerlym.envs import make_env

    env = make_env("Go9x9-v0", env_kwargs={"opponent": "random", "board_size": 5})
    agent = DQN(env, modelfactory="simple_dnn", seed=0, average_symmetries=True, update_freq=100, update_nsamp=64)
    assert agent.symmetries is not None
    # A Q that reads each point's black stone is the same board under every symmetry: the mean is itself.
    boards = np.random.default_rng(1).integers(0, 2, size=(3, 3, 5, 5)).astype(np.uint8)

    def black(states):
        planes = states.reshape(len(states), 3, 25)
        return np.concatenate([planes[:, 0], np.full((len(states), 2), 0.5)], axis=1)

    np.testing.assert_array_equal(agent.symmetries.mean_q(boards, black), black(boards))
    # A Q that ignores the board averages each point over its images: a corner over the four corners.
    square = np.arange(27.0) ** 2
    mean = agent.symmetries.mean_q(boards[:1], lambda s: np.tile(square, (len(s), 1)))[0]
    assert mean[0] == mean[24] == (0 + 16 + 400 + 576) / 4 and mean[12] == 144 and mean[25:].tolist() == [625, 676]

    # The agent's greedy action: Q of the 8 turned boards from its network, each turned back by hand.
    model = agent.model  # random weights throughout (its output layer starts at zero)
    rng = np.random.default_rng(2)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
    obs, info = env.reset(seed=3)
    for action in (6, 12, 8):
        obs, *_, info = env.step(action)
    state = obs.reshape(1, 3, 5, 5)
    turned, back = [], []
    for flip in (False, True):
        for k in range(4):
            board = np.rot90(state, k, axes=(2, 3))
            turned.append(board[..., ::-1] if flip else board)
            back.append(lambda q, k=k, flip=flip: np.rot90(q[:, ::-1] if flip else q, -k))
    q = np_(agent.greedy_model(np.concatenate(turned).reshape(8, -1)))
    by_hand = np.mean([np.append(back[j](q[j, :25].reshape(5, 5)), q[j, 25:]) for j in range(8)], axis=0)
    actions, q_mean = agent.act(state.reshape(1, -1), explore=False, masks=info["action_mask"][None])
    np.testing.assert_allclose(q_mean[0], by_hand, rtol=1e-5, atol=1e-6)
    assert actions[0] == np.argmax(np.where(info["action_mask"] == 1, by_hand, -np.inf))
    assert not np.allclose(by_hand, q[0])  # the network alone is not symmetric, so the mean is not its own Q
    agent.learn(max_steps=300, verbose=0)  # trains on samples as played: no symmetries drawn
    assert agent.updates > 0


def test_average_symmetries_need_an_env_that_defines_them():
    with pytest.raises(ValueError, match="average_symmetries=True needs an env that defines symmetries"):
        make_agent(DQN, average_symmetries=True)


def test_after_step_returns_the_losses_of_the_updates_it_ran():
    agent = make_agent(DQN, update_freq=2, update_nsamp=4, batch_size=2, learning_starts=3)
    update, recorded = agent.steps.update, []
    agent.steps.update = lambda batches: recorded.append(update(batches)) or recorded[-1]
    agent.begin_episode(np.zeros(4, np.float32))
    for t in range(1, 5):
        agent.observe(0, None, 0, 1.0, False, False, np.full(4, t, np.float32))
    agent.total_steps = 8
    losses = agent.after_step(4)  # crosses steps 6 and 8: two updates of two minibatches each
    assert agent.updates == 2 and len(losses) == 4
    assert losses == recorded[0].tolist() + recorded[1].tolist()
    agent.total_steps = 9
    assert agent.after_step(8) == [] and agent.updates == 2
    assert agent.end_episode(0) == ({}, [])
