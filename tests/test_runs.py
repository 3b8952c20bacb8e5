"""Run folders under faults: the lock, full and read-only disks, corrupt files, stale temporaries, NaN, resources.

Disk faults use a real small tmpfs where the machine allows mounting one (as
root); each also has a test that simulates the error, which always runs.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

from kerlym import _io, checkpoints, memory, resources, runs
from kerlym.runs import CheckpointError, NonFiniteError, RunLocked

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "TF_CPP_MIN_LOG_LEVEL": "3"}


def python(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        **kwargs,
    )


def one_line(error) -> str:
    text = str(error)
    assert "\n" not in text and text, text
    return text


# -- small file systems -------------------------------------------------------
@pytest.fixture
def mount(tmp_path):
    """mount(size, ro=False) -> a fresh tmpfs folder; skips where tmpfs cannot be mounted (not root, a sandbox)."""
    points = []

    def make(size: str, ro: bool = False) -> str:
        point = tmp_path / f"fs{len(points)}"
        point.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True, text=True)
        if out.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip() or 'mount failed'})")
        points.append(point)
        return str(point)

    yield make
    for point in points:
        subprocess.run(["umount", "-l", str(point)], check=False)


def remount_ro(point: str) -> None:
    subprocess.run(["mount", "-o", "remount,ro", point], check=True)


def fill(folder: str, leave: int) -> None:
    """Fill the file system of ``folder`` until only ``leave`` bytes (rounded to pages) are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(os.path.join(folder, "filler"), "wb") as f:
        f.write(b"x" * max(0, free - leave))


def listing(folder: str) -> list[str]:
    return sorted(os.listdir(folder))


# -- a checkpoint without Keras (for the checks that only read files) ------------
def fake_checkpoint(run_dir: str, step: int, latest: bool = True) -> str:
    root = os.path.join(run_dir, runs.CHECKPOINTS)
    path = os.path.join(root, f"step-{step:010d}")
    os.makedirs(path)
    with zipfile.ZipFile(os.path.join(path, runs.MODEL), "w") as z:
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", b"\0" * 64)
    np.savez(os.path.join(path, runs.ARRAYS), w=np.arange(1000.0))
    with open(os.path.join(path, runs.STATE), "w") as f:
        json.dump({"total_steps": step}, f)
    if latest:
        with open(os.path.join(root, "latest"), "w") as f:
            f.write(f"step-{step:010d}\n")
    return path


def truncate(path: str) -> None:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


