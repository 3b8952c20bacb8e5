"""The fused JAX path (kerlym.agents.fused, kerlym.envs.gymnax_envs): PPO on a gymnax env in compiled chunks."""

import csv
import importlib.util
import math
import os

import keras
import numpy as np
import pytest

import kerlym
from kerlym import main
from kerlym.envs import gymnax_envs
from kerlym.make import configure
from kerlym.memory import gae

ON_JAX = keras.config.backend() == "jax"
HAVE_GYMNAX = importlib.util.find_spec("jax") is not None and importlib.util.find_spec("gymnax") is not None
needs_fused = pytest.mark.skipif(
    not (ON_JAX and HAVE_GYMNAX),
    reason='needs KERAS_BACKEND=jax and gymnax: pip install ".[jax]"',
)

# A small PPO on gymnax's CartPole: 4 envs x 16 steps = 64 steps per update, 2 minibatches of 32, 2 epochs.
SMALL = dict(concurrency=4, n_steps=16, batch_size=32, n_epochs=2, seed=0, learning_rate=1e-3)

# The rollout of tests/test_actor_critic.py's GAE example: [T=4, N=2].
REWARDS = np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [4.0, 1.0]])
VALUES = np.array([[2.0, 1.0], [4.0, 1.0], [0.0, 1.0], [2.0, 1.0]])
NEXT_VALUES = np.array([[4.0, 2.0], [5.0, 2.0], [8.0, 2.0], [6.0, 4.0]])
TERMINATED = np.array([[False, False], [True, False], [False, False], [False, False]])
TRUNCATED = np.array([[False, False], [False, False], [True, False], [False, False]])


def error_of(argv, capsys):
    assert main.main(argv) == 2
    return capsys.readouterr().err.strip().splitlines()


