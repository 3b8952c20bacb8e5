"""Actors that feed one learner: an actor process steps the envs while the learner updates (--actors process)."""

import json
import os

import numpy as np
import pytest

from kerlym import actors, ray_actors
from kerlym.agents import A2C, DQN, PG, PPO
from kerlym.config import ConfigError, DQNConfig
from kerlym.runner import Runner, acting_for


def replayed_episodes(memory, env, seed):
    """Walk ``memory``'s slots in write order, stepping ``env`` with the stored actions; returns the episode lengths.

    Asserts that every stored frame, reward and termination flag is exactly what ``env`` produced.
    """
    obs, _ = env.reset(seed=seed)
    slot, lengths, length = 0, [], 0
    np.testing.assert_array_equal(memory.frames[slot], obs)
    assert memory.prev[slot] == slot  # an episode's first frame links to itself
    while memory.valid[slot]:
        obs, reward, terminated, truncated, _ = env.step(int(memory.actions[slot]))
        nxt = memory.next[slot]
        np.testing.assert_array_equal(memory.frames[nxt], obs)
        assert memory.rewards[slot] == reward and memory.terminated[slot] == terminated
        assert nxt == slot + 1 and memory.prev[nxt] == slot
        slot, length = nxt, length + 1
        if terminated or truncated:
            lengths.append(length)
            obs, _ = env.reset()  # as the training env restarts: its own RNG, unseeded
            slot, length = slot + 1, 0
            np.testing.assert_array_equal(memory.frames[slot], obs)
            assert memory.prev[slot] == slot
    return lengths


@pytest.mark.slow
def test_the_actor_process_fills_the_learners_replay_exactly_and_syncs_every_k_updates(monkeypatch):
    import gymnasium as gym

    made = []

    class Recorded(actors.ProcessActor):
        def __init__(self, agent):
            super().__init__(agent)
            self.versions = []
            made.append(self)

        def step(self, total_steps):
            s = super().step(total_steps)
            self.versions.append(s.version)
            return s

    monkeypatch.setattr(actors, "ProcessActor", Recorded)
    agent = DQN(
        "CartPole-v1", seed=3, actors="process", actor_sync_every=3, epsilon=0.5,
        update_freq=4, update_nsamp=32, batch_size=16, learning_starts=40, max_memory=10_000,
    )  # fmt: skip
    runner = Runner(agent, signals=())
    rows = runner.run(max_steps=400)
    (actor,) = made

    # Every transition the actor's env produced is in the replay, in order, exactly; no more, no fewer.
    assert agent.total_steps == 400 and len(agent.memory) == 400
    lengths = replayed_episodes(agent.memory, gym.make("CartPole-v1"), seed=3)
    assert lengths == [r["length"] for r in rows]  # the episode rows count the same episodes
    assert [r["reward"] for r in rows] == [float(n) for n in lengths]  # CartPole pays 1 per step

    # Updates as without actors: one per 4 steps once 40 transitions are in; pushes every 3 updates.
    assert agent.updates == (400 - 40) // 4 + 1
    assert actor.pushes == list(range(0, agent.updates + 1, 3))
    assert set(actor.versions) <= set(actor.pushes) and actor.versions == sorted(actor.versions)
    summary = runner.actor_summary
    assert summary["steps"] == 400 and summary["weight_pushes"] == len(actor.pushes)
    # An action's weights are never newer than the learner's, and the bounded queue keeps them close.
    assert 0 <= summary["lag_mean"] <= summary["lag_max"] <= actors.AHEAD // 4 + 3 + 2
    assert all(0 <= r["weight_lag"] <= summary["lag_max"] for r in rows)
    assert not actor.process.is_alive()


def test_every_agent_takes_actors_and_bad_settings_are_refused():
    for cls in (DQNConfig, PG.Config, A2C.Config, PPO.Config):
        assert cls(actors="process").actors == "process" and cls().actors == "local"
    with pytest.raises(ConfigError, match="unknown actors 'threads'"):
        DQNConfig(actors="threads")
    with pytest.raises(ConfigError, match="must be positive and finite, got 0"):
        PPO.Config(actor_sync_every=0)