# -- 1. the lock ------------------------------------------------------------------
HOLD = """
    import sys
    from kerlym import runs
    lock = runs.lock_run(sys.argv[1] if len(sys.argv) > 1 else {run!r})
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_a_second_process_is_refused_with_the_holders_pid_until_the_holder_is_killed(tmp_path):
    run = str(tmp_path)
    holder = python(HOLD.format(run=run))
    try:
        assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
        with pytest.raises(RunLocked) as e:
            runs.lock_run(run)
        assert one_line(e.value).startswith(f"run folder {run} is in use by process {holder.pid} (")
        assert one_line(e.value).endswith("; wait for it to finish or stop it")
        other = python(HOLD.format(run=run))  # a third process: refused too, with a one-line error
        _, err = other.communicate(timeout=60)
        assert other.returncode == 1 and f"RunLocked: run folder {run} is in use by process {holder.pid}" in err
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the kernel drops the lock
        holder.wait()
    with runs.lock_run(run) as lock:  # free again, and a context manager
        with pytest.raises(RunLocked):
            runs.lock_run(run)  # a second open file description conflicts even in one process
    lock.release()  # idempotent
    runs.lock_run(run).release()


def test_a_lock_kept_by_orphaned_workers_names_them(tmp_path):
    run = str(tmp_path)
    parent = python(
        f"""
        import os, sys, time
        from kerlym import runs
        lock = runs.lock_run({run!r})
        child = os.fork()
        if child == 0:  # an env worker: inherits the lock's file description
            time.sleep(60)
            os._exit(0)
        print(child, flush=True)
        os._exit(0)  # kerlym dies; the worker lives on
        """
    )
    child = int(parent.stdout.readline())
    parent.wait()
    try:
        with pytest.raises(RunLocked) as e:
            runs.lock_run(run)
        text = one_line(e.value)
        assert f"process {parent.pid} (" in text and "which has exited" in text and str(child) in text
    finally:
        os.kill(child, signal.SIGKILL)
    for _ in range(100):  # the child is reaped by init; its file descriptions close then
        try:
            runs.lock_run(run).release()
            break
        except RunLocked:
            time.sleep(0.05)
    else:
        raise AssertionError("the lock outlived the worker")


def test_readers_take_no_lock_and_work_on_a_read_only_file_system(tmp_path, mount):
    run = str(tmp_path)
    runs.write_config(run, {"env": "CartPole-v1"})
    checkpoint = fake_checkpoint(run, 300)
    holder = python(HOLD.format(run=run))
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert runs.read_config(run) == {"env": "CartPole-v1"}
        assert checkpoints.resumable_checkpoint(run) == (checkpoint, None)
        assert checkpoints.latest_checkpoint(run) == checkpoint
    finally:
        holder.kill()
        holder.wait()
    fs = mount("1m")
    runs.write_config(fs, {"env": "CartPole-v1"})
    fake_checkpoint(fs, 300)
    remount_ro(fs)
    assert runs.read_config(fs)["env"] == "CartPole-v1"
    assert checkpoints.resumable_checkpoint(fs)[1] is None
    with pytest.raises(CheckpointError, match=r"cannot lock run folder .*: Read-only file system$"):
        runs.lock_run(fs)
    with pytest.raises(CheckpointError, match=r"^cannot resume: run folder .* is not writable: Read-only file system"):
        runs.check_run_writable(fs)


# -- 3. unwritable folders -----------------------------------------------------------
def test_unwritable_outdir_is_one_line_before_training(tmp_path, mount):
    made = tmp_path / "new" / "runs"
    runs.check_outdir_writable(str(made))
    assert made.is_dir() and listing(made) == []  # created, and the probe file is gone
    (tmp_path / "afile").write_text("x")
    with pytest.raises(CheckpointError, match=r"^output folder .*afile is a file, not a folder$"):
        runs.check_outdir_writable(str(tmp_path / "afile"))
    with pytest.raises(CheckpointError, match=r"^cannot create output folder .*afile/runs: Not a directory$"):
        runs.check_outdir_writable(str(tmp_path / "afile" / "runs"))
    ro = mount("1m", ro=True)
    with pytest.raises(CheckpointError, match=r"^output folder .* is not writable: Read-only file system$"):
        runs.check_outdir_writable(ro)
    with pytest.raises(CheckpointError, match=r"^cannot create output folder .*: Read-only file system$"):
        runs.check_outdir_writable(os.path.join(ro, "runs"))


def unprivileged(fn):
    """``fn()``'s result as text, run in a forked child as the user "nobody" when we are root (root writes anywhere)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no exec, so it needs no access to the Python install
        os.close(read)
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            text = repr(fn())
        except BaseException as e:
            text = f"{type(e).__name__}: {e}"
        os.write(write, text.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    os.waitpid(pid, 0)
    return text


def test_a_folder_without_write_permission_is_one_line():
    import tempfile

    with tempfile.TemporaryDirectory() as top:  # not tmp_path: pytest keeps that closed to other users
        os.chmod(top, 0o755)
        folder = os.path.join(top, "locked")
        os.mkdir(folder, mode=0o555)
        got = unprivileged(lambda: runs.check_outdir_writable(folder))
    assert got == f"CheckpointError: output folder {folder} is not writable: Permission denied"


# -- 4. corrupt run files -----------------------------------------------------------
def test_random_bytes_in_latest_are_named_and_resume_falls_back(tmp_path):
    run = str(tmp_path)
    fake_checkpoint(run, 300)
    newest = fake_checkpoint(run, 600)
    latest = os.path.join(run, "checkpoints", "latest")
    with open(latest, "wb") as f:
        f.write(bytes(range(128, 256)))  # not UTF-8: today a UnicodeDecodeError
    with pytest.raises(CheckpointError) as e:
        checkpoints.latest_checkpoint(run)
    assert one_line(e.value) == f"{latest} is corrupt: it does not name a checkpoint"
    assert checkpoints.resumable_checkpoint(run) == (
        newest,
        f"{latest} is corrupt: it does not name a checkpoint; resuming from step-0000000600, "
        "the newest complete checkpoint",
    )
    with open(latest, "w") as f:
        f.write("../../etc\n")  # decodes, but is no checkpoint name
    assert checkpoints.resumable_checkpoint(run)[0] == newest


@pytest.mark.parametrize(
    "damage, problem",
    [
        ("arrays", "checkpoint {c} is corrupt: arrays.npz: it is truncated or not a zip file (File is not a zip file)"),
        ("model", "cannot load model {c}/model.keras: it is truncated or not a zip file (File is not a zip file)"),
        (
            "state",
            "checkpoint {c} is corrupt: state.json is unreadable (Unterminated string starting at: line 1 column 2",
        ),
        ("missing", "checkpoint {c} does not exist"),
        ("negative", "checkpoint {c} is corrupt: state.json says total_steps is -5, not a count of 0 or more"),
        ("float", "checkpoint {c} is corrupt: state.json says updates is 2.5, not a count of 0 or more"),
    ],
)
def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage, problem):
    run = str(tmp_path)
    previous = fake_checkpoint(run, 300)
    newest = fake_checkpoint(run, 600)
    if damage == "arrays":
        truncate(os.path.join(newest, runs.ARRAYS))  # today: BadZipFile on resume
    elif damage == "model":
        truncate(os.path.join(newest, runs.MODEL))  # today: Keras's misleading "File not found"
    elif damage == "state":
        with open(os.path.join(newest, runs.STATE), "w") as f:
            f.write('{"to')
    elif damage in ("negative", "float"):
        with open(os.path.join(newest, runs.STATE), "w") as f:
            json.dump(
                {"total_steps": -5, "episode": 3} if damage == "negative" else {"total_steps": 600, "updates": 2.5}, f
            )
    else:
        os.rename(newest, newest + "-gone")
    path, note = checkpoints.resumable_checkpoint(run)
    assert path == previous
    assert note.startswith(f"checkpoint step-0000000600 is unusable ({problem.format(c=newest)}")
    assert note.endswith("); resuming from step-0000000300")
    if damage != "missing":  # with nothing to fall back to, the file's own error
        os.rename(previous, previous + "-gone")
        with pytest.raises(CheckpointError) as e:
            checkpoints.resumable_checkpoint(run)
        assert one_line(e.value).startswith(problem.format(c=newest))


