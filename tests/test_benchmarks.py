"""The benchmark scripts' pure helpers, whose arithmetic the published figures rest on."""

import importlib
import os
import sys

import gymnasium as gym
import numpy as np
import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks")


@pytest.fixture(scope="module")
def bench():
    """Import a benchmark script by name (they import one another as top-level modules)."""
    sys.path.insert(0, BENCHMARKS)
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(BENCHMARKS)


def test_settings_read_as_python_literals_else_strings(bench):
    results = bench("results")
    got = results.parse_settings(["learning_rate=1e-3", "modelfactory=zoo_mlp", "ema_steps=None", "note=a=b"])
    assert got == {"learning_rate": 0.001, "modelfactory": "zoo_mlp", "ema_steps": None, "note": "a=b"}
    assert results.parse_settings(["plots=True", "steps=2_000"]) == {"plots": True, "steps": 2000}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        results.parse_settings(["clipnorm"])
    # Settings may follow --seeds, whose values argparse would otherwise take them for.
    argv = ["--seeds", "0", "1", "learning_rate=3e-3", "--env=CartPole-v1", "replay=uniform"]
    assert results.split_settings(argv) == (["learning_rate=3e-3", "replay=uniform"], argv[:3] + ["--env=CartPole-v1"])


def test_learning_curve_is_the_mean_of_the_last_10_episodes_on_a_step_grid(bench):
    results = bench("results")
    steps = np.arange(1, 13) * 10  # 12 episodes ending at steps 10, 20, ..., 120
    rewards = np.arange(12.0)  # returns 0, 1, ..., 11
    grid, curve = results.learning_curve(steps, rewards, budget=120)
    assert len(grid) == results.GRID and grid[-1] == 120 and grid[0] == 120 / results.GRID
    assert curve[-1] == pytest.approx(np.mean(np.arange(2.0, 12.0)))  # episodes 3-12: 6.5
    # At step 60 the 6th episode has just ended: the mean of returns 0-5 is 2.5.
    assert np.interp(60, grid, curve) == pytest.approx(2.5)


def test_mountaincar_simulation_ends_episodes_where_the_env_does(bench):
    results = bench("results")
    env = gym.make("MountainCar-v0", max_episode_steps=1000).unwrapped
    rng = np.random.default_rng(0)
    # Random pushes rarely reach the flag; a push with the velocity (pumping energy) always does.
    actions = rng.integers(0, 3, size=(3, 200))
    for seed in (0, 1):
        env.reset(seed=seed)
        position = float(env.state[0])
        pumped, velocity, terminated = [], 0.0, False
        while not terminated:
            pumped.append(2 if velocity >= 0 else 0)
            (_, velocity), _, terminated, _, _ = env.step(pumped[-1])
        plans = np.vstack([actions, np.array(pumped + [1] * (200 - len(pumped)))])
        lengths = results.episode_lengths(position, plans)
        for plan, length in zip(plans, lengths):
            env.reset(seed=seed)
            ended = [t for t, action in enumerate(plan, start=1) if env.step(action)[2]]  # steps on past the flag
            assert length == (ended[0] if ended else 201)
        assert lengths[-1] == len(pumped) < 200


def test_shortest_mountaincar_episode_needs_two_switches(bench):
    results = bench("results")
    position = -0.5
    assert results.shortest_episode(position, switches=0) == 141  # full right from rest never gets there
    assert results.shortest_episode(position, switches=1) == 141  # nor does one push back, then forward
    swing = results.episode_lengths(position, np.array([[2] * 30 + [0] * 30 + [2] * 80]))[0]  # forward, back, forward
    assert swing == 109
    assert results.shortest_episode(position) == 102  # what the search finds; the swing above is 7 steps slower


def test_solve_check_stops_once_475_is_out_of_reach(bench):
    speed = bench("speed")
    played = []

    def play(returns):
        return lambda seed: played.append(seed) or returns[seed - 100]

    assert speed.solves(play([500.0] * 19 + [0.0]), episodes=20, seed=100)  # mean exactly 475
    played.clear()
    assert not speed.solves(play([0.0, 0.0] + [500.0] * 18), episodes=20, seed=100)
    assert played == [100, 101]  # after one 0, 19 * 500 could still make 20 * 475; after two it cannot