def test_gymnax_env_without_jax_or_gymnax_names_the_extra(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gymnax" else real(name, *a))
    (line,) = error_of(["-e", "gymnax:CartPole-v1", "-a", "ppo"], capsys)
    assert line.startswith("kerlym: error: -e gymnax:CartPole-v1 needs JAX and gymnax: pip install")
    assert line.endswith('[jax]"')


def test_gymnax_env_off_the_jax_backend_says_to_set_it(monkeypatch, capsys):
    if not HAVE_GYMNAX:
        pytest.skip('needs gymnax: pip install ".[jax]"')
    monkeypatch.setattr(gymnax_envs, "keras_backend", lambda: "tensorflow")
    (line,) = error_of(["-e", "gymnax:CartPole-v1", "-a", "ppo"], capsys)
    expected = "-e gymnax:CartPole-v1 trains on Keras's JAX backend: set KERAS_BACKEND=jax (now tensorflow)"
    assert line == f"kerlym: error: {expected}"


@needs_fused
def test_gymnax_errors_are_one_line(capsys, tmp_path):
    (line,) = error_of(["-e", "gymnax:CartPol-v1", "-a", "ppo", "--outdir", str(tmp_path)], capsys)
    assert line == "kerlym: error: gymnax has no env 'CartPol-v1'; did you mean gymnax:CartPole-v1?"
    (line,) = error_of(["-e", "gymnax:CartPole-v1", "-a", "pg", "--outdir", str(tmp_path)], capsys)
    expected = "-e gymnax:CartPole-v1 trains with -a ppo, a2c, dqn or ddqn (the fused JAX path), not -a pg"
    assert line == f"kerlym: error: {expected}"
    (line,) = error_of(["-e", "gymnax:CartPole-v1", "-a", "ppo", "--normalize_obs", "--outdir", str(tmp_path)], capsys)
    assert line == "kerlym: error: the fused JAX path (-e gymnax:CartPole-v1) does not take --normalize_obs"
    assert os.listdir(tmp_path) == []  # no run folder for bad input


def test_gymnax_ids_take_the_gymnasium_envs_preset():
    run, cfg = configure("gymnax:CartPole-v1", "ppo", preset=True)
    same_run, same_cfg = configure("CartPole-v1", "ppo", preset=True)
    assert (cfg, run.steps) == (same_cfg, same_run.steps) and run.env == "gymnax:CartPole-v1"


@needs_fused
def test_gae_scan_equals_the_hand_computed_gae():
    from kerlym.agents.fused import gae_scan

    # tests/test_actor_critic.py::test_gae_by_hand works these numbers out (gamma = lambda = 0.5).
    f32 = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
    adv = gae_scan(f32(REWARDS), f32(VALUES), f32(NEXT_VALUES), TERMINATED, TRUNCATED, 0.5, 0.5)
    np.testing.assert_allclose(np.asarray(adv), [[0.5, 1.34375], [-2.0, 1.375], [7.0, 1.5], [5.0, 2.0]], rtol=1e-6)
    rng = np.random.default_rng(1)
    shape = (7, 3)
    r, v, nv = (rng.normal(size=shape).astype(np.float32) for _ in range(3))
    term, trunc = rng.random(shape) < 0.2, rng.random(shape) < 0.2
    expected = gae(r, v, nv, term, trunc, 0.98, 0.8)
    np.testing.assert_allclose(np.asarray(gae_scan(r, v, nv, term, trunc, 0.98, 0.8)), expected, rtol=1e-5, atol=1e-5)


@needs_fused
def test_the_fused_clipped_loss_equals_hand_computed_numbers():
    agent = kerlym.make("gymnax:CartPole-v1", "ppo", **SMALL, clip_range=0.2, ent_coef=0.01, vf_coef=0.5)
    fused = agent.fused
    states = np.array([[0.1, 0.2, 0.0, -0.1], [0.0, -0.3, 0.05, 0.2], [0.2, 0.0, -0.05, 0.1], [-0.1, 0.1, 0.0, 0.0]])
    states = states.astype(np.float32)
    actions = np.array([0, 1, 1, 0], dtype=np.int32)
    out = np.asarray(agent.model(states))  # [logits 0, logits 1, value]
    log_softmax = out[:, :2] - np.log(np.exp(out[:, :2]).sum(axis=1, keepdims=True))
    new_log_prob = log_softmax[np.arange(4), actions]
    old_log_prob = (new_log_prob + np.array([0.5, -0.5, 0.05, 0.0])).astype(np.float32)  # ratios e^-0.5, e^0.5, ...
    advantages = np.array([1.0, -2.0, 3.0, 0.5], dtype=np.float32)
    returns = np.array([1.0, 0.0, 2.0, -1.0], dtype=np.float32)
    old_values = out[:, 2].copy()
    batch = tuple(x[None] for x in (states, actions, old_log_prob, old_values, advantages, returns))
    tv, ntv, ov = agent.steps.arrays()
    rows = np.asarray(fused.learn(tv, ntv, ov, batch, 1e-3, 0.2)[3])
    # By hand: standardised advantages, the clipped surrogate, the value error and the entropy.
    a = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    ratio = np.exp(new_log_prob - old_log_prob)
    surrogate = -np.mean(np.minimum(ratio * a, np.clip(ratio, 0.8, 1.2) * a))
    value_loss = np.mean((returns - out[:, 2]) ** 2)
    p = np.exp(log_softmax)
    entropy = np.mean(-(p * log_softmax).sum(axis=1))
    clip_fraction = np.mean(np.abs(ratio - 1) > 0.2)  # e^-0.5 and e^0.5 are clipped, e^-0.05 and 1 are not
    assert clip_fraction == 0.5
    expected = [surrogate - 0.01 * entropy + 0.5 * value_loss, surrogate, value_loss, entropy, clip_fraction]
    np.testing.assert_allclose(rows[0, :5], expected, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@needs_fused
def test_a_fused_run_writes_rows_and_a_checkpoint_that_reloads(tmp_path):
    outdir = str(tmp_path)
    argv = ["-e", "gymnax:CartPole-v1", "-a", "ppo", "-q", "--steps", "2000", "--checkpoint_every", "1024"]
    argv += ["-c", "4", "--n_steps", "16", "--batch_size", "32", "--n_epochs", "2", "--seed", "0", "--outdir", outdir]
    assert main.main(argv) == 0
    (name,) = os.listdir(outdir)
    run = os.path.join(outdir, name)
    with open(os.path.join(run, "progress.csv")) as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["total_steps"]) for r in rows]
    assert len(rows) > 20 and steps == sorted(steps) and all(s % 4 == 0 for s in steps)
    assert [int(r["episode"]) for r in rows] == list(range(1, len(rows) + 1))
    # CartPole pays 1 per step, so each episode's return is its length; 4 envs' episodes fit in the steps run.
    assert all(float(r["reward"]) == int(r["length"]) for r in rows)
    assert sum(int(r["length"]) for r in rows) <= 2048
    # A row's loss is the mean over the updates since the row before (none: NaN), as on the Gymnasium path.
    with_loss = [r for r in rows if math.isfinite(float(r["loss"]))]
    assert 0 < len(with_loss) <= 32 and math.isfinite(float(rows[-1]["approx_kl"]))
    with open(os.path.join(run, "checkpoints", "latest")) as f:
        assert f.read().strip() == "step-0000002048"  # 32 rollouts of 64 steps: the first to reach 2000
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == ["latest", "step-0000001024", "step-0000002048"]

    loaded = kerlym.load(run)
    assert loaded.fused is not None and loaded.total_steps == 2048 and loaded.episode == len(rows)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    again = kerlym.load(run)
    np.testing.assert_array_equal(np.asarray(loaded.model(x)), np.asarray(again.model(x)))
    np.testing.assert_array_equal(loaded.evaluate(3, seed=7), again.evaluate(3, seed=7))


