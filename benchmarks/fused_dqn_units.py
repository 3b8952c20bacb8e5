"""Fused DQN's compiled pieces under ``jax.vmap``, timed alone: where a group of seeds' loop spends its time.

    KERAS_BACKEND=jax python benchmarks/fused_dqn_units.py --seeds 16     # results/fused_dqn_units.json

Builds ``--seeds`` DQN agents on ``gymnax:CartPole-v1`` at CleanRL's settings (``speed.cleanrl_dqn_settings``,
CleanRL's network, a buffer of 10,000 transitions), stacks them as :class:`kerlym.agents.fused.FusedGroup`
does and times, each ``--repeats`` times in turn (the least kept; wall-clock and the process's CPU time):

* a run's first chunk (16,384 steps a seed, ``learning_starts`` inside it) with every unit looking at its
  buffer (the update computed and selected away before ``learning_starts``: the way before 2026-12-07), and
  with the units before ``learning_starts`` collect-only (``FusedDQN.collect_units``);
* once the buffers are full: a chunk of ``--units`` units that train, and of units that only collect;
* the update alone (vmapped ``update_arrays`` on one sampled batch, scanned ``--units`` times) and the
  sample alone (vmapped ``FusedDQN.sample``, scanned).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--units", type=int, default=100, help="units in the chunks timed once the buffers are full")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", "")  # time a first run's programs as they are
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import jax
    import jax.numpy as jnp
    from speed import cleanrl_dqn_settings, cleanrl_mlp

    import kerlym
    from kerlym import networks

    networks.NETWORKS["cleanrl_mlp"] = cleanrl_mlp
    settings = {**cleanrl_dqn_settings(50_000), "modelfactory": "cleanrl_mlp", "max_memory": 10_000}
    agents = [kerlym.make("gymnax:CartPole-v1", "dqn", seed=s, **settings) for s in range(args.seeds)]
    for seed, agent in enumerate(agents):
        agent.fused.begin(seed)
    fused, agent = agents[0].fused, agents[0]
    fresh = jax.tree.map(lambda *xs: jnp.stack(xs), *[a.fused.inputs(None) for a in agents])
    limits = jnp.zeros(args.seeds, jnp.int32)
    waiting = fused.collect_units()
    size, n = fused.chunk_updates, args.units

    def chunk_of(units):
        in_axes = (0, 0, 0, 0, 0, 0, None, 0, None)
        return jax.jit(jax.vmap(lambda *a: fused.chunk(units, *a), in_axes=in_axes))

    first, short = chunk_of(size), chunk_of(n)
    full = fresh
    while not bool(np.asarray(full[3].buffer.is_full).all()):  # fill the buffers, collecting only
        tv, ntv, ov, carry, key, _ = short(*full, n, limits, n)
        full = (tv, ntv, ov, carry, key, full[5] + n * fused.rollout_steps)
    tv, ntv, ov, carry, key, steps = full
    keys = jax.vmap(lambda k: jax.random.split(k)[0])(key)
    batch = jax.jit(jax.vmap(fused.sample))(carry.buffer, keys)

    def updates(tv, ntv, ov, target, batch):
        def body(c, _):
            tv, ntv, ov, rows = jax.vmap(agent.steps.update_arrays)(*c, *target, batch)
            return (tv, ntv, ov), rows

        return jax.lax.scan(body, (tv, ntv, ov), None, length=n)

    def samples(buffer, key):
        def body(c, i):
            out = jax.vmap(fused.sample)(buffer, jax.vmap(lambda k: jax.random.fold_in(k, i))(key))
            return c, jax.tree.map(lambda x: x.sum(), out)  # every field, so none is left uncomputed

        return jax.lax.scan(body, 0, jnp.arange(n))

    cases = {  # name: (program, its arguments, units in a call)
        "first chunk, every unit computing the update": (first, (*fresh, size, limits, 0), size),
        f"first chunk, its first {waiting} units collect-only": (first, (*fresh, size, limits, waiting), size),
        "a unit that trains": (short, (*full, n, limits, 0), n),
        "a unit that only collects": (short, (*full, n, limits, n), n),
        "the update alone": (jax.jit(updates), (tv, ntv, ov, carry.target, batch), n),
        "the sample alone": (jax.jit(samples), (carry.buffer, key), n),
    }
    times: dict[str, list] = {name: [] for name in cases}
    for program, inputs, _ in cases.values():
        jax.block_until_ready(program(*inputs))  # compiled and run once
    for _ in range(args.repeats):
        for name, (program, inputs, _) in cases.items():
            wall, cpu = time.perf_counter(), cpu_seconds()
            jax.block_until_ready(program(*inputs))
            times[name].append((time.perf_counter() - wall, cpu_seconds() - cpu))
    rows = []
    print(f"{args.seeds} seeds, the least of {args.repeats}: wall-clock and CPU seconds a call, and a unit")
    for name, (_, _, units) in cases.items():
        wall, cpu = np.min(np.array(times[name]), axis=0)
        rows.append({"piece": name, "units": units, "wall_s": wall, "cpu_s": cpu, "cpu_ms_per_unit": cpu / units * 1e3})
        print(f"| {name} | {wall:.3f} s | {cpu:.3f} s | {cpu / units * 1e3:.2f} ms a unit |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
