"""Every factory builds, round-trips through .keras with identical outputs, and bad factories are refused."""

import importlib.util
import os
from types import SimpleNamespace

import gymnasium as gym
import keras
import numpy as np
import pytest

from kerlym import networks
from kerlym.agents import D2QN, DQN

ROOT = os.path.dirname(os.path.dirname(__file__))


def fake_agent(nframes, frame_shape):
    dims = [nframes, *frame_shape]
    return SimpleNamespace(nframes=nframes, input_dim_orig=dims, input_dim=int(np.prod(dims)))


VECTOR_ENV = SimpleNamespace(action_space=gym.spaces.Discrete(3))
IMAGE_SHAPE = (84, 84, 1)


# One Q-value or probability per action; the actor-critic factories (two heads) are tested in test_a2c/test_ppo.
SINGLE_HEAD = sorted(set(networks.NETWORKS) - set(networks.ACTOR_CRITIC_NETWORKS))


BOARD_ENV = SimpleNamespace(action_space=gym.spaces.Discrete(5 * 5 + 2))  # a 5x5 board's points, pass, resign


def fake_setup(name):
    """A fake agent and env that ``name`` accepts: vector, image or (3, 5, 5) board observations."""
    if name == "board_cnn":
        return fake_agent(2, (3, 5, 5)), BOARD_ENV
    return fake_agent(2, IMAGE_SHAPE if name in networks.CONV_NETWORKS else (4,)), VECTOR_ENV


@pytest.mark.parametrize("name", SINGLE_HEAD)
def test_factory_builds_and_round_trips(name, tmp_path):
    conv = name in networks.CONV_NETWORKS
    agent, env = fake_setup(name)
    model = networks.get(name)(agent, env, dropout=0.25, learning_rate=1e-3)
    assert model.input_shape == (None, agent.input_dim)
    assert model.output_shape == (None, env.action_space.n)
    assert model.optimizer is not None and model.compiled
    x = np.random.default_rng(0).uniform(0, 255 if conv else 1, size=(5, agent.input_dim)).astype(np.float32)
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-6, atol=1e-6)
    assert type(loaded.optimizer) is type(model.optimizer)


@pytest.mark.parametrize("name", SINGLE_HEAD)
def test_factory_outputs_stay_float32_under_mixed_bfloat16(name):
    agent, env = fake_setup(name)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = networks.get(name)(agent, env)
    finally:
        keras.config.set_dtype_policy(previous)
    weighted = [layer for layer in model._flatten_layers(include_self=False) if layer.weights]
    heads = 2 if name == "board_cnn" else 1  # board_cnn: the points' 1x1 convolution and the dense rest
    assert [layer.compute_dtype for layer in weighted[:-heads]] == ["bfloat16"] * (len(weighted) - heads)
    assert [layer.compute_dtype for layer in weighted[-heads:]] == ["float32"] * heads
    assert model.layers[-1].compute_dtype == "float32" and model.output.dtype == "float32"


def test_conv_factory_refuses_vector_observations():
    with pytest.raises(ValueError, match="simple_cnn is a convolutional network"):
        networks.simple_cnn(fake_agent(1, (4,)), VECTOR_ENV)


def test_unknown_network_lists_valid_names():
    with pytest.raises(KeyError, match="simple_dnn"):
        networks.get("resnet")


def test_factory_with_wrong_output_size_is_refused_by_name():
    def four_outputs(agent, env, **kw):
        s = keras.Input((agent.input_dim,))
        m = keras.Model(s, keras.layers.Dense(4)(s))
        m.compile(optimizer="sgd", loss="mse")
        return m

    with pytest.raises(ValueError, match=r"four_outputs outputs shape \(None, 4\), but the env has 2 actions"):
        DQN("CartPole-v1", modelfactory=four_outputs)


def test_uncompiled_factory_is_refused_by_name():
    def not_compiled(agent, env, **kw):
        s = keras.Input((agent.input_dim,))
        return keras.Model(s, keras.layers.Dense(2)(s))

    with pytest.raises(ValueError, match="not_compiled returned a model that is not compiled"):
        DQN("CartPole-v1", modelfactory=not_compiled)


