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
