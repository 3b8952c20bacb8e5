"""Every preset resolves to a valid configuration, builds its agent and trains a few hundred steps."""

import pytest

from kerlym import presets
from kerlym.main import UsageError, build_agent, build_parser, make_env_factory, resolve_config, validate


@pytest.mark.parametrize("env_id, agent_name", sorted(presets.PRESETS))
def test_preset_loads_and_runs(env_id, agent_name):
    cfg = resolve_config(build_parser().parse_args(["-e", env_id, "-a", agent_name, "--preset", "--seed", "0"]))
    validate(cfg)
    for key, value in presets.PRESETS[(env_id, agent_name)].items():
        assert cfg[key] == value
    agent = build_agent(cfg, make_env_factory(cfg))
    agent.learn(max_steps=300)
    assert agent.total_steps == 300
    if agent_name != "pg":
        assert agent.updates >= 1 or cfg["learning_starts"] > 300
        assert agent.replay == cfg["replay"]  # e.g. "uniform" for LunarLander-v3 -a dqn
        assert agent.ema_steps == cfg["ema"]
        # The classic-control DQN/D2QN presets act greedily with the weight average; Pong's do not.
        assert agent.ema_steps == (None if "NoFrameskip" in env_id else presets.EMA_STEPS)


def test_ema_0_turns_the_presets_average_off():
    parse = build_parser().parse_args
    assert resolve_config(parse(["-e", "CartPole-v1", "-a", "ddqn", "--preset"]))["ema"] == 5000
    cfg = resolve_config(parse(["-e", "CartPole-v1", "-a", "ddqn", "--preset", "--ema", "0"]))
    validate(cfg)
    assert cfg["ema"] is None


def test_flags_override_the_preset():
    cfg = resolve_config(build_parser().parse_args(["-e", "CartPole-v1", "-a", "ddqn", "--preset", "-r", "0.5"]))
    assert cfg["learning_rate"] == 0.5 and cfg["batch_size"] == presets.PRESETS[("CartPole-v1", "ddqn")]["batch_size"]


def test_missing_preset_lists_the_existing_ones():
    with pytest.raises(UsageError, match="no preset for -e Pong-v0 -a dqn; presets exist for: .*CartPole-v1 -a ddqn"):
        resolve_config(build_parser().parse_args(["-e", "Pong-v0", "-a", "dqn", "--preset"]))