def test_users_optimizer_is_the_one_that_trains():
    spec = importlib.util.spec_from_file_location("custom_network", os.path.join(ROOT, "examples", "custom_network.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    agent = D2QN("CartPole-v1", nframes=2, modelfactory=example.custom_Q_nn, seed=0, batch_size=8, update_nsamp=16)
    opt = agent.model.optimizer
    assert isinstance(opt, keras.optimizers.RMSprop)
    assert float(opt.learning_rate) == pytest.approx(0.01)
    before = int(opt.iterations)
    agent.learn(max_steps=1000, verbose=0)  # one update of 16 samples in minibatches of 8
    # agent.model (re-read: on JAX the weights live in the compiled steps between reads) holds the same optimizer.
    assert agent.model.optimizer is opt and int(opt.iterations) - before == 2


def test_clipnorm_clips_the_global_gradient_norm():
    model = networks.simple_dnn(fake_agent(1, (4,)), VECTOR_ENV, learning_rate=1e-3, optimizer="adam", clipnorm=10.0)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert model.optimizer.global_clipnorm == 10.0
    assert networks.simple_dnn(fake_agent(1, (4,)), VECTOR_ENV).optimizer.global_clipnorm is None


def test_zoo_mlp_starts_as_torch_linear_layers_do():
    # torch's nn.Linear: weights and biases uniform in +-1/sqrt(fan_in), variance 1/(3 fan_in).
    model = networks.zoo_mlp(fake_agent(1, (6,)), VECTOR_ENV, learning_rate=1e-3)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [256, 256, 3]
    for layer, fan_in in zip(dense, (6, 256, 256)):
        kernel, bias = (np.asarray(w) for w in layer.get_weights())
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
        assert np.abs(kernel).max() > 0.95 * bound  # spread over the whole interval
        np.testing.assert_allclose(kernel.var(), bound**2 / 3, rtol=0.15)


def test_zoo_mlp_and_actor_critic_mlp_take_their_layer_widths():
    model = networks.zoo_mlp(fake_agent(1, (6,)), VECTOR_ENV, units=[32, 16, 8])
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [32, 16, 8, 3]
    for layer, fan_in in zip(dense, (6, 32, 16, 8)):  # each initialised as torch's for its own fan-in
        kernel = np.asarray(layer.get_weights()[0])
        assert kernel.shape[0] == fan_in and np.abs(kernel).max() <= 1 / np.sqrt(fan_in)
    model = networks.actor_critic_mlp(fake_agent(1, (6,)), VECTOR_ENV, net_arch=(32,))
    widths = {layer.name: layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)}
    assert widths == {"pi_0": 32, "vf_0": 32, "policy": 3, "value": 1}


def test_simple_cnn_reads_go_planes_channels_first():
    # Go's (3, 9, 9) planes: the convolution must see 9x9 boards with 3 channels, not 3x9 images with 9.
    agent = fake_agent(2, (3, 9, 9))
    model = networks.simple_cnn(agent, VECTOR_ENV)
    first_conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.TimeDistributed))
    assert tuple(first_conv.input.shape) == (None, 2, 9, 9, 3)
    frames = np.zeros((1, 2, 3, 9, 9), np.float32)
    frames[0, 0, 0] = 1.0  # frame 0: the black plane full
    frames[0, 1, 2, 4, 5] = 7.0  # frame 1: the empty plane at row 4, column 5
    permuted = keras.Model(model.input, first_conv.input)(frames.reshape(1, -1))
    expected = np.zeros((1, 2, 9, 9, 3), np.float32)
    expected[0, 0, :, :, 0] = 1.0
    expected[0, 1, 4, 5, 2] = 7.0
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(permuted), expected)
    assert model.output_shape == (None, 3)


@pytest.mark.parametrize("frame_shape", [(3, 36, 36), (36, 36, 3)])
def test_nature_cnn_stacks_frames_as_channels_either_way(frame_shape):
    model = networks.nature_cnn(fake_agent(2, frame_shape), VECTOR_ENV)
    first_conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert tuple(first_conv.input.shape) == (None, 36, 36, 6)
    permutes = [layer for layer in model.layers if isinstance(layer, keras.layers.Permute)]
    assert len(permutes) == (2 if frame_shape[0] == 3 else 1)  # nature_cnn's own frames-to-channels permute


