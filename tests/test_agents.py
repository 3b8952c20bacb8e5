"""The agent protocol, for every registered agent: act/observe/update, the session, save/load, resume, predict.

Each agent trains a few hundred CartPole steps through :func:`kerlym.session.train` into a run folder,
as the command does; the checks read real numbers back (the rows, the reloaded network's outputs, the
resumed counters). A toy agent from its own file then shows that one registry line is all a new agent
needs for the Python API and the command.
"""

import json
import math
import os

import numpy as np
import pytest

import kerlym
from kerlym import checkpoints, runs, session
from kerlym import config as C
from kerlym.agents import AGENT_CONFIGS, AGENTS
from kerlym.stats import read_progress

BUILT_IN = ["dqn", "ddqn", "pg", "a2c", "a3c", "ppo"]
# Small settings so that each agent updates within a few hundred steps.
SMALL = {
    "dqn": {"max_memory": 500, "update_freq": 50, "update_nsamp": 64, "batch_size": 32, "epsilon": 0.5},
    "ddqn": {"max_memory": 500, "update_freq": 50, "update_nsamp": 64, "batch_size": 32, "epsilon": 0.5},
    "pg": {},
    "a2c": {"n_steps": 8},
    "a3c": {"n_steps": 8},
    "ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 2},
}


def test_the_registry_lists_the_builtin_agents_and_their_configs_without_importing_them():
    assert list(AGENTS) == BUILT_IN
    assert {name: cls.__name__ for name, cls in AGENT_CONFIGS.items()} == {
        "dqn": "DQNConfig",
        "ddqn": "DQNConfig",
        "pg": "PGConfig",
        "a2c": "A2CConfig",
        "a3c": "A2CConfig",
        "ppo": "PPOConfig",
    }
    assert AGENTS["a3c"] is AGENTS["a2c"]  # the original's name for the same learner
    assert all(AGENTS[name].Config is AGENT_CONFIGS[name] for name in BUILT_IN)


def train(name, run_dir, steps, **settings):
    agent = kerlym.make("CartPole-v1", name, seed=0, steps=steps, eval_episodes=2, **SMALL[name], **settings)
    outcome = session.train(agent, agent.run_config, run_dir, verbose=False, console=False)
    return agent, outcome


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_agent_trains_saves_reloads_resumes_and_predicts(name, tmp_path):
    run_dir = str(tmp_path / name)
    os.makedirs(run_dir)
    agent, outcome = train(name, run_dir, 300)

    # act: one action per state, within the action space; the network's outputs one row per state
    states = np.random.default_rng(0).normal(size=(5, agent.input_dim)).astype(np.float32)
    actions, outputs = agent.act(states, explore=False)
    assert actions.shape == (5,) and set(actions.tolist()) <= {0, 1}
    assert outputs is not None and len(outputs) == 5

    # the session: the budget, rows with the agent's own columns, losses from update(), the final evaluation
    assert agent.total_steps >= 300 and agent.updates > 0 and not outcome.interrupted
    rows = read_progress(os.path.join(run_dir, runs.PROGRESS))
    assert len(rows) == agent.episode == len(outcome.episodes) > 0
    assert all(set(agent.metric_names) <= set(r) for r in rows)
    assert any(math.isfinite(r["loss"]) for r in rows)
    with open(os.path.join(run_dir, checkpoints.EVALUATION)) as f:
        evaluation = json.load(f)
    assert evaluation == outcome.evaluation
    assert evaluation["agent"] == name and evaluation["total_steps"] == agent.total_steps
    assert evaluation["episodes"] == 2 and evaluation["mean"] == pytest.approx(np.mean(evaluation["returns"]))
    assert evaluation["weights"] == "online"
    assert runs.read_config(run_dir)["agent"] == name

    # evaluate and predict: greedy, repeatable with a seed, and predict is the greedy act on the same frame
    assert np.array_equal(agent.evaluate(2, seed=3), agent.evaluate(2, seed=3))
    obs, _ = agent.env.reset(seed=1)
    predicted, _ = agent.predict(obs, episode_start=True)
    assert predicted == int(agent.act(np.asarray(obs, np.float32).reshape(1, -1), explore=False)[0][0])

    # save/load: the reloaded agent's greedy outputs are the trained one's, to the bit
    loaded = kerlym.load(run_dir)
    assert (loaded.total_steps, loaded.episode, loaded.updates) == (agent.total_steps, agent.episode, agent.updates)
    np.testing.assert_array_equal(loaded.act(states, explore=False)[1], outputs)

    # resume: a second session from the checkpoint goes on to the new budget, keeping the earlier rows
    resumed = kerlym.make("CartPole-v1", name, seed=0, steps=500, eval_episodes=2, **SMALL[name])
    checkpoint, _ = checkpoints.resumable_checkpoint(run_dir)
    session.train(resumed, resumed.run_config, run_dir, resume_from=checkpoint, verbose=False, console=False)
    assert resumed.total_steps >= 500 and resumed.updates > agent.updates
    rows_after = read_progress(os.path.join(run_dir, runs.PROGRESS))
    np.testing.assert_equal(rows_after[: len(rows)], rows)  # NaN losses (no update yet) compare equal here
    assert len(rows_after) == resumed.episode
    for a in (agent, loaded, resumed):
        a.close()


