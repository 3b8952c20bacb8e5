"""Small helpers every layer may use: one-line errors, atomic files, quiet native start-up logs.

Every failure of a run folder's files is a :class:`CheckpointError` whose
message is one line naming the file. Temporary names start with
``.tmp-<pid>-`` so that a later start can tell a dead writer's leftovers
from a live one's (:func:`kerlym.runs.remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading


def first_line(error: BaseException) -> str:
    """An exception as one line of text."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class CheckpointError(Exception):
    """A checkpoint or run folder is missing, unreadable or cannot be written; the message is one line."""


class RunLocked(CheckpointError):
    """Another process holds the run folder's lock."""


class ProcessDied(RuntimeError):
    """A process a run depends on died (an env worker, the actor process, a Go opponent); the message is one line.

    The command reports it in one line, naming the checkpoint kept and ``--resume``.
    """


class NonFiniteError(CheckpointError):
    """The agent's weights or optimizer state hold NaN or inf, so they are not saved."""


def temporary_path(path: str) -> str:
    """A temporary name beside ``path`` that holds this process's PID (see :func:`remove_stale_temporaries`)."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".tmp-{os.getpid()}-{name}")


def os_error(error: BaseException) -> OSError | None:
    """The OSError behind ``error``: itself or one it was raised from (Keras and h5py may chain it)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def reason(error: OSError) -> str:
    return error.strerror or first_line(error)


def remove(path: str) -> None:
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
        print(f"kerlym: note: could not remove {path}: {reason(e)}", file=sys.stderr)


def fsync(path: str) -> None:
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


def atomic_write(path: str, text: str) -> None:
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
        remove(tmp)
        raise


_SILENCE = threading.Lock()
_silenced: dict = {"depth": 0, "fds": None}