def _example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_custom_actor_critic_example_trains_with_its_two_heads():
    from kerlym.agents import A2C

    example = _example("custom_actor_critic")
    net = example.shared_trunk_ac(fake_agent(1, (4,)), gym.make("CartPole-v1"), width=32)
    assert [tuple(s) for s in net.output_shape] == [(None, 2), (None, 1)]  # policy logits, value

    agent = A2C("CartPole-v1", modelfactory=example.shared_trunk_ac, n_steps=5, seed=0, width=32)
    opt = agent.model.optimizer
    assert isinstance(opt, keras.optimizers.Adam) and float(opt.learning_rate) == pytest.approx(7e-4)
    agent.learn(max_steps=300, verbose=0)
    assert int(agent.model.optimizer.iterations) == 300 // 5  # A2C: one gradient step per 5-step rollout
    states = np.random.default_rng(0).normal(size=(3, agent.input_dim)).astype(np.float32)
    out = np.asarray(agent.model(states))
    assert out.shape == (3, 3)  # the agent's one output: two logits, then the value
    policy, value = agent.split(out)[0], agent.split(out)[2]
    assert np.asarray(policy).shape == (3, 2) and np.asarray(value).shape == (3,)
    assert agent.predict(states[0], episode_start=True)[0] in (0, 1)


def test_actor_critic_rnn_reads_every_frame_of_the_window(tmp_path):
    agent = fake_agent(4, (5,))
    model = networks.actor_critic_rnn(agent, VECTOR_ENV, rnn_units=16)
    assert [tuple(s) for s in model.output_shape] == [(None, 3), (None, 1)]  # policy logits, value
    assert model.get_layer("gru").units == 16
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, agent.input_dim)).astype(np.float32)
    oldest = x.copy()
    oldest[:, :5] += 1.0  # only the oldest of the 4 frames changes
    value = lambda inputs: keras.ops.convert_to_numpy(model(inputs)[1])  # noqa: E731
    assert np.abs(value(oldest) - value(x)).min() > 1e-4  # the GRU carries it to the heads
    path = str(tmp_path / "rnn.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    for a, b in zip(loaded.predict_on_batch(x), model.predict_on_batch(x)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["actor_critic_rnn", "q_rnn"])
def test_recurrent_networks_refuse_image_observations(name):
    with pytest.raises(ValueError, match=f"{name} reads a window of vector observations"):
        networks.get(name)(fake_agent(2, IMAGE_SHAPE), VECTOR_ENV)


def test_q_rnn_reads_every_frame_of_the_window():
    agent = fake_agent(4, (5,))
    model = networks.q_rnn(agent, VECTOR_ENV, rnn_units=16)
    assert model.output_shape == (None, 3) and model.get_layer("gru").units == 16
    x = np.random.default_rng(0).normal(size=(2, agent.input_dim)).astype(np.float32)
    oldest = x.copy()
    oldest[:, :5] += 1.0  # only the oldest of the 4 frames changes
    q = lambda inputs: keras.ops.convert_to_numpy(model(inputs))  # noqa: E731
    assert np.abs(q(oldest) - q(x)).min() > 1e-5  # the GRU carries it to every Q-value


def test_dqn_updates_q_rnn_over_stacked_frames():
    agent = DQN(
        "CartPole-v1", modelfactory="q_rnn", nframes=3, batch_size=16, update_nsamp=48, learning_starts=10**9, seed=0
    )
    assert agent.model.get_layer("gru").input.shape[1] == 3  # the 3 frames, oldest first
    agent.learn(max_steps=100, verbose=0)  # fills replay; no updates below learning_starts
    before = [np.array(w) for w in agent.model.get_weights()]
    agent.update()
    assert int(agent.model.optimizer.iterations) == 48 // 16  # one update: update_nsamp // batch_size steps
    assert any(not np.allclose(a, np.asarray(b)) for a, b in zip(before, agent.model.get_weights()))
    agent.close()


def test_ppo_trains_with_actor_critic_rnn_over_stacked_frames():
    from kerlym.agents import PPO

    agent = PPO(
        "CartPole-v1", modelfactory="actor_critic_rnn", nframes=3, n_steps=32, batch_size=16, n_epochs=2, seed=0
    )
    assert agent.model.get_layer("actor_critic_rnn").get_layer("gru").input.shape[1] == 3  # the 3 frames
    before = [np.array(w) for w in agent.model.get_weights()]
    agent.learn(max_steps=64, verbose=0)
    assert int(agent.model.optimizer.iterations) == 2 * 2 * 2  # 2 rollouts x 2 epochs x 2 minibatches
    assert any(not np.allclose(a, np.asarray(b)) for a, b in zip(before, agent.model.get_weights()))
    agent.close()


def test_board_cnn_gives_each_point_its_own_q_value_row_by_row():
    agent, env = fake_agent(1, (3, 9, 9)), SimpleNamespace(action_space=gym.spaces.Discrete(83))
    model = networks.board_cnn(agent, env, filters=8, conv_layers=2)  # a 5x5 receptive field
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])  # heads start at 0
    board = np.zeros((3, 9, 9), np.float32)
    board[2] = 1.0  # all empty
    stone = board.copy()
    stone[:, 1, 7] = (1.0, 0.0, 0.0)  # a black stone at row 1, column 7 (action 1 * 9 + 7 = 16)
    q = lambda b: keras.ops.convert_to_numpy(model(b.reshape(1, -1)))[0]  # noqa: E731
    changed = np.abs(q(stone) - q(board)) > 1e-6
    rows, cols = np.divmod(np.arange(81), 9)
    near = (np.abs(rows - 1) <= 2) & (np.abs(cols - 7) <= 2)
    assert changed[16] and not changed[:81][~near].any()  # the points within reach of the stone only
    assert changed[81:].all()  # pass and resign read the whole board


