"""What the host allows: the cgroup limits of this process's own cgroup, read from fake /proc and /sys trees."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kerlym import resources

GiB = 2**30


def _tree(root, cgroup: str, mountinfo: str, files: dict) -> str:
    """A fake root: ``proc/self/cgroup``, ``proc/self/mountinfo`` and the cgroup files (path -> text)."""
    os.makedirs(root / "proc/self")
    (root / "proc/self/cgroup").write_text(cgroup)
    (root / "proc/self/mountinfo").write_text(mountinfo)
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return str(root)


V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V1_MOUNTS = (
    "31 23 0:28 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
)


def test_v2_the_process_own_cgroup_is_read_not_the_root(tmp_path):
    # The root cgroup has no memory.max at all; the process's slice has 1.5 GiB, of which 0.5 GiB is used and
    # 0.1 GiB reclaimable cache: 1.1 GiB left.
    root = _tree(
        tmp_path,
        "0::/user.slice/job.scope\n",
        V2_MOUNT,
        {
            "sys/fs/cgroup/user.slice/job.scope/memory.max": str(3 * GiB // 2),
            "sys/fs/cgroup/user.slice/job.scope/memory.current": str(GiB // 2),
            "sys/fs/cgroup/user.slice/job.scope/memory.stat": f"anon 1\ninactive_file {GiB // 10}\nactive_file 7\n",
            "sys/fs/cgroup/user.slice/memory.max": "max",
            "sys/fs/cgroup/user.slice/memory.current": str(5 * GiB),
        },
    )
    assert resources.cgroup_dirs("memory", root) == [
        f"{root}/sys/fs/cgroup/user.slice/job.scope",
        f"{root}/sys/fs/cgroup/user.slice",
        f"{root}/sys/fs/cgroup",
    ]
    assert resources._cgroup_memory_headroom(root) == 3 * GiB // 2 - GiB // 2 + GiB // 10


def test_the_smallest_limit_on_the_way_up_wins(tmp_path):
    # A parent's limit binds a child that has none (or a larger one): 2 GiB - 1.8 GiB used = 0.2 GiB.
    root = _tree(
        tmp_path,
        "0::/a/b\n",
        V2_MOUNT,
        {
            "sys/fs/cgroup/a/b/memory.max": str(8 * GiB),
            "sys/fs/cgroup/a/b/memory.current": str(GiB),
            "sys/fs/cgroup/a/memory.max": str(2 * GiB),
            "sys/fs/cgroup/a/memory.current": str(9 * GiB // 5),
            "sys/fs/cgroup/a/b/pids.max": "max",
            "sys/fs/cgroup/a/b/pids.current": "3",
            "sys/fs/cgroup/a/pids.max": "40",
            "sys/fs/cgroup/a/pids.current": "12",
        },
    )
    assert resources._cgroup_memory_headroom(root) == 2 * GiB - 9 * GiB // 5
    assert resources.cgroup_pids_headroom(root) == 28


def test_v1_hierarchies_are_found_through_mountinfo(tmp_path):
    # cgroup v1 (as in Docker before cgroup v2): one hierarchy per controller, each with its own path; the
    # "no limit" of v1 is a huge number; usage 1 GiB of 1.5 GiB with 0.25 GiB inactive cache.
    root = _tree(
        tmp_path,
        "9:pids:/docker/abc\n4:memory:/docker/abc\n1:cpu:/\n0::/\n",
        V1_MOUNTS,
        {
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712",
            "sys/fs/cgroup/memory/memory.usage_in_bytes": str(20 * GiB),
            "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": str(3 * GiB // 2),
            "sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": str(GiB),
            "sys/fs/cgroup/memory/docker/abc/memory.stat": f"inactive_file 5\ntotal_inactive_file {GiB // 4}\n",
            "sys/fs/cgroup/pids/docker/abc/pids.max": "12",
            "sys/fs/cgroup/pids/docker/abc/pids.current": "7",
        },
    )
    assert resources.cgroup_dirs("pids", root)[:3] == [
        f"{root}/sys/fs/cgroup/pids/docker/abc",
        f"{root}/sys/fs/cgroup/pids/docker",
        f"{root}/sys/fs/cgroup/pids",
    ]
    assert resources._cgroup_memory_headroom(root) == 3 * GiB // 2 - GiB + GiB // 4
    assert resources.cgroup_pids_headroom(root) == 5


def test_a_container_namespace_shows_its_own_cgroup_as_the_mount_root(tmp_path):
    # With a cgroup namespace the mount's root is the container's cgroup: "/" in /proc/self/cgroup is that folder.
    root = _tree(
        tmp_path,
        "0::/\n",
        "30 23 0:26 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        {"sys/fs/cgroup/memory.max": str(GiB), "sys/fs/cgroup/memory.current": str(GiB // 4)},
    )
    assert resources.cgroup_dirs("memory", root) == [f"{root}/sys/fs/cgroup"]
    assert resources._cgroup_memory_headroom(root) == 3 * GiB // 4


def test_no_cgroup_files_means_no_limit(tmp_path):
    root = _tree(tmp_path, "0::/\n", V2_MOUNT, {})
    assert resources._cgroup_memory_headroom(root) is None and resources.cgroup_pids_headroom(root) is None


def _writable_cgroup(controller: str) -> tuple[str, str] | None:
    """``(folder, version)`` where a test cgroup for ``controller`` can be made here, or None."""
    if os.geteuid() != 0:
        return None
    v1 = f"/sys/fs/cgroup/{controller}"
    if os.path.isdir(v1) and os.access(v1, os.W_OK):
        return v1, "v1"
    try:
        with open("/sys/fs/cgroup/cgroup.subtree_control") as f:
            if controller in f.read().split() and os.access("/sys/fs/cgroup", os.W_OK):
                return "/sys/fs/cgroup", "v2"
    except OSError:
        pass
    return None


def test_a_real_cgroup_limits_what_a_process_inside_it_sees():
    memory, pids = _writable_cgroup("memory"), _writable_cgroup("pids")
    if memory is None or pids is None:
        pytest.skip("needs root and a writable memory and pids cgroup (v1 or v2) to make a cgroup with limits")
    made = []
    try:
        for (top, _), files in (
            (memory, {"memory.max" if memory[1] == "v2" else "memory.limit_in_bytes": str(3 * GiB // 2)}),
            (pids, {"pids.max": "40"}),
        ):
            folder = os.path.join(top, f"kerlym-test-{os.getpid()}")
            if folder not in made:
                os.mkdir(folder)
                made.append(folder)
            for name, value in files.items():
                with open(os.path.join(folder, name), "w") as f:
                    f.write(value)
        code = (
            "import os,sys\n"
            "for d in sys.argv[1:]:\n"
            "    open(os.path.join(d, 'cgroup.procs'), 'w').write(str(os.getpid()))\n"
            "from kerlym import resources\n"
            "print(resources.available_memory_bytes(), resources.cgroup_pids_headroom(), resources.max_env_workers())\n"
        )
        out = subprocess.run([sys.executable, "-c", code, *made], capture_output=True, text=True, check=True).stdout
        available, headroom, workers = map(int, out.split())
    finally:
        for folder in reversed(made):
            os.rmdir(folder)  # the child has exited, so the cgroup is empty
    assert 0 < available <= 3 * GiB // 2
    assert 30 <= headroom < 40  # this Python and its threads count against the 40
    assert workers == headroom // 2
