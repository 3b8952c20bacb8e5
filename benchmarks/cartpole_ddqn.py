"""CartPole-v1 benchmark for kerlym's D2QN (or DQN) with the CartPole preset.

Command (KERAS_BACKEND picks the backend; TensorFlow by default)::

    python benchmarks/cartpole_ddqn.py --seeds 0 1 2 --steps 50000 --agent ddqn
    KERAS_BACKEND=jax python benchmarks/cartpole_ddqn.py --seeds 0 1 2

Goal: on every seed, the greedy evaluation mean over 20 test episodes (episode
seeds 10000+seed, 10001+seed, ...) after 50,000 env steps is >= 475.

Each agent is built through the CLI's own code path, exactly as
``kerlym -e CartPole-v1 -a ddqn --preset --seed S`` would build it. Every
``--eval-every`` steps the greedy agent plays 20 validation episodes (seeds
20000+seed, ...; a separate env and no exploration, so training is unchanged):
that is the learning curve and "first >= 475". The checkpoint with the best
validation mean is also scored on the test episodes ("best ckpt", as RL Zoo's
EvalCallback keeps a best model); the goal is judged on the final agent only.
Wall-clock and steps/s count training, not evaluations. Results go to
``benchmarks/results/cartpole_<agent>_<backend>.csv``.
"""

from __future__ import annotations

import argparse
import csv
import os
import time

import numpy as np

from kerlym.main import build_agent, build_parser, make_env_factory, resolve_config

GOAL = 475.0
TEST_SEED, VALIDATION_SEED = 10_000, 20_000  # first episode seeds (+ agent seed)
PRESET_KEYS = (
    "learning_rate batch_size update_freq update_size learning_starts target_update epsilon epsilon_min "
    "exploration_steps discount optimizer loss max_mem dropout"
).split()


def run_seed(agent_name: str, seed: int, steps: int, every: int, episodes: int) -> dict:
    """Train one seed; return its final and best-checkpoint evaluations, timings and learning curve."""
    argv = ["-e", "CartPole-v1", "-a", agent_name, "--preset", "--seed", str(seed), "--steps", str(steps)]
    cfg = resolve_config(build_parser().parse_args(argv))
    agent = build_agent(cfg, make_env_factory(cfg))
    curve: dict[int, tuple[float, float]] = {}  # step -> validation mean, std
    best: dict = {"mean": -1.0}
    eval_seconds = 0.0

    def checkpoint(a) -> None:
        nonlocal eval_seconds
        t = time.perf_counter()
        returns = a.evaluate(episodes, seed=VALIDATION_SEED + seed)
        eval_seconds += time.perf_counter() - t
        curve[a.total_steps] = (float(returns.mean()), float(returns.std()))
        if returns.mean() >= best["mean"]:  # ties go to the later checkpoint
            best.update(mean=returns.mean(), step=a.total_steps, weights=a.greedy_model.get_weights())
        print(
            f"  seed {seed}  step {a.total_steps:6d}  validation {returns.mean():6.1f} ± {returns.std():5.1f}",
            flush=True,
        )

    def on_step(a) -> None:
        if a.total_steps % every == 0 and a.total_steps < steps:
            checkpoint(a)

    start = time.perf_counter()
    agent.learn(max_steps=steps, step_callback=on_step)
    train_seconds = time.perf_counter() - start - eval_seconds
    checkpoint(agent)
    final = agent.evaluate(episodes, seed=TEST_SEED + seed)
    agent.greedy_model.set_weights(best["weights"])  # the average with --ema, else the online network
    at_best = agent.evaluate(episodes, seed=TEST_SEED + seed)
    agent.close()
    return {
        "seed": seed,
        "steps": agent.total_steps,
        "episodes": agent.episode,
        "eval_mean": float(final.mean()),
        "eval_std": float(final.std()),
        "train_seconds": train_seconds,
        "steps_per_s": agent.total_steps / train_seconds,
        "first_step_goal": next((s for s, (m, _) in sorted(curve.items()) if m >= GOAL), None),
        "best_step": best["step"],
        "best_eval_mean": float(at_best.mean()),
        "best_eval_std": float(at_best.std()),
        "curve": curve,
        "cfg": cfg,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--agent", choices=("ddqn", "dqn"), default="ddqn")
    p.add_argument("--eval-every", type=int, default=5_000, help="env steps between validation checkpoints")
    p.add_argument("--episodes", type=int, default=20, help="greedy episodes per evaluation")
    p.add_argument("--out", default=None, help="CSV path [benchmarks/results/cartpole_<agent>_<backend>.csv]")
    args = p.parse_args(argv)

    import keras

    backend = keras.backend.backend()
    results = []
    for seed in args.seeds:
        print(f"== {args.agent} seed {seed} ({backend}) ==", flush=True)
        results.append(run_seed(args.agent, seed, args.steps, args.eval_every, args.episodes))

    cfg = results[0]["cfg"]
    print(f"\nCartPole-v1 {args.agent}, backend {backend}, {args.steps} steps, {args.episodes} eval episodes")
    print("preset: " + ", ".join(f"{k}={cfg[k]}" for k in PRESET_KEYS))
    print(
        f"{'seed':>4}  {'eval at end':>16}  {'train s':>8}  {'steps/s':>8}  {'first >= 475':>12}  "
        f"{'best ckpt (step)':>24}  validation curve"
    )
    for r in results:
        curve = " ".join(f"{m:.0f}" for _, (m, _) in sorted(r["curve"].items()))
        first = r["first_step_goal"] if r["first_step_goal"] is not None else "-"
        print(
            f"{r['seed']:>4}  {r['eval_mean']:7.1f} ± {r['eval_std']:6.1f}  {r['train_seconds']:8.1f}  "
            f"{r['steps_per_s']:8.0f}  {first:>12}  {r['best_eval_mean']:7.1f} ± {r['best_eval_std']:5.1f} "
            f"({r['best_step']:6d})  {curve}"
        )
    means, secs, speed = (np.array([r[k] for r in results]) for k in ("eval_mean", "train_seconds", "steps_per_s"))
    print(f"mean  {means.mean():7.1f} ± {means.std():6.1f}  {secs.mean():8.1f}  {speed.mean():8.0f}  (± across seeds)")
    best = np.array([r["best_eval_mean"] for r in results])
    print(f"best checkpoint, mean across seeds: {best.mean():.1f} ± {best.std():.1f}")
    met = bool(np.all(means >= GOAL))
    print(f"goal (eval mean >= {GOAL:g} at {args.steps} steps on every seed): {'MET' if met else 'NOT MET'}")

    out = args.out or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", f"cartpole_{args.agent}_{backend}.csv"
    )
    os.makedirs(os.path.dirname(out), exist_ok=True)
    steps_seen = sorted({s for r in results for s in r["curve"]})
    fields = "backend agent seed steps episodes eval_mean eval_std train_seconds steps_per_s first_step_goal".split()
    fields += ["best_step", "best_eval_mean", "best_eval_std"]
    fields += [f"validation_mean_{s}" for s in steps_seen]
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in results:
            row = {k: round(r[k], 2) if isinstance(r[k], float) else r[k] for k in fields if k in r}
            row.update(backend=backend, agent=args.agent)
            row.update({f"validation_mean_{s}": round(m, 2) for s, (m, _) in r["curve"].items()})
            w.writerow(row)
    print(f"wrote {out}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
