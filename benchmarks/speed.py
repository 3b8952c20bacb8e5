"""Speed of kerlym (TensorFlow and JAX backends) side by side with Stable-Baselines3 and plain Keras.

Full comparison (run it on a quiet machine; roughly 1 to 1.5 hours on 2 CPU cores, most of it Pong)::

    python benchmarks/speed.py

Smoke test of every part with small budgets (about 10 minutes on a quiet 2-core machine)::

    python benchmarks/speed.py --cartpole-steps 3000 --pong-steps 500 --pg-episodes 20 --eval-episodes 3 \\
        --concurrency 1 2 --conc-steps 1000 --conc-pong-steps 300 --out /tmp/speed_smoke.json

Pick parts with ``--parts cartpole pong pg concurrency cleanrl ppo fused purejaxrl``, backends with ``--backends`` and
reference systems with ``--peers sb3 cleanrl purejaxrl`` (default: sb3). The SB3 rows need (torch first, or pip
pulls a multi-GB CUDA build; without SB3 one line says so and its rows are skipped)::

    pip install torch==2.13.0 && pip install stable-baselines3 opencv-python-headless ale-py

kerlym against CleanRL's own DQN scripts (a CleanRL checkout and a Python with its dependencies; how to get
both: benchmarks/README.md, "kerlym against CleanRL")::

    CLEANRL_DIR=/tmp/cleanrl CLEANRL_PYTHON=/tmp/cleanrl-venv/bin/python \\
        python benchmarks/speed.py --peers cleanrl --parts cleanrl --seeds 1 2 3 --cleanrl-steps 50000

kerlym's fused PPO against PureJaxRL's own ``ppo.py`` (a PureJaxRL checkout and a Python with its dependencies;
benchmarks/README.md, "kerlym against PureJaxRL")::

    PUREJAXRL_DIR=/tmp/purejaxrl PUREJAXRL_PYTHON=/tmp/purejaxrl-venv/bin/python \
        python benchmarks/speed.py --peers purejaxrl --parts purejaxrl --purejaxrl-repeats 4 --seeds 0 1

The Keras backend is fixed at import, so every row runs in a fresh subprocess (this script with a hidden
``--worker`` flag, printing one JSON line), one after another, never in parallel. Table columns: steps and
seconds are what was timed, steps/s their quotient. Results go to ``benchmarks/results/speed.json``.

* cartpole: kerlym D2QN built exactly as ``kerlym -e CartPole-v1 -a ddqn --preset --seed S`` vs SB3 DQN
  with the RL Zoo CartPole-v1 hyperparameters, ``--cartpole-steps`` each, for every ``--seeds``. seconds =
  wall-clock of ``learn`` (kerlym's tracing/compiling included; building and evaluation excluded); eval =
  mean return of ``--eval-episodes`` greedy episodes (seeds 10000+S, ...) after the last step (kerlym's
  greedy actions come from the preset's weight average, ``--ema``, in the evaluation and every check);
  ratio = SB3 s / kerlym s. Solve checks: every ``--check-every`` steps (0: none) both systems play
  ``--eval-episodes`` greedy episodes; "solved at" is the first check whose mean reaches 475 and
  "solve s" the training seconds up to it. The clock is paused during checks, so they leave seconds
  alone but lengthen the run's wall time. The summary lines give each system's median time to solve
  over the seeds (a run never solved counts as infinitely slow).
* pong: DQN from pixels on PongNoFrameskip-v4 in both: Nature CNN on 4 stacked 84x84 frames, train_freq 4,
  batch 32, one gradient step per update, ``--pong-buffer``, ``--pong-learning-starts``, target sync every
  1000 steps, Adam 1e-4, Huber, epsilon 1 -> 0.01 by learning_starts (so timed steps act through the
  network in both). SB3: ``make_atari_env`` + ``VecFrameStack(4)``; kerlym: ``nature_cnn`` +
  ``preproc.atari``, nframes=4. Timed: ``--pong-steps`` steps from 200 steps after learning starts
  (compilation excluded). kerlym runs once per ``--pong-dtype-policies`` on each backend: "(bf16)" rows
  compute the layers in bfloat16 (``dtype_policy="mixed_bfloat16"``; weights, optimizer and loss float32);
  SB3 computes in float32. ratio = kerlym steps/s / SB3 steps/s.
* pg: kerlym PG as ``kerlym -e CartPole-v1 -a pg --preset`` (karpathy_simple_pgnet, dropout 0, Adam at
  the preset's rate) vs the plain eager Keras REINFORCE below (same network, ``model(x)`` per step, one ``GradientTape``
  update per episode; TensorFlow), ``--pg-episodes`` each; ratio = kerlym steps/s / plain steps/s.
* concurrency: kerlym D2QN with ``concurrency=N`` for each ``--concurrency`` N, on CartPole (preset;
  ``--conc-steps`` timed from step 1100, after the first update) and Pong (as above, ``--conc-pong-steps``
  timed); ratio = steps/s / steps/s at the first N, same env and backend.
* fused: ``kerlym -e gymnax:CartPole-v1 -a ppo --preset`` (the fused JAX path, JAX backend), run as a command
  with one seed and with ``--seeds 0 .. --fused-seeds - 1`` trained together, beside SB3's PPO with the RL Zoo's
  CartPole-v1 settings and one seed, ``--fused-steps`` steps per seed. Each side's process ends with a
  20-episode greedy evaluation (kerlym's in the command, per seed; SB3's on Gymnasium's CartPole-v1, seeds
  10000+). ratio = the whole process's wall-clock / SB3's; the goals (2026-12-07): one seed at most 0.25x,
  the seeds together at most 1.0x with a mean greedy return over the seeds of at least 475.
* cleanrl: CleanRL's ``dqn.py`` (torch) and ``dqn_jax.py`` on CartPole-v1, run as they are with ``--seed S
  --total-timesteps --cleanrl-steps`` (CleanRL's defaults otherwise: a 120-84 MLP, one gradient step on a
  batch of 128 every 10 steps, target synced every 500, Adam 2.5e-4, 10k replay, learning from 10k steps,
  epsilon 1 -> 0.05 over half the steps), each beside kerlym DQN configured the same way
  (:func:`cleanrl_dqn_settings`) on TensorFlow and on JAX respectively, alternating which goes first. seconds
  = the training loop: kerlym's ``learn``, CleanRL's from the steps/s it prints (:func:`parse_cleanrl`);
  ratio = kerlym s / CleanRL s. The goal (set on 2026-12-07; 0.5 of the loop before): at most 0.7 of CleanRL's
  wall-clock for each whole process, imports and compiling included. The summary gives the mean ± std over the
  pairs of the whole-process ratio and of the loop's, and a Markdown row.
* purejaxrl: PureJaxRL's ``ppo.py`` on gymnax's CartPole-v1 with its ``__main__`` config (4 envs x 128 steps,
  4 epochs of 4 minibatches, 5e5 steps; run by ``purejaxrl_ppo.py`` in PureJaxRL's Python, ``DEBUG`` off), beside
  kerlym's fused PPO configured the same way (:func:`purejaxrl_ppo_settings`, :func:`purejaxrl_mlp`) through the
  Python API, alternating which goes first, ``--purejaxrl-repeats`` pairs. ratio = kerlym's whole process /
  PureJaxRL's (the goal set on 2026-12-07: at most 1.2x); beside it each side's imports and set-up, compiling
  (JAX's own compile events on kerlym's side; ``lower().compile()`` on PureJaxRL's) and loop.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from results import SB3_ZOO

MARK = "SPEED-RESULT "
PONG = "PongNoFrameskip-v4"
SB3_INSTALL = "pip install torch==2.13.0 && pip install stable-baselines3 opencv-python-headless ale-py"
# RL Zoo's CartPole-v1 hyperparameters (results.py keeps them for every env of the results table).
SB3_CARTPOLE = {**SB3_ZOO["CartPole-v1"], "policy_kwargs": dict(net_arch=[256, 256])}
PARTS = ("cartpole", "pong", "pg", "concurrency", "cleanrl", "ppo", "fused", "purejaxrl")
CLEANRL_SCRIPTS = {"tensorflow": "dqn.py", "jax": "dqn_jax.py"}  # kerlym's backend -> the CleanRL script it faces
PJX_GET = "see benchmarks/README.md, 'kerlym against PureJaxRL', for how to get it"
GOAL_WHOLE = 0.7  # kerlym's whole process against CleanRL's, at most (set on 2026-12-07)
CLEANRL_GET = "see benchmarks/README.md, 'kerlym against CleanRL', for how to get it"
SOLVED, CARTPOLE_MAX = 475.0, 500.0  # a greedy mean that counts as solved; CartPole-v1's most return per episode


class Window:
    """Times env steps from the first tick at or after ``start`` steps to :meth:`rate`'s call."""

    def __init__(self, start: int):
        self.start, self.t0, self.s0 = start, None, None

    def tick(self, steps: int) -> None:
        if self.t0 is None and steps >= self.start:
            self.t0, self.s0 = time.perf_counter(), steps

    def rate(self, steps: int) -> dict:
        return result(steps - self.s0, time.perf_counter() - self.t0)


