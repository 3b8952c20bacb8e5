"""Tic-tac-toe: PPO trained against random play, then evaluated against ``random`` and ``mcts:200``, with and
without a PUCT search at play time (``--search``). One training run per seed; the table gives the win rate's
mean ± std over seeds, the seeds' wins/draws/losses pooled, and the Wilson 95% interval of the pooled win rate.

    python benchmarks/games.py --seeds 3 --steps 50000 --episodes 50     # the table in benchmarks/README.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np


def train(seed: int, steps: int, outdir: str) -> str:
    """One ``kerlym`` training run against the random opponent, seats alternating; its run folder."""
    folder = os.path.join(outdir, f"seed{seed}")
    command = [sys.executable, "-m", "kerlym", "-e", "openspiel:tic_tac_toe", "-a", "ppo", "-n", "actor_critic_mlp"]
    command += ["-t", "1", "--steps", str(steps), "--seed", str(seed), "--env-kwargs", "player=alternate"]
    command += ["--eval_episodes", "20", "--outdir", folder, "-q"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    (name,) = os.listdir(folder)
    return os.path.join(folder, name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--episodes", type=int, default=50, help="evaluation games per seed and row")
    parser.add_argument("--search", type=int, default=64)
    parser.add_argument("--opponents", default="random,mcts:200")
    parser.add_argument("--outdir", default="runs/bench_games")
    args = parser.parse_args(argv)

    import kerlym
    from kerlym.envs import make_env
    from kerlym.stats import game_results, wilson_interval

    rows: dict[tuple[str, int], list[dict]] = {}
    for seed in range(args.seeds):
        run = train(seed, args.steps, args.outdir)
        agent = kerlym.load(run)
        for opponent in args.opponents.split(","):
            for search in (0, args.search):
                env = make_env("openspiel:tic_tac_toe", env_kwargs={"opponent": opponent, "player": "alternate"})
                returns = agent.evaluate(args.episodes, env=env, seed=10_000, search=search)
                rows.setdefault((opponent, search), []).append(game_results(returns))
                print(f"seed {seed} vs {opponent} search {search}: {game_results(returns)}", flush=True)
        agent.close()

    print(f"\n{args.seeds} seeds x {args.episodes} games, {args.steps} training steps each\n")
    print("| opponent | search | win rate (mean ± std over seeds) | wins / draws / losses | pooled win rate, 95% |")
    print("| --- | --- | --- | --- | --- |")
    for (opponent, search), results in rows.items():
        rates = np.array([r["win_rate"] for r in results])
        w, d, ls = (sum(r[k] for r in results) for k in ("wins", "draws", "losses"))
        lo, hi = wilson_interval(w, w + d + ls)
        print(
            f"| {opponent} | {search or '-'} | {rates.mean():.2f} ± {rates.std():.2f} | {w} / {d} / {ls} "
            f"| {w / (w + d + ls):.2f} ({lo:.2f}-{hi:.2f}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