def test_weights_go_out_every_update_of_a_policy_agent_and_every_400_steps_of_dqn():
    assert actors.sync_every(A2C.Config()) == 1 and actors.sync_every(PPO.Config()) == 1
    assert actors.sync_every(PG.Config()) == 1
    assert actors.sync_every(DQNConfig(update_freq=4)) == 100  # 400 env steps, an update every 4
    assert actors.sync_every(DQNConfig(update_freq=1000)) == 1  # the original's default: an update per 1000
    assert actors.sync_every(DQNConfig(update_freq=4, actor_sync_every=3)) == 3


class FirstRollout:
    """Records the first rollout, and its log-probabilities and values as the learner's own network computes them.

    It patches the class's ``update`` in this process only: the actors build the class afresh.
    """

    def __init__(self, monkeypatch, cls):
        self.seen = []
        original = cls.update

        def update(agent, rollout):
            if not self.seen:  # acted on in the actors with the weights of version 0, the learner's initial ones
                agent.steps.to_keras()
                outputs = agent.model(rollout.states)
                log_prob, _, value = agent.policy_terms(outputs, rollout.actions, rollout.legal)
                copied = type(rollout)(*(None if x is None else np.array(x) for x in rollout))
                self.seen.append((copied, np.asarray(log_prob), np.asarray(value)))
            return original(agent, rollout)

        monkeypatch.setattr(cls, "update", update)


def check_first_rollout(first, n_steps, n):
    """The actors' actions, log-probabilities and values sit in the learner's rollout in their own places."""
    rollout, log_prob, value = first.seen[0]
    np.testing.assert_allclose(rollout.log_probs, log_prob, atol=1e-5)
    np.testing.assert_allclose(rollout.values, value, atol=1e-5)
    assert rollout.states.shape == (n_steps * n, 4) and set(rollout.actions.tolist()) == {0, 1}


@pytest.mark.slow
def test_a2c_learns_from_an_actor_process_with_the_actors_log_probs(monkeypatch):
    first = FirstRollout(monkeypatch, A2C)
    agent = A2C("CartPole-v1", seed=1, concurrency=2, n_steps=5, actors="process")
    runner = Runner(agent, signals=())
    rows = runner.run(max_steps=400)
    check_first_rollout(first, 5, 2)
    assert agent.total_steps == 400 and agent.updates == 400 // (5 * 2)
    assert rows and all(r["reward"] == r["length"] for r in rows)  # CartPole pays 1 per step
    summary = runner.actor_summary
    assert summary["steps"] == 400 and summary["weight_pushes"] == 1 + agent.updates
    # Weights go out after every rollout, and the actor runs at most AHEAD vector steps ahead of the learner.
    assert 0 <= summary["lag_mean"] <= summary["lag_max"] <= 1 + actors.AHEAD // 5 + 1
    assert all(0 <= r["weight_lag"] <= summary["lag_max"] for r in rows)


def test_local_acting_is_the_default_and_sends_no_weights():
    agent = DQN("CartPole-v1", seed=0)
    acting = acting_for(agent)
    assert isinstance(acting, actors.LocalActing)
    obs, masks = acting.reset(seed=0)
    step = acting.step(0)
    assert masks is None and step.version == 0 and acting.summary() is None
    assert step.states.shape == (1, 4) and np.array_equal(step.states[0], obs[0])  # acted on the first frame
    agent.close()


