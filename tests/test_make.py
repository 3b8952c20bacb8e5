"""kerlym.configure and kerlym.make: settings to an agent, as the command builds it."""

import pytest

import kerlym
from kerlym.agents import D2QN
from kerlym.config import ConfigError
from kerlym.make import make_env_factory


def test_configure_layers_defaults_preset_and_settings():
    run, cfg = kerlym.configure("CartPole-v1", "ddqn", preset=True, cli_defaults=True, seed=3, batch_size=16)
    assert run.env == "CartPole-v1" and run.steps == 50_000  # the preset's budget
    assert cfg.learning_rate == 2.3e-3 and cfg.batch_size == 16 and cfg.seed == 3
    assert cfg.nframes == 1  # the preset's, over the command's default of 2
    _, plain = kerlym.configure("CartPole-v1", "ddqn", cli_defaults=True)
    assert plain.nframes == 2 and plain.dropout == 0.5


def test_configure_refuses_unknown_and_foreign_settings():
    with pytest.raises(ConfigError, match="unknown setting 'learnig_rate'; did you mean learning_rate"):
        kerlym.configure("CartPole-v1", "ddqn", learnig_rate=0.1)
    with pytest.raises(ConfigError, match="unknown agent 'sarsa'"):
        kerlym.configure("CartPole-v1", "sarsa")


def test_make_builds_the_configured_agent():
    agent = kerlym.make("CartPole-v1", "ddqn", preset=True, seed=0, update_freq=64)
    assert isinstance(agent, D2QN) and agent.update_freq == 64 and agent.batch_size == 64
    assert agent.model.name == "zoo_mlp" and type(agent.model.optimizer).__name__ == "Adam"
    agent.close()


@pytest.mark.parametrize(
    "args, settings, message",
    [
        ((123, "ddqn"), {}, "make's first argument is an env id (a str) or a RunConfig, got 123"),
        ((None, None), {}, "make's first argument is an env id (a str) or a RunConfig, got None"),
        (("CartPole-v1", "ddqn"), {"modelfactory": 3}, "--modelfactory/--net must be a name or a function, got 3"),
        (("CartPole-v1", "ddqn"), {"steps": "100"}, "--steps must be an integer, got '100'"),
        (("CartPole-v1", "ddqn"), {"batch_size": 32.5}, "-b/--batch_size must be an integer, got 32.5"),
        (("CartPole-v1", "ppo"), {"concurrency": 2.5}, "-c/--concurrency must be an integer, got 2.5"),
    ],
)
def test_make_names_a_bad_argument_and_what_it_takes(args, settings, message):
    with pytest.raises(ConfigError) as e:
        kerlym.make(*args, **settings)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, TypeError)  # a wrong type: a TypeError too


def test_make_with_configs_checks_their_types_and_the_network():
    run, cfg = kerlym.configure("CartPole-v1", "ppo")
    with pytest.raises(TypeError, match="make\\(run, config\\): config must be a PPOConfig for -a ppo, got 'ppo'"):
        kerlym.make(run, "ppo")
    with pytest.raises(ConfigError, match="-a ppo needs an actor-critic network: .* \\(got zoo_mlp\\)"):
        kerlym.make(run, kerlym.config.replace(cfg, modelfactory="zoo_mlp"))


def test_the_networks_own_optimizer_stands_unless_one_is_given():
    agent = kerlym.make("CartPole-v1", "dqn", modelfactory="zoo_mlp")
    assert type(agent.model.optimizer).__name__ == "Adam"  # zoo_mlp's own, not the original's RMSprop
    agent.close()
    agent = kerlym.make("CartPole-v1", "dqn", modelfactory="zoo_mlp", optimizer="rmsprop")
    assert type(agent.model.optimizer).__name__ == "RMSprop"
    agent.close()


def test_agent_arguments_are_config_fields_or_named_factory_parameters():
    with pytest.raises(TypeError, match="unexpected argument 'dufference_obs'.*did you mean difference_obs"):
        D2QN("CartPole-v1", dufference_obs=True)
    agent = D2QN("CartPole-v1", modelfactory=kerlym.networks.simple_rnn, nframes=2, h0_width=4)  # simple_rnn names it
    assert agent.model.layers[2].output.shape[-1] == 4
    agent.close()


