"""How close MountainCar-v0 results are to the best possible: the shortest episodes from the starts evaluated.

    python benchmarks/mountaincar_optimum.py                 # results.py's evaluation starts, seeds 0-9
    python benchmarks/mountaincar_optimum.py --seeds 0 1 2 --check 5

MountainCar-v0 is deterministic once reset: the car starts at rest at a position drawn
uniformly from [-0.6, -0.4], and every step costs -1 until it reaches the flag. So each
start state has a best return, and a policy's greedy evaluation can be set beside the best
return on the same starts.

The search: for each start, every action sequence made of up to ``--switches`` + 1
constant segments, full push left or full push right (bang-bang control, which is what
minimum-time problems with a bounded push call for), simulated with the env's own
arithmetic, vectorised in NumPy; the shortest episode is the start's best. ``--check N``
repeats the search on N of the starts with one more switch and with coasting segments
(action 1) allowed; if those ever find a shorter episode the script says so. What it
reports is the best return found, a bound that no policy falls short of only if no
cleverer sequence exists; with up to 3 switches and coasting, none was found.

It prints the best mean return under uniformly drawn starts (the expectation RL Zoo's
figure, measured over about 1,500 evaluation episodes, can be set against), and per seed
the best mean over the 20 starts that ``results.py`` evaluates that seed's agent on
(env seeds ``10000 + seed + i``), beside each agent's measured return from
``results/results.csv``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RL_ZOO_MEAN = -100.8
LEFT, COAST, RIGHT = 0, 1, 2


def episode_lengths(position: float, actions: np.ndarray) -> np.ndarray:
    """Length of the episode each row of ``actions`` ([N, T]) makes from ``position`` at rest; T + 1 if it never ends.

    The dynamics are MountainCarEnv.step's, in float64 as the env computes them.
    """
    n, horizon = actions.shape
    pos, vel = np.full(n, position), np.zeros(n)
    length = np.full(n, horizon + 1)
    for t in range(horizon):
        vel = np.clip(vel + (actions[:, t] - 1) * 0.001 + np.cos(3 * pos) * -0.0025, -0.07, 0.07)
        pos = np.clip(pos + vel, -1.2, 0.6)
        vel = np.where((pos == -1.2) & (vel < 0), 0.0, vel)
        arrived = (pos >= 0.5) & (vel >= 0) & (length > horizon)
        length[arrived] = t + 1
    return length


def shortest_episode(position: float, switches: int = 2, coast: bool = False, horizon: int = 140) -> int:
    """Fewest steps to the flag over action sequences of at most ``switches + 1`` constant segments."""
    steps = np.arange(horizon)
    segment_actions = (LEFT, COAST, RIGHT) if coast else (LEFT, RIGHT)
    best = horizon + 1
    for s in range(switches + 1):
        times = np.array(list(itertools.combinations(range(1, horizon), s)), dtype=np.int32)  # [combos, s]
        for chunk in np.array_split(times, max(1, len(times) // 100_000)):
            segment = (steps[None, None, :] >= chunk[:, :, None]).sum(axis=1)  # [combos, horizon]
            for pattern in itertools.product(segment_actions, repeat=s + 1):
                if any(a == b for a, b in itertools.pairwise(pattern)):
                    continue
                best = min(best, int(episode_lengths(position, np.asarray(pattern)[segment]).min()))
    return best


def start_positions(env_seeds) -> list[float]:
    """The car's start position after ``env.reset(seed=s)`` for each seed."""
    import gymnasium as gym

    env = gym.make("MountainCar-v0")
    positions = []
    for s in env_seeds:
        env.reset(seed=int(s))
        positions.append(float(env.unwrapped.state[0]))
    env.close()
    return positions


def measured() -> dict[tuple[str, int], float]:
    """MountainCar-v0's greedy evaluation means in results.csv, by (agent, seed)."""
    path = os.path.join(HERE, "results", "results.csv")
    if not os.path.exists(path):
        return {}
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["env"] == "MountainCar-v0"]
    return {(r["agent"], int(r["seed"])): float(r["eval_mean"]) for r in rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)), help="results.py's training seeds")
    p.add_argument("--episodes", type=int, default=20, help="evaluation episodes per seed, as in results.py")
    p.add_argument("--switches", type=int, default=2)
    p.add_argument("--grid", type=int, default=201, help="evenly spaced starts standing in for the uniform draw")
    p.add_argument("--check", type=int, default=0, help="re-search this many starts with a switch more and coasting")
    args = p.parse_args(argv)

    best = {}

    def best_return(position: float) -> int:
        if position not in best:
            best[position] = -shortest_episode(position, args.switches)
        return best[position]

    uniform = np.array([best_return(x) for x in np.linspace(-0.6, -0.4, args.grid)])
    print(f"uniform start in [-0.6, -0.4] ({args.grid} evenly spaced): best mean return {uniform.mean():.2f}")
    print(f"  (episodes of {-uniform.max()} to {-uniform.min()} steps); RL Zoo's DQN: {RL_ZOO_MEAN}")

    scores = measured()
    agents = sorted({a for a, _ in scores})
    print(f"\n| seed | best return on its {args.episodes} starts | " + " | ".join(agents) + " |")
    print("| --- | --- |" + " --- |" * len(agents))
    per_seed = []
    for seed in args.seeds:
        starts = start_positions(10_000 + seed + i for i in range(args.episodes))
        per_seed.append(np.mean([best_return(x) for x in starts]))
        cells = [f"{scores[(a, seed)]:.2f}" if (a, seed) in scores else "" for a in agents]
        print(f"| {seed} | {per_seed[-1]:.2f} | " + " | ".join(cells) + " |")
    print(f"\nbest mean return over seeds {args.seeds[0]}-{args.seeds[-1]}'s starts: {np.mean(per_seed):.2f}")
    for a in agents:
        got = [scores[(a, s)] for s in args.seeds if (a, s) in scores]
        if len(got) == len(args.seeds):
            gap = np.mean(per_seed) - np.mean(got)
            print(f"  {a}: {np.mean(got):.2f}, {gap:.1f} steps per episode from the best")

    if args.check:
        rng = np.random.default_rng(0)
        positions = sorted(best)
        for position in rng.choice(positions, size=min(args.check, len(positions)), replace=False):
            wider = -shortest_episode(position, args.switches + 1, coast=True)
            verdict = "same" if wider == best[position] else f"SHORTER: {wider}"
            print(f"check at {position:.4f}: {best[position]} with {args.switches} switches; {verdict} with more")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