def test_no_checkpoint_at_all(tmp_path):
    with pytest.raises(CheckpointError, match="has no checkpoint to resume from$"):
        checkpoints.resumable_checkpoint(str(tmp_path))
    with pytest.raises(CheckpointError, match="has no checkpoint to resume from$"):
        checkpoints.latest_checkpoint(str(tmp_path))


def test_a_corrupt_config_is_one_line(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CheckpointError, match=rf"^{path} is corrupt: "):
        runs.read_config(str(tmp_path))
    path.write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=rf"^{path} is corrupt: not a JSON object$"):
        runs.read_config(str(tmp_path))


# -- 5. stale temporaries --------------------------------------------------------------
def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid  # reaped: no process has this PID until the kernel hands it out again


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    run = str(tmp_path)
    dead, live = dead_pid(), os.getpid()
    ckpt_dir = os.path.join(run, "checkpoints")
    os.makedirs(os.path.join(ckpt_dir, f".tmp-step-0000000300-{dead}"))  # kerlym 0.2's name
    os.makedirs(os.path.join(ckpt_dir, f".tmp-{dead}-step-0000000600"))
    os.makedirs(os.path.join(ckpt_dir, f".tmp-{live}-step-0000000900"))  # being written now
    for name in (f"checkpoints/.tmp-{dead}-latest", "checkpoints/latest.tmp", f".tmp-{dead}-best.keras"):
        open(os.path.join(run, name), "w").close()
    for name in ("config.json.tmp", f".tmp-{live}-config.json", ".tmpfoo", "notes.tmp", "config.json"):
        open(os.path.join(run, name), "w").close()
    removed = runs.remove_stale_temporaries(run)
    assert sorted(os.path.relpath(p, run) for p in removed) == sorted(
        [
            f".tmp-{dead}-best.keras",
            "config.json.tmp",
            f"checkpoints/.tmp-step-0000000300-{dead}",
            f"checkpoints/.tmp-{dead}-step-0000000600",
            f"checkpoints/.tmp-{dead}-latest",
            "checkpoints/latest.tmp",
        ]
    )
    assert listing(run) == [f".tmp-{live}-config.json", ".tmpfoo", "checkpoints", "config.json", "notes.tmp"]
    assert listing(ckpt_dir) == [f".tmp-{live}-step-0000000900"]
    assert runs.remove_stale_temporaries(str(tmp_path / "nothing-here")) == []