def _conv_filters(model, kernel):
    """The filters of each Conv2D with ``kernel`` in ``model``, models inside it included, in order."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out += _conv_filters(layer, kernel)
        elif isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == kernel:
            out.append(layer.filters)
    return out


def test_net_kwargs_size_the_network_as_the_loose_keywords_do():
    agent = kerlym.make("CartPole-v1", "ddqn", modelfactory="q_rnn", nframes=2, net_kwargs={"rnn_units": 12})
    assert agent.config.net_kwargs == {"rnn_units": 12}
    assert agent.model.get_layer(index=3).units == 12  # q_rnn's GRU, 64 by default
    assert (
        agent.model.count_params()
        == D2QN("CartPole-v1", modelfactory="q_rnn", nframes=2, rnn_units=12).model.count_params()
    )
    agent.close()


def test_net_kwargs_size_the_board_network():
    pytest.importorskip("pyspiel", reason="Go needs the .[go] extra (open-spiel)")
    go = {"env_kwargs": {"opponent": "random", "board_size": 5}, "nframes": 1, "modelfactory": "actor_critic_board"}
    agent = kerlym.make("Go9x9-v0", "ppo", net_kwargs={"filters": 8, "conv_layers": 3}, **go)
    assert _conv_filters(agent.model, (3, 3)) == [8, 8, 8]  # the trunk; 4 convolutions of 64 by default
    agent.close()
    agent = kerlym.make("Go9x9-v0", "ppo", **go)
    assert _conv_filters(agent.model, (3, 3)) == [64] * 4
    agent.close()


@pytest.mark.parametrize(
    "net_kwargs, error",
    [
        ({"rnn_unit": 8}, "--net-kwargs: q_rnn takes no argument 'rnn_unit'; did you mean rnn_units?"),
        ({"dropout": 0.5}, "--net-kwargs: dropout is a setting, not a network argument: use -o/--dropout instead"),
        ({"num_frames": 3}, "--net-kwargs: num_frames is a setting, not a network argument: use -t/--nframes/--num_"),
    ],
)
def test_net_kwargs_a_network_does_not_take_are_one_line(net_kwargs, error):
    with pytest.raises(ConfigError) as e:
        kerlym.make("CartPole-v1", "ddqn", modelfactory="q_rnn", nframes=2, net_kwargs=net_kwargs)
    assert str(e.value).startswith(error) and "\n" not in str(e.value)
    run, cfg = kerlym.configure("CartPole-v1", "ddqn", modelfactory="q_rnn", nframes=2, net_kwargs=net_kwargs)
    with pytest.raises(TypeError, match="^net_kwargs: "):  # the agent class itself refuses them too
        D2QN("CartPole-v1", cfg)


def test_make_points_a_network_argument_to_net_kwargs():
    with pytest.raises(
        ConfigError, match=r"^unknown setting 'rnn_units': it is an argument of q_rnn; pass net_kwargs="
    ):
        kerlym.make("CartPole-v1", "ddqn", modelfactory="q_rnn", rnn_units=12)
    with pytest.raises(
        ConfigError, match=r"^unknown setting 'rnn_unitz'; did you mean net_kwargs=\{'rnn_units': ...\}\?$"
    ):
        kerlym.configure("CartPole-v1", "ddqn", modelfactory="q_rnn", rnn_unitz=12)


def test_env_kwargs_and_module_prefix_reach_the_env(tmp_path, monkeypatch):
    (tmp_path / "kerlym_test_lineworld.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('KerlymTestLine-v0', entry_point='gymnasium.envs.classic_control:CartPoleEnv')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    run, cfg = kerlym.configure(
        "kerlym_test_lineworld:KerlymTestLine-v0", "dqn", env_kwargs={"sutton_barto_reward": True}
    )
    env = make_env_factory(run)()
    assert env.unwrapped._sutton_barto_reward is True
    env.close()


@pytest.mark.parametrize(
    "agent, net, message",
    [
        ("dqn", "board_cnn", "board_cnn needs an action per point of the board first, 210x160 = 33600, or one per "),
        ("dqn", "q_rnn", "q_rnn reads vector observations but PongNoFrameskip-v4 observations have shape (210, 160"),
        ("ppo", "actor_critic_rnn", "actor_critic_rnn reads vector observations"),
    ],
)
def test_check_env_refuses_a_network_the_observations_do_not_fit(agent, net, message):
    from kerlym.make import check_env

    run, cfg = kerlym.configure("PongNoFrameskip-v4", agent, modelfactory=net)
    with pytest.raises(ConfigError) as e:
        check_env(run, cfg)
    assert message in str(e.value)


def test_check_env_refuses_a_dueling_head_on_a_network_with_several_output_heads():
    from kerlym.make import check_env

    run, cfg = kerlym.configure("CartPole-v1", "ddqn", modelfactory="board_cnn", dueling=True)
    with pytest.raises(ConfigError, match="--dueling replaces the network's output layer, and board_cnn's Q-values"):
        check_env(run, cfg)


def test_check_env_refuses_symmetries_for_an_env_without_them():
    from kerlym.make import check_env

    run, cfg = kerlym.configure("CartPole-v1", "ddqn", symmetries=True)
    with pytest.raises(ConfigError, match=r"--symmetries needs an env that defines symmetries\(\); CartPole-v1"):
        check_env(run, cfg)
    run, cfg = kerlym.configure("CartPole-v1", "dqn", average_symmetries=True)
    with pytest.raises(ConfigError, match=r"--average_symmetries needs an env that defines symmetries\(\); Cart"):
        check_env(run, cfg)


@pytest.mark.slow
def test_the_python_api_prints_no_tensorflow_start_up_lines_but_still_its_errors(tmp_path):
    import os
    import subprocess
    import sys

    script = (
        "import kerlym\n"
        "agent = kerlym.make('CartPole-v1', 'dqn', seed=0, max_memory=1000)\n"
        "agent.learn(max_steps=64, verbose=0, eval_episodes=0)\n"
        "print('trained')\n"
        "kerlym.make('CartPole-v1', 'dqn', gamma=2.0)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["KERAS_BACKEND"] = "tensorflow"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert done.stdout.strip() == "trained", done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):", done.stderr  # nothing from TensorFlow before it
    assert "gamma" in lines[-1]  # and the program's own error is there in full
