"""What the host allows: memory a new allocation can take, and how many env worker processes to start."""

from __future__ import annotations

import os


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (no limit) is None


NO_LIMIT = 1 << 60  # cgroup v1 writes "no limit" as a huge number (9223372036854771712)


def _cgroup_mounts(root: str) -> list[tuple[str, str, str]]:
    """``(controllers, mount root, mount point)`` of each cgroup mount this process sees ("" for cgroup v2).

    From ``/proc/self/mountinfo``; without it, the usual places under ``/sys/fs/cgroup``.
    """
    mounts = []
    try:
        with open(os.path.join(root, "proc/self/mountinfo")) as f:
            for line in f:
                fields, sep, tail = line.partition(" - ")
                fields, tail = fields.split(), tail.split()
                if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
                    continue
                kinds = "" if tail[0] == "cgroup2" else ",".join(o for o in tail[2].split(",") if o not in ("rw", "ro"))
                mounts.append((kinds, fields[3], fields[4]))
    except OSError:
        pass
    if not mounts:
        mounts = [("", "/", "/sys/fs/cgroup")] + [(c, "/", f"/sys/fs/cgroup/{c}") for c in ("memory", "pids")]
    return mounts


def cgroup_dirs(controller: str, root: str = "/") -> list[str]:
    """The folders of this process's own cgroups that may hold ``controller``'s files, each followed by its parents.

    ``/proc/self/cgroup`` names the process's cgroup in each hierarchy (``0::/path`` for
    v2, ``4:memory:/path`` for v1); ``/proc/self/mountinfo`` says where each hierarchy
    is mounted and which part of it (a container sees its own cgroup as ``/``). A limit
    may be set on any ancestor, so the folders go up to the mount's top.

    Args:
        controller: ``"memory"`` or ``"pids"``.
        root: where ``/proc`` and ``/sys`` are (a test's fake tree).
    """
    try:
        with open(os.path.join(root, "proc/self/cgroup")) as f:
            lines = f.read().splitlines()
    except OSError:
        lines = ["0::/"]
    paths = {}  # "" (v2) or the controller: the process's cgroup path in that hierarchy
    for line in lines:
        _, _, rest = line.partition(":")
        kinds, _, path = rest.partition(":")
        if kinds == "":
            paths[""] = path
        elif controller in kinds.split(","):
            paths[controller] = path
    dirs = []
    for kinds, mount_root, mount_point in _cgroup_mounts(root):
        key = "" if kinds == "" else controller if controller in kinds.split(",") else None
        if key is None or key not in paths:
            continue
        relative = os.path.relpath(paths[key], mount_root)
        if relative.startswith(".."):  # the process's cgroup lies outside what this mount shows
            relative = "."
        top = os.path.join(root, mount_point.lstrip("/"))
        here = os.path.normpath(os.path.join(top, relative))
        while True:
            dirs.append(here)
            if here == os.path.normpath(top):
                break
            here = os.path.dirname(here)
    return dirs


def _memory_headroom(folder: str) -> int | None:
    """Bytes the memory cgroup in ``folder`` (v2, else v1) can still take, counting reclaimable cache as free."""
    for limit_file, usage_file, inactive in (
        ("memory.max", "memory.current", "inactive_file"),
        ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
    ):
        limit = _read_int(os.path.join(folder, limit_file))
        usage = _read_int(os.path.join(folder, usage_file))
        if limit is None or usage is None or limit >= NO_LIMIT:
            continue
        cache = 0
        try:
            with open(os.path.join(folder, "memory.stat")) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == inactive:
                        cache = int(value)
        except (OSError, ValueError):
            pass
        return max(0, limit - usage + cache)
    return None


def _cgroup_memory_headroom(root: str = "/") -> int | None:
    """Bytes this process's memory cgroups (its own and every parent's, v2 and v1) can still take: the least."""
    found = [h for h in map(_memory_headroom, cgroup_dirs("memory", root)) if h is not None]
    return min(found) if found else None


def cgroup_pids_headroom(root: str = "/") -> int | None:
    """Tasks (processes and threads) this process's pids cgroups still allow: ``pids.max - pids.current``, the least.

    None: no pids limit.
    """
    found = []
    for folder in cgroup_dirs("pids", root):
        limit = _read_int(os.path.join(folder, "pids.max"))
        current = _read_int(os.path.join(folder, "pids.current"))
        if limit is not None and current is not None:
            found.append(limit - current)
    return min(found) if found else None


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


def task_headroom() -> tuple[int | None, str]:
    """How many more tasks (processes or threads) this process may start, by the tightest limit known, and which.

    Returns ``(headroom, limit)``: ``limit`` names it (``"RLIMIT_NPROC"``, ``"the cgroup's pids.max"``);
    ``(None, "")``: no limit.
    """
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
        headrooms.append((soft - mine, "the process limit (ulimit -u)"))
    pids = cgroup_pids_headroom()
    if pids is not None:
        headrooms.append((pids, "the cgroup's pids.max"))
    return min(headrooms) if headrooms else (None, "")


def _task_headroom() -> int | None:
    return task_headroom()[0]


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
      non-root user, the ``pids.max`` of this process's cgroup and its parents):
      each worker is a process that may start threads of its own (BLAS, the
      simulator), and the rest of the machine needs to start processes too.
    """
    return env_worker_limit()[0]


def usable_cpus() -> int:
    """The CPUs this process may run on (``taskset`` and a container's CPU set honoured)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def env_worker_limit() -> tuple[int, str]:
    """:func:`max_env_workers` and why: ``""``, or e.g. ``"the cgroup's pids.max allows 11 more processes"``."""
    cpus = usable_cpus()
    headroom, limit = task_headroom()
    bound = worker_bound(cpus, headroom)
    if headroom is not None and bound < worker_bound(cpus, None):
        return bound, f"{limit} allows {max(headroom, 0)} more processes and threads, and each worker needs 2"
    return bound, ""
