"""``kerlym --export``: the exported network gives the Keras model's outputs in TensorFlow and in onnxruntime."""

import os
import subprocess
import sys

import numpy as np
import pytest

from kerlym import checkpoints
from kerlym import main as cli

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    args = ["-e", "CartPole-v1", "-a", "ddqn", "--preset", "--seed", "0", "-q", "--steps", "300", "--outdir", str(out)]
    done = subprocess.run([sys.executable, "-m", "kerlym", *args], capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr
    (name,) = os.listdir(out)
    return os.path.join(out, name)


def _export(run_dir, capsys, *flags):
    assert cli.main(["--export", run_dir, *flags]) == 0
    return capsys.readouterr().out.strip().splitlines()


def _keras_outputs(run_dir, states):
    from kerlym import runs

    model = checkpoints.load_model(os.path.join(checkpoints.latest_checkpoint(run_dir), runs.MODEL))
    return np.asarray(model(states))


STATES = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)  # CartPole: 4 numbers, one frame


def test_saved_model_reloads_and_agrees_with_keras(run_dir, capsys):
    import tensorflow as tf

    lines = _export(run_dir, capsys)
    path = lines[-1]
    assert path == os.path.join(run_dir, "export", "online_saved_model")
    assert lines[0] == f"exported the online network of {os.path.join(run_dir, 'checkpoints', 'step-0000000300')}"
    assert lines[1].startswith("input: float32 array [batch, 4]: the observation, of shape 4 after the 'none'")
    reloaded = tf.saved_model.load(path)  # kept: its variables go with it
    served = reloaded.serve(STATES).numpy()
    np.testing.assert_allclose(served, _keras_outputs(run_dir, STATES), rtol=1e-5, atol=1e-6)


def test_keras_file_keeps_the_weights(run_dir, capsys):
    import keras

    path = _export(run_dir, capsys, "--format", "keras")[-1]
    assert path.endswith(os.path.join("export", "online.keras"))
    model = keras.saving.load_model(path, compile=False)
    np.testing.assert_array_equal(np.asarray(model(STATES)), _keras_outputs(run_dir, STATES))


def test_onnxruntime_agrees_with_keras(run_dir, capsys):
    import keras

    pytest.importorskip({"tensorflow": "tf2onnx", "jax": "jax2onnx", "torch": "onnxscript"}[keras.config.backend()])
    ort = pytest.importorskip("onnxruntime")
    path = _export(run_dir, capsys, "--format", "onnx")[-1]
    assert path.endswith(os.path.join("export", "online.onnx"))
    session = ort.InferenceSession(path)
    (got,) = session.run(None, {session.get_inputs()[0].name: STATES})
    np.testing.assert_allclose(got, _keras_outputs(run_dir, STATES), rtol=1e-5, atol=1e-6)


def test_export_needs_best_keras_for_best_and_rejects_format_alone(run_dir, capsys, tmp_path):
    import shutil

    assert os.path.isfile(os.path.join(run_dir, "best.keras"))  # the final evaluation kept it
    without = str(tmp_path / "run")
    shutil.copytree(run_dir, without, ignore=shutil.ignore_patterns("best.keras", "export"))
    assert cli.main(["--export", without, "--best"]) == 2
    assert "has no best.keras" in capsys.readouterr().err
    assert cli.main(["-e", "CartPole-v1", "--format", "onnx"]) == 2
    assert capsys.readouterr().err == "kerlym: error: --format goes with --export\n"


def _litert_interpreter():
    """LiteRT's interpreter (ai-edge-litert), or TensorFlow's older copy of it; None if neither is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        except (ImportError, AttributeError):
            return None
    return Interpreter


def test_litert_agrees_with_keras(run_dir, capsys):
    import keras

    if keras.config.backend() != "tensorflow":  # torch needs litert-torch; JAX cannot: checked below
        pytest.skip("LiteRT export is checked on the TensorFlow backend")
    Interpreter = _litert_interpreter()
    if Interpreter is None:
        pytest.skip("no LiteRT interpreter: pip install ai-edge-litert")
    path = _export(run_dir, capsys, "--format", "litert")[-1]
    assert path == os.path.join(run_dir, "export", "online.tflite")
    interpreter = Interpreter(model_path=path)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(inp["index"], STATES.shape)  # exported with a free batch dimension
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], STATES)
    interpreter.invoke()
    got = interpreter.get_tensor(out["index"])
    assert got.shape == (5, 2)  # CartPole: two Q-values per state
    np.testing.assert_allclose(got, _keras_outputs(run_dir, STATES), rtol=1e-5, atol=1e-6)


def test_litert_on_jax_is_a_one_line_error(run_dir, capsys, monkeypatch):
    import keras

    monkeypatch.setattr(keras.config, "backend", lambda: "jax")
    assert cli.main(["--export", run_dir, "--format", "litert"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kerlym: error: --format litert needs Keras's tensorflow or torch backend, not jax")
    assert err.count("\n") == 1


# -- the export folder cannot be written -----------------------------------------
def _one_line_error(capsys, *args) -> str:
    assert cli.main(list(args)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_export_where_export_is_a_file_is_one_line(run_dir, capsys, tmp_path):
    import shutil

    run = shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("export"))
    (run / "export").write_text("not a folder")
    err = _one_line_error(capsys, "--export", str(run))
    assert err == (
        f"kerlym: error: cannot export: {run}/export is a file, not a folder; move it away "
        "(the run and its checkpoints are untouched)"
    )
    assert (run / "export").read_text() == "not a folder"


@pytest.fixture
def small_tmpfs(tmp_path):
    """small_tmpfs(size) -> a mounted tmpfs folder; skips without root (mount needs it)."""
    points = []

    def make(size: str) -> str:
        point = tmp_path / f"fs{len(points)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"mounting a tmpfs needs root ({done.stderr.decode().strip() or 'mount failed'})")
        points.append(point)
        return str(point)

    yield make
    for point in points:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_export_into_a_read_only_run_folder_is_one_line(run_dir, capsys, small_tmpfs):
    import shutil

    fs = small_tmpfs("16m")
    run = shutil.copytree(run_dir, os.path.join(fs, "run"), ignore=shutil.ignore_patterns("export"))
    subprocess.run(["mount", "-o", "remount,ro", fs], check=True)
    err = _one_line_error(capsys, "--export", run)
    assert err == (
        f"kerlym: error: cannot export to {run}/export: Read-only file system (the run and its checkpoints are "
        "untouched)"
    )


def test_export_onto_a_full_disk_is_one_line_and_leaves_no_partial_export(run_dir, capsys, small_tmpfs):
    import shutil

    fs = small_tmpfs("16m")
    run = shutil.copytree(run_dir, os.path.join(fs, "run"), ignore=shutil.ignore_patterns("export"))
    with open(os.path.join(fs, "filler"), "wb") as f:  # leave 8 KiB: the folder and a probe fit, a model does not
        free = shutil.disk_usage(fs).free
        f.write(b"\0" * max(0, free - 8192))
    err = _one_line_error(capsys, "--export", run, "--format", "keras")
    assert err == (
        f"kerlym: error: cannot write {run}/export/online.keras: No space left on device (the run and its "
        "checkpoints are untouched)"
    )
    assert os.listdir(os.path.join(run, "export")) == []