def result(steps: int, seconds: float, **extra) -> dict:
    return {"steps": steps, "seconds": seconds, "steps_per_s": steps / seconds, **extra}


class SolveClock:
    """Training wall-clock with the solve checks left out, and when the first check passed.

    Every ``check_every`` env steps (0: never) ``maybe_check`` plays greedy
    episodes through ``play(seed) -> return``; the clock stops meanwhile.
    Once a check has passed there are no more.
    """

    def __init__(self, check_every: int, episodes: int, seed: int):
        self.check_every, self.episodes, self.seed = check_every, episodes, seed
        self.start, self.paused = time.perf_counter(), 0.0
        self.solve_steps = self.solve_seconds = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def maybe_check(self, steps: int, play) -> bool:
        """Run the check due at ``steps``, if any; whether the run is solved."""
        if self.check_every and self.solve_steps is None and steps % self.check_every == 0:
            t0 = time.perf_counter()
            if solves(play, self.episodes, self.seed):
                self.solve_steps, self.solve_seconds = steps, t0 - self.start - self.paused
            self.paused += time.perf_counter() - t0
        return self.solve_steps is not None

    def fields(self) -> dict:
        """The row's solve columns; none when checks are off (``check_every`` 0), so no row reads "never"."""
        if not self.check_every:
            return {}
        return {"solve_steps": self.solve_steps, "solve_seconds": self.solve_seconds}


def solves(play, episodes: int, seed: int) -> bool:
    """Whether greedy returns average at least SOLVED over ``episodes`` episodes (seeds ``seed``, ``seed + 1``, ...).

    Stops as soon as the mean can no longer get there (CartPole-v1 returns at most 500).
    """
    total = 0.0
    for i in range(episodes):
        total += play(seed + i)
        if total + CARTPOLE_MAX * (episodes - i - 1) < SOLVED * episodes:
            return False
    return True


# -- workers: each runs in its own process and returns one row ----------------------------------------
def kerlym_preset(agent: str, seed: int, **settings):
    """The agent ``kerlym -e CartPole-v1 -a AGENT --preset --seed SEED`` builds, with ``settings`` on top."""
    import kerlym

    return kerlym.make("CartPole-v1", agent, preset=True, cli_defaults=True, seed=seed, **settings)


def kerlym_cartpole(spec: dict) -> dict:
    n, steps = spec.get("concurrency", 1), spec["steps"]
    agent = kerlym_preset("ddqn", spec["seed"], concurrency=n)
    if spec.get("window"):  # concurrency: time the steps after the first update
        window = Window(spec["window"])
        agent.learn(
            max_steps=spec["window"] + steps,
            step_callback=lambda a: window.tick(a.total_steps),
            verbose=0,
            eval_episodes=0,
        )
        agent.close()  # an open vector env (-c N) keeps the process from exiting
        return window.rate(agent.total_steps)
    clock = SolveClock(spec.get("check_every", 0), spec["episodes"], 10_000 + spec["seed"])

    def play(seed: int) -> float:  # greedy: draws nothing from the agent's RNG, so training is unchanged
        return float(agent.evaluate(1, seed=seed)[0])

    agent.learn(
        max_steps=steps, step_callback=lambda a: clock.maybe_check(a.total_steps, play), verbose=0, eval_episodes=0
    )
    seconds = clock.elapsed()
    returns = agent.evaluate(spec["episodes"], seed=10_000 + spec["seed"])
    agent.close()
    return result(agent.total_steps, seconds, eval=float(returns.mean()), **clock.fields())


def sb3_cartpole(spec: dict) -> dict:
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    env = gym.make("CartPole-v1")

    def play(seed: int) -> float:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(int(model.predict(obs, deterministic=True)[0]))
            total, done = total + float(reward), terminated or truncated
        return total

    class Check(BaseCallback):
        def _on_step(self) -> bool:
            clock.maybe_check(self.num_timesteps, play)
            return True

    model = DQN("MlpPolicy", "CartPole-v1", seed=spec["seed"], device="cpu", verbose=0, **SB3_CARTPOLE)
    clock = SolveClock(spec.get("check_every", 0), spec["episodes"], 10_000 + spec["seed"])
    model.learn(total_timesteps=spec["steps"], callback=Check())
    seconds = clock.elapsed()
    returns = [play(10_000 + spec["seed"] + i) for i in range(spec["episodes"])]
    return result(model.num_timesteps, seconds, eval=float(np.mean(returns)), **clock.fields())


def kerlym_pong(spec: dict) -> dict:
    import kerlym

    ls = spec["learning_starts"]
    kw = dict(modelfactory="nature_cnn", preprocessor="atari", nframes=4, update_freq=4, update_nsamp=32)
    kw.update(batch_size=32, max_memory=spec["buffer"], learning_starts=ls, target_update_freq=1000, epsilon=1.0)
    kw.update(epsilon_min=0.01, epsilon_decay_steps=ls, learning_rate=1e-4, optimizer="adam", loss="huber")
    kw.update(concurrency=spec["concurrency"], dtype_policy=spec.get("dtype_policy", "float32"))
    kw.update(actors=spec.get("actors", "local"), actor_sync_every=spec.get("actor_sync_every"))
    if spec.get("vector_env"):
        kw.update(vector_env=spec["vector_env"])
    agent = kerlym.make(PONG, spec["agent"], seed=spec["seed"], **kw)
    window = Window(ls + 200)
    agent.learn(
        max_steps=ls + 200 + spec["steps"],
        step_callback=lambda a: window.tick(a.total_steps),
        verbose=0,
        eval_episodes=0,
    )
    agent.close()
    return window.rate(agent.total_steps)


def sb3_pong(spec: dict) -> dict:
    import ale_py
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    ls, window = spec["learning_starts"], Window(spec["learning_starts"] + 200)
    total = window.start + spec["steps"]

    class Tick(BaseCallback):
        def _on_step(self) -> bool:
            window.tick(self.num_timesteps)
            return True

    env = VecFrameStack(make_atari_env(PONG, n_envs=1, seed=spec["seed"]), n_stack=4)
    kw = dict(learning_rate=1e-4, buffer_size=spec["buffer"], learning_starts=ls, batch_size=32, train_freq=4)
    kw.update(
        gradient_steps=1, target_update_interval=1000, exploration_fraction=ls / total, exploration_final_eps=0.01
    )
    model = DQN("CnnPolicy", env, seed=spec["seed"], device="cpu", verbose=0, **kw)
    model.learn(total_timesteps=total, callback=Tick())
    return window.rate(model.num_timesteps)


def kerlym_pg(spec: dict) -> dict:
    agent = kerlym_preset("pg", spec["seed"])
    start = time.perf_counter()
    agent.learn(max_episodes=spec["episodes"], verbose=0, eval_episodes=0)
    seconds = time.perf_counter() - start
    return result(agent.total_steps, seconds)


