"""kerlym.load (run folders, checkpoints, .keras files) and Agent.predict (one raw observation -> action)."""

import os

import numpy as np
import pytest

import kerlym
from kerlym.config import ConfigError
from kerlym.runs import CheckpointError

STATES = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)  # CartPole states, 2 frames stacked


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from kerlym.main import main

    out = tmp_path_factory.mktemp("runs")
    flags = "-e CartPole-v1 -a dqn --steps 300 -f 50 -u 64 -b 32 --seed 0 --eval_every 150 --eval_episodes 2 -q"
    assert main([*flags.split(), "--outdir", str(out)]) == 0
    (name,) = os.listdir(out)
    return str(out / name)


def q_values(model, states=STATES):
    return np.asarray(model.predict(states, verbose=0))


def saved_model(path):
    import keras

    return keras.saving.load_model(path, compile=False)


def test_load_a_run_folder_restores_the_latest_checkpoint(run_dir):
    from kerlym.stats import read_progress

    agent = kerlym.load(run_dir)
    checkpoint = os.path.join(run_dir, "checkpoints", "step-0000000300")
    np.testing.assert_array_equal(q_values(agent.model), q_values(saved_model(os.path.join(checkpoint, "model.keras"))))
    assert (agent.total_steps, agent.updates, agent.nframes) == (300, 6, 2)  # an update every 50 steps
    rows = read_progress(os.path.join(run_dir, "progress.csv"))
    assert agent.episode == len(rows) == len(agent.episodes)  # the run's rows, for plots and statistics
    assert [r["reward"] for r in agent.episodes] == [r["reward"] for r in rows]
    assert agent.epsilon == pytest.approx(rows[-1]["epsilon"] * (1 - 1e-4))  # the command's per-episode decay
    agent.close()


def test_a_loaded_agent_continues_training_from_its_step_count(run_dir):
    agent = kerlym.load(run_dir)
    before = q_values(agent.model)
    agent.learn(max_steps=100, verbose=0)
    assert agent.total_steps == 400 and agent.updates == 8  # updates at steps 350 and 400
    assert not np.allclose(q_values(agent.model), before)
    agent.close()


def test_load_best_and_a_keras_file_give_the_saved_greedy_network(run_dir):
    best = q_values(saved_model(os.path.join(run_dir, "best.keras")))
    agent = kerlym.load(run_dir, checkpoint="best")
    np.testing.assert_array_equal(q_values(agent.greedy_model), best)
    assert agent.total_steps == 0  # best.keras holds weights only
    greedy = [int(np.argmax(q)) for q in best]
    assert [agent.act(s[None], explore=False)[0][0] for s in STATES] == greedy
    agent.close()
    agent = kerlym.load(os.path.join(run_dir, "best.keras"))  # settings from the run folder's config.json
    np.testing.assert_array_equal(q_values(agent.greedy_model), best)
    agent.close()


def test_load_outside_a_run_folder_needs_env_and_agent(run_dir, tmp_path):
    import shutil

    path = str(tmp_path / "model.keras")
    shutil.copy(os.path.join(run_dir, "best.keras"), path)
    with pytest.raises(ConfigError, match="not inside a run folder"):
        kerlym.load(path)
    agent = kerlym.load(path, env="CartPole-v1", agent="dqn", nframes=2, dropout=0.5)  # as the command built it
    np.testing.assert_array_equal(q_values(agent.greedy_model), q_values(saved_model(path)))
    agent.close()
    with pytest.raises(CheckpointError, match="does not match"):
        kerlym.load(path, env="CartPole-v1", agent="dqn", nframes=1)


