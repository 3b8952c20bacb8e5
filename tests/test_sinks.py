"""kerlym.sinks: the console's lines, the progress bar, TensorBoard's event files and the live plot."""

import io
import math
import os

import numpy as np
import pytest

import kerlym
from kerlym import sinks
from kerlym.runner import Runner
from kerlym.stats import read_progress


def small_dqn(**kw):
    settings = dict(seed=0, update_freq=50, update_nsamp=64, batch_size=32, learning_starts=32, nframes=1, epsilon=0.5)
    return kerlym.make("CartPole-v1", "dqn", **{**settings, **kw})


class FakeRunner:
    def __init__(self, agent, speed=100.0):
        self.agent, self._speed = agent, speed

    def speed(self):
        return self._speed


class Counts:
    def __init__(self, steps, episode, rewards, epsilon=None, updates=0):
        self.total_steps, self.episode, self.updates = steps, episode, updates
        self.episodes = [{"reward": r} for r in rewards]
        if epsilon is not None:
            self.epsilon = epsilon


def test_console_prints_a_header_once_and_no_update_instead_of_nan(capsys):
    console = sinks.Console()
    runner = FakeRunner(Counts(30, 2, [10.0, 20.0], epsilon=0.25), speed=123.4)
    row = {"episode": 2, "length": 20, "reward": 20.0, "loss": float("nan")}
    console.on_episode(runner, row)
    console.on_episode(runner, {**row, "loss": 0.5})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[:2] == sinks.HEADER.splitlines()  # the header, then the two episodes
    assert "no update" in lines[2] and "nan" not in lines[2]
    assert "Loss      0.5" in lines[3]
    assert lines[3].endswith("| 30 steps  123 steps/s  epsilon 0.250  mean reward (last 100) 15.00")


def test_progress_bar_only_on_a_terminal_and_only_for_bounded_runs():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    agent = Counts(1_000, 7, [])
    assert sinks.progress_bar(5_000, None, agent, stream=io.StringIO()) is None  # a log file or CI: nothing extra
    assert sinks.progress_bar(None, None, agent, stream=Terminal()) is None  # unbounded: no ETA to give
    bar = sinks.progress_bar(5_000, 50, agent, stream=Terminal())
    assert (bar.unit, bar.bar.total, bar.bar.n) == ("steps", 5_000, 1_000)  # a resumed run starts part-way
    bar.close()
    bar = sinks.progress_bar(None, 50, agent, stream=Terminal())
    assert (bar.unit, bar.bar.total, bar.bar.n) == ("episodes", 50, 7)
    bar.close()


def test_progress_bar_follows_the_run_and_episode_lines_print_above_it(capsys):
    agent = small_dqn()
    out = io.StringIO()
    bar = sinks.ProgressBar(300, 0, "steps", file=out)
    Runner(agent, sinks=[sinks.Console(bar=bar), bar], signals=()).run(max_steps=300)
    assert bar.bar.n == 300 == agent.total_steps
    recent = [r["reward"] for r in agent.episodes[-100:]]
    assert bar.bar.postfix.endswith(f"eps=0.500, return(100)={sum(recent) / len(recent):.2f}")
    text = out.getvalue()
    assert "300/300" in text and text.count(" * Episode ") == len(agent.episodes)
    assert capsys.readouterr().out == ""  # everything went through the bar's stream
    agent.close()


def test_tensorboard_logs_the_rows_of_progress_csv(tmp_path):
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = str(tmp_path)
    agent = small_dqn()
    log_dir = os.path.join(run_dir, "tensorboard")
    board = sinks.TensorBoard(log_dir, {"env": "CartPole-v1", "agent": "dqn", "seed": 0})
    losses = []

    class Losses:
        def on_episode(self, runner, row):
            pass

        def on_update(self, runner, new):
            losses.extend(new)

    Runner(agent, sinks=[sinks.ProgressFile(run_dir), board, Losses()], signals=()).run(max_steps=400)
    rows = read_progress(os.path.join(run_dir, "progress.csv"))
    events = EventAccumulator(log_dir, size_guidance={"tensors": 0})
    events.Reload()

    def series(tag):
        return [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]

    assert series("episode/reward") == [(r["total_steps"], r["reward"]) for r in rows]
    assert series("episode/length") == [(r["total_steps"], float(r["length"])) for r in rows]
    q = [(r["total_steps"], r["max_q"]) for r in rows if not math.isnan(r["max_q"])]
    assert [(s, pytest.approx(v, rel=1e-6)) for s, v in series("episode/max_q")] == q
    # An update (2 minibatches) every 50 steps; each tick (every 100 steps) logs the mean of the losses since the last.
    assert agent.updates == 8 and len(losses) == 16
    expected = [(100 * (k + 1), pytest.approx(np.mean(losses[4 * k : 4 * k + 4]), rel=1e-6)) for k in range(4)]
    assert series("train/loss") == expected
    assert series("train/updates")[-1] == (400, 8.0)
    assert series("train/epsilon")[-1] == (400, 0.5)
    config = events.Tensors("config")[0].tensor_proto.string_val[0].decode()
    assert '"seed": 0' in config and '"env": "CartPole-v1"' in config
    agent.close()


