"""How a trained Go agent's games against ``random`` end, and the final board of each game it does not win.

    KERAS_BACKEND=jax python benchmarks/go_losses.py RUN_DIR --seed S [--games 100]

Plays the games ``env_results.py`` plays for seed ``S`` (game ``i`` reset with ``10000 + 1000 S + i``),
greedily, as the run's saved agent (``kerlym.load``), and counts the games by how they ended
(``info["end"]``) and their reward.
"""

from __future__ import annotations

import argparse
import collections
import sys

import gymnasium as gym
import numpy as np


class Ends(gym.Wrapper):
    """Keeps each finished game's end, reward, length and final observation."""

    def __init__(self, env):
        super().__init__(env)
        self.games: list[tuple] = []
        self._moves = 0

    def reset(self, **kwargs):
        self._moves = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._moves += 1
        if terminated or truncated:
            self.games.append((info.get("end"), float(reward), self._moves, obs))
        return obs, reward, terminated, truncated, info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a run folder, checkpoint or .keras file (what kerlym.load takes)")
    p.add_argument("--seed", type=int, default=0, help="the training seed whose evaluation games to replay")
    p.add_argument("--games", type=int, default=100)
    args = p.parse_args(argv)

    import kerlym
    from kerlym.envs.go import board_text

    agent = kerlym.load(args.run)
    env = Ends(gym.make("Go9x9-v0", opponent="random"))
    returns = agent.evaluate(args.games, env=env, seed=10_000 + 1000 * args.seed)
    env.close()
    print(f"wins {np.mean(returns > 0):.0%} of {args.games}")
    counts = collections.Counter((end, reward) for end, reward, _, _ in env.games)
    print("  ".join(f"{end} {reward:+g}: {n}" for (end, reward), n in sorted(counts.items(), key=str)))
    for i, (end, reward, moves, obs) in enumerate(env.games):
        if reward <= 0:
            print(f"game {i}: {end}, reward {reward:+g}, after {moves} moves of the agent")
            print(board_text(obs, env.unwrapped.komi))
    return 0


if __name__ == "__main__":
    sys.exit(main())