def test_load_refuses_bad_paths_and_choices(run_dir, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        kerlym.load(str(tmp_path / "nothing"))
    with pytest.raises(CheckpointError, match="not a kerlym run folder"):
        kerlym.load(str(tmp_path))
    with pytest.raises(ConfigError, match="checkpoint must be"):
        kerlym.load(run_dir, checkpoint="worst")


def test_load_of_a_run_whose_config_names_another_agent_says_what_the_command_says(run_dir, tmp_path, capsys):
    import json
    import shutil

    from kerlym.main import main

    copy = str(tmp_path / "run")
    shutil.copytree(run_dir, copy)
    with open(os.path.join(copy, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(copy, "config.json"), "w") as f:
        json.dump({**config, "agent": "ppo", "modelfactory": "zoo_mlp"}, f)  # over dqn checkpoints
    with pytest.raises(ConfigError) as e:
        kerlym.load(copy)
    assert str(e.value).startswith("-a ppo needs an actor-critic network: ") and str(e.value).endswith("(got zoo_mlp)")
    assert main(["--play", copy]) == 2
    assert capsys.readouterr().err == f"kerlym: error: {e.value}\n"


def recording(agent):
    """Record the states ``act`` is given."""
    seen, act = [], agent.act

    def spy(states, explore=True):
        seen.append(np.array(states))
        return act(states, explore)

    agent.act = spy
    return seen


def test_predict_stacks_the_last_two_observations():
    agent = kerlym.agents.DQN("CartPole-v1", nframes=2, seed=0)
    seen = recording(agent)
    o1, o2, o3 = (np.full(4, v, dtype=np.float32) for v in (1.0, 2.0, 3.0))
    a1, _ = agent.predict(o1)  # the first call starts an episode: the missing frame repeats the first
    agent.predict(o2)
    a3, _ = agent.predict(o3)
    agent.predict(o1, episode_start=True)  # a new episode: o3 is not stacked with it
    expected = [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 2, 2, 2, 2], [2, 2, 2, 2, 3, 3, 3, 3], [1] * 8]
    np.testing.assert_array_equal(np.concatenate(seen), np.array(expected, dtype=np.float32))
    q = q_values(agent.model, np.array(expected[::2], dtype=np.float32))
    assert (a1, a3) == (int(np.argmax(q[0])), int(np.argmax(q[1])))  # deterministic: the greedy actions
    agent.close()


def test_predict_applies_the_preprocessor():
    def halve(frame):
        return np.asarray(frame, dtype=np.float32)[:2] / 2  # a frame function: keeps the first two values, halved

    agent = kerlym.agents.DQN("CartPole-v1", preprocessor=halve, seed=0)
    seen = recording(agent)
    agent.predict(np.array([4.0, 6.0, 8.0, 10.0], dtype=np.float32))
    np.testing.assert_array_equal(seen[0], [[2.0, 3.0]])
    with pytest.raises(ValueError, match=r"expects an observation of shape \(2,\), got \(1,\)"):
        agent.predict(np.zeros(1))  # halve gives one value, not two
    agent.close()


def test_predict_returns_sb3s_action_and_state_for_one_observation_or_a_batch():
    agent = kerlym.agents.DQN("CartPole-v1", seed=0)
    seen = recording(agent)
    obs = np.arange(8, dtype=np.float32).reshape(2, 4)
    action, state = agent.predict(obs[0], state="kept")
    assert isinstance(action, int) and state == "kept"
    actions, state = agent.predict(obs, episode_start=True)  # a vector env's batch: one action per env
    assert actions.dtype == np.int64 and actions.shape == (2,) and state is None
    np.testing.assert_array_equal(seen[-1], obs)
    q = q_values(agent.model, obs)
    np.testing.assert_array_equal(actions, q.argmax(axis=1))  # deterministic: the greedy actions
    agent.close()


def test_predict_gives_box_actions_clipped_to_the_space():
    agent = kerlym.agents.PPO("Pendulum-v1", seed=0, n_steps=64, batch_size=32)
    obs, _ = agent.env.reset(seed=0)
    action, _ = agent.predict(obs, deterministic=False)
    assert action.shape == (1,) and action.dtype == np.float32 and -2.0 <= action[0] <= 2.0
    actions, _ = agent.predict(np.stack([obs, obs, obs]), deterministic=False)
    assert actions.shape == (3, 1) and np.all(np.abs(actions) <= 2.0)
    agent.close()
