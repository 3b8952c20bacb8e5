"""The runner: Ctrl-C from Python, non-finite losses, and checkpoints that agree with the episode rows."""

import json
import os
import signal

import gymnasium as gym
import numpy as np
import pytest

import kerlym
from kerlym import checkpoints, runs
from kerlym.agents import D2QN, PPO
from kerlym.runner import NonFiniteLoss, Runner


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler during the test, whatever an earlier test or library left behind."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_in_learn_stops_after_the_step_and_returns_the_agent_intact(python_sigint):
    agent = D2QN("CartPole-v1", seed=0, batch_size=16, update_nsamp=32, update_freq=50)

    def interrupt(a):
        if a.total_steps >= 300:
            os.kill(os.getpid(), signal.SIGINT)

    rows = agent.learn(max_steps=5000, step_callback=interrupt, verbose=0)
    assert 300 <= agent.total_steps < 500  # stopped within a few steps of the signal, not at 5000
    assert rows is agent.episodes and agent.updates == agent.total_steps // 50
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's own handler is back
    agent.learn(max_steps=100, verbose=0)  # and the agent trains on
    agent.close()


class NanRewards(gym.Wrapper):
    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float("nan"), terminated, truncated, info


def test_a_nan_loss_stops_training_and_is_never_checkpointed(tmp_path):
    agent = D2QN(lambda: NanRewards(gym.make("CartPole-v1")), seed=0, batch_size=16, update_nsamp=32, update_freq=100)
    runner = Runner(agent, str(tmp_path), checkpoint_every=50)
    with pytest.raises(NonFiniteLoss, match="the loss became nan at step 100") as e:
        runner.run(max_steps=1000)
    latest = checkpoints.latest_checkpoint(str(tmp_path))
    assert latest.endswith("step-0000000050")  # the last finite one
    # and the agent object is back at that state, not left with NaN weights
    assert str(e.value).endswith("; the agent is back at step 50, its last finite weights")
    assert (agent.total_steps, agent.updates) == (50, 0) and all(r["episode"] <= agent.episode for r in agent.episodes)
    saved = checkpoints.load_model(os.path.join(latest, "model.keras")).get_weights()
    for mine, theirs in zip(agent.model.get_weights(), saved, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    agent.close()


def test_after_a_nan_loss_in_learn_the_agent_keeps_its_last_finite_weights():
    agent = D2QN(lambda: NanRewards(gym.make("CartPole-v1")), seed=0, batch_size=16, update_nsamp=32, update_freq=100)
    before = [w.copy() for w in agent.model.get_weights()]
    with pytest.raises(NonFiniteLoss, match="at step 100 .*; the agent is back at step 0, its last finite weights"):
        agent.learn(max_steps=1000, verbose=0)
    assert agent.total_steps == 0 and agent.episodes == []
    for mine, first in zip(agent.model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(mine, first)
    for v in agent.model.optimizer.variables:
        assert np.isfinite(np.asarray(v)).all()
    agent.close()


def test_a_checkpoint_on_an_episodes_last_step_counts_that_episode(tmp_path):
    # MountainCar's random episodes all last 200 steps, so every checkpoint falls on an episode's end.
    agent = D2QN("MountainCar-v0", seed=0, learning_starts=99_999)
    Runner(agent, str(tmp_path), checkpoint_every=200).run(max_steps=600)
    with open(os.path.join(checkpoints.latest_checkpoint(str(tmp_path)), runs.STATE)) as f:
        state = json.load(f)
    assert (state["total_steps"], state["episode"]) == (600, 3) == (agent.total_steps, len(agent.episodes))
    agent.close()


def test_a_run_ending_on_a_checkpoints_step_writes_that_checkpoint_once(tmp_path, monkeypatch):
    saved = []
    save = checkpoints.save_checkpoint

    def counted(run_dir, agent, **kw):
        saved.append(agent.total_steps)
        return save(run_dir, agent, **kw)

    monkeypatch.setattr(checkpoints, "save_checkpoint", counted)
    agent = D2QN("MountainCar-v0", seed=0, learning_starts=99_999)
    runner = Runner(agent, str(tmp_path), checkpoint_every=200, eval_episodes=1)
    runner.run(max_steps=400)
    assert saved == [200, 400]  # the one due at the last step is the run's final checkpoint
    runner.run(max_steps=0)
    assert saved == [200, 400]
    runner.evaluate()  # an evaluation may move the agent's state on (its random numbers): a final one is written
    runner.run(max_steps=0)
    assert saved == [200, 400, 400]
    agent.close()


def test_configure_and_make_train_what_the_command_trains():
    run, cfg = kerlym.configure("CartPole-v1", "pg", preset=True, cli_defaults=True, seed=1)
    agent = kerlym.make(run, cfg)
    rows = agent.learn(max_episodes=3, verbose=0)
    assert [r["episode"] for r in rows] == [1, 2, 3] and np.isfinite([r["loss"] for r in rows]).all()
    agent.close()


class Shrinks(gym.ObservationWrapper):
    def observation(self, obs):
        return obs[:3] if self.env.unwrapped.steps_beyond_terminated is None and np.abs(obs[0]) > 0.05 else obs


class Breaks(gym.Wrapper):
    def step(self, action):
        if self.env.unwrapped.state is not None and self.env.unwrapped.state[0] > 0.1:
            raise RuntimeError("the simulator crashed")
        return self.env.step(action)


def test_an_observation_of_the_wrong_shape_names_both_shapes():
    agent = D2QN(lambda: Shrinks(gym.make("CartPole-v1")), seed=0)
    with pytest.raises(ValueError, match=r"observation of shape \(3,\), but its observation_space declares \(4,\)"):
        agent.learn(max_steps=2000, verbose=0)
    agent.close()


class WrongFirst(gym.ObservationWrapper):
    """Every observation has 3 values where the space declares 4, from the first reset on."""

    def observation(self, obs):
        return obs[:3]


def test_a_first_observation_of_the_wrong_shape_names_both_shapes():
    agent = D2QN(lambda: WrongFirst(gym.make("CartPole-v1")), seed=0)
    with pytest.raises(
        ValueError, match=r"observation of shape \(3,\), but its observation_space declares \(4,\) \(reset\)"
    ):
        agent.learn(max_steps=100, verbose=0)
    agent.close()


class OldAPI(gym.Env):
    """The old Gym API: reset() without a seed returns the observation alone, step() returns 4 values."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)
    new_reset = False

    def reset(self, **kwargs):
        if not self.new_reset and kwargs:
            raise TypeError("OldAPI.reset() got an unexpected keyword argument 'seed'")
        obs = np.zeros(4, np.float32)
        return (obs, {}) if self.new_reset else obs

    def step(self, action):
        return np.zeros(4, np.float32), 1.0, False, {}


class OldReset(OldAPI):
    def reset(self, seed=None, options=None):
        return np.zeros(4, np.float32)


class OldStep(OldAPI):
    new_reset = True


@pytest.mark.parametrize(
    "env_class, what",
    [
        (OldAPI, "the env's reset() takes no seed"),
        (OldReset, "the env's reset() returned an observation alone"),
        (OldStep, "the env's step() returned 4 values, not 5"),
    ],
)
def test_an_env_of_the_old_gym_api_is_named_with_the_wrapper_that_converts_it(env_class, what):
    from kerlym.envs import OldGymAPIError

    agent = D2QN(env_class(), seed=0)
    for call in (lambda: agent.learn(max_steps=100, verbose=0), lambda: agent.evaluate(1)):
        with pytest.raises(OldGymAPIError) as e:
            call()
        message = str(e.value)
        assert message.startswith(f"{what}, as the old Gym API did (before Gym 0.26)") and "\n" not in message
        assert 'gymnasium.make("GymV21Environment-v0", env=env)' in message
    assert agent.total_steps == 0


def test_an_env_error_checkpoints_the_run_and_is_raised_with_the_step(tmp_path):
    agent = D2QN(lambda: Breaks(gym.make("CartPole-v1")), seed=0, epsilon=1.0)
    with pytest.raises(RuntimeError, match="the simulator crashed") as e:
        Runner(agent, str(tmp_path), checkpoint_every=10_000).run(max_steps=100_000)
    step = agent.total_steps
    assert checkpoints.latest_checkpoint(str(tmp_path)).endswith(f"step-{step:010d}")
    assert f"at step {step}; checkpoint saved" in "".join(getattr(e.value, "__notes__", []))
    agent.close()


class OddLegal(gym.Env):
    """Three actions; only those of the parity of the step count are legal (its info says which); 5-step episodes."""

    observation_space = gym.spaces.Box(0.0, 5.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def _mask(self):
        return np.array([self.t % 2 == 0, self.t % 2 == 1, self.t % 2 == 0], dtype=np.int8)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {"action_mask": self._mask()}

    def step(self, action):
        assert self._mask()[action], f"illegal action {action} at step {self.t}"
        self.t += 1
        return np.array([self.t], np.float32), 1.0, self.t == 5, False, {"action_mask": self._mask()}


@pytest.mark.parametrize("name", ["ddqn", "pg", "ppo"])
def test_every_agent_takes_only_legal_actions_across_episodes(name):
    from kerlym import agents

    kwargs = {
        "ddqn": {"epsilon": 0.5, "batch_size": 8, "update_nsamp": 8, "update_freq": 10},
        "pg": {},
        "ppo": {"n_steps": 16, "batch_size": 8},
    }[name]
    agent = agents.AGENTS[name](OddLegal, seed=0, **kwargs)
    rows = agent.learn(max_steps=200, verbose=0)  # OddLegal asserts every action is legal
    assert len(rows) >= 35 and all(r["length"] == 5 for r in rows)
    if name == "ddqn":
        assert agent.memory.masks is not None and agent.updates > 0
    agent.close()


def test_a_signal_caught_during_set_up_stops_training_before_its_first_step(tmp_path, python_sigint):
    from kerlym import _io

    _io.defer_signals()  # as the command does first: a Ctrl-C while Keras loads is recorded, not raised
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert _io.deferred_signals() == [signal.SIGINT]
        agent = D2QN("CartPole-v1", seed=0)
        runner = Runner(agent, str(tmp_path), checkpoint_every=100)
        runner.run(max_steps=1000, final_evaluation=True)
    finally:
        _io.end_deferral()
    assert runner.interrupted == [signal.SIGINT] and agent.total_steps == 0 and runner.last_evaluation is None
    assert checkpoints.latest_checkpoint(str(tmp_path)).endswith("step-0000000000")  # the run is resumable
    assert _io.deferred_signals() == [] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    agent.close()


class SeatsAndReturns(gym.Wrapper):
    """Records each game's seat (``info["player"]``) and return, as played."""

    def __init__(self, env, games):
        super().__init__(env)
        self.games = games

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.seat, self.total = info["player"], 0.0
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.total += reward
        if terminated or truncated:
            self.games.append((self.seat, self.total))
        return obs, reward, terminated, truncated, info


def test_evaluations_against_opponents_write_a_row_each_with_the_games_played(tmp_path):
    pytest.importorskip("pyspiel", reason="OpenSpiel games need the .[games] extra (open-spiel)")
    from kerlym.envs import make_env
    from kerlym.make import configure, make
    from kerlym.session import opponent_env_maker
    from kerlym.stats import read_table, wilson_interval

    opponents = ["random", "mcts:2"]
    run, cfg = configure(
        "openspiel:tic_tac_toe", "ppo", modelfactory="actor_critic_mlp", nframes=1, seed=5, eval_opponents=opponents
    )
    agent = make(run, cfg)
    played = {name: [] for name in opponents}
    maker = opponent_env_maker(agent, run)
    runner = Runner(
        agent,
        str(tmp_path),
        eval_episodes=7,
        eval_opponents=run.eval_opponents,
        opponent_env=lambda name: SeatsAndReturns(maker(name), played[name]),
        signals=(),
    )
    mean, std = runner.evaluate()
    first = [r for _, r in played["random"]]  # the first opponent's games are the evaluation's mean and std
    assert (mean, std) == (pytest.approx(np.mean(first)), pytest.approx(np.std(first)))
    assert os.path.isfile(os.path.join(tmp_path, runs.BEST))
    runner.evaluate()  # the same weights and game seeds: the same games again, and not a better mean
    rows, _ = read_table(os.path.join(tmp_path, runs.EVALUATIONS), checkpoints.OPPONENT_FIELDS)
    assert [r["opponent"] for r in rows] == opponents * 2
    for k, row in enumerate(rows):
        games = played[row["opponent"]][7 * (k // 2) : 7 * (k // 2 + 1)]
        assert [seat for seat, _ in games] == [0, 1, 0, 1, 0, 1, 0]  # the colours alternate
        wins, losses = sum(r > 0 for _, r in games), sum(r < 0 for _, r in games)
        assert (int(row["wins"]), int(row["draws"]), int(row["losses"])) == (wins, 7 - wins - losses, losses)
        lo, hi = wilson_interval(wins, 7)
        assert (float(row["win_rate_lo"]), float(row["win_rate_hi"])) == (pytest.approx(lo), pytest.approx(hi))
        assert float(row["mean"]) == pytest.approx(np.mean([r for _, r in games]))
    assert played["random"][:7] == played["random"][7:] and played["mcts:2"][:7] == played["mcts:2"][7:]
    assert runner.last_games["mcts:2"]["wins"] == int(rows[3]["wins"])
    # Playing the games directly, on an env made by hand with the same seeds, counts the same.
    env = make_env("openspiel:tic_tac_toe", env_kwargs={"opponent": "mcts:2", "player": "alternate"})
    direct = agent.evaluate(7, env=env, seed=5)
    assert list(direct) == [r for _, r in played["mcts:2"][:7]]
    agent.close()


def test_episode_rows_hold_the_sums_and_q_means_of_each_episodes_own_steps():
    agent = D2QN("CartPole-v1", seed=0, batch_size=16, update_nsamp=32, update_freq=50, epsilon=0.5)
    acted = []  # per training step: its reward and the network's outputs (None when exploring skipped it)
    act, step = agent.act, agent.env.step

    def recording_act(states, explore=True, masks=None):
        actions, values = act(states, explore=explore, masks=masks)
        acted.append([None, None if values is None else np.array(values)])
        return actions, values

    def recording_step(action):
        out = step(action)
        acted[-1][0] = float(out[1])
        return out

    agent.act, agent.env.step = recording_act, recording_step
    rows = agent.learn(max_steps=400, verbose=0, eval_episodes=0)
    assert len(rows) >= 5 and any(v is None for _, v in acted) and any(v is not None for _, v in acted)
    begin = 0
    for row in rows:
        steps, begin = acted[begin : begin + row["length"]], begin + row["length"]
        assert row["reward"] == sum(r for r, _ in steps)
        values = [v for _, v in steps if v is not None]
        if not values:
            assert np.isnan(row["max_q"]) and np.isnan(row["min_q"])
            continue
        max_q = min_q = 0.0  # running float64 sums, step by step
        for v in values:
            max_q, min_q = max_q + float(v.max()), min_q + float(v.min())
        assert (row["max_q"], row["min_q"]) == (max_q / len(values), min_q / len(values))
    assert begin == rows[-1]["total_steps"]



def test_evaluations_of_a_seeded_run_play_the_same_episodes_each_time():
    agent = PPO("Pendulum-v1", seed=0, n_steps=32, batch_size=32, n_epochs=1)  # float returns: no ties
    runner = Runner(agent, None, eval_episodes=2)
    runner.evaluate()
    first = runner.last_evaluation[1]
    runner.evaluate()  # the same weights: the same episodes (resets seeded from the agent's seed), the same returns
    np.testing.assert_array_equal(runner.last_evaluation[1], first)
    assert first.shape == (2,) and first[0] != first[1]  # episode i is reset with seed + i
    agent.close()