@pytest.mark.slow
def test_the_command_trains_checkpoints_and_resumes_with_an_actor_process(tmp_path, capsys):
    from kerlym.main import main
    from kerlym.stats import read_progress

    base = ["-e", "CartPole-v1", "-a", "dqn", "--outdir", str(tmp_path), "-q", "--seed", "0", "-f", "8", "-u", "32"]
    assert main([*base, "--actors", "process", "--steps", "300", "--checkpoint_every", "200"]) == 0
    out = capsys.readouterr().out
    assert "actor process: 300 steps" in out
    (run,) = os.listdir(tmp_path)
    run = os.path.join(tmp_path, run)
    with open(os.path.join(run, "config.json")) as f:
        assert json.load(f)["actors"] == "process"
    # A resumed run may act locally: where acting runs is not part of what was learned.
    assert main(["--resume", run, "--steps", "500", "--actors", "local"]) == 0
    rows = read_progress(os.path.join(run, "progress.csv"))
    assert [r["episode"] for r in rows] == list(range(1, len(rows) + 1))
    assert 300 < rows[-1]["total_steps"] <= 500


def test_merge_steps_puts_each_ray_actors_env_in_its_own_stream():
    def one(k, values=True, version=5):
        return actors.Step(
            np.full((1, 2), k), np.array([k]), np.full((1, 3), float(k)) if values else None, [np.full(2, 10 + k)],
            [np.full(2, 20 + k)], np.array([0.5 * k]), np.array([k == 1]), np.array([False]), None, None, version,
        )  # fmt: skip

    s = ray_actors.merge_steps([one(0), one(1, version=3), one(2)])
    assert s.states.tolist() == [[0, 0], [1, 1], [2, 2]] and s.actions.tolist() == [0, 1, 2]
    assert s.values.tolist() == [[0.0] * 3, [1.0] * 3, [2.0] * 3] and s.rewards.tolist() == [0.0, 0.5, 1.0]
    assert [f.tolist() for f in s.next_frames] == [[10, 10], [11, 11], [12, 12]]
    assert [o.tolist() for o in s.obs] == [[20, 20], [21, 21], [22, 22]]
    assert s.terminated.tolist() == [False, True, False] and s.masks is None
    assert s.version == 3  # the oldest weights any of the actions used
    assert ray_actors.merge_steps([one(0), one(1, values=False)]).values is None  # some actions were all random


