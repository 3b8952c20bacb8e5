"""The fused JAX path for DQN and D2QN (kerlym.agents.fused_dqn): env steps, replay and updates in compiled chunks."""

import csv
import importlib.util
import os

import keras
import numpy as np
import pytest

import kerlym
from kerlym import main
from kerlym.agents.dqn import decayed_epsilon, linear_epsilon

ON_JAX = keras.config.backend() == "jax"
HAVE_FUSED = all(importlib.util.find_spec(m) is not None for m in ("jax", "gymnax", "flashbax"))
pytestmark = pytest.mark.skipif(
    not (ON_JAX and HAVE_FUSED), reason='needs KERAS_BACKEND=jax, gymnax and flashbax: pip install ".[jax]"'
)

# A small DQN on gymnax's CartPole: an update of 2 gradient steps of 16 samples every 8 env steps.
SMALL = dict(
    seed=0, nframes=1, dropout=0.0, batch_size=16, update_freq=8, update_nsamp=32, max_memory=256,
    learning_starts=64, epsilon=1.0, epsilon_min=0.1, epsilon_decay_steps=400, target_update_freq=40,
    replay="uniform", loss="mse", learning_rate=1e-3,
)  # fmt: skip
SMALL_ARGV = ["-e", "gymnax:CartPole-v1", "-q", "--eval_episodes", "3", "--nframes", "1", "--dropout", "0"]
SMALL_ARGV += ["--batch_size", "16", "--update_freq", "8", "--update_size", "32", "--max_mem", "256"]
SMALL_ARGV += ["--learning_starts", "64", "-p", "1.0", "-s", "0.1", "--exploration_steps", "400"]
SMALL_ARGV += ["--target_update", "40", "--replay", "uniform", "--learning_rate", "1e-3"]


def constant_q(agent, online_bias, target_bias):
    """Every weight 0 but the output layer's bias: Q(s) = that bias for any s, online and target."""
    weights = [np.zeros_like(w) for w in agent.model.get_weights()]
    assert weights[-1].shape == (2,)
    agent.model.set_weights(weights[:-1] + [np.array(online_bias, np.float32)])
    agent.steps.sync_target()
    target_tv = list(agent.steps.target_tv)
    target_tv[-1] = np.array(target_bias, np.float32)
    agent.steps.set_target_arrays(target_tv, agent.steps.target_ntv)


@pytest.mark.parametrize("name, expected", [("dqn", 6.25), ("ddqn", 0.2425)])
def test_the_update_in_the_scan_has_the_hand_computed_td_and_double_q_targets(name, expected):
    import jax

    agent = kerlym.make("gymnax:CartPole-v1", name, **{**SMALL, "batch_size": 4, "update_nsamp": 4, "discount": 0.9})
    # Online Q = [3, 1] and target Q = [2, 5] everywhere. DQN bootstraps from max target Q = 5; D2QN from the
    # target's value of the online network's choice (action 0): 2.
    constant_q(agent, [3.0, 1.0], [2.0, 5.0])
    states = np.random.default_rng(0).normal(size=(1, 4, 4)).astype(np.float32)
    actions = np.array([[0, 1, 1, 0]], np.int32)
    rewards = np.array([[1.0, 0.5, -1.0, 2.0]], np.float32)
    terminated = np.array([[False, True, False, False]])
    batch = (states, actions, rewards, states[:, ::-1], terminated)
    tv, ntv, ov = agent.steps.arrays()
    rows = jax.jit(agent.steps.update_arrays)(tv, ntv, ov, agent.steps.target_tv, agent.steps.target_ntv, batch)[3]
    # DQN: y = r + 0.9 * 5 * (1 - terminated) = [5.5, 0.5, 3.5, 6.5] against Q(s, a) = [3, 1, 1, 3]: mean 25 / 4.
    # D2QN: y = r + 0.9 * 2 * (1 - terminated) = [2.8, 0.5, 0.8, 3.8]: errors [-0.2, -0.5, -0.2, 0.8], mean 0.97 / 4.
    np.testing.assert_allclose(np.asarray(rows).ravel()[0], expected, rtol=1e-5)


