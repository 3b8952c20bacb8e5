"""Checkpoints, the greedy weights saved agents play with, and evaluations during training.

Each checkpoint is a folder ``checkpoints/step-<N>/`` (``model.keras``,
``state.json``, ``arrays.npz``) written under a temporary name and renamed
into place; ``checkpoints/latest`` names the newest complete one and is
itself replaced atomically, so a run killed mid-write keeps its previous
checkpoint. The read-only functions take no lock, so ``--play`` works beside
a training run and on a read-only file system.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TypeVar

from kerlym._io import (
    CheckpointError,
    NonFiniteError,
    atomic_write,
    first_line,
    fsync,
    os_error,
    reason,
    remove,
    temporary_path,
)
from kerlym.config import ConfigError
from kerlym.runs import ARRAYS, BEST, CHECKPOINTS, EVALUATIONS, LATEST, MODEL, STATE, STEP_NAME

EVALUATION = "evaluation.json"
# evaluations.csv's columns: one row per evaluation, or with --eval_opponents one per (evaluation, opponent).
EVALUATION_FIELDS = ["total_steps", "mean", "std"]
OPPONENT_FIELDS = EVALUATION_FIELDS + ["opponent", "wins", "draws", "losses", "win_rate", "win_rate_lo", "win_rate_hi"]
T = TypeVar("T")
IN_FLIGHT = "in_flight/"  # the arrays of the episodes in progress in a checkpoint's arrays.npz
WEIGHTS = ("online", "average", "best")  # the weights a saved run is played or started from (--weights)


def non_finite_arrays(arrays: dict) -> list[str]:
    """Names of the floating-point arrays in ``arrays`` that hold NaN or inf (integer arrays are skipped)."""
    import numpy as np

    bad = []
    for name, value in arrays.items():
        a = np.asarray(value)
        if a.dtype.kind in "biuSUOM?":  # counters, flags and the like: never NaN
            continue
        if not np.isfinite(a).all():  # also bfloat16 (kind "V", from ml_dtypes)
            bad.append(name)
    return bad


def _read_latest_name(root: str) -> str | None:
    """The name in ``checkpoints/latest``; None if there is no such file. Corrupt contents raise."""
    path = os.path.join(root, LATEST)
    try:
        with open(path, "rb") as f:
            raw = f.read(256)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {reason(e)}") from None
    try:
        name = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        name = ""
    if not STEP_NAME.fullmatch(name):
        raise CheckpointError(f"{path} is corrupt: it does not name a checkpoint")
    return name


def _latest_or_none(root: str) -> str | None:
    try:
        return _read_latest_name(root)
    except CheckpointError:
        return None


def keep_keras_skipsets() -> None:
    """Let Keras's next ``.keras`` save in this thread find the skip sets its last one made.

    Keras's saving (``saving_lib.get_attr_skipset``, Keras 3.15) stores each kind of object's set of
    attributes to skip as ``saving_attr_skipset_<kind>`` in its thread's global state, but looks for it
    as ``saving_attr_skiplist_<kind>``: every save builds throwaway ``Layer`` and ``Optimizer`` objects to
    make the sets again, about half of a small model's save. The sets stored are set under the name read
    too; where Keras reads what it stores, or keeps its state elsewhere, nothing changes.
    """
    try:
        from keras.src.backend.common import global_state
    except ImportError:
        return
    state = getattr(global_state, "GLOBAL_STATE_TRACKER", None)
    stored = "saving_attr_skipset_"
    for name, value in list(getattr(state, "__dict__", {}).items()):
        if name.startswith(stored) and getattr(state, "saving_attr_skiplist_" + name[len(stored) :], None) is None:
            setattr(state, "saving_attr_skiplist_" + name[len(stored) :], value)


def save_checkpoint(
    run_dir: str, agent, include_memory: bool = False, keep: int = 2, in_flight: tuple | None = None
) -> str:
    """Write the agent's model and state as a new checkpoint; returns its folder.

    ``in_flight``: the runner's episodes in progress as ``(meta, arrays)`` (self-play's games), saved as
    ``state.json``'s ``in_flight`` and the arrays under ``in_flight/``; :func:`restore_checkpoint` hands
    them to the agent's ``in_flight`` for the next run to go on with.

    Nothing that exists is touched until the new checkpoint is complete: a
    failed or killed save leaves the previous checkpoint as ``latest``.
    Checkpoints newer than this one (left from before a resume that fell
    back past them) and all but the ``keep`` newest are removed after it.

    Raises:
        NonFiniteError: the model weights or optimizer state hold NaN or inf; nothing is written.
        CheckpointError: the disk is full, read-only, ...; the partial checkpoint is removed.
    """
    import numpy as np

    root = os.path.join(run_dir, CHECKPOINTS)
    name = f"step-{agent.total_steps:010d}"
    previous = _latest_or_none(root)
    kwargs = {"include_memory": True} if include_memory and hasattr(agent, "memory") else {}
    meta, arrays = agent.get_state(**kwargs)
    weights = {f"model weight {i}": w for i, w in enumerate(agent.model.get_weights())}
    checked = {**weights, **{k: v for k, v in arrays.items() if not k.startswith("memory/")}}  # replay is data
    if in_flight is not None:  # data too, like the replay memory: not checked
        meta = {**meta, "in_flight": in_flight[0]}
        arrays = {**arrays, **{f"{IN_FLIGHT}{k}": v for k, v in in_flight[1].items()}}
    bad = non_finite_arrays(checked)
    if bad:
        kept = f"{previous} stays the latest checkpoint" if previous else "no checkpoint is written"
        raise NonFiniteError(
            f"refusing to save a checkpoint at step {agent.total_steps}: NaN or inf in {', '.join(bad[:3])}"
            f"{' and more' if len(bad) > 3 else ''}; {kept}"
        )

    final = os.path.join(root, name)
    tmp = temporary_path(final)
    replaced = temporary_path(os.path.join(root, "old-" + name))
    renamed = False
    try:
        os.makedirs(root, exist_ok=True)
        remove(tmp)
        os.makedirs(tmp)
        from kerlym.backend import tensorflow_left_alone

        with tensorflow_left_alone():
            agent.model.save(os.path.join(tmp, MODEL))
        keep_keras_skipsets()
        np.savez(os.path.join(tmp, ARRAYS), **arrays)
        atomic_write(os.path.join(tmp, STATE), json.dumps(meta))
        for file in (MODEL, ARRAYS):
            fsync(os.path.join(tmp, file))
        if os.path.exists(final):  # same step saved twice (e.g. Ctrl-C right after a checkpoint)
            os.rename(final, replaced)  # a kill before the next rename: resumable_checkpoint falls back
        os.rename(tmp, final)
        renamed = True
        fsync(root)
        atomic_write(os.path.join(root, LATEST), name + "\n")
        fsync(root)
    except BaseException as e:  # also KeyboardInterrupt: never leave a partial folder behind
        remove(tmp)
        if renamed and _latest_or_none(root) != name:  # complete, but `latest` could not be moved to it
            remove(final)
        if os.path.exists(replaced) and not os.path.exists(final):
            os.rename(replaced, final)  # the same step's earlier checkpoint goes back in place
        remove(replaced)
        err = os_error(e)
        if err is None or not isinstance(e, Exception):
            raise
        kept = f"previous checkpoint kept: {previous}" if previous else "no earlier checkpoint"
        raise CheckpointError(f"cannot write checkpoint in {root}: {reason(err)} ({kept})") from None
    remove(replaced)
    existing = sorted(d for d in os.listdir(root) if STEP_NAME.fullmatch(d))
    older = [d for d in existing if d <= name]
    for old in [d for d in existing if d > name] + older[:-keep]:
        remove(os.path.join(root, old))
    return final


def _zip_problem(path: str, needed: tuple[str, ...] = (), test: bool = False) -> str | None:
    """Why ``path`` is not a readable zip with the members ``needed`` (None if it is).

    Opening reads the zip's central directory, at the end of the file, so a
    truncated file is caught without reading it all; ``test`` also checks
    every member's CRC (for the model, which is small).
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            missing = [n for n in needed if n not in names]
            if missing:
                return f"it has no {', '.join(missing)}"
            bad = z.testzip() if test else None
            if bad:
                return f"its member {bad} is corrupt"
    except FileNotFoundError:
        return "it is missing"
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        return f"it is truncated or not a zip file ({first_line(e)})"
    return None


