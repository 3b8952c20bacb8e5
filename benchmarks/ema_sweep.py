"""Weight averaging (``--ema``) at several time constants, from one training run per seed.

    KERAS_BACKEND=jax python benchmarks/ema_sweep.py --env CartPole-v1 --agent dqn --seeds 0 1 2 3 4
    KERAS_BACKEND=jax python benchmarks/ema_sweep.py --env MountainCar-v0 --agent ddqn --ema 1000 5000 10000

Each seed trains the preset (``kerlym -e ENV -a AGENT --preset --seed S``, its own ``--ema``
turned off) for the preset's budget. Beside it, one moving average of the online weights per
``--ema`` value is kept exactly as ``--ema`` keeps it (a ``WeightAverage`` moved after every
update). Training is the same whatever the averages, so one run scores them all: the final
online network and each average play ``--eval-episodes`` greedy episodes on the evaluation
starts ``results.py`` uses (env seeds ``10000 + seed + i``). With the preset's own value among
``--ema``, that column repeats ``results.py``'s score for the seed.

Prints a line per seed and a summary (mean ± std over seeds, and for CartPole how many seeds
reach 475); ``--out`` appends the per-seed scores to a CSV.
"""

from __future__ import annotations

import argparse
import csv
import os

import numpy as np

from kerlym.agents.ema import WeightAverage
from kerlym.main import build_agent, build_parser, make_env_factory, resolve_config


def attach_averages(agent, emas: list[int]) -> dict:
    """After each of ``agent``'s updates, move one weight average per time constant as ``--ema`` does.

    Returns ``{time constant: WeightAverage}``; an average's ``weights`` are None before the first update.
    """
    averages = {n: WeightAverage(n) for n in emas}
    update = agent.update

    def update_and_average(step=None):
        losses = update(step)
        weights = agent.steps.get_weights()
        for average in averages.values():
            average.update(weights, agent.total_steps if step is None else step)
        return losses

    agent.update = update_and_average
    return averages


def run(env_id: str, agent_name: str, seed: int, emas: list[int], episodes: int, steps: int | None = None) -> dict:
    """The seed's greedy scores: ``"online"`` and one per time constant in ``emas``."""
    argv = ["-e", env_id, "-a", agent_name, "--preset", "--seed", str(seed)]
    cfg = resolve_config(build_parser().parse_args(argv))
    cfg["ema"] = None
    cfg["steps"] = steps or cfg["steps"]
    agent = build_agent(cfg, make_env_factory(cfg))
    averages = attach_averages(agent, emas)
    agent.learn(max_steps=cfg["steps"])
    scores = {"online": float(agent.evaluate(episodes, seed=10_000 + seed).mean())}
    online = agent.model.get_weights()
    for n, average in averages.items():
        agent.model.set_weights(average.weights if average.weights is not None else online)
        scores[str(n)] = float(agent.evaluate(episodes, seed=10_000 + seed).mean())
    agent.model.set_weights(online)
    agent.close()
    return scores


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--agent", choices=("dqn", "ddqn"), default="ddqn")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--ema", type=int, nargs="+", default=[1000, 2500, 5000, 10000], help="time constants, env steps")
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--steps", type=int, help="train this many steps instead of the preset's budget (a quick look)")
    p.add_argument("--out", help="append per-seed rows to this CSV")
    args = p.parse_args(argv)
    rows = []
    for seed in args.seeds:
        scores = run(args.env, args.agent, seed, args.ema, args.eval_episodes, args.steps)
        rows.append({"env": args.env, "agent": args.agent, "seed": seed, **scores})
        print(f"  {args.env} {args.agent} seed {seed}: " + "  ".join(f"{k} {v:.1f}" for k, v in scores.items()))
    print(f"\n{args.env} {args.agent}, seeds {' '.join(map(str, args.seeds))}:")
    for column in ["online", *map(str, args.ema)]:
        v = np.array([r[column] for r in rows])
        solved = f", {int((v >= 475).sum())}/{len(v)} at 475 or more" if args.env.startswith("CartPole") else ""
        label = "final online network" if column == "online" else f"--ema {column}"
        print(f"  {label:>22}: {v.mean():.1f} ± {v.std():.1f}{solved}")
    if args.out:
        new = not os.path.exists(args.out)
        with open(args.out, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            if new:
                w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