@needs_fused
def test_fused_training_carries_on_from_the_keras_weights_and_back():
    agent = kerlym.make("gymnax:CartPole-v1", "ppo", **SMALL, steps=64 * 3)
    x = np.zeros((1, 4), dtype=np.float32)
    before = np.asarray(agent.model(x))
    rows = agent.learn(verbose=0, eval_episodes=0)
    after = np.asarray(agent.model(x))  # the chunk's weights, written back into the Keras model
    assert agent.total_steps == 192 and agent.updates == 3 and not np.allclose(before, after)
    assert all(r["total_steps"] <= 192 for r in rows)
    # Weights set through Keras are the ones the next chunk trains from.
    agent.model.set_weights([np.zeros_like(w) for w in agent.model.get_weights()])
    assert agent.evaluate(2, seed=0).tolist() == agent.evaluate(2, seed=0).tolist()
    tv, _, _ = agent.steps.arrays()
    assert all(float(np.abs(np.asarray(w)).max()) == 0.0 for w in tv)


@pytest.mark.slow
@needs_fused
def test_seeds_trained_together_equal_each_seed_trained_alone(tmp_path):
    small = ["-c", "4", "--n_steps", "16", "--batch_size", "32", "--n_epochs", "2", "--steps", "256", "-q"]
    base = ["-e", "gymnax:CartPole-v1", "-a", "ppo", *small, "--eval_episodes", "3"]
    assert main.main([*base, "--seed", "1", "--outdir", str(tmp_path / "alone")]) == 0
    assert main.main([*base, "--seeds", "0", "1", "--outdir", str(tmp_path / "together")]) == 0
    (alone,) = os.listdir(tmp_path / "alone")
    (sweep,) = os.listdir(tmp_path / "together")
    folders = sorted(os.listdir(tmp_path / "together" / sweep))
    assert {"seed-0", "seed-1", "summary.csv"} <= set(folders)

    def rows(*parts):
        with open(os.path.join(tmp_path, *parts, "progress.csv")) as f:
            return list(csv.DictReader(f))

    solo, grouped = rows("alone", alone), rows("together", sweep, "seed-1")
    assert len(solo) == len(grouped) > 5
    for a, b in zip(solo, grouped):  # the vmapped program computes what seed 1 computes alone
        assert (a["episode"], a["total_steps"], a["reward"]) == (b["episode"], b["total_steps"], b["reward"])
        np.testing.assert_allclose(float(a["max_q"]), float(b["max_q"]), rtol=1e-4)
    assert rows("together", sweep, "seed-0") != grouped  # and seed 0 is a run of its own
    with open(os.path.join(tmp_path, "together", sweep, "summary.csv")) as f:
        assert [r["seed"] for r in csv.DictReader(f)] == ["0", "1"]


@needs_fused
def test_seeds_split_into_parts_of_one_length_in_order():
    from kerlym.agents.fused import split_evenly

    assert split_evenly(16, 2) == [list(range(8)), list(range(8, 16))]
    assert split_evenly(5, 2) == [[0, 1, 2], [3, 4, 4]]  # the short part repeats its last seed
    assert split_evenly(3, 8) == [[0], [1], [2]]
    assert split_evenly(1, 2) == [[0]]