def test_the_buffer_holds_each_step_exactly_in_ring_order():
    import jax

    small = {**SMALL, "update_freq": 40, "update_nsamp": 16, "max_memory": 24}
    agent = kerlym.make("gymnax:CartPole-v1", "dqn", **small)
    fused = agent.fused
    fused.begin(3)
    first_obs = np.asarray(fused.carry.obs)[0]
    tv, ntv, ov = agent.steps.arrays()
    _, _, _, carry, out = jax.jit(fused.unit)(tv, ntv, ov, fused.carry, jax.random.key(1), 0, 0)
    done, trained = np.asarray(out[0])[:, 0], bool(out[7])
    buffer = carry.buffer
    assert trained and int(buffer.current_index) == 40 % 24 and bool(buffer.is_full)
    ring = [np.asarray(x)[0] for x in buffer.experience]  # obs, action, reward, next_obs, terminated
    order = (int(buffer.current_index) + np.arange(24)) % 24  # oldest to newest: steps 16 .. 39
    obs, action, reward, next_obs, terminated = (x[order] for x in ring)
    env, params = fused.env, fused.params
    _, state = env.reset(jax.random.key(0), params)
    step = jax.jit(jax.vmap(env.step_env, in_axes=(None, 0, 0, None)))  # compiled as the chunk compiles it
    for k in range(24):  # CartPole's observation is its whole state, so each step can be made again from it
        x, x_dot, theta, theta_dot = (obs[k : k + 1, i] for i in range(4))
        state = state.replace(x=x, x_dot=x_dot, theta=theta, theta_dot=theta_dot, time=np.zeros(1, np.int32))
        again, _, r, d, _ = step(jax.random.key(0), state, action[k : k + 1], params)
        again, r, d = np.asarray(again)[0], np.asarray(r)[0], np.asarray(d)[0]
        # The same physics to float32 rounding: XLA fuses the chunk's arithmetic its own way (1 ulp apart).
        np.testing.assert_allclose(next_obs[k], again, rtol=1e-6, atol=1e-7)
        assert (reward[k], terminated[k]) == (float(r), bool(d)) and terminated[k] == done[16 + k]
        if k + 1 < 24 and not terminated[k]:  # the next step starts where this one ended
            np.testing.assert_array_equal(obs[k + 1], next_obs[k])
    assert set(action.tolist()) <= {0, 1} and first_obs.shape == (4,)


def test_units_before_learning_starts_only_collect_and_give_the_same_results_alone_and_in_a_group():
    import jax
    import jax.numpy as jnp

    agents = [kerlym.make("gymnax:CartPole-v1", "dqn", **{**SMALL, "seed": seed, "ema_steps": 100}) for seed in (0, 1)]
    for seed, agent in enumerate(agents):
        agent.fused.begin(seed)
    # 64 transitions to learn from, 8 a unit: units 0 .. 6 end with 8 .. 56 held, unit 7 with 64, and trains.
    assert [agent.fused.collect_units() for agent in agents] == [7, 7]
    fused = agents[0].fused
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[agent.fused.inputs(None) for agent in agents])
    group = jax.jit(jax.vmap(lambda *args: fused.chunk(12, *args), in_axes=(0, 0, 0, 0, 0, 0, None, 0, None)))
    limits = jnp.zeros(2, jnp.int32)

    def plain(outs):  # NumPy arrays (a key as its data)
        is_key = lambda x: jnp.issubdtype(x.dtype, jax.dtypes.prng_key)  # noqa: E731
        return jax.device_get(jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, outs))

    every_unit_updates = plain(group(*stacked, 12, limits, 0))  # the update computed and thrown away
    collecting_first = plain(group(*stacked, 12, limits, 7))
    jax.tree.map(np.testing.assert_array_equal, every_unit_updates, collecting_first)
    trained = np.asarray(collecting_first[-1][-1])  # [seeds, units]
    assert not trained[:, :7].any() and trained[:, 7:].all()
    losses = np.asarray(collecting_first[-1][-2]).reshape(2, 12, 2, -1)  # [seeds, units, gradient steps, rows]
    assert (losses[:, :7] == 0).all() and (losses[:, 7:, :, 0] > 0).all()
    # Seed 1 alone: its own compiled chunk, collecting first, gives what it gives in the group.
    alone = plain(jax.jit(fused.chunk, static_argnums=0)(12, *agents[1].fused.inputs(None), 12, 0, 7))
    in_group = jax.tree.map(lambda x: x[1], collecting_first)
    _, _, _, carry_alone, _, outs_alone = alone
    _, _, _, carry_group, _, outs_group = in_group
    jax.tree.map(np.testing.assert_array_equal, carry_alone.buffer, carry_group.buffer)
    for a, b in zip(outs_alone[:3] + outs_alone[5:], outs_group[:3] + outs_group[5:]):  # all but the Q sums
        np.testing.assert_allclose(a, b, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), alone[:3], in_group[:3])


