"""Every preset is valid data for its agent's config, builds its agent and trains a few hundred steps."""

import dataclasses

import pytest

import kerlym
from kerlym import agents, config, presets
from kerlym.config import ConfigError


@pytest.mark.parametrize("env_id, agent_name", sorted(presets.PRESETS))
def test_preset_names_only_fields_of_its_agents_config(env_id, agent_name):
    known = {f.name for f in dataclasses.fields(config.RunConfig)} | {
        f.name for f in dataclasses.fields(agents.AGENT_CONFIGS[agent_name])
    }
    assert set(presets.PRESETS[(env_id, agent_name)]) <= known


@pytest.mark.parametrize("env_id, agent_name", sorted(presets.PRESETS))
def test_preset_loads_and_runs(env_id, agent_name):
    if env_id.startswith(("Go", "openspiel:")):
        pytest.importorskip("pyspiel", reason="OpenSpiel games need the .[games] extra (open-spiel)")
    run, cfg = kerlym.configure(env_id, agent_name, preset=True, cli_defaults=True, seed=0)
    for key, value in presets.PRESETS[(env_id, agent_name)].items():
        assert getattr(run, key, getattr(cfg, key, None)) == value
    agent = kerlym.make(run, cfg)
    agent.learn(max_steps=300, verbose=0, eval_episodes=1)  # one greedy episode (20 of Pong take a minute)
    # The vector env steps all -c copies at once, so a run stops within one vector step past the limit.
    assert 300 <= agent.total_steps < 300 + cfg.concurrency
    if agent_name in ("a2c", "a3c", "ppo"):
        assert agent.updates == agent.total_steps // (cfg.n_steps * cfg.concurrency)
    elif agent_name != "pg":
        assert agent.updates >= 1 or cfg.learning_starts > 300
        assert agent.replay == cfg.replay  # e.g. "uniform" for LunarLander-v3 -a dqn
        # The classic-control DQN/D2QN presets act greedily with the weight average; Pong's, Go's and RadioSearch's not.
        assert agent.ema_steps == presets.PRESETS[(env_id, agent_name)].get("ema_steps")
        assert (agent.ema_steps == presets.EMA_STEPS) == (
            env_id in ("CartPole-v1", "MountainCar-v0", "Acrobot-v1", "LunarLander-v3")
        )


def test_ema_0_turns_the_presets_average_off():
    assert kerlym.configure("CartPole-v1", "ddqn", preset=True)[1].ema_steps == 5000
    assert kerlym.configure("CartPole-v1", "ddqn", preset=True, ema_steps=0)[1].ema_steps is None


def test_settings_override_the_preset():
    _, cfg = kerlym.configure("CartPole-v1", "ddqn", preset=True, learning_rate=0.5)
    assert cfg.learning_rate == 0.5 and cfg.batch_size == presets.PRESETS[("CartPole-v1", "ddqn")]["batch_size"]


def test_missing_preset_lists_the_existing_ones():
    with pytest.raises(ConfigError, match="no preset for -e Pong-v0 -a dqn; presets exist for: .*CartPole-v1 -a ddqn"):
        kerlym.configure("Pong-v0", "dqn", preset=True)


def test_go_presets_train_against_random_and_the_run_folder_keeps_it(tmp_path):
    pytest.importorskip("pyspiel")
    from kerlym import runs
    from kerlym.config import config_dict
    from kerlym.make import make_env_factory, saved_configs

    run, cfg = kerlym.configure("Go9x9-v0", "ppo", preset=True, cli_defaults=True)
    assert run.env_kwargs == {"opponent": "random"}
    # What --resume, --play and -S rebuild the env from: the run folder's config.json.
    runs.write_config(str(tmp_path), config_dict(run, cfg))
    saved, _ = saved_configs(str(tmp_path))
    env = make_env_factory(saved)()
    assert env.unwrapped.opponent_name == "random"
    env.close()
    # Without --preset the env keeps its default opponent, GnuGo level 0.
    assert kerlym.configure("Go9x9-v0", "dqn", cli_defaults=True, modelfactory="simple_dnn")[0].env_kwargs is None


def test_env_kwargs_given_add_to_the_presets():
    run, _ = kerlym.configure("Go9x9-v0", "ddqn", preset=True, env_kwargs={"komi": 0.0})
    assert run.env_kwargs == {"opponent": "random", "komi": 0.0}
    run, _ = kerlym.configure("Go9x9-v0", "ddqn", preset=True, env_kwargs={"opponent": "mcts:5"})
    assert run.env_kwargs == {"opponent": "mcts:5"}
    assert presets.PRESETS[("Go9x9-v0", "ddqn")]["env_kwargs"] == {"opponent": "random"}  # the preset unchanged
