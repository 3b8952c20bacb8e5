"""The results rows of kerlym's own environments: Go9x9-v0 and RadioSearch, presets against their baselines.

    python benchmarks/env_results.py                                # every row, the default seeds
    python benchmarks/env_results.py --env Go9x9-v0 --agent ppo     # one row
    python benchmarks/env_results.py --env RadioSearch-v0 --seeds 0 1 2
    python benchmarks/env_results.py --summary                      # the tables from the saved CSVs
    python benchmarks/env_results.py --env RadioSearch-v0 --agent dqn update_nsamp=512   # a variant: printed only

Each row trains an agent with the settings of ``kerlym -e ENV -a AGENT --preset --seed S``
(``kerlym.configure(ENV, AGENT, preset=True, cli_defaults=True, seed=S)``) for the preset's step
budget, then evaluates it greedily:

- **Go9x9-v0** (the presets train against the ``random`` opponent): the win rate over
  ``--games`` games (default 100) against ``random``, then over the same number against
  ``gnugo:0`` (GnuGo 3.8 at level 0, the env's default opponent), each game seeded
  ``10_000 + 1000 * seed + i``. ``--gnugo-seeds`` picks the seeds that also play GnuGo (default:
  the first), since GnuGo's ~50 ms a move makes those games the slow part. Needs OpenSpiel
  (``pip install ".[go]"``) and GnuGo (``apt-get install gnugo``).
- **RadioSearch-v0 / RadioSearchHard-v0**: the mean return and the mean number of signals found
  over ``--episodes`` episodes (default 300), episode ``i`` seeded ``seed_base + i`` as in
  ``benchmarks/radio_baselines.py``, so every seed of every agent searches the same bands as the
  ``sweep`` and ``oracle`` baselines, which this script also plays (once; they do not learn).
  The same episodes are then played acting as in training (PPO sampling its policy, DQN
  epsilon-greedy at its final epsilon), saved as ``sampled_mean`` and ``sampled_found``.

Settings given as ``KEY=VALUE`` (:mod:`kerlym.config` field names, values read as Python literals, else
as strings) change the preset: such a variant is printed, never saved into the tables.

A row is the mean ± std across training seeds of each seed's evaluation mean. Results go to
``benchmarks/results/go_results.csv`` and ``benchmarks/results/radio_results.csv`` (one line per
seed, lines of the same env, agent, seed and backend replaced when re-run).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import sys
import time

import gymnasium as gym
import numpy as np

import kerlym
from kerlym.config import parse_settings
from kerlym.envs import register

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from radio_baselines import play  # noqa: E402 (the sibling script's baseline player)
from results import save_rows, split_settings  # noqa: E402 (the sibling script's CSV merge and settings split)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "results")
GO_ENVS = ("Go9x9-v0",)
RADIO_ENVS = ("RadioSearch-v0", "RadioSearchHard-v0")
TABLE = [(env, agent) for env in GO_ENVS + RADIO_ENVS for agent in ("dqn", "ppo")]
BASELINE_SEED = 100_000  # RadioSearch evaluation bands: episode i is reset with this + i, for every policy
GO_FIELDS = ["env", "agent", "seed", "backend", "steps", "episodes", "wall_s", "random_games", "random_win"]
GO_FIELDS += ["gnugo_games", "gnugo_win", "gnugo_ends", "random_win_network"]
RADIO_FIELDS = ["env", "agent", "seed", "backend", "steps", "episodes", "wall_s", "eval_episodes", "eval_mean"]
RADIO_FIELDS += ["eval_std", "found_mean", "sweep_mean", "oracle_mean", "sampled_mean", "sampled_found"]


class LastInfo(gym.Wrapper):
    """Keeps the final ``info`` of every episode (the env's own end-of-episode metrics: ``found``, ``end``)."""

    def __init__(self, env):
        super().__init__(env)
        self.finals: list[dict] = []

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            self.finals.append(info)
        return obs, reward, terminated, truncated, info


def train(env_id: str, agent_name: str, seed: int, settings: dict):
    """The preset's agent (changed by ``settings``) trained for its budget, and the wall-clock seconds it took."""
    run, cfg = kerlym.configure(env_id, agent_name, preset=True, cli_defaults=True, seed=seed, **settings)
    agent = kerlym.make(run, cfg)
    start = time.perf_counter()
    agent.learn(max_steps=run.steps, verbose=0, eval_episodes=0)
    return agent, time.perf_counter() - start


def go_row(agent_name: str, seed: int, games: int, gnugo: bool, settings: dict) -> dict:
    """Train Go9x9-v0's preset with ``seed``; its win rates against ``random`` and (if ``gnugo``) ``gnugo:0``."""
    import keras

    agent, wall = train("Go9x9-v0", agent_name, seed, settings)
    row = {"env": "Go9x9-v0", "agent": agent_name, "seed": seed, "backend": keras.backend.backend()}
    row.update(steps=agent.total_steps, episodes=agent.episode, wall_s=round(wall, 1))
    for opponent in ("random", "gnugo:0") if gnugo else ("random",):
        env = LastInfo(gym.make("Go9x9-v0", opponent=opponent))
        returns = agent.evaluate(games, env=env, seed=10_000 + 1000 * seed)
        env.close()
        name = opponent.split(":")[0]
        row[f"{name}_games"], row[f"{name}_win"] = games, float(np.mean(returns > 0))
        if name == "gnugo":  # how the games ended, e.g. "two_passes:97 resign:3"
            ends = [info.get("end", "?") for info in env.finals]
            row["gnugo_ends"] = " ".join(f"{e}:{ends.count(e)}" for e in sorted(set(ends)))
        if name == "random" and getattr(agent.config, "average_symmetries", False):
            # The same games with the network alone, to show what the symmetry average adds.
            averaged = agent.config
            agent.config = dataclasses.replace(averaged, average_symmetries=False)
            returns = agent.evaluate(games, env=env, seed=10_000 + 1000 * seed)
            agent.config = averaged
            row["random_win_network"] = float(np.mean(returns > 0))
    agent.close()
    gnugo_text = f", vs gnugo:0 {row['gnugo_win']:.0%}" if gnugo else ""
    if "random_win_network" in row:
        gnugo_text += f", vs random without the symmetry average {row['random_win_network']:.0%}"
    print(f"  Go9x9-v0 {agent_name} seed {seed}: vs random {row['random_win']:.0%}{gnugo_text}, trained {wall:.0f} s")
    return row


def radio_row(env_id: str, agent_name: str, seed: int, episodes: int, baselines: dict, settings: dict) -> dict:
    """Train ``env_id``'s preset with ``seed``; its greedy return and signals found on the baselines' bands."""
    import keras

    agent, wall = train(env_id, agent_name, seed, settings)

    def play_bands(explore: bool):
        """Returns and signals found per episode on the baselines' bands, greedy or acting as in training."""
        env = LastInfo(gym.make(env_id))
        returns = agent.evaluate(episodes, env=env, seed=BASELINE_SEED, explore=explore)
        env.close()
        return returns, np.array([info["found"] for info in env.finals], dtype=float)

    returns, found = play_bands(explore=False)
    # Acting as in training (PPO: sampled; DQN: epsilon-greedy at its final epsilon) shows whether a greedy
    # policy that sees only its last few views gets stuck where sampling would not.
    sampled, sampled_found = play_bands(explore=True)
    agent.close()
    row = {"env": env_id, "agent": agent_name, "seed": seed, "backend": keras.backend.backend()}
    row.update(steps=agent.total_steps, episodes=agent.episode, wall_s=round(wall, 1), eval_episodes=episodes)
    row.update(eval_mean=float(returns.mean()), eval_std=float(returns.std()), found_mean=float(found.mean()))
    row.update(sweep_mean=baselines["sweep"][0], oracle_mean=baselines["oracle"][0])
    row.update(sampled_mean=float(sampled.mean()), sampled_found=float(sampled_found.mean()))
    print(
        f"  {env_id} {agent_name} seed {seed}: {returns.mean():+.3f} ± {returns.std():.2f}, "
        f"found {found.mean():.2f} (sweep {baselines['sweep'][0]:+.3f}), trained {wall:.0f} s; "
        f"acting as in training {sampled.mean():+.3f}, found {sampled_found.mean():.2f}"
    )
    return row


def radio_baselines(env_id: str, episodes: int) -> dict:
    """``{"sweep": (mean return, mean found), "oracle": ...}`` on the evaluation bands."""
    env = gym.make(env_id)
    out = {}
    for policy in ("sweep", "oracle"):
        rows = play(env, policy, episodes, BASELINE_SEED)
        out[policy] = (float(rows[:, 0].mean()), float(rows[:, 2].mean()))
    env.close()
    return out


def mean_std(values, sign: str = "") -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():{sign}.3f} ± {values.std():.3f}"