def test_epsilon_schedules_match_the_gymnasium_dqns():
    from kerlym.agents.fused_dqn import decayed_epsilon_after, linear_epsilon_at

    schedule = linear_epsilon(1.0, 0.05, 1000)
    for step in (0, 1, 250, 999, 1000, 5000):
        assert float(linear_epsilon_at(1.0, 0.05, 1000, step)) == pytest.approx(schedule(step), abs=1e-7)
    eps = 0.5
    for ended in range(4):
        np.testing.assert_allclose(float(decayed_epsilon_after(0.5, ended, 0.3, 0.2)), eps, rtol=1e-6)
        eps = decayed_epsilon(0, eps, 0.3, 0.2)  # 0.5, 0.35, 0.245, 0.2 (the floor)
    assert float(decayed_epsilon_after(0.01, 0, 0.3, 0.2)) == pytest.approx(0.01)  # no episode ended: unchanged
    # In a run, each episode's row shows the epsilon of its last step: linear in the steps taken.
    agent = kerlym.make("gymnax:CartPole-v1", "dqn", **SMALL)
    rows = agent.learn(max_steps=480, verbose=0, eval_episodes=0)
    assert len(rows) > 10 and agent.total_steps == 480
    for row in rows:
        expected = linear_epsilon(1.0, 0.1, 400)(row["total_steps"])
        assert row["epsilon"] == pytest.approx(expected, abs=1e-6)
    assert agent.epsilon == pytest.approx(0.1) and agent.updates == (480 - 64) // 8 + 1
    # Per-episode decay (-D): each row shows epsilon before its own episode's decay.
    agent = kerlym.make("gymnax:CartPole-v1", "dqn", **{**SMALL, "epsilon_decay_steps": None, "epsilon_decay": 0.1})
    rows = agent.learn(max_steps=160, verbose=0, eval_episodes=0)
    shown = [r["epsilon"] for r in rows]
    np.testing.assert_allclose(shown, [max(0.1, 0.9**k) for k in range(len(rows))], rtol=1e-5)


def read_rows(run):
    with open(os.path.join(run, "progress.csv")) as f:
        return [{k: r[k] for k in ("episode", "total_steps", "reward", "epsilon", "loss")} for r in csv.DictReader(f)]


def only(folder):
    (name,) = os.listdir(folder)
    return os.path.join(folder, name)


def test_a_checkpoint_reloads_identically_and_a_resumed_run_continues_exactly(tmp_path):
    argv = [*SMALL_ARGV, "-a", "ddqn", "--seed", "0", "--save_memory", "--ema", "100"]
    assert main.main([*argv, "--steps", "480", "--outdir", str(tmp_path / "straight")]) == 0
    assert main.main([*argv, "--steps", "240", "--outdir", str(tmp_path / "resumed")]) == 0
    resumed = only(tmp_path / "resumed")
    loaded, again = kerlym.load(resumed), kerlym.load(resumed)
    assert loaded.fused is not None and loaded.total_steps == 240 and loaded.ema is not None
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(loaded.model(x)), np.asarray(again.model(x)))
    np.testing.assert_array_equal(loaded.evaluate(3, seed=7), again.evaluate(3, seed=7))
    assert main.main(["--resume", resumed, "--steps", "480"]) == 0
    straight = only(tmp_path / "straight")
    a_rows, b_rows = read_rows(straight), read_rows(resumed)
    first = next(i for i, r in enumerate(b_rows) if int(r["total_steps"]) > 240)
    # A row's loss is the mean over the updates since the row before, in this session: the first row after
    # the resume leaves out the updates before the checkpoint (as on the Gymnasium path).
    a_rows[first].pop("loss"), b_rows[first].pop("loss")
    assert a_rows == b_rows  # every episode, its epsilon and loss, as one run's
    a, b = kerlym.load(straight), kerlym.load(resumed)
    assert a.total_steps == b.total_steps == 480 and a.updates == b.updates
    for net in ("model", "target_model", "ema_model"):
        for w, v in zip(getattr(a, net).get_weights(), getattr(b, net).get_weights()):
            np.testing.assert_array_equal(w, v)