def test_cleanrl_output_gives_loop_seconds_and_episodes(bench):
    speed = bench("speed")
    out = "\n".join(
        [f"global_step={10 * i}, episodic_return=[{float(i)}]" for i in range(1, 13)]
        + ["SPS: 900", "SPS: 1250", "global_step=49999, episodic_return=[500.]"]
    )
    row = speed.parse_cleanrl(out, steps=50_000)
    assert row["seconds"] == 40.0  # 50,000 steps at the last printed 1250 steps/s
    assert row["steps_per_s"] == 1250.0
    assert row["episodes"] == 13
    assert row["train_return"] == pytest.approx((sum(range(4, 13)) + 500.0) / 10)
    with pytest.raises(ValueError, match="SPS"):
        speed.parse_cleanrl("global_step=10, episodic_return=[9.]", steps=50_000)


def test_cleanrl_summary_judges_the_whole_process_and_gives_cpu_time(bench):
    speed = bench("speed")
    rows = []
    pairs = [((20.0, 30.0, 12.0), (30.0, 40.0, 24.0)), ((25.0, 36.0, 15.0), (30.0, 40.0, 20.0))]  # loop, whole, CPU s
    for seed, (mine, ref) in enumerate(pairs):
        for system, (loop, whole, cpu) in (("kerlym DQN", mine), ("CleanRL dqn_jax.py", ref)):
            row = {"part": "cleanrl", "system": system, "backend": "jax", "seed": seed, "pair": f"{seed}/jax"}
            rows.append(row | {"seconds": loop, "process_s": whole, "process_cpu_s": cpu, "train_return": 1.0})
        rows[-2] |= {"ratio": loop / ref[0], "updates": 9001, "steps": 100_000}
    lines = speed.cleanrl_summary(rows)
    # whole: 30/40 and 36/40, mean 0.825 > 0.7; loop 20/30 and 25/30; CPU 12/24 and 15/20
    assert "33.0 s / 40.0 s = **0.82x** ± 0.08 (loop 0.75x ± 0.08) | **no** |" in lines[-1]
    assert "CPU time of the whole process 0.62x ± 0.12" in lines[2]


