"""Tic-tac-toe: PPO trained against random play, then evaluated against ``random`` and ``mcts:200``, with and
without a PUCT search at play time (``--search``). One training run per seed; the table gives the win rate's
and the mean return's mean ± std over seeds (win +1, draw 0, loss -1), the seeds' wins/draws/losses pooled, and
the Wilson 95% interval of the pooled win rate. ``--self-play K`` trains by self-play instead (``--game`` picks
the game, ``-c`` the envs).

    python benchmarks/games.py --seeds 3 --steps 50000 --episodes 50     # the table in benchmarks/README.md
    python benchmarks/games.py --seeds 3 --steps 50000 --episodes 50 --self-play 4 -c 8
    python benchmarks/games.py --game connect_four --seeds 1 --steps 400000 --episodes 50 --opponents mcts:200 \
        --self-play 4 --self-play-every 20000 -c 8 --train-flags "--n_steps 256 --batch_size 256 --n_epochs 4"
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np


def train(seed: int, steps: int, outdir: str, game: str = "tic_tac_toe", extra: tuple = ()) -> str:
    """One ``kerlym`` training run against the random opponent (or ``extra``'s self-play), seats alternating."""
    folder = os.path.join(outdir, f"seed{seed}")
    command = [sys.executable, "-m", "kerlym", "-e", f"openspiel:{game}", "-a", "ppo", "-n", "actor_critic_mlp"]
    command += ["-t", "1", "--steps", str(steps), "--seed", str(seed), "--env-kwargs", "player=alternate", *extra]
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
    parser.add_argument("--game", default="tic_tac_toe", help="an OpenSpiel game (openspiel:GAME)")
    parser.add_argument("--self-play", type=int, default=None, metavar="K", help="train by self-play, K snapshots")
    parser.add_argument("--self-play-every", type=int, default=5000)
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("--train-flags", default="", help="more kerlym flags for training, as one string")
    args = parser.parse_args(argv)
    extra = ["-c", str(args.concurrency), "--vector_env", "sync", *args.train_flags.split()]
    if args.self_play is not None:
        extra += ["--self-play", str(args.self_play), "--self-play-every", str(args.self_play_every)]

    import kerlym
    from kerlym.envs import make_env
    from kerlym.stats import game_results, wilson_interval

    rows: dict[tuple[str, int], list[dict]] = {}
    for seed in range(args.seeds):
        run = train(seed, args.steps, args.outdir, args.game, tuple(extra))
        agent = kerlym.load(run)
        for opponent in args.opponents.split(","):
            for search in (0, args.search):
                env = make_env(f"openspiel:{args.game}", env_kwargs={"opponent": opponent, "player": "alternate"})
                returns = agent.evaluate(args.episodes, env=env, seed=10_000, search=search)
                rows.setdefault((opponent, search), []).append({**game_results(returns), "mean": returns.mean()})
                print(f"seed {seed} vs {opponent} search {search}: {game_results(returns)}", flush=True)
        agent.close()

    how = f"self-play K={args.self_play}" if args.self_play is not None else "against random"
    print(f"\n{args.game}, {how}: {args.seeds} seeds x {args.episodes} games, {args.steps} training steps each\n")
    print(
        "| opponent | search | win rate (mean ± std over seeds) | mean return (mean ± std) | wins / draws / losses "
        "| pooled win rate, 95% |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for (opponent, search), results in rows.items():
        rates = np.array([r["win_rate"] for r in results])
        means = np.array([r["mean"] for r in results])
        w, d, ls = (sum(r[k] for r in results) for k in ("wins", "draws", "losses"))
        lo, hi = wilson_interval(w, w + d + ls)
        print(
            f"| {opponent} | {search or '-'} | {rates.mean():.2f} ± {rates.std():.2f} | {means.mean():.2f} ± "
            f"{means.std():.2f} | {w} / {d} / {ls} "
            f"| {w / (w + d + ls):.2f} ({lo:.2f}-{hi:.2f}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