@needs_fused
def test_seeds_in_parts_side_by_side_equal_each_seed_trained_alone(tmp_path, monkeypatch):
    import kerlym.resources
    from kerlym.agents.fused import FusedGroup

    monkeypatch.setattr(kerlym.resources, "usable_cpus", lambda: 2)  # 3 seeds: parts [0, 1] and [2, 2]
    compiled = []
    compile_part = FusedGroup._compile
    monkeypatch.setattr(FusedGroup, "_compile", staticmethod(lambda *a: compiled.append(1) or compile_part(*a)))
    small = ["-c", "4", "--n_steps", "16", "--batch_size", "32", "--n_epochs", "2", "--steps", "256", "-q"]
    base = ["-e", "gymnax:CartPole-v1", "-a", "ppo", *small, "--eval_episodes", "3", "--checkpoint_every", "128"]
    assert main.main([*base, "--seed", "2", "--outdir", str(tmp_path / "alone")]) == 0
    assert main.main([*base, "--seeds", "0", "1", "2", "--outdir", str(tmp_path / "together")]) == 0
    assert len(compiled) == 1  # the program compiled ahead, as the first seed started its envs, is the one run
    (alone,) = os.listdir(tmp_path / "alone")
    (sweep,) = os.listdir(tmp_path / "together")

    def rows(*parts):
        with open(os.path.join(tmp_path, *parts, "progress.csv")) as f:
            return list(csv.DictReader(f))

    solo, grouped = rows("alone", alone), rows("together", sweep, "seed-2")
    assert len(solo) == len(grouped) > 5
    for a, b in zip(solo, grouped):  # the repeated seed's second copy changed nothing
        assert (a["episode"], a["total_steps"], a["reward"]) == (b["episode"], b["total_steps"], b["reward"])
        np.testing.assert_allclose(float(a["max_q"]), float(b["max_q"]), rtol=1e-4)
    assert rows("together", sweep, "seed-1") != grouped != rows("together", sweep, "seed-0")


@needs_fused
def test_ctrl_c_stops_a_fused_run_at_the_chunks_end_with_a_checkpoint(tmp_path):
    import signal

    from kerlym import runs, session

    run, cfg = configure("gymnax:CartPole-v1", "ppo", steps=64 * 40, checkpoint_every=64 * 10, quiet=True, **SMALL)
    agent = kerlym.make(run, cfg)
    run_dir = runs.new_run_dir(str(tmp_path), "fused", "ppo")

    def ctrl_c(agent):  # after the first chunk, as a user's Ctrl-C
        os.kill(os.getpid(), signal.SIGINT)

    outcome = session.train(agent, run, run_dir, step_callback=ctrl_c, signals=(signal.SIGINT,))
    # The first chunk ends at the first checkpoint's step; the signal stops training there, checkpointed.
    assert outcome.interrupted and outcome.evaluation is None and agent.total_steps == 640
    assert outcome.checkpoint.endswith("step-0000000640")
    resumed = kerlym.load(run_dir)
    assert (resumed.total_steps, resumed.episode) == (640, agent.episode)


@pytest.mark.slow
@needs_fused
def test_ctrl_c_stops_a_fused_seeds_sweep_with_a_checkpoint_per_seed(tmp_path):
    import signal
    import subprocess
    import sys

    argv = ["-e", "gymnax:CartPole-v1", "-a", "ppo", "--seeds", "0", "1", "--steps", "5000000"]
    env = {**os.environ, "KERAS_BACKEND": "jax", "MPLBACKEND": "Agg"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kerlym", *argv, "--outdir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    for line in proc.stdout:  # both seeds are training once the status lines come
        if "steps/s" in line:
            break
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert "Traceback" not in err
    assert "stopping every seed" in out and "continue with: kerlym --resume" in out
    (sweep,) = os.listdir(tmp_path)
    for seed in ("seed-0", "seed-1"):
        checkpoint, _ = kerlym.checkpoints.resumable_checkpoint(os.path.join(tmp_path, sweep, seed))
        assert 0 < int(os.path.basename(checkpoint).split("-")[1]) < 5_000_000


@needs_fused
def test_an_evaluation_compiled_ahead_plays_the_same_episodes_as_one_compiled_when_asked():
    agent = kerlym.make("gymnax:CartPole-v1", "ppo", **SMALL)
    agent.fused.begin(0, eval_episodes=3)  # the 3-episode evaluation compiles in a thread meanwhile
    assert list(agent.fused._prepared) == [3]
    ahead = agent.evaluate(3, seed=5)
    assert agent.fused._prepared[3].result() is not None  # it was the program evaluate() ran
    agent.fused._prepared.clear()
    np.testing.assert_array_equal(ahead, agent.evaluate(3, seed=5))
    assert ahead.shape == (3,) and (ahead >= 8).all()  # CartPole's shortest episode is 8 steps


@needs_fused
def test_the_fused_path_keeps_its_compiled_chunks_in_a_cache_folder_unless_told_not_to(tmp_path, monkeypatch):
    import jax

    from kerlym.agents.fused import use_compilation_cache

    before = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
        folder = str(tmp_path / "kerlym" / "jax")
        assert use_compilation_cache() == folder and os.path.isdir(folder)
        assert jax.config.jax_compilation_cache_dir == folder
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "mine"))  # the user's own is kept
        assert use_compilation_cache() == str(tmp_path / "mine")
        jax.config.update("jax_compilation_cache_dir", None)
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "")  # set but empty: no cache
        assert use_compilation_cache() is None and not jax.config.jax_compilation_cache_dir
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0  # every program kept, however quick
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


