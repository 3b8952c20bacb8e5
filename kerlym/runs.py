"""Run folders and atomic checkpoints.

A run folder holds ``config.json``, ``progress.csv``, ``training.png`` and
``checkpoints/``. Each checkpoint is a folder written under a temporary name
and renamed into place; ``checkpoints/latest`` names the newest complete one
and is itself replaced atomically, so a run killed mid-write keeps its
previous checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import time

CONFIG = "config.json"
PROGRESS = "progress.csv"
PLOT = "training.png"
CHECKPOINTS = "checkpoints"
MODEL = "model.keras"
STATE = "state.json"
ARRAYS = "arrays.npz"
EVALUATIONS = "evaluations.csv"
BEST = "best.keras"


def first_line(error: BaseException) -> str:
    """An exception as one line of text."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class CheckpointError(Exception):
    """A checkpoint or run folder is missing or unreadable."""


def new_run_dir(outdir: str, env_id: str, agent: str) -> str:
    """Create ``outdir/<env>-<agent>-<time>`` (made unique) and return it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.join(outdir, f"{env_id.replace('/', '_')}-{agent}-{stamp}")
    path, n = base, 1
    while os.path.exists(path):
        n += 1
        path = f"{base}-{n}"
    os.makedirs(path)
    return path


def _atomic_write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_config(run_dir: str, config: dict) -> None:
    _atomic_write(os.path.join(run_dir, CONFIG), json.dumps(config, indent=2, sort_keys=True) + "\n")


def read_config(run_dir: str) -> dict:
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isdir(run_dir):
        raise CheckpointError(f"run folder {run_dir!r} does not exist")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir!r} is not a kerlym run folder (no {CONFIG})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is corrupt: {e}") from None


def save_checkpoint(run_dir: str, agent, include_memory: bool = False, keep: int = 2) -> str:
    """Write the agent's model and state as a new checkpoint; returns its folder."""
    import numpy as np

    root = os.path.join(run_dir, CHECKPOINTS)
    os.makedirs(root, exist_ok=True)
    name = f"step-{agent.total_steps:010d}"
    final = os.path.join(root, name)
    tmp = os.path.join(root, f".tmp-{name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    agent.model.save(os.path.join(tmp, MODEL))
    kwargs = {"include_memory": True} if include_memory and hasattr(agent, "memory") else {}
    meta, arrays = agent.get_state(**kwargs)
    np.savez(os.path.join(tmp, ARRAYS), **arrays)
    _atomic_write(os.path.join(tmp, STATE), json.dumps(meta))
    if os.path.exists(final):  # same step saved twice (e.g. Ctrl-C right after a checkpoint)
        shutil.rmtree(final)
    os.rename(tmp, final)
    _atomic_write(os.path.join(root, "latest"), name + "\n")
    existing = sorted(d for d in os.listdir(root) if d.startswith("step-"))
    for old in existing[:-keep]:
        shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str) -> str:
    """Folder of the newest complete checkpoint of ``run_dir``."""
    root = os.path.join(run_dir, CHECKPOINTS)
    try:
        with open(os.path.join(root, "latest")) as f:
            name = f.read().strip()
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir!r} has no checkpoint to resume from") from None
    path = os.path.join(root, name)
    missing = [f for f in (MODEL, STATE, ARRAYS) if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete (missing {', '.join(missing)})")
    return path


def load_model(path: str):
    """Load a ``.keras`` model in Keras's safe mode; unreadable files raise :class:`CheckpointError`."""
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # Keras raises many types for a bad file
        raise CheckpointError(f"cannot load model {path}: {first_line(e)}") from None


def restore_checkpoint(path: str, agent) -> None:
    """Load the checkpoint in ``path`` into an agent built with the run's config."""
    import numpy as np

    saved = load_model(os.path.join(path, MODEL))
    try:
        with open(os.path.join(path, STATE)) as f:
            meta = json.load(f)
        with np.load(os.path.join(path, ARRAYS)) as npz:
            arrays = dict(npz)
        agent.model.set_weights(saved.get_weights())
        agent.set_state(meta, arrays)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or does not match this agent: {e}") from None


def greedy_weights(path: str) -> list:
    """The weights of the network a saved agent acts greedily with.

    ``path`` is a ``.keras`` file (``best.keras``) or a checkpoint folder; a
    checkpoint of an agent with a weight average (``--ema``) gives the average,
    otherwise its ``model.keras``.
    """
    import numpy as np

    if os.path.isdir(path):
        try:
            with np.load(os.path.join(path, ARRAYS)) as npz:  # loads only the arrays asked for
                keys = sorted((k for k in npz.files if k.startswith("ema/")), key=lambda k: int(k[4:]))
                if keys:
                    return [npz[k] for k in keys]
        except Exception as e:  # a truncated or overwritten file: BadZipFile, OSError, ValueError, ...
            raise CheckpointError(f"checkpoint {path} is corrupt: {first_line(e)}") from None
        path = os.path.join(path, MODEL)
    return load_model(path).get_weights()


def record_evaluation(run_dir: str, agent, mean: float, std: float) -> bool:
    """Append an evaluation to ``evaluations.csv``; save ``best.keras`` if its mean is the best yet."""
    path = os.path.join(run_dir, EVALUATIONS)
    best_before = float("-inf")
    if os.path.exists(path):
        with open(path) as f:
            for line in f.readlines()[1:]:
                best_before = max(best_before, float(line.split(",")[1]))
    else:
        with open(path, "w") as f:
            f.write("total_steps,mean,std\n")
    with open(path, "a") as f:
        f.write(f"{agent.total_steps},{mean},{std}\n")
    if mean <= best_before:
        return False
    tmp = os.path.join(run_dir, f".tmp-{os.getpid()}-{BEST}")
    agent.greedy_model.save(tmp)
    os.replace(tmp, os.path.join(run_dir, BEST))
    return True


def best_model(run_dir: str) -> str:
    """Path of the run's best model (saved by evaluations during training)."""
    path = os.path.join(run_dir, BEST)
    if not os.path.isfile(path):
        raise CheckpointError(f"{run_dir!r} has no {BEST}; train with --eval_every N to keep the best model")
    return path
