"""Benchmark scripts whose arithmetic the published figures rest on."""

import importlib.util
import os

import numpy as np

from kerlym.agents import D2QN

HERE = os.path.dirname(os.path.abspath(__file__))


def load_benchmark(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, "..", "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ema_sweep_keeps_each_average_exactly_as_ema_steps_does():
    ema_sweep = load_benchmark("ema_sweep")
    kw = dict(update_freq=50, update_nsamp=64, batch_size=32, learning_starts=100, seed=3, concurrency=2)
    with_ema = D2QN("CartPole-v1", ema_steps=300, **kw)
    with_ema.learn(max_steps=600)
    swept = D2QN("CartPole-v1", **kw)
    averages = ema_sweep.attach_averages(swept, [300, 1000])
    swept.learn(max_steps=600)

    for a, b in zip(with_ema.model.get_weights(), swept.model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the averages leave training alone
    assert averages[300].step == with_ema.ema.step == 600
    for a, b in zip(with_ema.ema.weights, averages[300].weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(averages[300].weights[0], averages[1000].weights[0])
    assert not np.allclose(averages[300].weights[0], swept.model.get_weights()[0])
