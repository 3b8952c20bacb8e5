"""DQN on Pong with an actor process (``--actors process``) against local acting and SB3's DQN, side by side.

    python benchmarks/actors.py                      # 3 rounds of 3 rows, about 15 minutes on 2 cores
    python benchmarks/actors.py --rounds 1 --pong-steps 1000 --pong-learning-starts 500   # a smoke test

Every row is one ``benchmarks/speed.py`` Pong worker in a fresh process (the same network, update ratio,
replay and exploration in all three: see ``speed.py``'s docstring, "pong"): kerlym DQN acting locally,
kerlym DQN with an actor process (``actors="process"``, weights pushed every ``--sync-every`` updates), and
SB3's DQN. A round runs the three one after another, so a ratio compares rows that ran minutes apart on the
same machine; the rounds repeat that to show how noisy the ratios are (other work on a shared machine moves
them). Printed: each row's steps/s, then per ratio its mean ± std over the rounds. Results go to
``benchmarks/results/actors.json``.

``--ray-overhead`` adds the cost of ``--ray`` on one seed: ``kerlym -e CartPole-v1 -a dqn --preset --seed 0
--steps N`` against the same with ``--seeds 0 --ray`` (one Ray Tune trial on a local Ray cluster), and the
gain on two: ``--seeds 0 1`` (one after another) against ``--seeds 0 1 --ray`` (two trials at once), each the
whole command's wall time, in turn, ``--rounds`` times (``--no-pong`` skips the Pong rows).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from speed import pong_spec, run_row

HERE = os.path.dirname(os.path.abspath(__file__))


def pong_round(args) -> list[dict]:
    rows = []
    for vector in args.vector_envs:
        base, tag = pong_spec(args, dtype_policy=args.dtype, vector_env=vector), vector_tag(vector)
        rows += [
            run_row("actors", f"kerlym DQN (local{tag})", args.backend, {**base, "actors": "local"}),
            run_row("actors", f"kerlym DQN (process{tag})", args.backend, {**base, "actors": "process",
                                                                           "actor_sync_every": args.sync_every}),
        ]  # fmt: skip
    if not args.no_sb3:
        rows.append(run_row("actors", "SB3 DQN", "torch", {**base, "fn": "sb3_pong"}))
    return rows


def vector_tag(vector_env: str | None) -> str:
    return f", {vector_env}" if vector_env else ""


def command_seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return time.perf_counter() - start


def ray_round(args) -> dict:
    """One seed plain and with ``--ray``; then two seeds one after another and as two Ray Tune trials."""
    with tempfile.TemporaryDirectory() as out:
        base = [sys.executable, "-m", "kerlym", "-e", "CartPole-v1", "-a", "dqn", "--preset", "-q", "--outdir", out]
        base += ["--steps", str(args.ray_steps)]
        plain = command_seconds([*base, "--seed", "0"])
        ray = command_seconds([*base, "--seeds", "0", "--ray"])
        two = command_seconds([*base, "--seeds", "0", "1"])
        two_ray = command_seconds([*base, "--seeds", "0", "1", "--ray"])
    print(f"-- ray: one seed plain {plain:.1f} s, --ray {ray:.1f} s; two seeds in turn {two:.1f} s, "
          f"--ray {two_ray:.1f} s", flush=True)  # fmt: skip
    return {"plain_s": plain, "ray_s": ray, "ratio": ray / plain, "two_seeds_s": two, "two_seeds_ray_s": two_ray,
            "speedup": two / two_ray}  # fmt: skip


def mean_std(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.2f} ± {v.std():.2f} (n={len(v)}: {', '.join(f'{x:.2f}' for x in v)})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--backend", default="tensorflow", choices=("tensorflow", "jax"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--pong-steps", type=int, default=3000, help="timed env steps per row")
    p.add_argument("--pong-learning-starts", type=int, default=1000)
    p.add_argument("--pong-buffer", type=int, default=10_000)
    p.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "mixed_bfloat16"),
        help="kerlym's dtype policy (SB3 stays float32)",
    )
    p.add_argument("--sync-every", type=int, default=None, help="process rows' actor_sync_every (default: kerlym's)")
    p.add_argument("--no-sb3", action="store_true", help="skip the SB3 rows")
    p.add_argument(
        "--vector-envs",
        nargs="+",
        default=[None],
        type=lambda v: None if v == "default" else v,
        help="kerlym's rows once per --vector_env (default: kerlym's own; envpool: EnvPool's threads)",
    )
    p.add_argument(
        "--ray-overhead",
        action="store_true",
        help="also time --seeds 0 --ray against a plain run, --seeds 0 1 --ray against them in turn",
    )
    p.add_argument("--no-pong", action="store_true", help="skip the Pong rounds")
    p.add_argument("--ray-steps", type=int, default=20_000)
    p.add_argument("--out", default=os.path.join(HERE, "results", "actors.json"))
    args = p.parse_args(argv)

    rounds = [] if args.no_pong else [pong_round(args) for _ in range(args.rounds)]
    ratios = {}
    for rows in rounds:
        rate = {r["system"]: r.get("steps_per_s", float("nan")) for r in rows}
        for tag in map(vector_tag, args.vector_envs):
            process, local = rate[f"kerlym DQN (process{tag})"], rate[f"kerlym DQN (local{tag})"]
            ratios.setdefault(f"process / local{tag}", []).append(process / local)
            if "SB3 DQN" in rate:
                ratios.setdefault(f"process{tag} / SB3", []).append(process / rate["SB3 DQN"])
                ratios.setdefault(f"local{tag} / SB3", []).append(local / rate["SB3 DQN"])
    ray = [ray_round(args) for _ in range(args.rounds)] if args.ray_overhead else []
    print("\nsteps/s per round:")
    for i, rows in enumerate(rounds):
        print(f"  round {i + 1}: " + ", ".join(f"{r['system']} {r.get('steps_per_s', float('nan')):.0f}" for r in rows))
    print("ratios of steps/s, mean ± std over rounds:")
    for name, values in ratios.items():
        if values:
            print(f"  {name}: {mean_std(values)}")
    if ray:
        print(f"--ray / plain wall time ({args.ray_steps} CartPole steps): {mean_std([r['ratio'] for r in ray])}")
        print(f"two seeds, in turn / --ray wall time: {mean_std([r['speedup'] for r in ray])}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"args": vars(args), "rounds": rounds, "ratios": ratios, "ray": ray}, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