@contextlib.contextmanager
def native_stderr_silenced():
    """Silence what native libraries write to stderr while Keras and the agent start up.

    TensorFlow's C++ start-up logs ("Could not find cuda drivers", CPU
    feature notes) ignore ``TF_CPP_MIN_LOG_LEVEL`` and would bury kerlym's
    own one-line messages. Python exceptions still surface normally: they
    are printed after the block has restored stderr.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _SILENCE:  # threads (the seeds of a fused sweep) share fd 2: the first in silences, the last out restores
        if _silenced["depth"] == 0:
            sys.stderr.flush()
            _silenced["fds"] = (os.dup(2), os.open(os.devnull, os.O_WRONLY))
            os.dup2(_silenced["fds"][1], 2)
        _silenced["depth"] += 1
    try:
        yield
    finally:
        with _SILENCE:
            _silenced["depth"] -= 1
            if _silenced["depth"] == 0:
                sys.stderr.flush()
                saved, devnull = _silenced["fds"]
                os.dup2(saved, 2)
                os.close(saved)
                os.close(devnull)


# -- signals during start-up ------------------------------------------------------
_deferred: list[int] | None = None  # signals received while deferring; None: not deferring
_before: dict = {}  # the handlers defer_signals replaced


def defer_signals(signals=None) -> None:
    """From now on, record SIGINT and SIGTERM (or ``signals``) instead of acting on them, until :func:`end_deferral`.

    The command calls this first, before its heavy imports: a Ctrl-C raised as
    ``KeyboardInterrupt`` while Keras or JAX load can land in a callback that
    only prints "Exception ignored" and is lost. The runner takes the recorded
    signals over (:func:`take_deferred_signals`) and stops at once; before that,
    the command looks (:func:`deferred_signals`) once the agent is built.
    Only the main thread can do this; elsewhere it does nothing.
    """
    import signal
    import threading

    global _deferred
    if threading.current_thread() is not threading.main_thread():
        return
    end_deferral()

    def record(signum, frame):
        if not _deferred:
            print("\nkerlym: stopping once the set-up in progress ends ...", flush=True)
        _deferred.append(signum)

    _deferred = []
    for s in signals or (signal.SIGINT, signal.SIGTERM):
        _before[s] = signal.signal(s, record)


def deferred_signals() -> list[int]:
    """The signals recorded since :func:`defer_signals` (empty when none, or when not deferring)."""
    return list(_deferred or ())


def take_deferred_signals() -> list[int]:
    """The signals recorded so far, handed over to the caller (who acts on them) and forgotten here."""
    taken = deferred_signals()
    if _deferred:
        _deferred.clear()
    return taken


def end_deferral() -> None:
    """Stop deferring: the handlers :func:`defer_signals` replaced return (Ctrl-C raises ``KeyboardInterrupt``).

    Only the main thread can set handlers; elsewhere (a fused sweep's seeds train in threads) it does nothing.
    """
    import signal
    import threading

    global _deferred
    if threading.current_thread() is not threading.main_thread():
        return
    for s, handler in _before.items():
        signal.signal(s, handler)
    _before.clear()
    _deferred = None


@contextlib.contextmanager
def signals_recorded():
    """Within the block, SIGINT and SIGTERM are recorded, not raised; yields :func:`deferred_signals` to look at them.

    For work that stops on its own at a safe point (between GnuGo's moves, at a batch's end) and keeps what it
    has. Where the command defers signals already (:func:`defer_signals`), its deferral goes on after the block,
    so the runner still sees them. Otherwise (from Python) the block defers them itself and ends the deferral
    after it; a signal the block did not act on then raises ``KeyboardInterrupt``, so none is lost. Off the main
    thread, without the command's deferral, nothing is recorded (Python raises ``KeyboardInterrupt`` in the main
    thread).
    """
    own = _deferred is None and threading.current_thread() is threading.main_thread()
    if own:
        defer_signals()
    try:
        yield deferred_signals
    except BaseException:
        if own:
            end_deferral()
        raise
    if own:
        unseen = deferred_signals()
        end_deferral()
        if unseen:
            raise KeyboardInterrupt


def die_with_parent(signum: int | None = None) -> None:
    """Have the kernel send this process ``signum`` (default SIGTERM) when its parent dies (Linux; elsewhere nothing).

    A child that a learner killed by ``kill -9`` leaves behind would otherwise
    run on; callers also compare ``os.getppid()`` with the parent they knew,
    since the parent may have died before this call.
    """
    import signal

    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signum or signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def quiet_keras_import() -> None:
    """Import Keras (and its backend) with TensorFlow's C++ start-up lines hidden, as the command hides them.

    For programs that use kerlym's Python API: the lines TensorFlow writes as
    it loads (CUDA, CPU features, oneDNN) go to a closed stderr, and its later
    C++ log lines (XLA's, a CPU-only machine's failed ``cuInit``) are filtered by
    ``TF_CPP_MIN_LOG_LEVEL=3``, as in the command, unless the program set its
    own level (``0`` shows them all). Python exceptions still show. Nothing
    happens once Keras is imported.
    """
    if "keras" in sys.modules:
        return
    with native_stderr_silenced():
        import keras  # noqa: F401


def install_hint(extra: str) -> str:
    """``pip install`` for one of kerlym's extras, spelled for how kerlym was installed.

    From a source folder (``pip install .``, ``pip install -e .``): ``pip install "/path/to/kerlym[go]"``;
    otherwise, from a package index: ``pip install "kerlym[go]"``.
    """
    import json
    from importlib import metadata

    try:
        url = json.loads(metadata.distribution("kerlym").read_text("direct_url.json") or "{}").get("url", "")
    except (metadata.PackageNotFoundError, ValueError):
        url = ""
    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        folder = unquote(urlparse(url).path)
        if os.path.isfile(os.path.join(folder, "setup.py")):
            return f'pip install "{folder}[{extra}]"'
    return f'pip install "kerlym[{extra}]"'
