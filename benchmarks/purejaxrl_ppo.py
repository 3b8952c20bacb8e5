"""Time PureJaxRL's own ``ppo.py`` on CartPole-v1: its ``make_train`` and ``__main__`` config, unchanged.

Run by ``speed.py --peers purejaxrl`` with PureJaxRL's Python (``$PUREJAXRL_PYTHON``) and its ``purejaxrl/``
folder on the path; kerlym is not imported here. The one change to its ``__main__`` is ``DEBUG`` off: with it
on, ``ppo.py`` prints every ended episode through a host callback each update, which kerlym's row does not
do. ``purejaxrl/wrappers.py`` imports Brax and navix at its top for its Brax and navix wrappers, which the
CartPole run never uses: when they are not installed, empty stand-ins take their place, so their imports cost
PureJaxRL nothing (the comparison stricter for kerlym). Prints one line, ``SPEED-RESULT {json}``: the seconds
spent importing, tracing and compiling (``jax.jit(train).lower(key).compile()``) and running the compiled
program, and the mean return of the episodes that ended in the last 10 updates (a check that it learned).
PureJaxRL's code at commit 31756b1 calls ``env.step`` for 5 values, gymnax 0.0.x's API (gymnax 0.0.9 here)::

    PYTHONPATH=/tmp/purejaxrl/purejaxrl /tmp/purejaxrl-venv/bin/python benchmarks/purejaxrl_ppo.py --seed 30
"""

import time

START = time.perf_counter()

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402


def stand_in(name: str, **attrs) -> None:
    """An empty module ``name`` (and its parents) in ``sys.modules``, unless the real one is installed."""
    if importlib.util.find_spec(name.split(".")[0]) is not None:
        return
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    for i in range(1, len(parts)):
        setattr(sys.modules[".".join(parts[:i])], parts[i], sys.modules[".".join(parts[: i + 1])])
    vars(sys.modules[name]).update(attrs)


stand_in("brax.envs.wrappers.training", EpisodeWrapper=None, AutoResetWrapper=None)
stand_in("navix")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from ppo import make_train  # noqa: E402  (PureJaxRL's purejaxrl/ppo.py)

# ppo.py's __main__ config (commit 31756b1), DEBUG off
CONFIG = {
    "LR": 2.5e-4,
    "NUM_ENVS": 4,
    "NUM_STEPS": 128,
    "TOTAL_TIMESTEPS": 5e5,
    "UPDATE_EPOCHS": 4,
    "NUM_MINIBATCHES": 4,
    "GAMMA": 0.99,
    "GAE_LAMBDA": 0.95,
    "CLIP_EPS": 0.2,
    "ENT_COEF": 0.01,
    "VF_COEF": 0.5,
    "MAX_GRAD_NORM": 0.5,
    "ACTIVATION": "tanh",
    "ENV_NAME": "CartPole-v1",
    "ANNEAL_LR": True,
    "DEBUG": False,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=30, help="jax.random.PRNGKey(SEED); ppo.py's __main__ uses 30")
    p.add_argument("--total-timesteps", type=float, default=CONFIG["TOTAL_TIMESTEPS"])
    args = p.parse_args()
    imported = time.perf_counter()
    config = {**CONFIG, "TOTAL_TIMESTEPS": args.total_timesteps}
    key = jax.random.PRNGKey(args.seed)
    train = jax.jit(make_train(config))
    compiled = train.lower(key).compile()
    built = time.perf_counter()
    out = jax.block_until_ready(compiled(key))
    ran = time.perf_counter()
    info = out["metrics"]
    ended = np.asarray(info["returned_episode"])[-10:]
    returns = np.asarray(info["returned_episode_returns"])[-10:][ended]
    steps = int(config["NUM_UPDATES"]) * config["NUM_STEPS"] * config["NUM_ENVS"]
    row = {
        "steps": steps,
        "import_s": imported - START,
        "compile_s": built - imported,
        "loop_s": ran - built,
        "seconds": ran - START,
        "train_return": float(returns.mean()) if returns.size else float("nan"),
    }
    print("SPEED-RESULT " + json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