# -- ckpt_dir of a real agent ---------------------------------------------------------
def tiny_q(agent, env, learning_rate=1e-3, **kwargs):
    import keras

    s = keras.Input((agent.input_dim,))
    model = keras.Model(s, keras.layers.Dense(int(env.action_space.n))(keras.layers.Dense(8)(s)))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return model


@pytest.fixture(scope="module")
def agent():
    from kerlym.agents import D2QN

    a = D2QN("CartPole-v1", modelfactory=tiny_q, seed=0, batch_size=8, update_nsamp=8, update_freq=10, max_memory=500)
    a.learn(max_steps=60)  # some updates, so the optimizer has moments
    return a


def at_step(agent, step):
    agent.total_steps = step
    return agent


def assert_intact(run, name):
    """``latest`` names ``name``, its files pass the checks, and nothing temporary is left."""
    ckpt_dir = os.path.join(run, "checkpoints")
    assert checkpoints.resumable_checkpoint(run) == (os.path.join(ckpt_dir, name), None)
    assert [n for n in os.listdir(ckpt_dir) if n.startswith(".tmp")] == []
    assert [n for n in os.listdir(run) if n.startswith(".tmp")] == []


def test_a_full_disk_keeps_the_previous_checkpoint_and_resume_works_after(agent, mount):
    fs = mount("1m")
    first = checkpoints.save_checkpoint(fs, at_step(agent, 100))
    size = sum(os.path.getsize(os.path.join(first, f)) for f in os.listdir(first))
    for leave in (0, size // 4, size // 2, 3 * size // 4):  # the disk fills in each file of the checkpoint
        fill(fs, leave)
        with pytest.raises(CheckpointError) as e:
            checkpoints.save_checkpoint(fs, at_step(agent, 200))
        ckpt_dir = os.path.join(fs, "checkpoints")
        assert one_line(e.value) == (
            f"cannot write checkpoint in {ckpt_dir}: No space left on device "
            "(previous checkpoint kept: step-0000000100)"
        )
        assert listing(ckpt_dir) == ["latest", "step-0000000100"]
        if leave == 0:
            with pytest.raises(CheckpointError, match=rf"^cannot write {fs}/config.json: No space left on device$"):
                runs.write_config(fs, {"env": "CartPole-v1"})
        assert_intact(fs, "step-0000000100")
        os.unlink(os.path.join(fs, "filler"))
    from kerlym.agents import D2QN

    again = D2QN("CartPole-v1", modelfactory=tiny_q, seed=1, max_memory=500)
    checkpoints.restore_checkpoint(first, again)  # the kept checkpoint loads
    assert again.total_steps == 100
    for got, want in zip(again.model.get_weights(), agent.model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    checkpoints.save_checkpoint(fs, at_step(agent, 200))  # room again: saving works
    assert_intact(fs, "step-0000000200")


def test_a_read_only_disk_keeps_the_previous_checkpoint(agent, mount):
    fs = mount("1m")
    checkpoints.save_checkpoint(fs, at_step(agent, 100))
    remount_ro(fs)
    with pytest.raises(CheckpointError, match=r"^cannot write checkpoint in .*: Read-only file system \(previous"):
        checkpoints.save_checkpoint(fs, at_step(agent, 200))
    assert_intact(fs, "step-0000000100")
    with pytest.raises(CheckpointError, match=r"^cannot write .*config.json: Read-only file system$"):
        runs.write_config(fs, {"a": 1})


@pytest.mark.parametrize("stage", ["model", "arrays", "latest"])
def test_a_write_error_at_any_stage_keeps_the_previous_checkpoint(agent, tmp_path, monkeypatch, stage):
    run = str(tmp_path)
    checkpoints.save_checkpoint(run, at_step(agent, 100))

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if stage == "model":  # as Keras would wrap it: the OSError is the cause
        model_save = type(agent.model).save

        def wrapped(self, *args, **kwargs):
            try:
                no_space()
            except OSError as e:
                raise ValueError("Unable to save the model") from e

        monkeypatch.setattr(type(agent.model), "save", wrapped)
    elif stage == "arrays":
        monkeypatch.setattr(np, "savez", no_space)
    else:
        atomic = _io.atomic_write
        fail_latest = lambda p, t: no_space() if p.endswith("latest") else atomic(p, t)  # noqa: E731
        monkeypatch.setattr(checkpoints, "atomic_write", fail_latest)
    with pytest.raises(
        CheckpointError, match=r"No space left on device \(previous checkpoint kept: step-0000000100\)$"
    ):
        checkpoints.save_checkpoint(run, at_step(agent, 200))
    assert listing(os.path.join(run, "checkpoints")) == ["latest", "step-0000000100"]
    assert_intact(run, "step-0000000100")
    if stage == "model":
        monkeypatch.setattr(type(agent.model), "save", model_save)


def test_other_errors_pass_through_and_leave_no_partial_folder(agent, tmp_path, monkeypatch):
    run = str(tmp_path)
    checkpoints.save_checkpoint(run, at_step(agent, 100))

    def boom(*args, **kwargs):
        raise RuntimeError("a bug, not a disk problem")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        checkpoints.save_checkpoint(run, at_step(agent, 200))
    assert_intact(run, "step-0000000100")
    monkeypatch.setattr(np, "savez", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_checkpoint(run, at_step(agent, 200))
    assert_intact(run, "step-0000000100")


def test_saving_a_step_twice_replaces_it_and_newer_abandoned_checkpoints_go(agent, tmp_path):
    run = str(tmp_path)
    fake_checkpoint(run, 900)  # from before a resume that fell back past it
    checkpoints.save_checkpoint(run, at_step(agent, 100))
    checkpoints.save_checkpoint(run, at_step(agent, 200))
    agent.episode += 1  # e.g. the episode that ended at this step is now counted
    checkpoints.save_checkpoint(run, at_step(agent, 200))
    assert listing(os.path.join(run, "checkpoints")) == ["latest", "step-0000000100", "step-0000000200"]
    assert_intact(run, "step-0000000200")
    with open(os.path.join(run, "checkpoints", "step-0000000200", "state.json")) as f:
        assert json.load(f)["episode"] == agent.episode
    checkpoints.save_checkpoint(run, at_step(agent, 300), keep=1)
    assert listing(os.path.join(run, "checkpoints")) == ["latest", "step-0000000300"]


def test_non_finite_weights_or_optimizer_state_are_never_saved(agent, tmp_path):
    run = str(tmp_path)
    checkpoints.save_checkpoint(run, at_step(agent, 100))
    weights = agent.model.get_weights()
    broken = [w.copy() for w in weights]
    broken[2][0, 1] = np.nan
    agent.model.set_weights(broken)
    try:
        with pytest.raises(NonFiniteError) as e:
            checkpoints.save_checkpoint(run, at_step(agent, 200))
        assert one_line(e.value) == (
            "refusing to save a checkpoint at step 200: NaN or inf in model weight 2; "
            "step-0000000100 stays the latest checkpoint"
        )
        assert isinstance(e.value, CheckpointError)
        with pytest.raises(NonFiniteError, match="^refusing to evaluate at step 200: NaN or inf in the network's"):
            checkpoints.record_evaluation(run, agent, 10.0, 1.0)
    finally:
        agent.model.set_weights(weights)
    moment = next(v for v in agent.model.optimizer.variables if len(v.shape) == 2)
    saved = moment.numpy()
    moment.assign(np.full(saved.shape, np.inf, saved.dtype))
    try:
        with pytest.raises(NonFiniteError, match=r"NaN or inf in optimizer/\d+"):
            checkpoints.save_checkpoint(run, at_step(agent, 200))
    finally:
        moment.assign(saved)
    assert_intact(run, "step-0000000100")
    assert not os.path.exists(os.path.join(run, "evaluations.csv"))


def test_non_finite_arrays_by_hand():
    import ml_dtypes

    arrays = {
        "a": np.array([1.0, 2.0]),
        "b": np.array([1.0, np.inf], np.float32),
        "c": np.array([np.nan], ml_dtypes.bfloat16),
        "d": np.array([7], np.int64),
    }
    assert checkpoints.non_finite_arrays(arrays) == ["b", "c"]


def test_restore_names_the_corrupt_file(agent, tmp_path):
    from kerlym.agents import D2QN

    path = checkpoints.save_checkpoint(str(tmp_path), at_step(agent, 100))
    again = D2QN("CartPole-v1", modelfactory=tiny_q, seed=1, max_memory=500)
    arrays = os.path.join(path, runs.ARRAYS)
    truncate(arrays)
    with pytest.raises(CheckpointError, match=rf"^{arrays} is corrupt: File is not a zip file$"):
        checkpoints.restore_checkpoint(path, again)  # today: a BadZipFile traceback
    model = os.path.join(path, runs.MODEL)
    truncate(model)
    with pytest.raises(CheckpointError, match=rf"^cannot load model {model}: it is truncated or not a zip file"):
        checkpoints.restore_checkpoint(path, again)  # today: "File not found"
    with pytest.raises(CheckpointError, match=rf"^cannot load model {model}: it is truncated"):
        checkpoints.greedy_weights(model)  # --play --best
    with pytest.raises(CheckpointError, match=rf"^checkpoint {path} is corrupt: arrays.npz: File is not a zip file$"):
        checkpoints.greedy_weights(path)  # --play


def test_restore_refuses_counters_that_are_no_counts(agent, tmp_path):
    from kerlym.agents import D2QN

    path = checkpoints.save_checkpoint(str(tmp_path), at_step(agent, 100))
    state = os.path.join(path, runs.STATE)
    with open(state) as f:
        meta = json.load(f)
    with open(state, "w") as f:
        json.dump({**meta, "total_steps": -5}, f)
    again = D2QN("CartPole-v1", modelfactory=tiny_q, seed=1, max_memory=500)
    with pytest.raises(CheckpointError) as e:
        checkpoints.restore_checkpoint(path, again)  # loaded before, at step -5
    assert one_line(e.value) == f"{state} is corrupt: it says total_steps is -5, not a count of 0 or more"
    assert again.total_steps == 0


def test_best_model_on_a_full_disk_keeps_the_previous_best(agent, mount):
    fs = mount("1m")
    assert checkpoints.record_evaluation(fs, at_step(agent, 100), 5.0, 1.0)
    best = os.path.join(fs, "best.keras")
    before = open(best, "rb").read()
    assert not checkpoints.record_evaluation(fs, at_step(agent, 200), float("nan"), 0.0)  # NaN is never the best
    fill(fs, 0)  # the row still fits in the last page of evaluations.csv; the model does not
    with pytest.raises(CheckpointError) as e:
        checkpoints.record_evaluation(fs, at_step(agent, 300), 9.0, 1.0)
    assert one_line(e.value) == f"cannot write {best}: No space left on device (the previous best model is kept)"
    assert open(best, "rb").read() == before and [n for n in os.listdir(fs) if n.startswith(".tmp")] == []
    os.unlink(os.path.join(fs, "filler"))
    assert checkpoints.record_evaluation(fs, at_step(agent, 400), 9.5, 1.0)
    with open(os.path.join(fs, "evaluations.csv")) as f:
        assert f.read() == "total_steps,mean,std\n100,5.0,1.0\n200,nan,0.0\n300,9.0,1.0\n400,9.5,1.0\n"


@pytest.mark.slow
def test_kill_9_during_saves_leaves_a_complete_latest_and_the_leftovers_are_removed(tmp_path):
    run = str(tmp_path)
    saver = python(
        f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_runs import tiny_q
        from kerlym import checkpoints
        from kerlym.agents import D2QN
        agent = D2QN("CartPole-v1", modelfactory=tiny_q, seed=0, max_memory=500)
        print("ready", flush=True)
        while True:
            agent.total_steps += 1
            checkpoints.save_checkpoint({run!r}, agent)
        """
    )
    assert saver.stdout.readline().strip() == "ready", saver.stderr.read()
    time.sleep(1.0 + np.random.default_rng().uniform(0, 0.5))  # several saves, then a kill at a random moment
    saver.kill()
    saver.wait()
    runs.remove_stale_temporaries(run)
    path, note = checkpoints.resumable_checkpoint(run)
    assert note is None and checkpoints.checkpoint_problem(path) is None
    ckpt_dir = os.path.join(run, "checkpoints")
    assert [n for n in os.listdir(ckpt_dir) if n.startswith(".tmp")] == []


# -- 7. resources ----------------------------------------------------------------
@pytest.mark.parametrize(
    "capacity, shape, dtype, streams",
    [(1000, (4,), np.float32, 1), (500, (84, 84), np.uint8, 8), (7, (2, 3, 5), np.float64, 3), (1, (), np.int16, 1)],
)
def test_replay_nbytes_is_what_replay_memory_allocates(capacity, shape, dtype, streams):
    real = memory.ReplayMemory(capacity, shape, dtype, streams=streams).nbytes
    assert memory.replay_nbytes(capacity, shape, dtype, streams) == real


def test_replay_nbytes_by_hand_for_a_memory_too_big_to_allocate():
    # Atari: 84x84 uint8 frames, 1e9 slots: 7056 + 34 bytes a slot (the issue's -m 1000000000 was killed for memory).
    assert memory.replay_nbytes(10**9, (84, 84), np.uint8) == 10**9 * 7090 + 8
    assert memory.replay_nbytes(10**12, (4,), np.float32, streams=2) == 10**12 * 50 + 16


def test_available_memory_is_memavailable_or_less():
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    got = resources.available_memory_bytes()
    assert 0 < got <= info["MemTotal"]
    assert got <= info["MemAvailable"] + 256 * 2**20  # it moves a little between the two reads


def test_worker_bound_by_hand():
    assert resources.worker_bound(2, None) == 32  # 16 a CPU
    assert resources.worker_bound(8, 100) == 50  # half the task headroom
    assert resources.worker_bound(4, 1) == 1 and resources.worker_bound(4, -5) == 1  # always at least one
    assert resources.worker_bound(0, None) == 16
    assert 1 <= resources.max_env_workers() <= 16 * len(os.sched_getaffinity(0))


def test_max_env_workers_counts_the_process_limit():
    import resource

    def limited():
        resource.setrlimit(resource.RLIMIT_NPROC, (40, 40))
        return resources.max_env_workers()

    got = unprivileged(limited)  # root is exempt from RLIMIT_NPROC, "nobody" is not
    assert 1 <= int(got) <= 20, got  # at most half of 40, less what the user already runs


@pytest.mark.parametrize("reading", ["model", "arrays"])
def test_a_reader_beside_training_retries_on_the_newest_when_a_save_prunes_what_it_reads(agent, tmp_path, reading):
    run = str(tmp_path)
    for step in (100, 200):
        checkpoints.save_checkpoint(run, at_step(agent, step))
    read = []

    def weights(checkpoint):  # --play's read; the first one loses the race with two saves that prune step 200
        read.append(os.path.basename(checkpoint))
        if len(read) == 1:
            for step in (300, 400):
                checkpoints.save_checkpoint(run, at_step(agent, step))
            assert not os.path.exists(checkpoint)  # pruned (keep=2) while it was read
        if reading == "arrays":  # np.load: a plain FileNotFoundError
            with np.load(os.path.join(checkpoint, runs.ARRAYS)) as npz:
                return sorted(npz.files)[0]
        return checkpoints.greedy_weights(checkpoint)  # load_model: a CheckpointError

    assert checkpoints.read_latest(run, weights) is not None
    assert read == ["step-0000000200", "step-0000000400"]


def test_a_reader_raises_the_checkpoints_own_error_when_latest_has_not_moved(tmp_path):
    run = str(tmp_path)
    newest = fake_checkpoint(run, 600)
    truncate(os.path.join(newest, runs.ARRAYS))
    read = []

    def weights(checkpoint):
        read.append(checkpoint)
        return checkpoints.greedy_weights(checkpoint)

    with pytest.raises(CheckpointError, match=r"is corrupt: arrays.npz: "):
        checkpoints.read_latest(run, weights)
    assert read == [newest]  # no retry: the latest checkpoint itself is bad
