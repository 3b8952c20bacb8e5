"""Run folders: their layout, creation, locks, leftover temporaries and ``config.json``.

A run folder holds ``config.json``, ``progress.csv``, ``training.png``,
``checkpoints/`` and, with ``--mlflow`` or ``--wandb``, ``tracking.json``.
Each checkpoint is a folder written under a temporary name and renamed into
place; ``checkpoints/latest`` names the newest complete one and is itself
replaced atomically, so a run killed mid-write keeps its previous checkpoint.
Every temporary name starts with ``.tmp-<pid>-``, so a later start can tell a
dead writer's leftovers from a live one's.

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
import sys
import time

from kerlym._io import (  # noqa: F401 (the errors: kerlym.runs's API)
    CheckpointError,
    NonFiniteError,
    RunLocked,
    atomic_write,
    first_line,
    reason,
    remove,
    temporary_path,
)

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
TRACKING = "tracking.json"  # the MLflow run id and W&B run id that --resume continues

STEP_NAME = re.compile(r"step-\d+")
# ".tmp-<pid>-<name>" (files and folders), or ".tmp-step-<n>-<pid>" (checkpoint folders of kerlym 0.2).
_TEMPORARY = re.compile(r"\.tmp-(\d+)-.+|\.tmp-step-\d+-(\d+)")
# What kerlym 0.2 wrote as "<file>.tmp", without a PID; only a killed writer leaves one behind.
_LEGACY_TEMPORARIES = {"": (CONFIG + ".tmp", PROGRESS + ".tmp"), CHECKPOINTS: (LATEST + ".tmp",)}


# -- the run folder and its lock ----------------------------------------------
def new_run_dir(outdir: str, env_id: str, agent: str) -> str:
    """Create ``outdir/<env>-<agent>-<time>`` (made unique) and return it.

    Raises:
        CheckpointError: the folder cannot be created.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^\w.-]", "_", env_id)  # ALE/Pong-v5, openspiel:go?board_size=9: no / : ? = in a folder name
    base = os.path.join(outdir, f"{name}-{agent}-{stamp}")
    path, n = base, 1
    while True:
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            n += 1
            path = f"{base}-{n}"
        except OSError as e:
            raise CheckpointError(f"cannot create run folder {path}: {reason(e)}") from None


def remove_if_empty(run_dir: str) -> bool:
    """Remove ``run_dir`` if it holds nothing but its lock file (a run stopped before it wrote anything).

    Returns whether it was removed. A folder that holds anything else is left as it is.
    """
    try:
        if set(os.listdir(run_dir)) - {LOCK}:
            return False
        if os.path.exists(os.path.join(run_dir, LOCK)):
            os.unlink(os.path.join(run_dir, LOCK))
        os.rmdir(run_dir)
    except OSError:
        return False
    return True


def _check_writable(folder: str, what: str) -> None:
    """Create and remove a small file in ``folder``; one-line CheckpointError if that fails."""
    probe = os.path.join(folder, f".tmp-{os.getpid()}-write-test")
    try:
        with open(probe, "w") as f:
            f.write("kerlym\n")
        os.unlink(probe)
    except OSError as e:
        remove(probe)
        raise CheckpointError(f"{what} {folder} is not writable: {reason(e)}") from None


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
        raise CheckpointError(f"cannot create output folder {outdir}: {reason(e)}") from None
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
        raise CheckpointError(f"cannot lock run folder {run_dir}: {path}: {reason(e)}") from None
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
            remove(os.path.join(folder, name))
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
        atomic_write(path, json.dumps(config, indent=2, sort_keys=True) + "\n")
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {reason(e)}") from None


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


def read_tracking(run_dir: str) -> dict:
    """``tracking.json``: the tracking runs a run folder logged to, by service (``{}`` when none, or unreadable)."""
    try:
        with open(os.path.join(run_dir, TRACKING)) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def write_tracking(run_dir: str, service: str, record: dict) -> None:
    """Keep ``record`` (a run id and where it lives) as ``service``'s entry in ``tracking.json``, atomically.

    Raises:
        CheckpointError: it cannot be written.
    """
    path = os.path.join(run_dir, TRACKING)
    try:
        atomic_write(path, json.dumps({**read_tracking(run_dir), service: record}, indent=2, sort_keys=True) + "\n")
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {reason(e)}") from None