def keras_pg(spec: dict) -> dict:
    """Plain eager Keras REINFORCE: the network of karpathy_simple_pgnet, one tape update per episode."""
    import gymnasium as gym
    import keras
    import tensorflow as tf
    from keras import layers

    keras.utils.set_random_seed(spec["seed"])
    env, rng = gym.make("CartPole-v1"), np.random.default_rng(spec["seed"])
    inputs = keras.Input((4,))
    hidden = layers.Dense(200, activation="relu", kernel_initializer="he_normal")(inputs)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax", kernel_initializer="zeros")(hidden))
    from kerlym import presets

    lr = presets.get("CartPole-v1", "pg")["learning_rate"]  # the same optimizer as kerlym's row
    optimizer, steps, start = keras.optimizers.Adam(lr), 0, time.perf_counter()
    for episode in range(spec["episodes"]):
        obs, _ = env.reset(seed=spec["seed"] if episode == 0 else None)
        states, actions, rewards, done = [], [], [], False
        while not done:
            probs = model(obs[None].astype("float32"))[0].numpy()
            action = min(int(np.searchsorted(np.cumsum(probs), rng.random() * probs.sum())), 1)
            states.append(obs)
            actions.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            done = terminated or truncated
        returns, running = np.zeros(len(rewards)), 0.0
        for t in reversed(range(len(rewards))):
            running = rewards[t] + 0.99 * running
            returns[t] = running
        adv = (returns - returns.mean()) / max(returns.std(), 1e-8)
        with tf.GradientTape() as tape:
            probs = model(np.asarray(states, dtype="float32"), training=True)
            logp = tf.math.log(tf.gather(probs, actions, batch_dims=1) + 1e-8)
            loss = -tf.reduce_mean(tf.cast(adv, "float32") * logp)
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        steps += len(rewards)
    seconds = time.perf_counter() - start
    return result(steps, seconds)


# -- CleanRL's DQN on CartPole, and kerlym configured as it --------------------------------------------
def cleanrl_mlp(agent, env, learning_rate=2.5e-4, **kwargs):
    """CleanRL's CartPole Q-network: 120 and 84 ReLU units, each layer initialised as torch's ``nn.Linear``.

    Compiled with Adam and mean squared error, as ``dqn.py`` trains it (other factory arguments are ignored).
    """
    import keras
    from keras import layers

    def linear(units, fan_in, activation=None):  # torch's nn.Linear: weights and biases uniform in ±1/sqrt(fan_in)
        uniform = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
        bound = fan_in**-0.5
        bias = keras.initializers.RandomUniform(-bound, bound)
        return layers.Dense(units, activation, kernel_initializer=uniform, bias_initializer=bias)

    s = keras.Input(shape=(agent.input_dim,))
    h = linear(120, agent.input_dim, "relu")(s)
    h = linear(84, 120, "relu")(h)
    model = keras.Model(s, linear(int(env.action_space.n), 84)(h), name="cleanrl_mlp")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def cleanrl_dqn_settings(steps: int) -> dict:
    """kerlym DQN settings that train as CleanRL's ``dqn.py`` does on CartPole-v1 for ``steps`` env steps.

    One gradient step on a uniform minibatch of 128 every 10 env steps, the target synced every
    500 steps, Adam 2.5e-4, MSE, discount 0.99, epsilon 1 -> 0.05 linearly over half the steps,
    learning from 10,000 transitions. ``max_memory`` counts frames, and each episode's first frame
    takes a slot without making a transition, so a ring of N frames holds N minus the episodes
    begun in it; ``learning_starts`` counts the transitions held, checked at every step (updates
    pause while fewer are held). CartPole-v1 episodes last at least 8 steps, so 12,000 frames
    always hold 10,000 transitions or more (10,666 to 11,999): CleanRL's buffer is exactly 10,000.
    With ``max_memory=10_001``, the ring holds 10,000 transitions only before the first episode
    ends, and kerlym made no update at all.
    """
    return dict(
        modelfactory=cleanrl_mlp,
        nframes=1,
        dropout=0.0,
        learning_rate=2.5e-4,
        discount=0.99,
        batch_size=128,
        update_freq=10,
        update_nsamp=128,
        replay="uniform",
        target_update_freq=500,
        max_memory=12_000,
        learning_starts=10_000,
        epsilon=1.0,
        epsilon_min=0.05,
        epsilon_decay_steps=steps // 2,
    )


def kerlym_as_cleanrl(spec: dict) -> dict:
    import kerlym

    agent = kerlym.make("CartPole-v1", "dqn", seed=spec["seed"], **cleanrl_dqn_settings(spec["steps"]))
    start = time.perf_counter()
    rows = agent.learn(max_steps=spec["steps"], verbose=0, eval_episodes=0)
    seconds = time.perf_counter() - start
    returns = [r["reward"] for r in rows]
    last = float(np.mean(returns[-10:]))
    return result(agent.total_steps, seconds, episodes=len(rows), train_return=last, updates=agent.updates)


def parse_cleanrl(stdout: str, steps: int) -> dict:
    """Seconds and episodes of a CleanRL DQN run from what it prints.

    CleanRL prints ``SPS: N`` (``int(global_step / seconds since the loop began)``) every 100
    steps once it learns, and ``global_step=..., episodic_return=[R]`` after each episode. Its
    loop time is ``steps / N`` of the last ``SPS`` line (within 1/N of it: N is truncated, and the
    last line comes 100 steps before the end).
    """
    sps = [int(line.split()[1]) for line in stdout.splitlines() if line.startswith("SPS:")]
    returns = [float(line.rsplit("[", 1)[1].rstrip("]")) for line in stdout.splitlines() if "episodic_return=" in line]
    if not sps:
        raise ValueError("no 'SPS:' line in CleanRL's output (did it reach learning_starts?)")
    return result(steps, steps / sps[-1], episodes=len(returns), train_return=float(np.mean(returns[-10:])))


def run_cleanrl(script: str, seed: int, steps: int, cleanrl_dir: str, python: str, threads: int = 1) -> dict:
    """Run CleanRL's ``script`` (its own code, its defaults but ``--seed`` and ``--total-timesteps``); its row.

    ``threads``: torch's threads in CleanRL's process (``OMP_NUM_THREADS``; 0: torch's default, one per core).
    Both scripts use torch, ``dqn_jax.py`` for its replay buffer.
    """
    backend = "torch" if script == "dqn.py" else "jax"
    row = {"part": "cleanrl", "system": f"CleanRL {script}", "backend": backend, "N": 1, "seed": seed}
    print(f"-- cleanrl: CleanRL {script} (seed {seed}) ...", end=" ", flush=True)
    cmd = [python, os.path.join(cleanrl_dir, "cleanrl", script), "--seed", str(seed), "--total-timesteps", str(steps)]
    cmd += ["--no-track", "--no-capture-video"] + (["--no-cuda"] if backend == "torch" else [])
    env = {**os.environ, "PYTHONPATH": cleanrl_dir, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory() as cwd:  # where its TensorBoard files (runs/) go
        start, cpu = time.perf_counter(), children_cpu()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        process_s, process_cpu_s = time.perf_counter() - start, children_cpu() - cpu
    try:
        if proc.returncode:
            raise ValueError((proc.stderr.strip().splitlines() or ["no output"])[-1])
        row.update(parse_cleanrl(proc.stdout, steps), process_s=process_s, process_cpu_s=process_cpu_s)
        print(f"{row['steps_per_s']:.0f} steps/s, {row['seconds']:.1f} s ({process_s:.1f} s in all)", flush=True)
    except ValueError as e:
        row["error"] = f"exit {proc.returncode}: {e}"
        print("FAILED: " + row["error"], flush=True)
    return row


# -- PureJaxRL's PPO on gymnax's CartPole, and kerlym's fused PPO configured as it ----------------------------
def purejaxrl_mlp(agent, env, learning_rate=2.5e-4, clipnorm=0.5, **kwargs):
    """PureJaxRL's ``ActorCritic``: separate 64-64 tanh actor and critic, orthogonal init (gain sqrt 2, heads 0.01
    and 1), zero biases; Adam (epsilon 1e-5) after clipping the gradient's global norm to 0.5, as ``ppo.py``.

    That is :func:`kerlym.networks.actor_critic_mlp` with these settings (other factory arguments are ignored).
    """
    from kerlym.networks import actor_critic_mlp

    return actor_critic_mlp(agent, env, learning_rate=learning_rate, clipnorm=clipnorm)


def purejaxrl_ppo_settings() -> dict:
    """kerlym PPO settings that train as PureJaxRL's ``ppo.py`` does on CartPole-v1 (its ``__main__`` config).

    4 envs x 128 steps per update, 4 epochs of 4 minibatches of 128, discount 0.99, GAE lambda 0.95, clip 0.2,
    entropy 0.01, Adam 2.5e-4 falling linearly to 0, global gradient norm 0.5, advantages standardised per
    minibatch. Two differences in the maths, none in the work: PureJaxRL's value loss is
    ``0.5 * max((V - R)^2, (V_clipped - R)^2)`` with ``VF_COEF`` 0.5, kerlym's is ``(V_clipped - R)^2`` (SB3's),
    so ``vf_coef`` 0.25 and ``clip_range_vf`` 0.2; and kerlym bootstraps a truncated episode's last step from its
    final observation (one more forward pass of the rollout's ``final`` observations per update) where PureJaxRL
    treats it as an end.
    """
    return dict(
        modelfactory=purejaxrl_mlp,
        nframes=1,
        dropout=0.0,
        concurrency=4,
        n_steps=128,
        batch_size=128,
        n_epochs=4,
        discount=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        ent_coef=0.01,
        vf_coef=0.25,
        clip_range_vf=0.2,
        normalize_advantage=True,
        learning_rate=2.5e-4,
        lr_schedule="linear",
        clipnorm=0.5,
    )


def compile_clock():
    """A list that JAX's compile events add their seconds to (tracing, lowering, XLA compiling)."""
    import jax

    seconds = [0.0]
    events = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration")
    events += ("/jax/core/compile/backend_compile_duration",)

    def listen(event, duration, **kwargs):
        if event in events:
            seconds[0] += duration

    jax.monitoring.register_event_duration_secs_listener(listen)
    return seconds


def kerlym_as_purejaxrl(spec: dict) -> dict:
    """kerlym's fused PPO at PureJaxRL's settings through the Python API (``learn``, no run folder, no evaluation).

    seconds: importing kerlym, building the agent, compiling and training; compile_s: JAX's own count of its
    tracing, lowering and compiling; import_s: importing and building less what compiled then; loop_s:
    ``learn`` less what compiled in it. The JAX cache is a fresh folder, so everything compiles. The driver's
    process_s is the whole process, as PureJaxRL's.
    """
    start = time.time()
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="kerlym-jax-cache-")
    import kerlym

    compiled = compile_clock()
    agent = kerlym.make("gymnax:CartPole-v1", "ppo", seed=spec["seed"], **purejaxrl_ppo_settings())
    built, early = time.time(), compiled[0]
    rows = agent.learn(max_steps=spec["steps"], verbose=0, eval_episodes=0)
    done = time.time()
    last = float(np.mean([r["reward"] for r in rows[-10:]])) if rows else float("nan")
    return result(
        agent.total_steps,
        done - start,
        import_s=built - start - early,
        compile_s=compiled[0],
        loop_s=done - built - (compiled[0] - early),
        train_return=last,
    )