def test_board_cnn_refuses_an_env_without_an_action_per_point():
    with pytest.raises(ValueError, match="board_cnn needs an action per point of the 9x9 board"):
        networks.board_cnn(fake_agent(1, (3, 9, 9)), VECTOR_ENV)
    with pytest.raises(ValueError, match="board_cnn is a convolutional network"):
        networks.board_cnn(fake_agent(1, (4,)), VECTOR_ENV)


def test_board_networks_give_one_output_per_column_on_a_board_that_drops_pieces_into_columns():
    agent, env = fake_agent(1, (3, 6, 7)), SimpleNamespace(action_space=gym.spaces.Discrete(7))  # connect four
    model = networks.actor_critic_board(agent, env, filters=8, conv_layers=2)
    assert model.output_shape == [(None, 7), (None, 1)]
    assert networks.board_cnn(agent, env, filters=8, conv_layers=2).output_shape == (None, 7)
    with pytest.raises(ValueError, match="needs an action per point of the 6x7 board first, or one per column; the env "
                       "has 5 actions"):  # fmt: skip
        networks.actor_critic_board(agent, SimpleNamespace(action_space=gym.spaces.Discrete(5)))


def test_actor_critic_board_gives_a_logit_per_point_pass_resign_and_a_value():
    agent, env = fake_agent(1, (3, 9, 9)), SimpleNamespace(action_space=gym.spaces.Discrete(83))
    model = networks.actor_critic_board(agent, env, filters=8, conv_layers=2)  # a 5x5 receptive field
    assert model.output_shape == [(None, 83), (None, 1)] and model.optimizer is not None
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])  # heads start at 0
    board = np.zeros((3, 9, 9), np.float32)
    board[2] = 1.0
    stone = board.copy()
    stone[:, 1, 7] = (1.0, 0.0, 0.0)  # a black stone at action 16
    out = lambda b: [keras.ops.convert_to_numpy(o)[0] for o in model(b.reshape(1, -1))]  # noqa: E731
    (p0, v0), (p1, v1) = out(board), out(stone)
    changed = np.abs(p1 - p0) > 1e-6
    rows, cols = np.divmod(np.arange(81), 9)
    near = (np.abs(rows - 1) <= 2) & (np.abs(cols - 7) <= 2)
    assert changed[16] and not changed[:81][~near].any() and changed[81:].all()
    assert v0.shape == (1,) and abs(v1[0] - v0[0]) > 1e-6
    with pytest.raises(ValueError, match="actor_critic_board needs an action per point of the 9x9 board"):
        networks.actor_critic_board(fake_agent(1, (3, 9, 9)), VECTOR_ENV)