def test_cleanrl_settings_always_hold_enough_transitions_to_learn(bench):
    import kerlym
    from kerlym.memory import ReplayMemory

    speed = bench("speed")
    settings = speed.cleanrl_dqn_settings(50_000)
    _, config = kerlym.configure("CartPole-v1", "dqn", seed=1, **settings)  # accepted as it is
    assert (config.update_freq, config.update_nsamp, config.batch_size) == (10, 128, 128)  # 1 step of 128 every 10
    assert config.epsilon_decay_steps == 25_000 and config.target_update_freq == 500

    def held(max_memory: int, episode_steps: int) -> int:
        """Transitions a ring of ``max_memory`` frames holds after 12,000 episodes of ``episode_steps`` steps."""
        memory = ReplayMemory(max_memory, (4,), np.float32, nframes=1)
        frame = np.ones(4, np.float32)
        for _ in range(12_000 // episode_steps + 1):
            memory.start_episode(frame)
            for _ in range(episode_steps):
                memory.add(0, 1.0, False, frame)
        return len(memory)

    # CartPole's shortest episodes: every 9th frame begins an episode; 12,000 * 8 / 9 = 10,666.
    assert held(config.max_memory, 8) == 10_666 >= config.learning_starts
    assert held(10_001, 8) == 8_889 < config.learning_starts  # one frame over 10,000 would never learn


def test_pong_settings_become_command_flags_the_command_reads_back(bench):
    from kerlym import main
    from kerlym import settings as S

    pong = bench("pong")
    settings = {"dtype_policy": "mixed_bfloat16", "max_memory": 50_000, "plots": False, "reset_on_score": True}
    flags = pong.command_flags(settings)
    assert flags == ["--dtype_policy", "mixed_bfloat16", "--max_mem", "50000", "--no-plots", "--pong_reset", "1"]
    given = S.given_settings(main.build_parser().parse_args(flags))
    assert {k: given[k] for k in settings} == settings
    with pytest.raises(ValueError, match="no setting"):
        pong.command_flags({"max_mem": 1})


# SB3's PPO and A2C defaults (stable_baselines3 2.x), which the RL Zoo's entries leave in place.
SB3_DEFAULTS = {
    "ppo": dict(learning_rate=3e-4, n_steps=2048, batch_size=64, n_epochs=10, gamma=0.99, gae_lambda=0.95,
                clip_range=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=True),
    "a2c": dict(learning_rate=7e-4, n_steps=5, gamma=0.99, gae_lambda=1.0, ent_coef=0.0, vf_coef=0.5,
                max_grad_norm=0.5, normalize_advantage=False),
}  # fmt: skip


# Where a preset departs from its Zoo entry on purpose (benchmarks/README.md says why): Pendulum's A2C entry
# starts gSDE at log_std -2; without gSDE, kerlym's plain Gaussian starting there scored -912 to -1061
# (from 0: -156 to -531).
KNOWN_DIFFERENCES = {("Pendulum-v1", "a2c"): {"log_std_init": 0.0}}


def test_actor_critic_presets_are_the_rl_zoo_entries(bench):
    """Every A2C/PPO row's kerlym preset says what its RL Zoo entry (with SB3's defaults) says."""
    import kerlym

    results = bench("results")
    for (env_id, agent), zoo in results.SB3_ZOO_AC.items():
        entry = {**SB3_DEFAULTS[agent], "n_envs": 1, "normalize": False, **zoo}
        run, cfg = kerlym.configure(env_id, agent, preset=True, cli_defaults=True, seed=0)
        lr = str(entry["learning_rate"])
        clip = str(entry.get("clip_range", ""))
        want = {
            "concurrency": entry["n_envs"],
            "n_steps": entry["n_steps"],
            "discount": entry["gamma"],
            "gae_lambda": entry["gae_lambda"],
            "ent_coef": entry["ent_coef"],
            "vf_coef": entry["vf_coef"],
            "clipnorm": entry["max_grad_norm"],
            "normalize_advantage": entry["normalize_advantage"],
            "normalize_obs": bool(entry["normalize"]),
            "normalize_reward": bool(entry["normalize"]),
            "learning_rate": float(lr.removeprefix("lin_")),
            "lr_schedule": "linear" if lr.startswith("lin_") else "constant",
            "steps": results.RL_ZOO_AC[(env_id, agent)][1],
            "log_std_init": entry.get("policy_kwargs", {}).get("log_std_init", 0.0),
            **KNOWN_DIFFERENCES.get((env_id, agent), {}),
        }
        if agent == "ppo":
            want.update(batch_size=entry["batch_size"], n_epochs=entry["n_epochs"])
            want.update(clip_range=float(clip.removeprefix("lin_")))
            want.update(clip_schedule="linear" if clip.startswith("lin_") else "constant")
        got = {name: getattr(cfg, name) if hasattr(cfg, name) else getattr(run, name) for name in want}
        assert got == pytest.approx(want), f"{env_id} {agent}"


def test_rl_zoo_entries_become_sb3_settings(bench):
    results = bench("results")
    kw, n_envs, normalize = results.sb3_settings(results.SB3_ZOO_AC[("CartPole-v1", "ppo")])
    assert n_envs == 8 and normalize is None and kw["n_epochs"] == 20
    assert kw["learning_rate"](1.0) == 1e-3 and kw["learning_rate"](0.25) == 2.5e-4  # SB3 passes what remains
    assert kw["clip_range"](0.5) == 0.1
    kw, n_envs, normalize = results.sb3_settings(results.SB3_ZOO_AC[("Pendulum-v1", "a2c")])
    assert (n_envs, normalize, kw["gamma"]) == (8, {"gamma": 0.9}, 0.9)  # VecNormalize discounts as the agent
    assert kw["policy_kwargs"] == {"log_std_init": -2, "ortho_init": False} and kw["use_sde"]


def test_actor_critic_summary_compares_with_sb3_here(bench):
    results = bench("results")
    row = lambda agent, seed, score: {"env": "CartPole-v1", "agent": agent, "seed": seed, "eval_mean": score}  # noqa: E731
    rows = [row("ppo", 0, 500.0), row("ppo", 1, 400.0), row("sb3-ppo", 0, 500.0), row("sb3-ppo", 1, 500.0)]
    rows += [row("a2c", 0, 500.0)]
    lines = results.summary_ac(rows).splitlines()
    assert lines[2] == (
        "| CartPole-v1 | ppo | 100k | 450.0 ± 50.0 (2 seeds) | 500.0 ± 0.0 (2 seeds) | 500.0 | **no** (450.0 < 500.0) |"
    )
    assert lines[3] == "| CartPole-v1 | a2c | 500k | 500.0 ± 0.0 (1 seeds) | not run | 500.0 | - |"


def test_env_results_rows_average_over_seeds_and_judge_the_goals(bench):
    env_results = bench("env_results")
    go = [
        {"agent": "ppo", "steps": "200000", "wall_s": "100", "random_games": "100", "random_win": "0.9"},
        {"agent": "ppo", "steps": "200000", "wall_s": "140", "random_games": "100", "random_win": "1.0"},
    ]
    go[0].update(gnugo_games="100", gnugo_win="0.02")
    line = env_results.go_summary(go).splitlines()[-1]
    # (0.9 + 1.0) / 2 = 95.0% meets the 95% goal; std 5.0%; GnuGo only from the seed that played it.
    assert "| 95.0% ± 5.0% (100 games a seed) | 2 | yes | 2.0% over 100 games (1 seed) | 120 s |" in line
    radio = [
        {"env": "RadioSearch-v0", "agent": "dqn", "steps": "50000", "wall_s": "60", "eval_mean": m, "found_mean": f}
        | {"sweep_mean": "0.89", "oracle_mean": "0.93"}
        for m, f in (("0.8", "0.9"), ("0.9", "1.0"))
    ]
    line = env_results.radio_summary(radio).splitlines()[-1]
    # Two seeds 0.8 and 0.9: standard error 0.0707 / sqrt(2) = 0.05, so 0.85 is within 2 s.e. of the sweep's 0.89,
    # but below it.
    short = "**no** (+0.850 < +0.890, within 2 s.e. over seeds)"
    assert f"| +0.850 ± 0.050 | 0.950 ± 0.050 | 2 | +0.890 | +0.930 | {short} | 60 s |" in line
    assert env_results.beats([0.8, 0.9], 0.74) == "yes (by 0.110)"  # 0.11 > 2 x 0.05
    assert env_results.beats([0.8, 0.9], 0.96) == "**no** (+0.850 < +0.960)"
    assert env_results.beats([0.8], 0.79) == "yes (by 0.010)"  # one seed: no spread to weigh
    assert env_results.beats([0.87, 0.88], 0.869) == "**tie** (+0.875 vs +0.869, within 2 s.e. over seeds)"
    # Below the baseline is "no" even within the noise: one failed seed widens the spread.
    assert env_results.beats([0.5, 0.4, -1.0], 0.67) == "**no** (-0.033 < +0.670, within 2 s.e. over seeds)"


def test_env_results_keeps_each_episodes_final_info(bench):
    from kerlym.envs import register

    register()
    env = bench("env_results").LastInfo(gym.make("RadioSearch-v0"))
    env.reset(seed=0)
    for _ in range(100):  # zoom in at the narrowest span is a no-op: the episode is truncated at 100 steps
        _, _, terminated, truncated, _ = env.step(2)
    assert truncated and not terminated
    assert len(env.finals) == 1 and env.finals[0]["found"] == 0


def test_fused_summary_judges_the_goals(bench):
    speed = bench("speed")
    one, many, sb3 = (
        "kerlym fused PPO gymnax:CartPole-v1, 1 seed",
        "kerlym fused PPO gymnax:CartPole-v1, 16 seeds",
        "SB3 PPO CartPole-v1 (RL Zoo), 1 seed",
    )
    rows = [
        {"part": "fused", "system": one, "process_s": 24.0, "ratio": 0.24, "eval": 500.0, "eval_std": 0.0},
        {"part": "fused", "system": many, "process_s": 90.0, "ratio": 0.9, "eval": 470.0, "eval_std": 20.0},
        {"part": "fused", "system": sb3, "process_s": 100.0, "ratio": 1.0, "eval": 500.0},
    ]
    lines = speed.fused_summary(rows)
    assert lines[2] == f"| {one} | 24.0 ± 0.0 s | 0.24x ± 0.00 | 500.0 ± 0.0 | goals met: yes"
    # 16 seeds within the time, but a mean greedy return under 475: not met.
    assert lines[3] == f"| {many} | 90.0 ± 0.0 s | 0.90x ± 0.00 | 470.0 ± 20.0 | goals met: **no**"
    assert lines[4] == f"| {sb3} | 100.0 ± 0.0 s | 1.00x ± 0.00 | 500.0 |"


def test_alphazero_loss_by_hand(bench):
    az = bench("alphazero")
    # legal actions 0 and 1, equal logits: log-softmax -log 2 each; visit distribution (0.5, 0.5); value 0.5 to 1
    y_true = np.array([[0.5, 0.5, 0.0, 1, 1, 0, 1.0]], dtype=np.float32)
    y_pred = np.array([[0.0, 0.0, 5.0, 0.5]], dtype=np.float32)
    loss = float(np.asarray(az.search_targets_loss(3)(y_true, y_pred)))
    assert loss == pytest.approx(np.log(2) + 0.25, abs=1e-5)


def test_alphazero_value_targets_are_the_outcome_from_the_movers_side(bench):
    pyspiel = pytest.importorskip("pyspiel", reason="OpenSpiel games need the .[games] extra")
    az = bench("alphazero")
    state = pyspiel.load_game("tic_tac_toe").new_initial_state()
    movers = []
    for action in (0, 3, 1, 4, 2):  # X takes the top row; O loses
        movers.append(state.current_player())
        state.apply_action(action)
    np.testing.assert_array_equal(az.mover_outcomes(state.returns(), movers), [1, -1, 1, -1, 1])
    np.testing.assert_array_equal(az.mover_outcomes([0.0, 0.0], [0, 1, 0]), [0, 0, 0])  # a draw


def test_alphazero_policy_targets_are_a_seeded_searchs_visits(bench):
    pytest.importorskip("pyspiel", reason="OpenSpiel games need the .[games] extra")
    from kerlym import puct

    az = bench("alphazero")
    args = az.parser().parse_args(["--simulations", "16", "--games-per-update", "1", "--batch-size", "8"])
    ei = az.ExpertIteration(az.make_agent("tic_tac_toe", "alphazero", 0, 1e-3), args, seed=0)
    state = ei.game.new_initial_state()
    for action in (0, 3, 1, 4):  # X to move, X at 2 wins
        state.apply_action(action)
    root = puct.search(state, ei.positions, ei.env.search_observation, 16, seed=7, dirichlet_noise=(0.25, 1.0))
    expected = puct.visit_counts(root, 9)
    counts = ei.visits(state, seed=7)
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() == 15 and counts[[0, 1, 3, 4]].sum() == 0 and counts.argmax() == 2
    obs, masks, targets, outcomes = ei.play_game()
    np.testing.assert_allclose(targets.sum(axis=1), 1.0)
    assert not (targets * ~masks).any()  # no visits to an illegal move
    assert set(np.abs(outcomes)) <= {0.0, 1.0} and len(obs) == len(outcomes) >= 5
    if outcomes[-1]:  # the last mover won, and its opponent's positions lost
        np.testing.assert_array_equal(
            outcomes, [1 if (len(outcomes) - 1 - i) % 2 == 0 else -1 for i in range(len(outcomes))]
        )
    before = ei.model.predict_on_batch(obs)
    ei.window.append((obs, masks, targets, outcomes))
    ei.train_step(len(obs))
    assert ei.updates >= 1 and not np.allclose(before, ei.model.predict_on_batch(obs))
    ei.agent.close()


def test_alphazero_table_pools_the_seeds_games(bench):
    az = bench("alphazero")
    row = {"game": "tic_tac_toe", "method": "alphazero", "cpu_budget": 120.0, "opponent": "mcts:200", "search": 64}
    rows = [
        {**row, "wins": 15, "draws": 35, "losses": 0, "win_rate": 0.3, "mean": 0.3},
        {**row, "wins": 5, "draws": 40, "losses": 5, "win_rate": 0.1, "mean": 0.0},
    ]
    (line,) = az.table(rows)[2:]
    # win rates 0.3 and 0.1: mean 0.2, std 0.1; 20 wins in 100 games, Wilson 95% 0.13-0.29
    assert line == (
        "| tic_tac_toe | alphazero | 120 | mcts:200 | 64 | 2 | 0.20 ± 0.10 | 0.15 ± 0.15 "
        "| 20 / 75 / 5 | 0.20 (0.13-0.29) |"
    )