def test_episodes_that_end_in_the_first_update_of_a_run_are_rows_and_the_run_checkpoints(tmp_path):
    # A unit of 64 env steps: CartPole's random episodes (about 22 steps) end in the run's first unit, before
    # any chunk has given the agent its last update's metrics.
    argv = [*SMALL_ARGV, "-a", "dqn", "--seed", "0", "--update_freq", "64", "--steps", "256"]
    assert main.main([*argv, "--outdir", str(tmp_path)]) == 0
    run = only(tmp_path)
    steps = [int(r["total_steps"]) for r in read_rows(run)]
    assert steps[0] < 64 and steps == sorted(steps) and len(steps) >= 4
    assert kerlym.load(run).total_steps == 256


@pytest.mark.slow
def test_seed_1_trained_in_a_group_of_two_equals_seed_1_alone(tmp_path):
    base = [*SMALL_ARGV, "-a", "dqn", "--steps", "400"]
    assert main.main([*base, "--seed", "1", "--outdir", str(tmp_path / "alone")]) == 0
    assert main.main([*base, "--seeds", "0", "1", "--outdir", str(tmp_path / "together")]) == 0
    sweep = only(tmp_path / "together")
    solo, grouped = read_rows(only(tmp_path / "alone")), read_rows(os.path.join(sweep, "seed-1"))
    assert len(solo) == len(grouped) > 5
    for a, b in zip(solo, grouped):  # the vmapped program computes what seed 1 computes alone
        assert (a["episode"], a["total_steps"], a["reward"]) == (b["episode"], b["total_steps"], b["reward"])
        np.testing.assert_allclose(float(a["loss"] or "nan"), float(b["loss"] or "nan"), rtol=1e-4)
    assert read_rows(os.path.join(sweep, "seed-0")) != grouped


def test_seeds_whose_buffers_do_not_fit_are_refused_in_one_line(tmp_path, monkeypatch, capsys):
    from kerlym import resources

    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 10 * 2**20)  # 10 MiB free
    argv = [*SMALL_ARGV, "-a", "dqn", "--max_mem", "100000", "--steps", "400", "--outdir", str(tmp_path)]
    assert main.main([*argv, "--seeds", "0", "1", "2"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    # 3 x 100,000 x (2 observations of 4 float32, an action, a reward, a flag: 41 bytes) = 11.7 MiB
    assert line == (
        "kerlym: error: 3 seeds' replay buffers of 100,000 transitions need 12 MiB, and 10 MiB is free: "
        "lower --max_mem or the number of seeds"
    )
    assert os.listdir(tmp_path) == []  # refused before any folder was made
    argv[argv.index("100000")] = "1000000"  # one seed's 39 MiB
    assert main.main([*argv, "--seed", "0"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("kerlym: error: a replay buffer of 1,000,000 transitions needs 39 MiB, and 10 MiB is free")
    assert os.listdir(tmp_path) == []


def test_settings_the_fused_dqn_does_not_take_are_refused_in_one_line(tmp_path, capsys):
    argv = [*SMALL_ARGV, "-a", "dqn", "-c", "3", "--n_step", "3", "--outdir", str(tmp_path)]
    assert main.main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    expected = "does not take --n_step above 1, -f 8 (not a multiple of -c 3)"
    assert line == f"kerlym: error: the fused JAX path (-e gymnax:CartPole-v1) {expected}"
    assert os.listdir(tmp_path) == []
