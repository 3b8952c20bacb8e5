"""Run folders: locks, atomic checkpoints, and the checks that keep a run's files whole.

A run folder holds ``config.json``, ``progress.csv``, ``training.png`` and
``checkpoints/``. Each checkpoint is a folder written under a temporary name
and renamed into place; ``checkpoints/latest`` names the newest complete one
and is itself replaced atomically, so a run killed mid-write keeps its
previous checkpoint. Every temporary name starts with ``.tmp-<pid>-``, so a
later start can tell a dead writer's leftovers from a live one's.

A process that writes a run folder holds its lock (:func:`lock_run`); the
read-only functions (``read_config``, ``resumable_checkpoint``,
``greedy_weights``, ...) take no lock, so ``--play`` works beside a training
run and on a read-only file system. Every failure here is a
:class:`CheckpointError` whose message is one line naming the file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time

CONFIG = "config.json"
PROGRESS = "progress.csv"
PLOT = "training.png"
CHECKPOINTS = "checkpoints"
LATEST = "latest"
LOCK = ".lock"
MODEL = "model.keras"
STATE = "state.json"
ARRAYS = "arrays.npz"
EVALUATIONS = "evaluations.csv"
BEST = "best.keras"

STEP_NAME = re.compile(r"step-\d+")
# ".tmp-<pid>-<name>" (files and folders), or ".tmp-step-<n>-<pid>" (checkpoint folders of kerlym 0.2).
_TEMPORARY = re.compile(r"\.tmp-(\d+)-.+|\.tmp-step-\d+-(\d+)")
# What kerlym 0.2 wrote as "<file>.tmp", without a PID; only a killed writer leaves one behind.
_LEGACY_TEMPORARIES = {"": (CONFIG + ".tmp", PROGRESS + ".tmp"), CHECKPOINTS: (LATEST + ".tmp",)}


def first_line(error: BaseException) -> str:
    """An exception as one line of text."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class CheckpointError(Exception):
    """A checkpoint or run folder is missing, unreadable or cannot be written; the message is one line."""


class RunLocked(CheckpointError):
    """Another process holds the run folder's lock."""


class NonFiniteError(CheckpointError):
    """The agent's weights or optimizer state hold NaN or inf, so they are not saved."""


def temporary_path(path: str) -> str:
    """A temporary name beside ``path`` that holds this process's PID (see :func:`remove_stale_temporaries`)."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".tmp-{os.getpid()}-{name}")


def _os_error(error: BaseException) -> OSError | None:
    """The OSError behind ``error``: itself or one it was raised from (Keras and h5py may chain it)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _reason(error: OSError) -> str:
    return error.strerror or first_line(error)


def _remove(path: str) -> None:
    """Remove a file or folder if it is there; cleanup must not hide the error that caused it."""
    if not os.path.lexists(path):  # checked first: on a read-only file system, unlink says EROFS even then
        return
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        print(f"kerlym: note: could not remove {path}: {_reason(e)}", file=sys.stderr)