def run_purejaxrl(seed: int, steps: int, purejaxrl_dir: str, python: str) -> dict:
    """PureJaxRL's ``ppo.py`` (its ``make_train`` and config) through ``purejaxrl_ppo.py`` in its own Python; its row.

    process_s: the whole process; seconds: from the runner's first line to the end of training.
    """
    row = {"part": "purejaxrl", "system": "PureJaxRL ppo.py", "backend": "jax", "N": 1, "seed": seed}
    print(f"-- purejaxrl: PureJaxRL ppo.py (seed {seed}) ...", end=" ", flush=True)
    runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "purejaxrl_ppo.py")
    cmd = [python, runner, "--seed", str(seed), "--total-timesteps", str(steps)]
    env = {**os.environ, "PYTHONPATH": os.path.join(purejaxrl_dir, "purejaxrl"), "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    process_s = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode == 0 and lines:
        found = json.loads(lines[-1][len(MARK) :])
        row.update(result(found["steps"], found["seconds"]), **found, process_s=process_s)
        print(f"{process_s:.1f} s in all, loop {row['loop_s']:.1f} s", flush=True)
    else:
        row["error"] = f"exit {proc.returncode}: " + (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print("FAILED: " + row["error"], flush=True)
    return row


# -- PPO: kerlym's presets beside SB3 with the RL Zoo's ppo.yml entries (CartPole-v1 and "atari") -----------
def kerlym_ppo(spec: dict) -> dict:
    """``kerlym -e ENV -a ppo --preset``: CartPole timed over the whole ``learn``, Pong over a window of steps."""
    import kerlym

    changes = {"vector_env": spec["vector_env"]} if spec.get("vector_env") else {}
    if spec.get("dtype_policy"):
        changes["dtype_policy"] = spec["dtype_policy"]
    agent = kerlym.make(spec["env"], "ppo", preset=True, cli_defaults=True, seed=spec["seed"], **changes)
    if spec.get("window") is None:
        start = time.perf_counter()
        agent.learn(max_steps=spec["steps"], verbose=0, eval_episodes=0)
        seconds = time.perf_counter() - start
        agent.close()
        return result(agent.total_steps, seconds)
    window = Window(spec["window"] + 1)  # from after the update at step ``window`` (its compilation)
    agent.learn(
        max_steps=spec["window"] + spec["steps"],
        step_callback=lambda a: window.tick(a.total_steps),
        verbose=0,
        eval_episodes=0,
    )
    agent.close()
    return window.rate(agent.total_steps)


def sb3_ppo(spec: dict) -> dict:
    """SB3's PPO as the RL Zoo trains it: CartPole on 8 DummyVecEnv copies, Pong with its Atari wrappers."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_atari_env, make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack

    if spec.get("threads", 1):  # 0: torch's default, one thread per core
        torch.set_num_threads(spec.get("threads", 1))
    if spec["env"] == PONG:
        import ale_py
        import gymnasium as gym

        gym.register_envs(ale_py)
        env = VecFrameStack(make_atari_env(PONG, n_envs=8, seed=spec["seed"]), n_stack=4)
        kw = dict(n_steps=128, n_epochs=4, batch_size=256, vf_coef=0.5, ent_coef=0.01)
        kw.update(learning_rate=lambda f: f * 2.5e-4, clip_range=lambda f: f * 0.1)
        model = PPO("CnnPolicy", env, seed=spec["seed"], device="cpu", verbose=0, **kw)
    else:
        from results import SB3_ZOO_AC, sb3_settings

        kw, n_envs, _ = sb3_settings(SB3_ZOO_AC[(spec["env"], "ppo")])
        env = make_vec_env(spec["env"], n_envs=n_envs, seed=spec["seed"])
        model = PPO("MlpPolicy", env, seed=spec["seed"], device="cpu", verbose=0, **kw)
    if spec.get("window") is None:
        start = time.perf_counter()
        model.learn(total_timesteps=spec["steps"])
        if spec.get("eval_episodes"):  # greedy episodes on a fresh env, timed as kerlym's final evaluation is
            import gymnasium as gym

            play = gym.make(spec["env"])
            returns = []
            for i in range(spec["eval_episodes"]):
                obs, _ = play.reset(seed=10_000 + spec["seed"] + i)
                total, done = 0.0, False
                while not done:
                    obs, reward, terminated, truncated, _ = play.step(int(model.predict(obs, deterministic=True)[0]))
                    total, done = total + float(reward), terminated or truncated
                returns.append(total)
            return result(model.num_timesteps, time.perf_counter() - start, eval=float(np.mean(returns)))
        return result(model.num_timesteps, time.perf_counter() - start)
    window = Window(spec["window"] + 1)  # as kerlym's: the update at step ``window`` is not timed

    class Tick(BaseCallback):
        def _on_step(self) -> bool:
            window.tick(self.num_timesteps)
            return True

    model.learn(total_timesteps=spec["window"] + spec["steps"], callback=Tick())
    return window.rate(model.num_timesteps)


# -- fused: PPO on gymnax's CartPole, one compiled program per chunk (and per chunk of all seeds) ----------------
def kerlym_fused(spec: dict) -> dict:
    """The command ``kerlym -e gymnax:CartPole-v1 -a ppo --preset`` with ``--seed S`` or ``--seeds S ...``, as is.

    seconds: the whole command (building, compiling, training, checkpoints, the final 20-episode greedy
    evaluation of each seed); eval: the mean over the seeds of that evaluation's mean, eval_std their std.
    """
    import glob

    # JAX's persistent compilation cache: a fresh folder (a first run, compiling all) unless the row names one
    cache = spec.get("cache_dir") or tempfile.mkdtemp(prefix="kerlym-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
    import jax

    jax.config.update("jax_compilation_cache_dir", cache)

    from kerlym import main as command

    seeds, out = [str(s) for s in spec["seeds"]], tempfile.mkdtemp(prefix="kerlym-fused-")
    argv = ["-e", "gymnax:CartPole-v1", "-a", "ppo", "--preset", "--steps", str(spec["steps"]), "-q", "--outdir", out]
    argv += ["--seed", seeds[0]] if len(seeds) == 1 else ["--seeds", *seeds]
    start = time.perf_counter()
    status = command.main(argv)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"kerlym exited with {status}")
    records = []
    for path in glob.glob(os.path.join(out, "**", "evaluation.json"), recursive=True):
        with open(path) as f:
            records.append(json.load(f))
    means = np.array([r["mean"] for r in records])
    steps = sum(r["total_steps"] for r in records)
    return result(steps, seconds, eval=float(means.mean()), eval_std=float(means.std()), runs=len(records))


def kerlym_fused_dqn(spec: dict) -> dict:
    """Fused DQN on gymnax's CartPole at CleanRL's settings (:func:`cleanrl_dqn_settings`), ``spec["seeds"]`` together.

    Trained as ``kerlym --seeds`` trains them (:func:`kerlym.sweep.run_seeds`, one compiled program for all the
    seeds), with CleanRL's network registered by name; ``max_memory`` is CleanRL's 10,000, since the fused buffer
    counts transitions. seconds: the whole sweep (building, compiling, training, checkpoints, each seed's final
    20-episode greedy evaluation); eval: the mean over the seeds of that evaluation's mean, eval_std their std.
    """
    cache = tempfile.mkdtemp(prefix="kerlym-jax-cache-")  # a first run: everything compiles
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
    from kerlym import networks, sweep
    from kerlym.make import configure

    networks.NETWORKS["cleanrl_mlp"] = cleanrl_mlp
    settings = {**cleanrl_dqn_settings(spec["steps"]), "modelfactory": "cleanrl_mlp", "max_memory": 10_000}
    out = tempfile.mkdtemp(prefix="kerlym-fused-dqn-")
    run, cfg = configure("gymnax:CartPole-v1", "dqn", steps=spec["steps"], outdir=out, quiet=True, **settings)
    start = time.perf_counter()
    rows = sweep.run_seeds(run, cfg, spec["seeds"])
    seconds = time.perf_counter() - start
    means = np.array([r["eval_mean"] for r in rows])
    steps = sum(r["steps"] for r in rows)
    return result(steps, seconds, eval=float(means.mean()), eval_std=float(means.std()), runs=len(rows))


WORKERS = {
    f.__name__: f
    for f in (kerlym_cartpole, sb3_cartpole, kerlym_pong, sb3_pong, kerlym_pg, keras_pg, kerlym_as_cleanrl)
    + (kerlym_ppo, sb3_ppo, kerlym_fused, kerlym_fused_dqn, kerlym_as_purejaxrl)
}


# -- the driver ------------------------------------------------------------------------------------------
def children_cpu() -> float:
    """CPU seconds (user and system) of this process's finished children so far.

    The difference around one child's run is that run's CPU time, every thread included: a fairer
    measure than wall-clock while other jobs share the cores, where a process with more busy threads
    gets a larger share of them.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_row(part: str, system: str, backend: str, spec: dict) -> dict:
    """Run one worker in a fresh process with ``KERAS_BACKEND=backend``; its row, or one with ``error``."""
    row = {"part": part, "system": system, "backend": backend, "N": spec.get("concurrency", 1), "seed": spec["seed"]}
    print(f"-- {part}: {system} ({backend}, N={row['N']}, seed {row['seed']}) ...", end=" ", flush=True)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow" if backend == "torch" else backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    start, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    process_s, process_cpu_s = time.perf_counter() - start, children_cpu() - cpu
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode == 0 and lines:
        row.update(json.loads(lines[-1][len(MARK) :]), process_s=process_s, process_cpu_s=process_cpu_s)
        print(f"{row['steps_per_s']:.0f} steps/s in {row['seconds']:.1f} s", flush=True)
    else:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        row["error"] = f"exit {proc.returncode}: {err}"
        print("FAILED: " + row["error"], flush=True)
    return row


def set_ratios(rows: list[dict], ref: dict | None, key: str) -> None:
    """``ratio`` of each row: ``ref[key] / row[key]`` for seconds, ``row[key] / ref[key]`` for steps/s."""
    for r in rows:
        if ref and "error" not in ref and "error" not in r:
            r["ratio"] = ref[key] / r[key] if key == "seconds" else r[key] / ref[key]


def print_table(rows: list[dict]) -> None:
    head = f"{'part':<12}{'system':<33}{'backend':<11}{'N':>2}{'seed':>5}{'steps':>8}{'seconds':>9}"
    print("\n" + head + f"{'steps/s':>9}{'eval':>7}{'ratio':>7}{'solved at':>11}{'solve s':>9}")
    for r in rows:
        left = f"{r['part']:<12}{r['system']:<33}{r['backend']:<11}{r['N']:>2}{r['seed']:>5}"
        if "error" in r:
            print(left + "  FAILED " + r["error"][:80])
            continue
        ev = f"{r['eval']:7.1f}" if "eval" in r else f"{'':7}"
        ratio = f"{r['ratio']:7.2f}" if "ratio" in r else f"{'':7}"
        solve = ""
        if r.get("solve_steps") is not None:
            solve = f"{r['solve_steps']:>11}{r['solve_seconds']:9.1f}"
        elif "solve_steps" in r:
            solve = f"{'never':>11}"
        print(left + f"{r['steps']:>8}{r['seconds']:9.1f}{r['steps_per_s']:9.0f}{ev}{ratio}{solve}")
    print("ratio: cartpole SB3 s / kerlym s; pong, pg kerlym steps/s / reference steps/s; concurrency vs N=1;")
    print("       cleanrl kerlym s / CleanRL s (lower is faster); ppo kerlym steps/s / SB3 steps/s")
    print(f"solved at: the first check where {SOLVED:.0f} <= the greedy mean (seconds without the checks)")
    summaries = solve_summary(rows) + cleanrl_summary(rows) + ppo_summary(rows) + fused_summary(rows)
    for line in summaries + purejaxrl_summary(rows):
        print(line)


def solve_summary(rows: list[dict]) -> list[str]:
    """Median time to solve CartPole per system over seeds (a run never solved counts as infinitely slow)."""
    runs = {}
    for r in rows:
        if r["part"] == "cartpole" and "error" not in r and "solve_steps" in r:
            runs.setdefault((r["system"], r["backend"]), []).append(r["solve_seconds"] or float("inf"))
    medians = {key: float(np.median(times)) for key, times in runs.items()}
    ref = medians.get(("SB3 DQN", "torch"))
    lines = []
    for (system, backend), times in runs.items():
        med = medians[(system, backend)]
        line = f"time to solve, {system} ({backend}): median {med:.1f} s over {len(times)} seeds"
        line += f", {sum(t < float('inf') for t in times)} solved"
        if ref is not None and system != "SB3 DQN" and med < float("inf"):
            line += f"; SB3 median / this median = {ref / med:.2f}"
        lines.append(line)
    return lines


def cleanrl_summary(rows: list[dict]) -> list[str]:
    """Per backend, kerlym s / CleanRL s over the pairs (mean ± std), and a Markdown row for benchmarks/README.md."""
    pairs: dict[str, list[tuple[dict, dict]]] = {}
    for mine, ref in zip(rows, rows[1:]):
        if mine["part"] == "cleanrl" and "ratio" in mine and mine["pair"] == ref.get("pair"):
            pairs.setdefault(mine["backend"], []).append((mine, ref))
    if not pairs:
        return []
    lines = ["", "kerlym at CleanRL's DQN settings, kerlym s / CleanRL s (training loop; whole process in brackets):"]
    lines[-1] += f" goal: whole process <= {GOAL_WHOLE}x"
    cells = []
    for backend in [b for b in CLEANRL_SCRIPTS if b in pairs]:
        runs = pairs[backend]
        loop = np.array([m["seconds"] / r["seconds"] for m, r in runs])
        whole = np.array([m["process_s"] / r["process_s"] for m, r in runs])
        both = [(m, r) for m, r in runs if "process_cpu_s" in m and "process_cpu_s" in r]  # older rows lack it
        cpu = [m["process_cpu_s"] / r["process_cpu_s"] for m, r in both]
        mine_s, ref_s = (np.mean([run[k]["seconds"] for run in runs]) for k in (0, 1))
        mine_r, ref_r = (np.mean([run[k]["train_return"] for run in runs]) for k in (0, 1))
        lines.append(
            f"  {backend} vs {runs[0][1]['system']}: {loop.mean():.2f}x ± {loop.std():.2f} over {len(runs)} pairs "
            f"({whole.mean():.2f}x); {mine_s:.1f} s vs {ref_s:.1f} s; "
            f"training return of the last 10 episodes {mine_r:.1f} vs {ref_r:.1f}; "
            f"kerlym's updates {', '.join(str(m['updates']) for m, _ in runs)} (CleanRL's: 1 per 10 steps after 10,010)"
        )
        if cpu:
            lines[-1] += f"; CPU time of the whole process {np.mean(cpu):.2f}x ± {np.std(cpu):.2f}"
        mine_p, ref_p = (np.mean([run[k]["process_s"] for run in runs]) for k in (0, 1))
        ratio = f"**{whole.mean():.2f}x** ± {whole.std():.2f} (loop {loop.mean():.2f}x ± {loop.std():.2f})"
        cells += [f"{mine_p:.1f} s / {ref_p:.1f} s = {ratio}", "yes" if whole.mean() <= GOAL_WHOLE else "**no**"]
    seeds = ", ".join(str(m["seed"]) for m, _ in next(iter(pairs.values())))
    steps = next(iter(pairs.values()))[0][0]["steps"]
    lines += ["", "Markdown row (date | budget, seeds | TF vs dqn.py, whole (loop) | met? | JAX vs dqn_jax.py | met?):"]
    lines.append(f"| {datetime.date.today()} | {steps // 1000}k steps, seeds {seeds} | " + " | ".join(cells) + " |")
    return lines


def vector_label(vector_env: str | None) -> str:
    return f" ({vector_env})" if vector_env else ""


def pong_spec(args, **changes) -> dict:
    spec = {"fn": "kerlym_pong", "agent": "dqn", "concurrency": 1, "seed": args.seeds[0], "steps": args.pong_steps}
    return {**spec, "learning_starts": args.pong_learning_starts, "buffer": args.pong_buffer, **changes}


def versus(part, mine, backends, ref, key) -> list[dict]:
    """Each kerlym ``(system, spec)`` on each backend, then the reference ``(system, backend, spec)``
    (none if ``ref`` is None), with ratios against it."""
    rows = [run_row(part, system, b, spec) for system, spec in mine for b in backends]
    ref_row = run_row(part, *ref) if ref else None
    set_ratios(rows, ref_row, key)
    return rows + ([ref_row] if ref_row else [])


def part_cartpole(args, sb3: bool) -> list[dict]:
    rows = []
    for seed in args.seeds:
        spec = {"fn": "kerlym_cartpole", "steps": args.cartpole_steps, "episodes": args.eval_episodes, "seed": seed}
        spec["check_every"] = args.check_every
        ref = ("SB3 DQN", "torch", {**spec, "fn": "sb3_cartpole"}) if sb3 else None
        rows += versus("cartpole", [("kerlym D2QN (preset)", spec)], args.backends, ref, "seconds")
    return rows


def part_pong(args, sb3: bool) -> list[dict]:
    mine = [
        (
            "kerlym DQN" + ("" if policy == "float32" else " (bf16)") + vector_label(vector),
            pong_spec(args, dtype_policy=policy, vector_env=vector),
        )
        for policy in args.pong_dtype_policies
        for vector in args.vector_envs
    ]
    ref = ("SB3 DQN", "torch", pong_spec(args, fn="sb3_pong")) if sb3 else None
    return versus("pong", mine, args.backends, ref, "steps_per_s")


def part_pg(args, sb3: bool) -> list[dict]:
    spec = {"fn": "kerlym_pg", "episodes": args.pg_episodes, "seed": args.seeds[0]}
    ref = ("plain Keras REINFORCE", "tensorflow", {**spec, "fn": "keras_pg"})
    return versus("pg", [("kerlym PG (preset)", spec)], args.backends, ref, "steps_per_s")


def part_concurrency(args, sb3: bool) -> list[dict]:
    cartpole = {"fn": "kerlym_cartpole", "steps": args.conc_steps, "window": 1100, "seed": args.seeds[0]}
    pong = pong_spec(args, agent="ddqn", steps=args.conc_pong_steps)
    rows = []
    for b in args.backends:
        for system, spec in (("CartPole", cartpole), ("Pong", pong)):
            curve = [
                run_row("concurrency", f"kerlym D2QN {system}", b, {**spec, "concurrency": n}) for n in args.concurrency
            ]
            set_ratios(curve, curve[0], "steps_per_s")
            rows += curve
    return rows


def part_cleanrl(args, sb3: bool) -> list[dict]:
    """kerlym at CleanRL's settings beside CleanRL's own script, per seed and backend; who runs first alternates."""
    rows = []
    for i, seed in enumerate(args.seeds):
        for backend in args.backends:
            spec = {"fn": "kerlym_as_cleanrl", "steps": args.cleanrl_steps, "seed": seed}
            cleanrl = (CLEANRL_SCRIPTS[backend], seed, args.cleanrl_steps, args.cleanrl_dir, args.cleanrl_python)
            cleanrl += (args.cleanrl_threads,)
            if i % 2:  # every other seed CleanRL goes first, so a drift in the machine's speed falls on both
                ref = run_cleanrl(*cleanrl)
                mine = run_row("cleanrl", "kerlym DQN (CleanRL's settings)", backend, spec)
            else:
                mine = run_row("cleanrl", "kerlym DQN (CleanRL's settings)", backend, spec)
                ref = run_cleanrl(*cleanrl)
            mine["pair"] = ref["pair"] = f"{seed}/{backend}"
            if "error" not in mine and "error" not in ref:
                mine["ratio"] = mine["seconds"] / ref["seconds"]
            rows += [mine, ref]
    return rows


def part_ppo(args, sb3: bool) -> list[dict]:
    """kerlym's PPO preset beside SB3's PPO on CartPole-v1 and Pong, ``--ppo-repeats`` pairs, alternating who goes
    first; ratio = kerlym steps/s / SB3 steps/s of each pair."""
    rows = []
    jobs = [("CartPole-v1", args.ppo_cartpole_steps, None), (PONG, args.ppo_pong_steps, args.ppo_pong_window)]
    for env_id, steps, window in jobs:
        if not steps:
            continue
        for i in range(args.ppo_repeats):
            seed = args.seeds[i % len(args.seeds)]
            spec = {"env": env_id, "steps": steps, "window": window, "seed": seed}
            pair = []
            for b in args.backends:
                pong = env_id == PONG  # Pong: a row per vector env and per dtype policy (SB3 runs float32)
                bf16 = {"mixed_bfloat16": " (bf16)"}
                mine = [
                    ("ppo", f"kerlym PPO {env_id} (preset{vector_label(v)}{bf16.get(d, '')})", b,
                     {**spec, "fn": "kerlym_ppo", "vector_env": v, "dtype_policy": d})
                    for v in (args.vector_envs if pong else [None])
                    for d in (args.pong_dtype_policies if pong else [None])
                ]  # fmt: skip
                threads = {1: "", 0: ", default threads"}.get(args.sb3_threads, f", {args.sb3_threads} threads")
                ref_spec = {**spec, "fn": "sb3_ppo", "threads": args.sb3_threads}
                ref = ("ppo", f"SB3 PPO {env_id} (RL Zoo{threads})", "torch", ref_spec)
                order = [ref, *mine] if i % 2 else [*mine, ref]  # a drift in the machine falls on every side
                done = {id(job): run_row(*job) for job in order}
                ref_row = done[id(ref)]
                ref_row["pair"] = f"{env_id}/{b}/{i}"
                for job in mine:
                    set_ratios([done[id(job)]], ref_row, "steps_per_s")
                    done[id(job)]["pair"] = ref_row["pair"]
                pair += [*(done[id(job)] for job in mine), ref_row]
            rows += pair
    return rows


def part_fused(args, sb3: bool) -> list[dict]:
    """Fused PPO on gymnax's CartPole, one seed and ``--fused-seeds`` seeds together, beside SB3's PPO with one
    seed (``--fused-repeats`` rounds, the order turning each round); ratio = the process's wall-clock / SB3's.
    Then (``--fused-agents dqn``) fused DQN's ``--fused-seeds`` seeds beside CleanRL's ``dqn_jax.py``, one seed."""
    rows = part_fused_dqn(args) if "dqn" in args.fused_agents else []
    if "ppo" not in args.fused_agents:
        return rows
    steps, many = args.fused_steps, list(range(args.fused_seeds))
    spec = {"fn": "kerlym_fused", "steps": steps, "seed": 0}
    cached = None
    if args.fused_cached:  # a second run of the same settings: its compiled chunks come from JAX's cache
        cached = tempfile.mkdtemp(prefix="kerlym-jax-cache-")
        run_row("fused", "(filling the compilation cache)", "jax", {**spec, "seeds": [0], "cache_dir": cached})
    for i in range(args.fused_repeats):
        jobs = [
            ("fused", "kerlym fused PPO gymnax:CartPole-v1, 1 seed", "jax", {**spec, "seeds": [0]}),
            ("fused", f"kerlym fused PPO gymnax:CartPole-v1, {len(many)} seeds", "jax", {**spec, "seeds": many}),
        ]
        if cached:
            name = "kerlym fused PPO gymnax:CartPole-v1 (compiled chunks cached), 1 seed"
            jobs.append(("fused", name, "jax", {**spec, "seeds": [0], "cache_dir": cached}))
        if sb3:
            ref = {"fn": "sb3_ppo", "env": "CartPole-v1", "steps": steps, "seed": 0, "threads": args.sb3_threads}
            jobs.append(("fused", "SB3 PPO CartPole-v1 (RL Zoo), 1 seed", "torch", {**ref, "eval_episodes": 20}))
        shift = i % len(jobs)  # a drift in the machine falls on every row
        done = [run_row(*job) for job in jobs[shift:] + jobs[:shift]]
        done = done[len(jobs) - shift :] + done[: len(jobs) - shift]
        for r in done:
            r["pair"] = f"fused/{i}"
            if sb3 and "error" not in r and "error" not in done[-1]:
                r["ratio"] = r["process_s"] / done[-1]["process_s"]
        rows += done
    return rows


def part_purejaxrl(args, sb3: bool) -> list[dict]:
    """kerlym's fused PPO at PureJaxRL's settings beside PureJaxRL's ``ppo.py``, ``--purejaxrl-repeats`` pairs
    (seeds cycle), alternating who goes first; ratio = kerlym's whole process / PureJaxRL's."""
    rows = []
    for i in range(args.purejaxrl_repeats):
        seed = args.seeds[i % len(args.seeds)]
        # ppo.py trains TOTAL_TIMESTEPS // 512 whole updates of 4 envs x 128 steps; kerlym stops at a whole update
        spec = {"fn": "kerlym_as_purejaxrl", "steps": args.purejaxrl_steps // 512 * 512, "seed": seed}
        mine = ("purejaxrl", "kerlym fused PPO (PureJaxRL's settings)", "jax", spec)
        ref = (seed, args.purejaxrl_steps, args.purejaxrl_dir, args.purejaxrl_python)
        if i % 2:  # a drift in the machine's speed falls on both
            ref_row = run_purejaxrl(*ref)
            mine_row = run_row(*mine)
        else:
            mine_row = run_row(*mine)
            ref_row = run_purejaxrl(*ref)
        mine_row["pair"] = ref_row["pair"] = f"purejaxrl/{i}"
        if "error" not in mine_row and "error" not in ref_row:
            mine_row["ratio"] = mine_row["process_s"] / ref_row["process_s"]
            mine_row["loop_ratio"] = mine_row["loop_s"] / ref_row["loop_s"]
        rows += [mine_row, ref_row]
    return rows


def purejaxrl_summary(rows: list[dict]) -> list[str]:
    """Both systems' seconds (whole process, compiling, loop) as mean ± std over the pairs, and the ratios."""
    rs = [r for r in rows if r["part"] == "purejaxrl" and "error" not in r]
    if not rs:
        return []
    lines = ["", "PureJaxRL's PPO (CartPole-v1, ppo.py's config), seconds, mean ± std over the rounds:"]
    lines.append("| system | whole process | imports and set-up | compiling | loop | train return |")
    for system in dict.fromkeys(r["system"] for r in rs):
        mine = [r for r in rs if r["system"] == system]
        cell = lambda k, mine=mine: f"{np.mean([r[k] for r in mine]):.2f} ± {np.std([r[k] for r in mine]):.2f}"  # noqa: E731
        lines.append(
            f"| {system} | {cell('process_s')} | {cell('import_s')} | {cell('compile_s')} | {cell('loop_s')} | "
            f"{cell('train_return')} |"
        )
    x = np.array([r["ratio"] for r in rs if "ratio" in r])
    loop = np.array([r["loop_ratio"] for r in rs if "loop_ratio" in r])
    if len(x):
        lines.append(
            f"kerlym / PureJaxRL: whole process {x.mean():.2f}x ± {x.std():.2f}, loop {loop.mean():.2f}x ± "
            f"{loop.std():.2f} ({len(x)} pairs); goal (2026-12-07) whole process at most 1.2x: "
            f"{'met' if x.mean() <= 1.2 else '**not met**'}"
        )
    return lines


def part_fused_dqn(args) -> list[dict]:
    """``--fused-seeds`` seeds of fused DQN at CleanRL's settings, and CleanRL's ``dqn_jax.py`` with one seed, for
    ``--fused-dqn-steps`` steps each, ``--fused-repeats`` rounds; ratio = the sweep's wall-clock / CleanRL's process.
    """
    rows = []
    script = os.path.join(args.cleanrl_dir or "", "cleanrl", "dqn_jax.py")
    have_cleanrl = bool(args.cleanrl_dir) and os.path.exists(script)
    if not have_cleanrl:
        print(f"no CleanRL checkout: the fused DQN rows without CleanRL's ({CLEANRL_GET})")
    seeds, steps = list(range(args.fused_seeds)), args.fused_dqn_steps
    name = f"kerlym fused DQN gymnax:CartPole-v1 (CleanRL's settings), {len(seeds)} seeds"
    spec = {"fn": "kerlym_fused_dqn", "steps": steps, "seed": 0, "seeds": seeds}
    for i in range(args.fused_repeats):
        done = [None, None]  # kerlym's row, CleanRL's; the order turns each round
        for k in ((0, 1) if i % 2 == 0 else (1, 0)) if have_cleanrl else (0,):
            if k == 0:
                done[0] = run_row("fused", name, "jax", spec)
            else:
                threads = args.cleanrl_threads
                done[1] = run_cleanrl("dqn_jax.py", 0, steps, args.cleanrl_dir, args.cleanrl_python, threads)
        done = [r for r in done if r is not None]
        for r in done:
            r["part"], r["pair"] = "fused", f"fused-dqn/{i}"
        if len(done) == 2 and "error" not in done[0] and "error" not in done[1]:
            done[0]["ratio"], done[1]["ratio"] = done[0]["process_s"] / done[1]["process_s"], 1.0
            done[1]["eval"] = done[1]["train_return"]  # CleanRL makes no greedy evaluation: its last 10 episodes
        rows += done
    return rows


def fused_summary(rows: list[dict]) -> list[str]:
    """Each fused row's wall-clock over SB3's one seed (mean ± std over the rounds), greedy returns, the goals."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        if r["part"] == "fused" and "error" not in r:
            by.setdefault(r["system"], []).append(r)
    if not by:
        return []
    lines = ["", "fused (whole processes), wall-clock / SB3's or CleanRL's one seed (mean ± std over the rounds):"]
    for system, rs in by.items():
        s = np.array([r["process_s"] for r in rs])
        x = np.array([r.get("ratio", np.nan) for r in rs])
        ev = " / ".join(f"{r['eval']:.1f}" + (f" ± {r['eval_std']:.1f}" if "eval_std" in r else "") for r in rs)
        one, dqn = system.endswith(", 1 seed"), "DQN" in system
        goal = 0.25 if one else 1.0  # the goals of 2026-12-07; PPO's seeds together also a mean greedy return >= 475
        met = np.nanmean(x) <= goal and (one or dqn or np.mean([r["eval"] for r in rs]) >= SOLVED)
        reference = system.startswith(("SB3", "CleanRL"))
        verdict = "" if reference or np.isnan(x).all() else f" goals met: {'yes' if met else '**no**'}"
        lines.append(
            f"| {system} | {s.mean():.1f} ± {s.std():.1f} s | {np.nanmean(x):.2f}x ± {np.nanstd(x):.2f} | "
            f"{ev} |{verdict}"
        )
    return lines


def ppo_summary(rows: list[dict]) -> list[str]:
    """kerlym steps/s / SB3 steps/s per env and backend over the pairs: mean ± std, and Markdown rows."""
    ratios: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["part"] == "ppo" and "ratio" in r:
            ratios.setdefault((r["system"], r["backend"]), []).append(r)
    if not ratios:
        return []
    lines = ["", "PPO, kerlym steps/s / SB3 steps/s (mean ± std over the pairs):"]
    for (system, backend), rs in ratios.items():
        x = np.array([r["ratio"] for r in rs])
        sb3 = [o for o in rows if o.get("pair") in {r["pair"] for r in rs} and o["system"].startswith("SB3")]
        lines.append(
            f"| {system} | {backend} | {np.mean([r['steps_per_s'] for r in rs]):.0f} | "
            f"{np.mean([o['steps_per_s'] for o in sb3]):.0f} | **{x.mean():.2f}x** ± {x.std():.2f} ({len(x)} pairs) | "
            f"{'yes' if x.mean() >= 2 else '**no**'} |"
        )
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        help="default: all but cleanrl, ppo, fused and purejaxrl; cleanrl and purejaxrl too when --peers names them",
    )
    p.add_argument(
        "--peers",
        nargs="*",
        choices=("sb3", "cleanrl", "purejaxrl"),
        default=["sb3"],
        help="reference systems: sb3 in the cartpole and pong parts; cleanrl (CleanRL's dqn.py and dqn_jax.py) in "
        "the cleanrl part; purejaxrl (PureJaxRL's ppo.py) in the purejaxrl part; none: kerlym's rows only",
    )
    p.add_argument("--backends", nargs="+", choices=("tensorflow", "jax"), default=["tensorflow", "jax"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="cartpole runs each; other parts the first")
    p.add_argument("--cartpole-steps", type=int, default=50_000)
    p.add_argument("--eval-episodes", type=int, default=20, help="episodes of each solve check and the final eval")
    p.add_argument("--check-every", type=int, default=1000, help="cartpole: env steps between solve checks (0: none)")
    p.add_argument("--pong-steps", type=int, default=5000, help="timed env steps")
    p.add_argument("--pong-learning-starts", type=int, default=1000)
    p.add_argument("--pong-buffer", type=int, default=10_000)
    p.add_argument(
        "--pong-dtype-policies",
        nargs="+",
        choices=("float32", "mixed_bfloat16"),
        default=["float32", "mixed_bfloat16"],
        help="kerlym's Pong rows: one per Keras dtype policy (SB3 runs float32)",
    )
    p.add_argument("--pg-episodes", type=int, default=200)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8], help="the first is the reference")
    p.add_argument("--conc-steps", type=int, default=5000, help="timed CartPole env steps per N")
    p.add_argument("--conc-pong-steps", type=int, default=500, help="timed Pong env steps per N")
    p.add_argument("--cleanrl-steps", type=int, default=50_000, help="cleanrl: env steps of every run")
    p.add_argument(
        "--cleanrl-dir",
        default=os.environ.get("CLEANRL_DIR"),
        help="a CleanRL checkout (with cleanrl/dqn.py and cleanrl_utils/) [$CLEANRL_DIR]",
    )
    p.add_argument(
        "--cleanrl-python",
        default=os.environ.get("CLEANRL_PYTHON", sys.executable),
        help="the Python that runs CleanRL's scripts, e.g. a venv's [$CLEANRL_PYTHON, else this one]",
    )
    p.add_argument(
        "--cleanrl-threads",
        type=int,
        default=1,
        help="torch threads in CleanRL's processes (0: torch's default, one per core, which ran 8x slower on a "
        "busy 2-core machine)",
    )
    p.add_argument("--ppo-repeats", type=int, default=3, help="ppo: pairs per env and backend (seeds cycle)")
    p.add_argument(
        "--sb3-threads", type=int, default=1, help="ppo: torch threads of SB3's rows (0: torch's default, one per core)"
    )
    p.add_argument(
        "--vector-envs",
        nargs="+",
        default=[None],
        type=lambda v: None if v == "default" else v,
        help="pong and ppo's Pong: a kerlym row per --vector_env (default: the preset's; envpool: EnvPool's threads)",
    )
    p.add_argument("--ppo-cartpole-steps", type=int, default=100_000, help="ppo: CartPole steps per run (0: skip)")
    p.add_argument(
        "--ppo-pong-steps",
        type=int,
        default=10_240,
        help="ppo: Pong steps after the window, a multiple of the 1024-step rollout so both end on an update (0: skip)",
    )
    p.add_argument(
        "--ppo-pong-window",
        type=int,
        default=1024,
        help="ppo: Pong steps before the timing (a multiple of 1024): the first update, which compiles, is untimed",
    )
    p.add_argument("--fused-steps", type=int, default=100_000, help="fused: env steps per seed")
    p.add_argument("--fused-seeds", type=int, default=16, help="fused: seeds trained together in the second row")
    p.add_argument("--fused-repeats", type=int, default=1, help="fused: rounds of the three rows")
    p.add_argument("--fused-cached", action="store_true", help="fused: a row of one seed, its chunks compiled before")
    p.add_argument("--purejaxrl-steps", type=int, default=500_000, help="purejaxrl: env steps (ppo.py's 5e5)")
    p.add_argument("--purejaxrl-repeats", type=int, default=3, help="purejaxrl: pairs (seeds cycle)")
    p.add_argument(
        "--purejaxrl-dir",
        default=os.environ.get("PUREJAXRL_DIR"),
        help="a PureJaxRL checkout (with purejaxrl/ppo.py) [$PUREJAXRL_DIR]",
    )
    p.add_argument(
        "--purejaxrl-python",
        default=os.environ.get("PUREJAXRL_PYTHON", sys.executable),
        help="the Python that runs PureJaxRL, e.g. a venv's [$PUREJAXRL_PYTHON, else this one]",
    )
    p.add_argument(
        "--fused-agents",
        nargs="+",
        choices=("ppo", "dqn"),
        default=["ppo", "dqn"],
        help="fused: PPO's rows (beside SB3) and DQN's (beside CleanRL's dqn_jax.py, with a CleanRL checkout)",
    )
    p.add_argument("--fused-dqn-steps", type=int, default=50_000, help="fused: env steps per seed of the DQN rows")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "speed.json"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.check_every % 100:
        p.error("--check-every must be a multiple of 100 (kerlym's step callback runs every 100 steps)")
    if args.worker:
        spec = json.loads(args.worker)
        print(MARK + json.dumps(WORKERS[spec.pop("fn")](spec)), flush=True)
        return 0

    if args.parts is None:
        args.parts = [part for part in PARTS if part not in ("cleanrl", "ppo", "fused", "purejaxrl")]
        args.parts += [part for part in ("cleanrl", "purejaxrl") if part in args.peers]
    if "cleanrl" in args.parts:
        script = os.path.join(args.cleanrl_dir or "", "cleanrl", "dqn.py")
        if not args.cleanrl_dir or not os.path.exists(script):
            p.error(f"the cleanrl part needs a CleanRL checkout in --cleanrl-dir or $CLEANRL_DIR ({CLEANRL_GET})")
    if "purejaxrl" in args.parts:
        script = os.path.join(args.purejaxrl_dir or "", "purejaxrl", "ppo.py")
        if not args.purejaxrl_dir or not os.path.exists(script):
            p.error(f"the purejaxrl part needs a PureJaxRL checkout in --purejaxrl-dir or $PUREJAXRL_DIR ({PJX_GET})")
    sb3 = "sb3" in args.peers and importlib.util.find_spec("stable_baselines3") is not None
    if "sb3" in args.peers and not sb3 and {"cartpole", "pong"} & set(args.parts):
        print(f"stable-baselines3 is not installed: skipping the SB3 rows (install: {SB3_INSTALL})")
    parts = {"cartpole": part_cartpole, "pong": part_pong, "pg": part_pg, "concurrency": part_concurrency}
    parts["cleanrl"], parts["ppo"], parts["fused"] = part_cleanrl, part_ppo, part_fused
    parts["purejaxrl"] = part_purejaxrl
    rows = [row for name in PARTS if name in args.parts for row in parts[name](args, sb3)]
    print_table(rows)
    return write_rows(args, rows)


def write_rows(args, rows: list[dict]) -> int:
    """Write ``rows`` and the arguments to ``args.out`` as JSON; the exit status (1 if a row has an error)."""
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"args": {k: v for k, v in vars(args).items() if k != "worker"}, "rows": rows}, f, indent=1)
    print(f"wrote {args.out}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