@pytest.mark.slow
def test_a_script_without_a_main_guard_is_told_in_one_line(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "train.py"
    script.write_text(
        "import kerlym\n"
        "agent = kerlym.make('CartPole-v1', 'dqn', seed=0, actors='process', max_memory=1000)\n"
        "agent.learn(max_steps=100, verbose=0, eval_episodes=0)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert 'kerlym: error: --actors process runs your script again in the actor process; put the training under' in (
        "\n".join(lines)
    )
    assert "An attempt has been made to start a new process" not in done.stderr  # multiprocessing's long message
    assert lines[-1].split(": ", 1)[1].startswith("the actor process died (exit code 1)")  # a RuntimeError


# -- a learner killed by kill -9 leaves nothing running ---------------------------
def _descendants(pid: int) -> set[int]:
    """The PIDs of ``pid``'s children, their children, and so on (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_a_training_learner(tmp_path, *flags, children: int, victim=None):
    """Start ``kerlym`` with ``flags``; once it trains with ``children`` descendants, ``kill -9`` it.

    ``victim(learner_pid, descendants)``: the PID to kill instead of the learner's (a worker's).
    Returns the descendants still alive 20 s later (or once the learner ended), what it all printed, and
    the learner's exit status (``-9`` when it was the one killed).
    """
    import signal
    import subprocess
    import sys
    import time

    log = open(tmp_path / "log", "w+")
    cmd = [sys.executable, "-m", "kerlym", "-e", "CartPole-v1", "--outdir", str(tmp_path / "runs"), "-q", *flags]
    learner = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    kids: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            rows = [p for p in (tmp_path / "runs").glob("*/progress.csv")]
            if rows and len(rows[0].read_text().splitlines()) > 3 and len(_descendants(learner.pid)) >= children:
                break
            assert learner.poll() is None, (tmp_path / "log").read_text()
            time.sleep(0.5)
        kids = _descendants(learner.pid)
        assert len(kids) >= children, kids
        os.kill(learner.pid if victim is None else victim(learner.pid, kids), signal.SIGKILL)
        status = learner.wait(timeout=120)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(map(_alive, kids)):
            time.sleep(0.2)
        return {k for k in kids if _alive(k)}, (tmp_path / "log").read_text().replace("\0", ""), status
    finally:
        if learner.poll() is None:
            learner.kill()
        for kid in kids | _descendants(learner.pid):
            if _alive(kid):
                os.kill(kid, signal.SIGKILL)


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


@pytest.mark.slow
def test_an_actor_process_ends_with_its_killed_learner(tmp_path):
    # The actor fills its queue in a second, then waits on it; its learner is gone, so it must end, and the
    # multiprocessing resource tracker with it (2 children: the actor and the tracker).
    flags = ("-a", "dqn", "--actors", "process", "--steps", "10000000")
    left, log, _ = kill_a_training_learner(tmp_path, *flags, children=2)
    assert left == set(), log
    assert "Traceback" not in log, log


@pytest.mark.slow
def test_env_workers_of_a_killed_learner_end_without_a_traceback(tmp_path):
    left, log, _ = kill_a_training_learner(tmp_path, "-a", "dqn", "-c", "4", "--steps", "10000000", children=4)
    assert left == set(), log
    assert "Traceback" not in log and "BrokenPipeError" not in log, log


def _one_line_and_the_checkpoint_kept(tmp_path, log: str, what: str) -> None:
    (run,) = (tmp_path / "runs").iterdir()
    last = log.strip().splitlines()[-1]
    assert last.startswith(f"kerlym: error: {what}; checkpoint kept: {run}/checkpoints/step-"), log
    assert last.endswith(f"; continue with: kerlym --resume {run}"), log
    assert "Traceback" not in log, log
    checkpoint = last.split("checkpoint kept: ")[1].split(";")[0]
    assert sorted(os.listdir(checkpoint)) == ["arrays.npz", "model.keras", "state.json"]


@pytest.mark.slow
def test_a_killed_env_worker_ends_the_run_in_one_line_and_keeps_a_checkpoint(tmp_path):
    def a_worker(learner, kids):
        return min(k for k in kids if "resource_tracker" not in _cmdline(k))

    left, log, status = kill_a_training_learner(
        tmp_path, "-a", "dqn", "-c", "4", "--steps", "10000000", children=4, victim=a_worker
    )
    assert status == 1 and left == set(), log
    _one_line_and_the_checkpoint_kept(tmp_path, log, "env worker 0 of 4 died (exit code -9)")


@pytest.mark.slow
def test_a_killed_actor_process_ends_the_run_in_one_line_and_keeps_a_checkpoint(tmp_path):
    def the_actor(learner, kids):
        (actor,) = [k for k in kids if "spawn_main" in _cmdline(k)]
        return actor

    left, log, status = kill_a_training_learner(
        tmp_path, "-a", "dqn", "--actors", "process", "--steps", "10000000", children=2, victim=the_actor
    )
    assert status == 1 and left == set(), log
    _one_line_and_the_checkpoint_kept(tmp_path, log, "the actor process died (exit code -9)")
    assert "I0000" not in log and "cuda" not in log.lower()  # the actor's TensorFlow start-up lines are hidden


def test_an_actor_builds_the_learners_network_with_its_net_kwargs():
    config = DQNConfig(modelfactory="q_rnn", nframes=2, actors="process", net_kwargs={"rnn_units": 12})
    learner = DQN("CartPole-v1", config)
    actor = actors.build_actor_agent(actors.pack_recipe(learner))  # what the actor process or a Ray actor builds
    assert actor.config.net_kwargs == {"rnn_units": 12} and actor.config.actors == "local"
    shapes = [w.shape for w in actor.model.get_weights()]
    assert shapes == [w.shape for w in learner.model.get_weights()] and (12, 36) in shapes  # the GRU's 12 units
    actor.model.set_weights(learner.model.get_weights())  # the weights the learner sends fit
    learner.close()
    actor.close()