def _counts_problem(meta) -> str | None:
    """What is wrong with a ``state.json``'s counters (each a whole number, 0 or more; total_steps there), or None."""
    for key in ("total_steps", "episode", "updates"):
        if key != "total_steps" and isinstance(meta, dict) and key not in meta:
            continue
        value = meta.get(key) if isinstance(meta, dict) else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"says {key} is {value!r}, not a count of 0 or more"
    return None


def checkpoint_problem(path: str) -> str | None:
    """A one-line error naming the file that makes the checkpoint in ``path`` unusable, or None.

    The checks are cheap (no Keras, no arrays read): the three files exist,
    ``state.json`` parses, ``model.keras`` is a zip with ``config.json`` and
    intact weights, and ``arrays.npz`` is a zip of ``.npy`` arrays.
    """
    if not os.path.isdir(path):
        return f"checkpoint {path} does not exist"
    missing = [f for f in (MODEL, STATE, ARRAYS) if not os.path.isfile(os.path.join(path, f))]
    if missing:
        return f"checkpoint {path} is incomplete (missing {', '.join(missing)})"
    state = os.path.join(path, STATE)
    try:
        with open(state) as f:
            meta = json.load(f)
        int(meta["total_steps"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"checkpoint {path} is corrupt: {STATE} is unreadable ({first_line(e)})"
    problem = _counts_problem(meta)
    if problem:
        return f"checkpoint {path} is corrupt: {STATE} {problem}"
    model = os.path.join(path, MODEL)
    problem = _zip_problem(model, ("config.json",), test=True)
    if problem:
        return f"cannot load model {model}: {problem}"
    problem = _zip_problem(os.path.join(path, ARRAYS))
    if problem:
        return f"checkpoint {path} is corrupt: {ARRAYS}: {problem}"
    return None


def resumable_checkpoint(run_dir: str) -> tuple[str, str | None]:
    """The checkpoint to resume from, and a note when it is not the one ``latest`` names.

    ``latest`` is trusted when its checkpoint passes :func:`checkpoint_problem`.
    Otherwise (corrupt ``latest``, a corrupt or missing newest checkpoint) the
    newest complete ``step-*`` folder is used and the note says why, e.g.
    "checkpoint step-X is unusable (...); resuming from step-Y". Reads only.

    Raises:
        CheckpointError: no usable checkpoint; the message names the file at fault.
    """
    root = os.path.join(run_dir, CHECKPOINTS)
    try:
        others = sorted((d for d in os.listdir(root) if STEP_NAME.fullmatch(d)), reverse=True)
    except OSError:
        others = []
    try:
        name = _read_latest_name(root)
    except CheckpointError as e:
        name, why = None, str(e)
    else:
        if name is None and not others:
            raise CheckpointError(f"{run_dir!r} has no checkpoint to resume from")
        why = (
            f"{os.path.join(root, LATEST)} is missing" if name is None else checkpoint_problem(os.path.join(root, name))
        )
        if why is None:
            return os.path.join(root, name), None
    for other in others:
        if other != name and checkpoint_problem(os.path.join(root, other)) is None:
            if name:
                return os.path.join(root, other), f"checkpoint {name} is unusable ({why}); resuming from {other}"
            return os.path.join(root, other), f"{why}; resuming from {other}, the newest complete checkpoint"
    raise CheckpointError(why + ("; no other checkpoint is complete" if set(others) - {name} else ""))


def latest_checkpoint(run_dir: str) -> str:
    """Folder of the checkpoint ``checkpoints/latest`` names, if its files are there (no fallback).

    Raises:
        CheckpointError: no checkpoint, a corrupt ``latest``, or missing files.
    """
    root = os.path.join(run_dir, CHECKPOINTS)
    name = _read_latest_name(root)
    if name is None:
        raise CheckpointError(f"{run_dir!r} has no checkpoint to resume from")
    path = os.path.join(root, name)
    missing = [f for f in (MODEL, STATE, ARRAYS) if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete (missing {', '.join(missing)})")
    return path


def read_latest(run_dir: str, read: Callable[[str], T], tries: int = 5) -> T:
    """``read(checkpoint)`` of the latest checkpoint, again on the new latest if training removed it meanwhile.

    A reader beside a training run (``--play``, :func:`kerlym.load`) takes no lock, and a save that
    moves ``latest`` on prunes the older checkpoints; one that vanishes while read is retried on the
    newest. An error with ``latest`` unchanged is the checkpoint's own, and raised.

    Raises:
        CheckpointError: no checkpoint, or the latest one is unreadable (one line).
    """
    root = os.path.join(run_dir, CHECKPOINTS)
    for attempt in range(tries):
        name = _read_latest_name(root)
        try:
            return read(latest_checkpoint(run_dir))
        except (CheckpointError, OSError) as e:
            if attempt + 1 < tries and _latest_or_none(root) != name:
                continue  # pruned by a save that made a newer checkpoint the latest
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(f"cannot read checkpoint {os.path.join(root, str(name))}: {reason(e)}") from None
    raise AssertionError("unreachable")


def load_model(path: str):
    """Load a ``.keras`` model in Keras's safe mode; unreadable files raise :class:`CheckpointError`."""
    import keras

    import kerlym.layers  # noqa: F401 (registers the layers kerlym's networks add)
    import kerlym.optimizers  # noqa: F401 (registers rmsprop_tf: Keras reads a saved optimizer even uncompiled)

    problem = _zip_problem(path, ("config.json",))  # else Keras says "File not found" for a truncated file
    if problem:
        raise CheckpointError(f"cannot load model {path}: {problem}")
    try:
        from kerlym.backend import tensorflow_left_alone

        with tensorflow_left_alone():
            return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # Keras raises many types for a bad file
        raise CheckpointError(f"cannot load model {path}: {first_line(e)}") from None


def _load_arrays(path: str) -> dict:
    import numpy as np

    try:
        with np.load(path) as npz:
            return dict(npz)
    except Exception as e:  # a damaged file: BadZipFile, zlib.error, EOFError, ValueError, even tokenize.TokenError
        raise CheckpointError(f"{path} is corrupt: {first_line(e)}") from None


def restore_checkpoint(path: str, agent) -> None:
    """Load the checkpoint in ``path`` into an agent built with the run's config.

    Raises:
        CheckpointError: a file is unreadable (the message names it), or the checkpoint does not fit the agent.
    """
    saved = load_model(os.path.join(path, MODEL))
    state = os.path.join(path, STATE)
    try:
        with open(state) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{state} is corrupt: {first_line(e)}") from None
    problem = _counts_problem(meta)
    if problem:
        raise CheckpointError(f"{state} is corrupt: it {problem}")
    arrays = _load_arrays(os.path.join(path, ARRAYS))
    try:
        agent.model.set_weights(saved.get_weights())
        agent.set_state(meta, arrays)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} does not match this agent: {first_line(e)}") from None
    # The episodes in progress (self-play's games), for the runner; a checkpoint without them starts new ones.
    in_flight = {k[len(IN_FLIGHT) :]: v for k, v in arrays.items() if k.startswith(IN_FLIGHT)}
    agent.in_flight = (meta["in_flight"], in_flight) if isinstance(meta.get("in_flight"), dict) else None


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
            raise CheckpointError(f"checkpoint {path} is corrupt: {ARRAYS}: {first_line(e)}") from None
        path = os.path.join(path, MODEL)
    return load_model(path).get_weights()


# -- evaluations ----------------------------------------------------------------
def record_evaluation(run_dir: str, agent, mean: float, std: float, games: dict | None = None) -> bool:
    """Append an evaluation to ``evaluations.csv``; save ``best.keras`` if its mean is the best yet.

    A NaN mean is recorded but never the best. ``best.keras`` is replaced
    atomically, so a failed save keeps the previous best.

    With ``games`` (:func:`kerlym.stats.opponent_results` by opponent, ``--eval_opponents``) the file has
    the columns :data:`OPPONENT_FIELDS` and a row per opponent; ``mean`` is the first opponent's, and
    best is judged against that opponent's earlier rows.

    Raises:
        NonFiniteError: the greedy network holds NaN or inf (nothing is written).
        CheckpointError: a file cannot be written or ``evaluations.csv`` is corrupt.
    """
    import math

    from kerlym.stats import append_line, read_table

    path = os.path.join(run_dir, EVALUATIONS)
    model = agent.greedy_model
    bad = non_finite_arrays({f"weight {i}": w for i, w in enumerate(model.get_weights())})
    if bad:
        raise NonFiniteError(f"refusing to evaluate at step {agent.total_steps}: NaN or inf in the network's {bad[0]}")
    fields = OPPONENT_FIELDS if games else EVALUATION_FIELDS
    rows, _ = read_table(path, fields)  # a partial last row is dropped
    if games:
        first = next(iter(games))
        rows = [r for r in rows if r["opponent"] == first]
    try:
        means = [float(r["mean"]) for r in rows]
    except ValueError as e:
        raise CheckpointError(f"{path} is corrupt: {first_line(e)}") from None
    best_before = max((m for m in means if math.isfinite(m)), default=float("-inf"))
    if games:
        lines = "".join(
            f"{agent.total_steps},{g['mean']},{g['std']},{name},{g['wins']},{g['draws']},{g['losses']},"
            f"{g['win_rate']},{g['win_rate_95'][0]},{g['win_rate_95'][1]}\n"
            for name, g in games.items()
        )
    else:
        lines = f"{agent.total_steps},{mean},{std}\n"
    append_line(path, lines, header=",".join(fields) + "\n")
    if not mean > best_before:  # also NaN
        return False
    best = os.path.join(run_dir, BEST)
    tmp = temporary_path(best)
    try:
        from kerlym.backend import tensorflow_left_alone

        with tensorflow_left_alone():
            model.save(tmp)
        fsync(tmp)
        os.replace(tmp, best)
    except BaseException as e:
        remove(tmp)
        err = os_error(e)
        if err is None or not isinstance(e, Exception):
            raise
        raise CheckpointError(f"cannot write {best}: {reason(err)} (the previous best model is kept)") from None
    return True


def best_model(run_dir: str) -> str:
    """Path of the run's best model (saved by evaluations during training)."""
    path = os.path.join(run_dir, BEST)
    if not os.path.isfile(path):
        raise CheckpointError(f"{run_dir!r} has no {BEST}; train with --eval_every N to keep the best model")
    return path


# -- the weights a saved run acts with: --play, --export, --trained-agent ----------------
def pick_weights(run_dir: str, which: str | None, averaged: bool) -> tuple[list, str]:
    """The weights ``--play``, ``--export`` and ``--trained-agent`` use and a phrase naming them, e.g.
    ``weight average of PATH``.

    Args:
        run_dir: the run folder.
        which: ``"online"``, ``"average"``, ``"best"`` or ``None`` (the average where the checkpoint has one, else
            the online network: what evaluations during training used).
        averaged: the run keeps a weight average (its agent config's ``ema_steps`` is set).
    """
    if which == "best":
        path = best_model(run_dir)
        return load_model(path).get_weights(), f"best.keras of {run_dir}"
    if which == "average" and not averaged:
        raise ConfigError("--weights average needs a run trained with --ema (a weight average); use online or best")
    return read_latest(run_dir, lambda checkpoint: _checkpoint_weights(checkpoint, which))


def _checkpoint_weights(checkpoint: str, which: str | None) -> tuple[list, str]:
    """:func:`pick_weights` for the weights of one checkpoint."""
    if which == "online":
        model = load_model(os.path.join(checkpoint, MODEL))
        return model.get_weights(), f"online network of {checkpoint}"
    weights = greedy_weights(checkpoint)  # the average where the checkpoint holds one, else model.keras
    if not _has_average(checkpoint):
        if which == "average":
            raise ConfigError(f"{checkpoint} holds no weight average yet (saved before the first update); use online")
        return weights, f"online network of {checkpoint}"
    return weights, f"weight average of {checkpoint}"


def _has_average(checkpoint: str) -> bool:
    """Whether a checkpoint holds a weight average (``ema/*`` arrays; :func:`kerlym.greedy_weights`)."""
    import numpy as np

    with np.load(os.path.join(checkpoint, ARRAYS)) as npz:
        return any(k.startswith("ema/") for k in npz.files)


# -- the final evaluation: evaluation.json -------------------------------------------
def weights_label(agent) -> str:
    """Which weights greedy actions come from: ``"average"`` (a weight average, ``--ema``) or ``"online"``."""
    return "average" if agent.ema is not None else "online"


def evaluation_record(
    run, agent, returns, weights: str, wall_time: float | None = None, opponents: dict | None = None
) -> dict:
    """``evaluation.json``'s one schema (a run folder's, a sweep's runs', and the ``-S`` bundle's).

    Args:
        run: the run's config (its env and agent are recorded).
        agent: the evaluated agent (its step count is recorded).
        returns: the greedy episodes' returns. In a two-player game (:func:`kerlym.envs.is_two_player`) the
            record adds ``opponent`` (the env's), ``wins``, ``draws``, ``losses``, ``win_rate`` and its Wilson
            95% ``win_rate_95``; with ``--search N``, ``search`` says the moves came from a PUCT search of N
            simulations.
        weights: which weights acted: ``online``, ``average``, ``best``, or a phrase naming a file.
        wall_time: seconds of training behind the weights, where known.
        opponents: with ``--eval_opponents``, :func:`kerlym.stats.opponent_results` by opponent, recorded as
            ``opponents``; ``returns`` are then the first opponent's games, named by ``opponent``.
    """
    import numpy as np

    from kerlym.envs import is_two_player
    from kerlym.stats import game_results

    returns = np.asarray(returns, dtype=np.float64)
    env = getattr(agent, "env", None)
    games = game_results(returns) if is_two_player(env) else {}
    opponent = getattr(getattr(env, "unwrapped", env), "opponent_name", None)
    if games and isinstance(opponent, str):  # whom the games were against (--play --env-kwargs opponent=...)
        games["opponent"] = opponent
    if getattr(run, "search", 0):
        games["search"] = run.search
    if opponents:
        games.update(opponent=next(iter(opponents)), opponents=opponents)
    return {
        "env": run.env,
        "agent": run.agent,
        "total_steps": int(agent.total_steps),
        "episodes": len(returns),
        "returns": returns.tolist(),
        "mean": float(returns.mean()) if len(returns) else float("nan"),
        "std": float(returns.std()) if len(returns) else float("nan"),
        "weights": weights,
        "wall_time": wall_time,
        **games,
    }


def write_evaluation(folder: str, record: dict) -> str:
    """Write ``record`` as ``folder/evaluation.json`` atomically; returns the path.

    Raises:
        CheckpointError: it cannot be written.
    """
    path = os.path.join(folder, EVALUATION)
    try:
        atomic_write(path, json.dumps(record, indent=2) + "\n")
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {reason(e)}") from None
    return path


def read_evaluation(folder: str) -> dict | None:
    """A finished run's ``evaluation.json`` (``None`` if the run has not finished)."""
    try:
        with open(os.path.join(folder, EVALUATION)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "mean" in record else None
