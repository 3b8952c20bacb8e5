"""-c N --ray: the N envs as Ray actors feeding one DQN learner; a killed actor is restarted and training goes on."""

import numpy as np
import pytest

from kerlym import ray_actors
from kerlym.agents import DQN
from kerlym.runner import Runner

ray = pytest.importorskip("ray")


def train(monkeypatch, steps, step_callback=None):
    made = []

    class Recorded(ray_actors.RayActors):
        def __init__(self, agent):
            super().__init__(agent)
            made.append(self)

    monkeypatch.setattr(ray_actors, "RayActors", Recorded)
    agent = DQN(
        "CartPole-v1", seed=0, concurrency=2, actors="ray", epsilon=0.5, actor_sync_every=1,
        update_freq=8, update_nsamp=32, batch_size=16, learning_starts=64, max_memory=10_000,
    )  # fmt: skip
    runner = Runner(agent, signals=())
    rows = runner.run(max_steps=steps, step_callback=lambda a: step_callback(a, made[0]) if step_callback else None)
    return agent, rows, runner.actor_summary, made[0]


def check_transitions(agent, rows, steps):
    assert agent.total_steps == steps and len(agent.memory) == steps
    assert [r["episode"] for r in rows] == list(range(1, len(rows) + 1))
    assert all(r["reward"] == r["length"] for r in rows)  # CartPole pays 1 per step
    b = agent.memory.sample(256, np.random.default_rng(0))
    # A next state is always close to its state (never another env's), and termination is CartPole's rule.
    assert np.abs(b.next_states - b.states).max() < 1.0
    assert (b.terminated == ((np.abs(b.next_states[:, 2]) > 0.2095) | (np.abs(b.next_states[:, 0]) > 2.4))).all()


@pytest.mark.slow
def test_killing_a_ray_actor_mid_run_does_not_stop_training(monkeypatch):
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    killed = []

    def kill_once(agent, acting):
        if not killed and agent.total_steps >= 200:
            ray.kill(acting.actors[0], no_restart=False)  # as a lost machine would: Ray restarts it
            killed.append(agent.total_steps)

    try:
        agent, rows, summary, acting = train(monkeypatch, 640, kill_once)
    finally:
        ray.shutdown()
    check_transitions(agent, rows, 640)
    assert killed and summary["restarts"] == 1
    assert summary["steps"] == 640 and summary["weight_pushes"] == 1 + agent.updates  # actor_sync_every=1
    assert agent.updates == (640 - 64) // 8 + 1
    assert 0 <= summary["lag_mean"] <= summary["lag_max"]


@pytest.mark.slow
def test_ray_actors_run_on_both_nodes_of_a_two_node_cluster(monkeypatch):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    nodes = set()

    def where(agent, acting):  # asked while training: the actors end with it
        nodes.update(ray.get([a.node_id.remote() for a in acting.actors]))

    try:
        agent, rows, summary, acting = train(monkeypatch, 320, where)
    finally:
        ray.shutdown()
        cluster.shutdown()
    check_transitions(agent, rows, 320)
    assert summary["restarts"] == 0 and len(nodes) == 2


@pytest.mark.slow
def test_ppo_rollouts_come_from_ray_actors_with_their_log_probs(monkeypatch):
    from test_actors import FirstRollout, check_first_rollout

    from kerlym.agents import PPO

    first = FirstRollout(monkeypatch, PPO)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        agent = PPO("CartPole-v1", seed=0, concurrency=2, n_steps=24, batch_size=16, n_epochs=2, actors="ray")
        runner = Runner(agent, signals=())
        rows = runner.run(max_steps=192)
    finally:
        ray.shutdown()
    check_first_rollout(first, 24, 2)
    assert agent.total_steps == 192 and agent.updates == 192 // (24 * 2)
    assert all(r["reward"] == r["length"] for r in rows)
    summary = runner.actor_summary
    assert summary["steps"] == 192 and summary["weight_pushes"] == 1 + agent.updates and summary["restarts"] == 0
    # A chunk of 16 steps runs while the learner takes the one before: actions lag at most 2 rollouts.
    assert 0 <= summary["lag_mean"] <= summary["lag_max"] <= 2
