"""Self-play's opponent moves: what one batched network call costs each way, and a whole vector step.

Times, on one batch of ``-c`` tic-tac-toe states: Keras's eager call of the learner's model, ``stateless_call``
with a snapshot's weight lists, a cloned model (eager and ``predict_on_batch``), the compiled act of the
network copy :class:`kerlym.agents.selfplay.SelfPlayPool` keeps per opponent, giving that copy a snapshot's
weights, and one self-play vector step (the learner's act, its moves, the opponents' batched moves).

    python benchmarks/selfplay_speed.py -c 8
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def per_call_ms(fn, repeats: int) -> float:
    """Milliseconds per call of ``fn`` (after one untimed call), the median of 5 rounds of ``repeats`` calls."""
    fn()
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        rounds.append((time.perf_counter() - t0) / repeats * 1e3)
    return float(np.median(rounds))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)

    import keras
    from keras import ops

    import kerlym

    n = args.concurrency
    agent = kerlym.make(
        "openspiel:tic_tac_toe", "ppo", modelfactory="actor_critic_mlp", nframes=1, seed=0, self_play=2,
        concurrency=n, vector_env="sync",
    )  # fmt: skip
    pool, model = agent.pool, agent.model
    pool.snapshot_when_due(pool.every)
    x = np.random.default_rng(0).random((n, agent.input_dim)).astype(np.float32)
    masks = np.ones((n, agent.num_actions), dtype=bool)
    trainable = [v.numpy() for v in model.trainable_variables]
    non_trainable = [v.numpy() for v in model.non_trainable_variables]
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    copy = pool._acting(0)
    envs = agent.vector_env()
    obs, info = envs.reset(seed=0)

    def vector_step():
        nonlocal info
        actions, _ = agent.act(np.asarray(obs).reshape(n, -1), masks=info["action_mask"].astype(bool))
        info = envs.step(actions)[4]

    rows = {
        "eager model(x)": lambda: ops.convert_to_numpy(model(x, training=False)),
        "stateless_call(snapshot weights, x)": lambda: ops.convert_to_numpy(
            model.stateless_call(trainable, non_trainable, x, training=False)[0]
        ),
        "cloned model, eager": lambda: ops.convert_to_numpy(clone(x, training=False)),
        "cloned model, predict_on_batch": lambda: clone.predict_on_batch(x),
        "the pool's copy, compiled act (used)": lambda: copy.act(x),
        "giving the copy a snapshot's weights": lambda: copy.set_weights(pool.snapshots[0][1]),
        "pool.moves, all envs, one opponent": lambda: pool.moves(x, masks, list(range(n))),
        f"self-play vector step, {n} envs": vector_step,
    }
    print(f"| what ({keras.backend.backend()}, batch {n}) | ms per call |\n| --- | --- |")
    for name, fn in rows.items():
        print(f"| {name} | {per_call_ms(fn, args.repeats):.2f} |", flush=True)
    agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