def test_the_command_writes_tensorboard_files_into_the_run_folder(tmp_path):
    from kerlym.main import main

    assert (
        main(["-e", "CartPole-v1", "-a", "dqn", "--steps", "200", "--tensorboard", "-q", "--outdir", str(tmp_path)])
        == 0
    )
    (run_dir,) = os.listdir(tmp_path)
    files = os.listdir(tmp_path / run_dir / "tensorboard")
    assert len(files) == 1 and files[0].startswith("events.out.tfevents.")


def test_enable_plots_draws_training_png_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agent = kerlym.agents.DQN(
        "CartPole-v1", enable_plots=True, seed=0, update_freq=50, update_nsamp=64, batch_size=32, learning_starts=32
    )
    agent.learn(max_episodes=25, verbose=0)
    png = tmp_path / "training.png"
    assert png.stat().st_size > 10_000
    import matplotlib.image

    height, width, _ = matplotlib.image.imread(png).shape
    assert width > height > 300  # the 2x2 figure, not an empty canvas
    agent.close()


def test_tensorboard_writes_the_win_rate_against_each_opponent(tmp_path):
    import types

    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from kerlym.stats import opponent_results

    log_dir = str(tmp_path / "tensorboard")
    board = sinks.TensorBoard(log_dir)
    runner = FakeRunner(types.SimpleNamespace(total_steps=0))
    for step, random_games, mcts_games in ((500, [1, 1, 1, -1], [-1, -1, 0, -1]), (1000, [1, 1, 1, 1], [1, -1, 0, -1])):
        runner.agent.total_steps = step
        board.on_games(runner, {"random": opponent_results(random_games), "mcts:200": opponent_results(mcts_games)})
    board.close()
    events = EventAccumulator(log_dir, size_guidance={"tensors": 0})
    events.Reload()

    def series(tag):
        return [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]

    assert series("eval/win_rate/random") == [(500, 0.75), (1000, 1.0)]
    assert series("eval/win_rate/mcts_200") == [(500, 0.0), (1000, 0.25)]


def test_the_live_plot_of_a_resumed_run_draws_its_earlier_win_rates(tmp_path):
    import types

    import matplotlib

    matplotlib.use("Agg")
    with open(tmp_path / "evaluations.csv", "w") as f:
        f.write("total_steps,mean,std,opponent,wins,draws,losses,win_rate,win_rate_lo,win_rate_hi\n")
        f.write("100,0.5,0.5,random,3,1,0,0.75,0.3,0.95\n100,-1.0,0.0,mcts:8,0,0,4,0.0,0.0,0.49\n")
        f.write("250,1.0,0.0,random,4,0,0,1.0,0.5,1.0\n250,-0.5,0.5,mcts:8,1,0,3,0.25,0.05,0.7\n")
    episodes = [{"episode": e, "total_steps": 40 * e, "reward": 1.0, "length": 40, "loss": 0.1} for e in range(1, 8)]
    agent = types.SimpleNamespace(name="ppo", episodes=episodes, value_estimates=False, metric_names=())
    live = sinks.LivePlot(str(tmp_path), agent, "openspiel:tic_tac_toe", 2)
    # step 100: 2 episodes had ended (at 40, 80); step 250: 6 (the 7th ends at 280)
    assert live.plot.win_rates == {
        "random": [(2, 0.75, 0.3, 0.95), (6, 1.0, 0.5, 1.0)],
        "mcts:8": [(2, 0.0, 0.0, 0.49), (6, 0.25, 0.05, 0.7)],
    }
    live.close()