def _fsync(path: str) -> None:
    """Flush ``path`` (a file, or a folder after a rename in it) to the disk, so a crash of the machine keeps it.

    A file system that cannot sync folders (some FUSE and network mounts say
    EINVAL) is let be: kerlym's own crashes are covered by the renames alone.
    """
    import errno

    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _atomic_write(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` through a temporary file: readers see the old file or the new one.

    Raises the OSError of a failed write, after removing the temporary file.
    """
    tmp = temporary_path(path)
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


# -- the run folder and its lock ----------------------------------------------
def new_run_dir(outdir: str, env_id: str, agent: str) -> str:
    """Create ``outdir/<env>-<agent>-<time>`` (made unique) and return it.

    Raises:
        CheckpointError: the folder cannot be created.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.join(outdir, f"{env_id.replace('/', '_')}-{agent}-{stamp}")
    path, n = base, 1
    while True:
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            n += 1
            path = f"{base}-{n}"
        except OSError as e:
            raise CheckpointError(f"cannot create run folder {path}: {_reason(e)}") from None


def _check_writable(folder: str, what: str) -> None:
    """Create and remove a small file in ``folder``; one-line CheckpointError if that fails."""
    probe = os.path.join(folder, f".tmp-{os.getpid()}-write-test")
    try:
        with open(probe, "w") as f:
            f.write("kerlym\n")
        os.unlink(probe)
    except OSError as e:
        _remove(probe)
        raise CheckpointError(f"{what} {folder} is not writable: {_reason(e)}") from None


def check_outdir_writable(outdir: str) -> None:
    """Check before training that runs can be written under ``outdir``, creating it if missing.

    Raises:
        CheckpointError: ``outdir`` is a file, is on a read-only file system,
            or cannot be written or created (one line naming it).
    """
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise CheckpointError(f"output folder {outdir} is a file, not a folder")
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:  # read-only file system, no permission, a parent that is a file
        raise CheckpointError(f"cannot create output folder {outdir}: {_reason(e)}") from None
    _check_writable(outdir, "output folder")


def check_run_writable(run_dir: str) -> None:
    """Check that a run can be resumed in ``run_dir``: it and its ``checkpoints/`` folder take new files.

    Raises:
        CheckpointError: a read-only file system or folder (``--play`` still works there).
    """
    if not os.path.isdir(run_dir):
        raise CheckpointError(f"run folder {run_dir!r} does not exist")
    try:
        _check_writable(run_dir, "run folder")
        checkpoints = os.path.join(run_dir, CHECKPOINTS)
        if os.path.isdir(checkpoints):
            _check_writable(checkpoints, "checkpoint folder")
    except CheckpointError as e:
        raise CheckpointError(f"cannot resume: {e} (--play needs no write access)") from None


class RunLock:
    """An exclusive ``flock`` on a run folder's lock file; a context manager. Get one from :func:`lock_run`.

    The kernel releases the lock when the holding process exits or is
    killed, however it ends. A forked child (an env worker) inherits it, so
    the lock lasts until the last of them has exited too.
    """

    def __init__(self, path: str, fd: int):
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        import fcntl

        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # no holder any more; before unlocking, so the next holder's note stays
        except OSError:
            pass  # the lock file keeps a stale note; the lock itself is released below either way
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder_text(path: str) -> str:
    """Who holds the lock file ``path``: "process 1234 (kerlym ...)", from the note its holder wrote."""
    import socket

    try:
        with open(path) as f:
            note = json.load(f)
        pid, host, command = int(note["pid"]), str(note["host"]), str(note["command"])
    except (OSError, ValueError, KeyError, TypeError):  # the holder has not written its note yet
        return "another process"
    text = f"process {pid}" + ("" if host == socket.gethostname() else f" on {host}") + f" ({command})"
    if host == socket.gethostname() and not _alive(pid):
        others = _processes_with_open(path)
        text += " which has exited, but processes it started hold the lock"
        text += f" (PIDs {', '.join(map(str, others))})" if others else ""
    return text


def _processes_with_open(path: str, limit: int = 5) -> list[int]:
    """PIDs (up to ``limit``) with ``path`` open, from /proc: e.g. orphaned env workers that inherited a lock."""
    found = []
    target = os.path.realpath(path)
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            if any(os.readlink(f"/proc/{entry}/fd/{fd}") == target for fd in fds):
                found.append(int(entry))
        except OSError:  # gone meanwhile, or another user's
            continue
        if len(found) >= limit:
            break
    return found


def lock_run(run_dir: str) -> RunLock:
    """Take the run folder's exclusive lock, for as long as this process trains in it.

    The lock file ``.lock`` keeps a note of the holder (PID, host, command) for
    the error a second process gets. The lock is ``fcntl.flock`` on that file:
    the kernel drops it when the process dies, so a killed run never leaves
    its folder locked. (On NFS, Linux maps ``flock`` to a byte-range lock
    that the server keeps for live clients only.)

    Raises:
        RunLocked: another process holds the lock; the message names it.
        CheckpointError: the lock file cannot be created (e.g. a read-only file system).
    """
    import fcntl
    import socket

    path = os.path.join(run_dir, LOCK)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise CheckpointError(f"cannot lock run folder {run_dir}: {path}: {_reason(e)}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunLocked(
            f"run folder {run_dir} is in use by {_holder_text(path)}; wait for it to finish or stop it"
        ) from None
    command = " ".join([os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python", *sys.argv[1:]])
    note = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command[:200]}) + "\n"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, note.encode(), 0)
    except OSError:
        pass  # the lock holds without its note; a second process is then told "another process"
    return RunLock(path, fd)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    return True


def remove_stale_temporaries(run_dir: str) -> list[str]:
    """Remove what killed writers left in ``run_dir`` and its ``checkpoints/``; returns the paths removed.

    Temporary names hold the writer's PID; those of a live process are kept
    (an unrelated process that reuses a dead writer's PID keeps its leftovers
    until a later start). Call this while holding the run's lock.
    """
    removed = []
    for sub in ("", CHECKPOINTS):
        folder = os.path.join(run_dir, sub) if sub else run_dir
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in sorted(names):
            match = _TEMPORARY.fullmatch(name)
            if match:
                if _alive(int(match[1] or match[2])):
                    continue
            elif name not in _LEGACY_TEMPORARIES[sub]:
                continue
            _remove(os.path.join(folder, name))
            removed.append(os.path.join(folder, name))
    return removed


# -- config --------------------------------------------------------------------
def write_config(run_dir: str, config: dict) -> None:
    """Write ``config.json`` atomically.

    Raises:
        CheckpointError: it cannot be written (full disk, read-only, ...); the old file is kept.
    """
    path = os.path.join(run_dir, CONFIG)
    try:
        _atomic_write(path, json.dumps(config, indent=2, sort_keys=True) + "\n")
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {_reason(e)}") from None


def read_config(run_dir: str) -> dict:
    """The run's ``config.json`` as a dict.

    Raises:
        CheckpointError: no such run folder, no config, or a corrupt one.
    """
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isdir(run_dir):
        raise CheckpointError(f"run folder {run_dir!r} does not exist")
    try:
        with open(path) as f:
            config = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir!r} is not a kerlym run folder (no {CONFIG})") from None
    except (OSError, ValueError) as e:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise CheckpointError(f"{path} is corrupt: {first_line(e)}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} is corrupt: not a JSON object")
    return config


# -- checkpoints ---------------------------------------------------------------
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
        raise CheckpointError(f"cannot read {path}: {_reason(e)}") from None
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


def save_checkpoint(run_dir: str, agent, include_memory: bool = False, keep: int = 2) -> str:
    """Write the agent's model and state as a new checkpoint; returns its folder.

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
        _remove(tmp)
        os.makedirs(tmp)
        agent.model.save(os.path.join(tmp, MODEL))
        np.savez(os.path.join(tmp, ARRAYS), **arrays)
        _atomic_write(os.path.join(tmp, STATE), json.dumps(meta))
        for file in (MODEL, ARRAYS):
            _fsync(os.path.join(tmp, file))
        if os.path.exists(final):  # same step saved twice (e.g. Ctrl-C right after a checkpoint)
            os.rename(final, replaced)  # a kill before the next rename: resumable_checkpoint falls back
        os.rename(tmp, final)
        renamed = True
        _fsync(root)
        _atomic_write(os.path.join(root, LATEST), name + "\n")
        _fsync(root)
    except BaseException as e:  # also KeyboardInterrupt: never leave a partial folder behind
        _remove(tmp)
        if renamed and _latest_or_none(root) != name:  # complete, but `latest` could not be moved to it
            _remove(final)
        if os.path.exists(replaced) and not os.path.exists(final):
            os.rename(replaced, final)  # the same step's earlier checkpoint goes back in place
        _remove(replaced)
        err = _os_error(e)
        if err is None or not isinstance(e, Exception):
            raise
        kept = f"previous checkpoint kept: {previous}" if previous else "no earlier checkpoint"
        raise CheckpointError(f"cannot write checkpoint in {root}: {_reason(err)} ({kept})") from None
    _remove(replaced)
    existing = sorted(d for d in os.listdir(root) if STEP_NAME.fullmatch(d))
    older = [d for d in existing if d <= name]
    for old in [d for d in existing if d > name] + older[:-keep]:
        _remove(os.path.join(root, old))
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


def load_model(path: str):
    """Load a ``.keras`` model in Keras's safe mode; unreadable files raise :class:`CheckpointError`."""
    import keras

    import kerlym.agents.actor_critic  # noqa: F401 (registers the layers the actor-critic agents add)
    import kerlym.optimizers  # noqa: F401 (registers rmsprop_tf: Keras reads a saved optimizer even uncompiled)

    problem = _zip_problem(path, ("config.json",))  # else Keras says "File not found" for a truncated file
    if problem:
        raise CheckpointError(f"cannot load model {path}: {problem}")
    try:
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
    arrays = _load_arrays(os.path.join(path, ARRAYS))
    try:
        agent.model.set_weights(saved.get_weights())
        agent.set_state(meta, arrays)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} does not match this agent: {first_line(e)}") from None


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
def record_evaluation(run_dir: str, agent, mean: float, std: float) -> bool:
    """Append an evaluation to ``evaluations.csv``; save ``best.keras`` if its mean is the best yet.

    A NaN mean is recorded but never the best. ``best.keras`` is replaced
    atomically, so a failed save keeps the previous best.

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
    rows, _ = read_table(path, ["total_steps", "mean", "std"])  # a partial last row is dropped
    try:
        means = [float(r["mean"]) for r in rows]
    except ValueError as e:
        raise CheckpointError(f"{path} is corrupt: {first_line(e)}") from None
    best_before = max((m for m in means if math.isfinite(m)), default=float("-inf"))
    append_line(path, f"{agent.total_steps},{mean},{std}\n", header="total_steps,mean,std\n")
    if not mean > best_before:  # also NaN
        return False
    best = os.path.join(run_dir, BEST)
    tmp = temporary_path(best)
    try:
        model.save(tmp)
        _fsync(tmp)
        os.replace(tmp, best)
    except BaseException as e:
        _remove(tmp)
        err = _os_error(e)
        if err is None or not isinstance(e, Exception):
            raise
        raise CheckpointError(f"cannot write {best}: {_reason(err)} (the previous best model is kept)") from None
    return True


def best_model(run_dir: str) -> str:
    """Path of the run's best model (saved by evaluations during training)."""
    path = os.path.join(run_dir, BEST)
    if not os.path.isfile(path):
        raise CheckpointError(f"{run_dir!r} has no {BEST}; train with --eval_every N to keep the best model")
    return path


# -- resources -------------------------------------------------------------------
def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (no limit) is None


def _cgroup_memory_headroom() -> int | None:
    """Bytes this process's memory cgroup (v2, else v1) can still take, counting reclaimable cache as free."""
    for limit_file, usage_file, stat_file, inactive in (
        ("memory.max", "memory.current", "memory.stat", "inactive_file"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes", "memory/memory.stat", "total_inactive_file"),
    ):
        limit = _read_int("/sys/fs/cgroup/" + limit_file)
        usage = _read_int("/sys/fs/cgroup/" + usage_file)
        if limit is None or usage is None or limit >= 1 << 60:  # v1 writes "no limit" as a huge number
            continue
        cache = 0
        try:
            with open("/sys/fs/cgroup/" + stat_file) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == inactive:
                        cache = int(value)
        except (OSError, ValueError):
            pass
        return max(0, limit - usage + cache)
    return None


def available_memory_bytes() -> int:
    """Bytes a new allocation can take without swapping or the OOM killer: the least of the limits.

    That is Linux's ``MemAvailable`` (free memory plus reclaimable cache; else
    free pages from ``sysconf``) and, in a container, what the memory cgroup
    still allows, since there ``/proc/meminfo`` shows the whole host.
    """
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024  # the file says kB and means KiB
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):  # macOS has no count of free pages: all of it, then
            available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    cgroup = _cgroup_memory_headroom()
    return available if cgroup is None else min(available, cgroup)


WORKERS_PER_CPU = 16


def _task_headroom() -> int | None:
    """How many more tasks (processes or threads) this user may start, by the tightest limit known; None: no limit."""
    import resource

    headrooms = []
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    if soft != resource.RLIM_INFINITY and os.geteuid() != 0:  # root is exempt from RLIMIT_NPROC
        uid, mine = os.getuid(), 0
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
            try:
                if entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid:
                    mine += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
        headrooms.append(soft - mine)
    limit = _read_int("/sys/fs/cgroup/pids.max") or _read_int("/sys/fs/cgroup/pids/pids.max")
    current = _read_int("/sys/fs/cgroup/pids.current") or _read_int("/sys/fs/cgroup/pids/pids.current")
    if limit is not None and current is not None:
        headrooms.append(limit - current)
    return min(headrooms) if headrooms else None


def worker_bound(cpus: int, task_headroom: int | None) -> int:
    """Most env worker processes to start: ``WORKERS_PER_CPU`` per CPU, and half the task headroom.

    Args:
        cpus: CPUs this process may run on.
        task_headroom: processes/threads this user may still start (None: unlimited).
    """
    bound = WORKERS_PER_CPU * max(1, cpus)
    if task_headroom is not None:
        bound = min(bound, task_headroom // 2)
    return max(1, bound)


def max_env_workers() -> int:
    """The most environment copies (``-c``, one worker process each) this machine can sensibly run.

    Two bounds, the smaller wins:

    - ``WORKERS_PER_CPU`` (16) per usable CPU. A vector env steps all copies
      in lockstep, so beyond a few per core each step only waits longer;
      16 per core leaves room for envs that mostly sleep or wait on I/O,
      while ``-c 10000`` on a laptop (which forks until the process limit,
      then hangs) is refused.
    - Half of what the process limits still allow (``RLIMIT_NPROC`` for a
      non-root user, a cgroup's ``pids.max``): each worker is a process that
      may start threads of its own (BLAS, the simulator), and the rest of the
      machine needs to start processes too.
    """
    try:
        cpus = len(os.sched_getaffinity(0))  # honours taskset and container CPU sets
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return worker_bound(cpus, _task_headroom())
