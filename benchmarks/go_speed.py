"""Go9x9-v0's speed: env steps per second against each opponent, and OpenSpiel's own move rate.

    python benchmarks/go_speed.py [--steps 2000] [--seeds 3] [--opponents random gnugo:0 mcts:10]

The agent plays uniformly random legal moves (never resigning) through
``GoEnv``; one env step is the agent's move plus the opponent's answer. The
baseline is bare OpenSpiel: random legal moves on its ``go`` game, no env.
Each figure is the mean ± std over ``--seeds`` runs.
"""

import argparse
import time

import numpy as np

from kerlym.envs.go import GoEnv


def env_steps_per_second(opponent: str, steps: int, seed: int) -> float:
    env = GoEnv(board_size=9, opponent=opponent)
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        mask = info["action_mask"].copy()
        mask[-1] = 0  # never resign
        obs, reward, terminated, truncated, info = env.step(int(rng.choice(np.flatnonzero(mask))))
        if terminated:
            obs, info = env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def openspiel_moves_per_second(moves: int, seed: int) -> float:
    import pyspiel

    game, rng = pyspiel.load_game("go", {"board_size": 9, "komi": 7.5}), np.random.default_rng(seed)
    state = game.new_initial_state()
    start = time.perf_counter()
    for _ in range(moves):
        state.apply_action(int(rng.choice(state.legal_actions())))
        if state.is_terminal():
            state = game.new_initial_state()
    return moves / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--opponents", nargs="+", default=["random", "gnugo:0", "mcts:10"])
    args = parser.parse_args()
    rates = [openspiel_moves_per_second(10 * args.steps, seed) for seed in range(args.seeds)]
    print(f"OpenSpiel alone, random moves: {np.mean(rates):,.0f} ± {np.std(rates):,.0f} moves/s")
    for opponent in args.opponents:
        rates = [env_steps_per_second(opponent, args.steps, seed) for seed in range(args.seeds)]
        mean, std = np.mean(rates), np.std(rates)
        print(f"Go9x9-v0 vs {opponent}: {mean:,.0f} ± {std:,.0f} steps/s ({1000 / mean:.2f} ms a step)")


if __name__ == "__main__":
    main()
