"""Non-learning baselines on RadioSearch: random, sweep (energy detector) and oracle, on each variant.

    python benchmarks/radio_baselines.py [--episodes 300] [--seed 0]

Episode ``i`` of every policy and variant resets the env with seed ``seed + i``,
so all policies face the same bands. The random policy draws uniformly from
the five actions (its action space seeded with ``seed``). Prints a markdown
table of mean ± std return (and steps, and signals found) over the episodes,
then the env's speed in steps per CPU second under random actions: bare, with 4
frames averaged, and through ``gym.make``'s wrappers.
"""

import argparse
import time

import gymnasium as gym
import numpy as np

from kerlym.envs import register
from kerlym.envs.radio_baselines import SweepPolicy, oracle_policy

ENV_IDS = ("RadioSearch-v0", "RadioSearchHard-v0", "RadioSearchMulti-v0")


def play(env, policy: str, episodes: int, seed: int) -> np.ndarray:
    """Rows of (return, steps, signals found), one per episode."""
    env.action_space.seed(seed)
    sweep = SweepPolicy()
    rows = []
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        sweep.reset()
        total, steps, done = 0.0, 0, False
        while not done:
            if policy == "random":
                action = env.action_space.sample()
            elif policy == "sweep":
                action = sweep(obs)
            else:
                action = oracle_policy(env)
            obs, reward, terminated, truncated, info = env.step(action)
            total, steps, done = total + reward, steps + 1, terminated or truncated
        rows.append((total, steps, info["found"]))
    return np.array(rows)


def steps_per_second(env_id: str, bare: bool = True, steps: int = 100_000, **knobs) -> float:
    """Steps per CPU second under random actions, resets included, of the bare env or of ``gym.make``'s wrapped one.

    CPU time (``time.process_time``), not wall-clock time, so other jobs on the machine count less.
    """
    env = gym.make(env_id, **knobs)
    env = env.unwrapped if bare else env
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 5, size=steps)
    t = time.process_time()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.process_time() - t)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    register()
    print(f"{args.episodes} episodes per cell, env seeds {args.seed}-{args.seed + args.episodes - 1}\n")
    print("| env | policy | return | steps | signals found |")
    print("| --- | --- | --- | --- | --- |")
    for env_id in ENV_IDS:
        env = gym.make(env_id)
        for policy in ("random", "sweep", "oracle"):
            rows = play(env, policy, args.episodes, args.seed)
            ret, steps, found = rows.mean(axis=0)
            print(
                f"| {env_id} | {policy} | {ret:+.2f} ± {rows[:, 0].std():.2f} | {steps:.1f} ± {rows[:, 1].std():.1f}"
                f" | {found:.2f} |"
            )
    print()
    for env_id in ENV_IDS:
        print(f"{env_id}: {steps_per_second(env_id):,.0f} steps/s (bare env, random actions)")
    print(f"RadioSearch-v0, frames=4: {steps_per_second('RadioSearch-v0', frames=4):,.0f} steps/s (bare env)")
    print(
        f"RadioSearch-v0 from gym.make: {steps_per_second('RadioSearch-v0', bare=False):,.0f} steps/s (with wrappers)"
    )


if __name__ == "__main__":
    main()
