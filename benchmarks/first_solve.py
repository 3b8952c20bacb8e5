"""When does each CartPole-v1 agent first solve, counted in env steps? An ablation beside speed.py.

    python benchmarks/first_solve.py --seeds 0 1 2 3 4
    python benchmarks/first_solve.py --variants ddqn dqn ddqn-no-newest --seeds 0 1

speed.py found SB3's DQN passing a greedy mean of 475 after 5k-8k steps on 3 seeds of 5,
while kerlym's D2QN preset first passes at 19k-48k steps. This script trains variants of
the preset (``kerlym -e CartPole-v1 -a AGENT --preset``) for 50k steps, checks the greedy
policy every ``--check-every`` steps on ``--eval-episodes`` episodes (the same check as
speed.py's, which draws nothing from the agent's RNG), and prints the first step at which
the mean reached 475, and the greedy mean after the last step. Counting steps rather
than seconds, it can run beside other jobs. Variants:

* ``ddqn``, ``dqn``: the presets as they are (since 2026-11-30 their greedy checks play the weight
  average, ``--ema 5000``; the figures in benchmarks/README.md are from before).
* ``ddqn-clip``, ``dqn-clip``: with ``--clipnorm 10``, SB3's ``max_grad_norm``.
* ``ddqn-no-newest``, ``dqn-no-newest``: each update samples all its minibatches uniformly from
  replay, as SB3 does, instead of always including the newest ``update_freq`` transitions
  (kerlym's default scheme, kept from the original); patched here, as ``--replay uniform`` now does.
* ``ddqn-eps8``, ``dqn-eps8``: Adam's epsilon 1e-8, torch's default value (Keras's is 1e-7).
  Keras adds it to the uncorrected sqrt(v), torch to the bias-corrected one, so early in
  training Keras's 1e-8 weighs like torch's 3e-7: closer to torch, not the same.
* ``sb3``: SB3's DQN with the RL Zoo's CartPole hyperparameters (needs stable-baselines3).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed import SOLVED, SolveClock, kerlym_cli_agent, sb3_cartpole  # noqa: E402

VARIANTS = ("ddqn", "dqn", "ddqn-clip", "dqn-clip", "ddqn-no-newest", "dqn-no-newest", "ddqn-eps8", "dqn-eps8", "sb3")


def run_kerlym(variant: str, seed: int, steps: int, check_every: int, episodes: int) -> dict:
    agent_name, _, change = variant.partition("-")
    flags = ["--steps", str(steps)] + (["--clipnorm", "10"] if change == "clip" else [])
    agent = kerlym_cli_agent(agent_name, seed, *flags)
    if change == "no-newest":
        sample = agent.memory.sample
        agent.memory.sample = lambda n, rng, newest=0: sample(n, rng, newest=0)
    if change == "eps8":  # read when the update is first traced, which is after this
        agent.model.optimizer.epsilon = 1e-8
    clock = SolveClock(check_every, episodes, 10_000 + seed)

    def play(s: int) -> float:
        return float(agent.evaluate(1, seed=s)[0])

    agent.learn(max_steps=steps, step_callback=lambda a: clock.maybe_check(a.total_steps, play))
    final = float(agent.evaluate(episodes, seed=10_000 + seed).mean())
    return {"solve_steps": clock.solve_steps, "final": final}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=["ddqn", "dqn", "ddqn-no-newest", "ddqn-clip"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--check-every", type=int, default=1000)
    p.add_argument("--eval-episodes", type=int, default=20)
    args = p.parse_args(argv)
    if args.check_every <= 0 or args.check_every % 100:
        p.error("--check-every must be a positive multiple of 100 (kerlym's step callback runs every 100 steps)")

    print(f"{'variant':<16}{'seed':>5}{'first solve':>13}{'final':>8}", flush=True)
    table = {}
    for variant in args.variants:
        for seed in args.seeds:
            if variant == "sb3":
                spec = {
                    "seed": seed,
                    "steps": args.steps,
                    "episodes": args.eval_episodes,
                    "check_every": args.check_every,
                }
                row = sb3_cartpole(spec)
                row = {"solve_steps": row["solve_steps"], "final": row["eval"]}
            else:
                row = run_kerlym(variant, seed, args.steps, args.check_every, args.eval_episodes)
            table.setdefault(variant, []).append(row)
            solve = row["solve_steps"] if row["solve_steps"] is not None else "never"
            print(f"{variant:<16}{seed:>5}{solve:>13}{row['final']:8.1f}", flush=True)

    print(f"\nfirst step with a greedy mean >= {SOLVED:.0f} (checked every {args.check_every}), over seeds")
    print(
        f"{'variant':<16}{'median first solve':>20}{'solved':>8}{f'final >= {SOLVED:.0f}':>14}{'final mean ± std':>20}"
    )
    for variant, rows in table.items():
        firsts = [r["solve_steps"] if r["solve_steps"] is not None else np.inf for r in rows]
        finals = np.array([r["final"] for r in rows])
        med = np.median(firsts)
        med_s = "never" if np.isinf(med) else f"{med:.0f}"
        solved = f"{sum(np.isfinite(firsts))}/{len(rows)}"
        kept = f"{int((finals >= SOLVED).sum())}/{len(rows)}"
        print(f"{variant:<16}{med_s:>20}{solved:>8}{kept:>14}{f'{finals.mean():.1f} ± {finals.std():.1f}':>20}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
