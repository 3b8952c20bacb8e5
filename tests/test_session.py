"""kerlym.session: what Agent.learn takes."""

import os
import shutil

import numpy as np
import pytest

import kerlym
from kerlym.config import ConfigError


@pytest.fixture(scope="module")
def agent():
    built = kerlym.make("CartPole-v1", "dqn", seed=0)
    yield built
    built.close()


@pytest.mark.parametrize(
    "kwargs, message, is_type_error",
    [
        ({"max_steps": "100"}, "learn(): max_steps must be an integer, 0 or more, got '100'", True),
        ({"max_steps": 2.5}, "learn(): max_steps must be an integer, 0 or more, got 2.5", True),
        ({"max_steps": -1}, "learn(): max_steps must be an integer, 0 or more, got -1", False),
        ({"max_episodes": -3}, "learn(): max_episodes must be an integer, 0 or more, got -3", False),
        ({"total_timesteps": 1e3}, "learn(): total_timesteps must be an integer, 0 or more, got 1000.0", True),
        ({"eval_episodes": True}, "learn(): eval_episodes must be an integer, 0 or more, got True", True),
    ],
)
def test_learn_names_a_bad_argument_before_training(agent, kwargs, message, is_type_error):
    with pytest.raises(ConfigError) as e:
        agent.learn(verbose=0, **kwargs)
    assert str(e.value) == message and isinstance(e.value, TypeError) == is_type_error
    assert agent.total_steps == 0  # nothing ran


@pytest.mark.parametrize("budget", [{"max_steps": 0}, {"total_timesteps": 0}, {"max_episodes": 0}])
def test_learn_of_nothing_takes_no_step_and_still_evaluates(budget):
    agent = kerlym.make("CartPole-v1", "dqn", seed=0)
    weights = agent.model.get_weights()
    evaluated = []
    agent.evaluate = lambda *args, **kwargs: evaluated.append(args) or np.array([10.0])  # the final evaluation
    assert agent.learn(verbose=0, eval_episodes=1, **budget) == []  # no episode trained
    assert agent.total_steps == 0 and agent.episode == 0 and agent.updates == 0 and len(evaluated) == 1
    for before, after in zip(weights, agent.model.get_weights(), strict=True):
        assert (before == after).all()
    agent.close()


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    from kerlym.main import main

    out = tmp_path_factory.mktemp("runs")
    flags = "-e CartPole-v1 -a dqn --steps 200 -f 50 -u 64 -b 32 --seed 0 -q --eval_episodes 1"
    assert main([*flags.split(), "--outdir", str(out)]) == 0
    (name,) = os.listdir(out)
    return str(out / name)


@pytest.mark.parametrize("damage", ["emptied", "deleted", "rows cut"])
def test_a_resume_says_when_progress_rows_are_missing(saved_run, tmp_path, capsys, damage):
    from kerlym import checkpoints, runs, session

    run_dir = str(tmp_path / "run")
    shutil.copytree(saved_run, run_dir)
    progress = os.path.join(run_dir, runs.PROGRESS)
    with open(progress) as f:
        lines = f.readlines()
    episodes = len(lines) - 1
    os.remove(progress)
    if damage != "deleted":
        with open(progress, "w") as f:
            f.writelines(lines[:3] if damage == "rows cut" else [])
    capsys.readouterr()
    agent = kerlym.load(run_dir, checkpoint=None)
    session.restore(agent, checkpoints.latest_checkpoint(run_dir), run_dir)
    kept = 2 if damage == "rows cut" else 0
    assert len(agent.episodes) == kept and agent.episode == episodes
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"kerlym: note: {progress} lacks {episodes - kept} of the checkpoint's {episodes} episode rows; the plots "
        "and statistics start from the rows it has"
    ]
    agent.close()


@pytest.mark.parametrize("which", [None, "online"])
def test_learn_starts_from_a_trained_agents_weights_target_and_average_too(tmp_path, which):
    import numpy as np

    from kerlym import checkpoints
    from kerlym.main import main

    flags = "-e CartPole-v1 -a dqn --steps 200 -f 50 -u 64 -b 32 --ema 100 --seed 0 -q --eval_episodes 1"
    assert main([*flags.split(), "--outdir", str(tmp_path)]) == 0
    (name,) = os.listdir(tmp_path)
    checkpoint = checkpoints.latest_checkpoint(str(tmp_path / name))
    online = checkpoints.load_model(os.path.join(checkpoint, "model.keras")).get_weights()
    average = checkpoints.greedy_weights(checkpoint)  # the weights --play uses, the default here
    assert not all(np.array_equal(a, b) for a, b in zip(online, average))  # the two choices differ
    source = str(tmp_path / name)
    settings = {"seed": 1, "nframes": 2, "ema_steps": 100}  # the command's -t 2: the same network
    agent = kerlym.make("CartPole-v1", "dqn", trained_agent=source, trained_weights=which, **settings)
    try:
        agent.learn(max_steps=1, eval_episodes=0, verbose=0)  # one step: no update yet
        expected = online if which == "online" else average
        for model in (agent.model, agent.target_model, agent.greedy_model):
            assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), expected, strict=True))
        assert agent.total_steps == 1 and agent.updates == 0
    finally:
        agent.close()
