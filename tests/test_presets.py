"""Every preset is valid data for its agent's config, builds its agent and trains a few hundred steps."""

import dataclasses

import pytest

import kerlym
from kerlym import config, presets
from kerlym.config import ConfigError


@pytest.mark.parametrize("env_id, agent_name", sorted(presets.PRESETS))
def test_preset_names_only_fields_of_its_agents_config(env_id, agent_name):
    known = {f.name for f in dataclasses.fields(config.RunConfig)} | {
        f.name for f in dataclasses.fields(config.AGENT_CONFIGS[agent_name])
    }
    assert set(presets.PRESETS[(env_id, agent_name)]) <= known


@pytest.mark.parametrize("env_id, agent_name", sorted(presets.PRESETS))
def test_preset_loads_and_runs(env_id, agent_name):
    run, cfg = kerlym.configure(env_id, agent_name, preset=True, cli_defaults=True, seed=0)
    for key, value in presets.PRESETS[(env_id, agent_name)].items():
        assert getattr(run, key, getattr(cfg, key, None)) == value
    agent = kerlym.make(run, cfg)
    agent.learn(max_steps=300, verbose=0)
    # The vector env steps all -c copies at once, so a run stops within one vector step past the limit.
    assert 300 <= agent.total_steps < 300 + cfg.concurrency
    if agent_name in ("a2c", "a3c", "ppo"):
        assert agent.updates == agent.total_steps // (cfg.n_steps * cfg.concurrency)
    elif agent_name != "pg":
        assert agent.updates >= 1 or cfg.learning_starts > 300
        assert agent.replay == cfg.replay  # e.g. "uniform" for LunarLander-v3 -a dqn
        # The classic-control DQN/D2QN presets act greedily with the weight average; Pong's do not.
        assert agent.ema_steps == (None if "NoFrameskip" in env_id else presets.EMA_STEPS)


def test_ema_0_turns_the_presets_average_off():
    assert kerlym.configure("CartPole-v1", "ddqn", preset=True)[1].ema_steps == 5000
    assert kerlym.configure("CartPole-v1", "ddqn", preset=True, ema_steps=0)[1].ema_steps is None


def test_settings_override_the_preset():
    _, cfg = kerlym.configure("CartPole-v1", "ddqn", preset=True, learning_rate=0.5)
    assert cfg.learning_rate == 0.5 and cfg.batch_size == presets.PRESETS[("CartPole-v1", "ddqn")]["batch_size"]


def test_missing_preset_lists_the_existing_ones():
    with pytest.raises(ConfigError, match="no preset for -e Pong-v0 -a dqn; presets exist for: .*CartPole-v1 -a ddqn"):
        kerlym.configure("Pong-v0", "dqn", preset=True)
