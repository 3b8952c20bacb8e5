"""Backend set-up done by kerlym.compiled."""

import os
import subprocess
import sys

import keras
import pytest

jax_only = pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX backend only")
CHECK = "import kerlym.compiled, jax; print(jax.config.values['jax_cpu_enable_async_dispatch'])"


@jax_only
@pytest.mark.parametrize("env_value, expected", [(None, "False"), ("1", "True")])
def test_jax_cpu_calls_run_inline_unless_the_user_says(env_value, expected):
    env = {k: v for k, v in os.environ.items() if k != "JAX_CPU_ENABLE_ASYNC_DISPATCH"}
    if env_value is not None:
        env["JAX_CPU_ENABLE_ASYNC_DISPATCH"] = env_value
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == expected
