"""The arithmetic floor of 16 seeds of CartPole PPO on this machine: PPO's gradient steps in plain JAX, no Keras.

    python benchmarks/ppo_floor.py                      # results/ppo_floor.json

The RL Zoo's CartPole PPO (SB3's MlpPolicy: separate 64-64 tanh networks for the policy and the value,
8 envs x 32 steps = one minibatch of 256, 20 epochs, 100k steps) makes 391 x 20 = 7,820 gradient steps a
seed. This times those steps alone, written in ``jax.numpy`` (the clipped surrogate and the value loss,
plain SGD), ``jax.vmap``-ed over ``--part`` seeds and scanned ``--steps`` times in one compiled program on
one core (XLA's CPU threads off), the least of ``--repeats``. From it: the seconds the 16 seeds' gradient
steps need on ``--cores`` cores with a part per core, the way ``kerlym.agents.fused.FusedGroup`` runs
them, before any env step, rollout, GAE, import or compile. Nothing of kerlym is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

PPO_STEPS_PER_SEED = 391 * 20  # rollouts of 256 steps in 100k, each 20 epochs of one minibatch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", type=int, default=8, help="seeds vmapped in one program (16 seeds on 2 cores: 8)")
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--steps", type=int, default=200, help="gradient steps scanned in the timed program")
    p.add_argument("--repeats", type=int, default=3)
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--out", default=os.path.join(here, "results", "ppo_floor.json"))
    args = p.parse_args(argv)
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    import jax
    import jax.numpy as jnp

    batch = 256

    def dense(key, n_in, n_out):
        return jax.random.normal(key, (n_in, n_out)) / jnp.sqrt(n_in), jnp.zeros(n_out)

    def init(key):
        k = jax.random.split(key, 6)
        policy = [dense(k[0], 4, 64), dense(k[1], 64, 64), dense(k[2], 64, 2)]
        value = [dense(k[3], 4, 64), dense(k[4], 64, 64), dense(k[5], 64, 1)]
        return policy + value

    def mlp(layers, x):
        for w, b in layers[:-1]:
            x = jnp.tanh(x @ w + b)
        w, b = layers[-1]
        return x @ w + b

    def loss(params, obs, actions, advantages, old_log_probs, returns):
        logits, values = mlp(params[:3], obs), mlp(params[3:], obs)[:, 0]
        log_probs = jnp.take_along_axis(jax.nn.log_softmax(logits), actions[:, None], axis=1)[:, 0]
        ratio = jnp.exp(log_probs - old_log_probs)
        surrogate = jnp.minimum(ratio * advantages, jnp.clip(ratio, 0.8, 1.2) * advantages)
        return -surrogate.mean() + 0.5 * ((values - returns) ** 2).mean()

    def steps(params, *data):
        def step(params, _):
            grads = jax.grad(loss)(params, *data)
            return jax.tree.map(lambda w, g: w - 1e-3 * g, params, grads), None

        return jax.lax.scan(step, params, None, length=args.steps)[0]

    program = jax.jit(jax.vmap(steps))
    keys = jax.random.split(jax.random.key(0), args.part)
    params = jax.vmap(init)(keys)
    data = (
        jax.random.normal(keys[0], (args.part, batch, 4)),
        jnp.zeros((args.part, batch), jnp.int32),
        jnp.ones((args.part, batch)),
        jnp.full((args.part, batch), -0.69),
        jnp.ones((args.part, batch)),
    )
    jax.block_until_ready(program(params, *data))  # compiled, and run once
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        jax.block_until_ready(program(params, *data))
        times.append(time.perf_counter() - start)
    per_step = min(times) / (args.steps * args.part)  # seconds a seed's gradient step, on one core
    macs = batch * (4 * 64 + 64 * 64 + 64 * 2 + 4 * 64 + 64 * 64 + 64)  # forward, both networks
    floor = per_step * PPO_STEPS_PER_SEED * args.seeds / args.cores
    row = {
        "part": args.part,
        "steps": args.steps,
        "us_per_seed_step": per_step * 1e6,
        "gflops_per_core": 3 * 2 * macs / per_step / 1e9,  # backward about twice the forward
        "seeds": args.seeds,
        "cores": args.cores,
        "floor_s": floor,
        "jax": jax.__version__,
    }
    print(
        f"a gradient step: {row['us_per_seed_step']:.0f} µs a seed on one core ({row['gflops_per_core']:.0f} GFLOP/s); "
        f"{args.seeds} seeds x {PPO_STEPS_PER_SEED} steps on {args.cores} cores: {floor:.1f} s"
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(row, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