def go_summary(rows: list[dict]) -> str:
    """Markdown: one line per agent, win rates as mean ± std across seeds (GnuGo: over the seeds that played it)."""
    lines = [
        "| env | agent | steps | win rate vs random (goal 95%) | seeds | goal met? | win rate vs gnugo:0 | "
        "wall-clock / run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for agent_name in ("dqn", "ddqn", "ppo"):
        rs = [r for r in rows if r["agent"] == agent_name]
        if not rs:
            continue
        win = np.array([float(r["random_win"]) for r in rs])
        games = int(rs[0]["random_games"])
        met = "yes" if win.mean() >= 0.95 else f"**no** ({win.mean():.1%})"
        played = [r for r in rs if r.get("gnugo_win") not in (None, "")]
        gnugo = (
            f"{np.mean([float(r['gnugo_win']) for r in played]):.1%} over "
            f"{sum(int(r['gnugo_games']) for r in played)} games ({len(played)} seed{'s' * (len(played) > 1)})"
            if played
            else "-"
        )
        wall = np.mean([float(r["wall_s"]) for r in rs])
        lines.append(
            f"| Go9x9-v0 | {agent_name} | {int(float(rs[0]['steps'])) // 1000}k | "
            f"{win.mean():.1%} ± {win.std():.1%} ({games} games a seed) | {len(rs)} | {met} | {gnugo} | {wall:.0f} s |"
        )
    return "\n".join(lines)


def budgets(rows: list[dict]) -> str:
    """The rows' step budgets, ``200k``, or ``50k/200k`` where a row mixes seeds run at different budgets."""
    return "/".join(f"{steps // 1000}k" for steps in sorted({int(float(r["steps"])) for r in rows}))


def beats(means, baseline: float) -> str:
    """Whether per-seed ``means`` beat ``baseline`` by more than two standard errors over the seeds.

    A mean above the baseline by less is a tie; a mean below it is never called one, however
    wide the seeds' spread (one seed that fails makes the standard error large, not the result close).
    """
    means = np.asarray(means, dtype=float)
    se = means.std(ddof=1) / np.sqrt(len(means)) if len(means) > 1 else 0.0
    diff = means.mean() - baseline
    if diff > 2 * se:
        return f"yes (by {diff:.3f})"
    if diff < 0:
        spread = ", within 2 s.e. over seeds" if diff >= -2 * se else ""
        return f"**no** ({means.mean():+.3f} < {baseline:+.3f}{spread})"
    return f"**tie** ({means.mean():+.3f} vs {baseline:+.3f}, within 2 s.e. over seeds)"


def radio_summary(rows: list[dict]) -> str:
    """Markdown: one line per env and agent against the sweep and the oracle on the same bands."""
    lines = [
        "| env | agent | steps | greedy return | signals found | seeds | sweep | oracle | beats sweep? | "
        "wall-clock / run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for env_id in RADIO_ENVS:
        for agent_name in ("dqn", "ddqn", "ppo"):
            rs = [r for r in rows if r["env"] == env_id and r["agent"] == agent_name]
            if not rs:
                continue
            means = np.array([float(r["eval_mean"]) for r in rs])
            sweep, oracle = float(rs[0]["sweep_mean"]), float(rs[0]["oracle_mean"])
            met = beats(means, sweep)
            lines.append(
                f"| {env_id} | {agent_name} | {budgets(rs)} | {mean_std(means, '+')} | "
                f"{mean_std([float(r['found_mean']) for r in rs])} | {len(rs)} | {sweep:+.3f} | {oracle:+.3f} | "
                f"{met} | {np.mean([float(r['wall_s']) for r in rs]):.0f} s |"
            )
    return "\n".join(lines)


def read(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("settings", nargs="*", metavar="KEY=VALUE", help="changes to the preset (a variant: not saved)")
    p.add_argument("--env", choices=GO_ENVS + RADIO_ENVS, help="one env (default: all)")
    p.add_argument("--agent", choices=("dqn", "ddqn", "ppo"), help="one agent (default: dqn and ppo)")
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: 0-2 for Go, 0-4 for RadioSearch)")
    p.add_argument("--games", type=int, default=100, help="Go games per opponent")
    p.add_argument(
        "--gnugo-seeds", type=int, nargs="*", help="the Go seeds that also play gnugo:0 (default: the first)"
    )
    p.add_argument("--episodes", type=int, default=300, help="RadioSearch evaluation episodes")
    p.add_argument("--summary", action="store_true", help="only print the tables from the saved CSVs")
    items, argv = split_settings(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    go_csv, radio_csv = os.path.join(OUT, "go_results.csv"), os.path.join(OUT, "radio_results.csv")
    if args.summary:
        print(go_summary(read(go_csv)) + "\n\n" + radio_summary(read(radio_csv)))
        return 0
    try:
        settings = parse_settings(items + args.settings)
    except ValueError as e:
        p.error(str(e))
    register()
    os.makedirs(OUT, exist_ok=True)
    todo = [(e, a) for e, a in TABLE if args.env in (None, e) and args.agent in (None, a)]
    if args.agent == "ddqn":
        todo = [(e, "ddqn") for e in GO_ENVS + RADIO_ENVS if args.env in (None, e)]
    baselines, variant_go, variant_radio = {}, [], []
    for env_id, agent_name in todo:
        seeds = args.seeds or (list(range(3)) if env_id in GO_ENVS else list(range(5)))
        for seed in seeds:
            if env_id in GO_ENVS:
                gnugo_seeds = seeds[:1] if args.gnugo_seeds is None else args.gnugo_seeds
                row = go_row(agent_name, seed, args.games, seed in gnugo_seeds, settings)
                variant_go.append(row)
                print(go_summary(variant_go if settings else save_rows(go_csv, [row], GO_FIELDS)), flush=True)
            else:
                if env_id not in baselines:
                    baselines[env_id] = radio_baselines(env_id, args.episodes)
                row = radio_row(env_id, agent_name, seed, args.episodes, baselines[env_id], settings)
                variant_radio.append(row)
                rows = variant_radio if settings else save_rows(radio_csv, [row], RADIO_FIELDS)
                print(radio_summary(rows), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