def test_learn_trains_to_a_made_agents_budget_and_for_more_steps_when_asked():
    agent = kerlym.make("CartPole-v1", "ppo", seed=0, steps=128, eval_episodes=1, **SMALL["ppo"])
    agent.learn(verbose=0)  # no bound given: the run's budget, as --steps on the command line
    assert agent.total_steps == 128
    agent.learn(total_timesteps=64, verbose=0)  # Stable-Baselines3's spelling: 64 more
    assert agent.total_steps == 192
    with pytest.raises(TypeError, match="not both"):
        agent.learn(max_steps=1, total_timesteps=1)
    agent.close()


def test_a_linear_schedule_preset_learns_from_python_with_its_own_budget():
    agent = kerlym.make("CartPole-v1", "ppo", preset=True, seed=0, steps=512, n_epochs=2)
    assert agent.config.lr_schedule == "linear" and agent.run_config.steps == 512
    agent.learn(verbose=0, eval_episodes=0)  # it used to raise "needs one (--steps)"
    assert agent.total_steps == 512 and agent.updates == 2  # two rollouts of 8 envs x 32 steps
    agent.close()


@pytest.fixture
def toy():
    from toy_agent import Toy

    AGENTS["toy"] = Toy  # the one registry line
    yield Toy
    del AGENTS["toy"]


def test_a_toy_agent_needs_one_file_and_one_registry_line(toy, tmp_path):
    from kerlym.main import main

    assert AGENT_CONFIGS["toy"] is C.AgentConfig
    agent = kerlym.make("CartPole-v1", "toy", seed=0)
    rows = agent.learn(max_steps=100, verbose=0, eval_episodes=1)
    assert agent.total_steps == 100 and agent.updates == len(rows) and all(math.isfinite(r["loss"]) for r in rows)
    assert [r["toy_steps"] for r in rows] == [r["length"] for r in rows]
    agent.close()

    out = str(tmp_path / "runs")
    assert main(["-e", "CartPole-v1", "-a", "toy", "--steps", "150", "--eval_episodes", "1", "--outdir", out]) == 0
    (run_dir,) = [os.path.join(out, d) for d in os.listdir(out)]
    rows = read_progress(os.path.join(run_dir, runs.PROGRESS))
    assert rows and all(r["toy_steps"] == r["length"] for r in rows)  # its own column in progress.csv
    assert checkpoints.read_evaluation(run_dir)["agent"] == "toy"
    assert main(["--resume", run_dir, "--steps", "250"]) == 0
    after = read_progress(os.path.join(run_dir, runs.PROGRESS))
    np.testing.assert_equal(after[: len(rows)], rows)
    assert len(after) > len(rows)
    assert checkpoints.read_evaluation(run_dir)["total_steps"] == 250