@needs_fused
def test_fused_a2c_takes_one_gradient_step_on_its_rollout_with_a2cs_loss():
    import jax

    small = dict(concurrency=4, n_steps=8, seed=0, learning_rate=1e-3, gae_lambda=0.9, ent_coef=0.01)
    agent = kerlym.make("gymnax:CartPole-v1", "a2c", **small)
    fused = agent.fused
    fused.begin(0)
    tv, ntv, ov = agent.steps.arrays()
    key = jax.random.key(3)
    _, (obs, actions, _, values, rewards, term, trunc, final, *_) = jax.jit(fused.rollout)(tv, ntv, fused.carry, key)
    row = np.asarray(jax.jit(fused.update)(tv, ntv, ov, fused.carry, key, 0.0)[4][4])[0]  # the same rollout
    # By hand: kerlym.memory.gae on the rollout, then A2C's loss on all 32 samples at the weights before the step.
    obs, final, actions = (np.asarray(x).reshape(32, *np.shape(x)[2:]) for x in (obs, final, actions))
    out, next_out = np.asarray(agent.model(obs), np.float64), np.asarray(agent.model(final), np.float64)
    values = np.asarray(values, np.float64)
    np.testing.assert_allclose(out[:, 2], values.ravel(), rtol=1e-5, atol=1e-6)
    adv = gae(np.asarray(rewards), values, next_out[:, 2].reshape(8, 4), np.asarray(term), np.asarray(trunc), 0.99, 0.9)
    returns = (adv + values).ravel()
    log_softmax = out[:, :2] - np.log(np.exp(out[:, :2]).sum(axis=1, keepdims=True))
    policy_loss = -np.mean(adv.ravel() * log_softmax[np.arange(32), actions])
    value_loss = np.mean((returns - out[:, 2]) ** 2)
    entropy = np.mean(-(np.exp(log_softmax) * log_softmax).sum(axis=1))
    expected = [policy_loss - 0.01 * entropy + 0.5 * value_loss, policy_loss, value_loss, entropy]
    np.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-6)
    rows = agent.learn(max_steps=32 * 5, verbose=0, eval_episodes=0)  # and as a run: 5 updates, their rows
    assert agent.total_steps == 160 and agent.updates == 5 and len(rows) >= 1
    assert all(float(r["reward"]) == r["length"] for r in rows)


@needs_fused
def test_fused_evaluation_reports_each_episode_and_takes_net_kwargs():
    agent = kerlym.make("gymnax:CartPole-v1", "ppo", **SMALL, net_kwargs={"net_arch": [16]})
    assert agent.fused is not None
    layers = [inner for layer in agent.model.layers for inner in getattr(layer, "layers", [layer])]  # the factory's
    widths = {layer.name: layer.units for layer in layers if isinstance(layer, keras.layers.Dense)}
    assert widths["pi_0"] == widths["vf_0"] == 16 and "pi_1" not in widths  # the compiled path's network
    seen = []
    returns = agent.evaluate(3, seed=0, on_episode=lambda i, total: seen.append((i, total)))  # one compiled call
    assert seen == list(enumerate(returns.tolist())) and len(seen) == 3
    agent.close()


@needs_fused
def test_a_chunk_asked_for_ahead_is_taken_only_if_asked_again_from_the_same_state():
    from kerlym.agents.fused import FusedGroup

    def grouped(prefetched: bool, nudge: bool):
        agent = kerlym.make("gymnax:CartPole-v1", "ppo", **SMALL)
        group = FusedGroup(1, parts=1)
        group.join(0, agent)
        run, runs = group._run, []
        group._run = lambda asked: runs.append(len(asked)) or run(asked)
        agent.fused.begin(0)
        agent.fused.train_chunk(2, None)
        if prefetched:  # as the runner asks, right after a chunk: it starts computing at once
            agent.fused.prefetch(2, None)
        if nudge:  # the weights changed through Keras meanwhile (a user's callback, say)
            agent.model.set_weights([w * 0.5 for w in agent.model.get_weights()])
        chunk = agent.fused.train_chunk(2, None)
        assert len(runs) == 2 + (prefetched and nudge)  # the chunk asked for ahead, dropped after the nudge
        return chunk.losses, [np.asarray(w) for w in agent.model.get_weights()]

    for nudge in (False, True):
        (losses, weights), (ahead, ahead_weights) = grouped(False, nudge), grouped(True, nudge)
        np.testing.assert_array_equal(losses, ahead)
        for a, b in zip(weights, ahead_weights):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(grouped(True, False)[0], grouped(True, True)[0])  # the nudge made a difference
