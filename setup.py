"""kerlym's package definition; build settings and tool configuration live in pyproject.toml."""

import re
from pathlib import Path

from setuptools import find_packages, setup

version = re.search(r'__version__ = "([^"]+)"', Path("kerlym/__init__.py").read_text()).group(1)

setup(
    name="kerlym",
    version=version,
    description="Deep reinforcement learning agents (DQN, double DQN, policy gradient, A2C/A3C, PPO) for Gymnasium "
    "with Keras 3",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author="kerlym developers (originally Tim O'Shea)",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["kerlym", "kerlym.*"]),
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.3",
        "gymnasium[classic-control]>=1.0",  # pygame: rendering for -R and -S videos
        "ale-py>=0.9",
        "numpy>=1.24",
        "matplotlib>=3.7",
        "opencv-python-headless>=4.5",  # Gymnasium's AtariPreprocessing
        "moviepy>=1.0",  # evaluation videos for -S (Gymnasium's RecordVideo)
        "tqdm>=4.60",  # the progress bar of bounded runs
        "tensorboard>=2.16",  # tf.summary's writers (TensorFlow no longer requires it) for --tensorboard
    ],
    extras_require={
        "test": ["pytest>=7", "ruff>=0.5", "gymnasium[box2d]>=1.0"],
        # gymnax: the JAX-native envs of -e gymnax:ENV_ID (the fused path); flashbax: fused DQN's replay buffer
        "jax": ["jax>=0.4.30", "gymnax>=1.0", "flashbax>=0.1.3"],
        "box2d": ["gymnasium[box2d]>=1.0"],
        "envpool": ["envpool>=1.2.5"],  # --vector_env envpool: Atari copies in EnvPool's C++ threads
        "go": ["open-spiel>=1.5"],  # Go9x9-v0 / Go19x19-v0; GnuGo opponents also need apt-get install gnugo
        "games": ["open-spiel>=1.5"],  # -e openspiel:GAME and --search (the same package as .[go])
        "ray": ["ray[tune]>=2.40", "optuna>=3.0", "pyyaml>=6"],  # --seeds --ray, --tune (kerlym.sweep)
        # kerlym --export --format onnx, and LiteRT's interpreter for --format litert's .tflite files
        "export": ["tf2onnx>=1.16", "onnx>=1.16", "onnxruntime>=1.18", "ai-edge-litert>=1.2"],
        "tracking": ["mlflow>=3.0", "wandb>=0.19"],  # --mlflow, --wandb (kerlym.tracking)
        "docs": ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.27"],  # mkdocs build --strict
    },
    entry_points={"console_scripts": ["kerlym=kerlym.main:command"]},
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
