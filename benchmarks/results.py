"""The learning-results table: kerlym's presets against RL Zoo DQN, A2C and PPO on the classic tasks.

    python benchmarks/results.py                                   # the whole table
    python benchmarks/results.py --env CartPole-v1 --agent ddqn    # one row
    python benchmarks/results.py --env MountainCar-v0 --agent ddqn clipnorm=10   # a variant (KEY=VALUE settings)
    KERAS_BACKEND=jax python benchmarks/results.py --seeds 0 1 2   # fewer seeds (default 0-9); Keras picks the backend
    python benchmarks/results.py --sb3 --env MountainCar-v0        # SB3 DQN, RL Zoo hyperparameters, here
    python benchmarks/results.py --env Pendulum-v1 --agent ppo     # an actor-critic row (RL_ZOO_AC)
    python benchmarks/results.py --sb3 --env Pendulum-v1 --agent ppo   # SB3 PPO with the Zoo's ppo.yml entry
    python benchmarks/results.py --optimum                         # MountainCar's best possible returns
    python benchmarks/results.py --ray [ADDRESS]                   # each row's seeds as Ray Tune trials

Each row trains an agent with the settings of ``kerlym -e ENV -a AGENT --preset --seed S``
(``kerlym.configure(ENV, AGENT, preset=True, cli_defaults=True, seed=S)``) for the preset's step budget, then runs a
greedy evaluation over 20 episodes (PG rows also sample from the policy, since a
softmax policy's argmax can fail where the policy itself succeeds). A row reports the
mean ± std across seeds of those evaluation means, next to RL Zoo's DQN figure at the
same budget. Results go to
``benchmarks/results/results.csv`` (one line per seed, rows replaced when re-run) and
``benchmarks/results/curve_<env>.png`` (training return against env steps, mean ±
std across seeds, one line per agent; the per-seed curves are kept beside it).

``--sb3`` runs Stable-Baselines3's DQN instead, with the RL Zoo's hyperparameters for
each env, the same budget and the same evaluation (agent ``sb3-dqn``, backend
``torch``): a check of the RL Zoo figure on this machine and these seeds. It needs
``pip install torch==2.13.0 && pip install stable-baselines3`` (torch first: its CPU build).
With ``--agent ppo|a2c`` it runs SB3's PPO or A2C with the Zoo's ``ppo.yml``/``a2c.yml`` entry
(:data:`SB3_ZOO_AC`, translated by :func:`sb3_settings`; agents ``sb3-ppo``, ``sb3-a2c``). The
actor-critic rows print as a second table beside SB3's and the Zoo's figures, with their curves in
``curve_<env>_ac.png``.

Settings given as ``KEY=VALUE`` (:mod:`kerlym.config` field names, e.g. ``learning_rate=1e-3
target_update_freq=1024``; values read as Python literals, else as strings) change the preset:
such a variant is printed, never saved into the table.

``--optimum`` prints how close the MountainCar-v0 rows are to the best possible return.
MountainCar is deterministic once reset (the car starts at rest, its position uniform in
[-0.6, -0.4], and every step costs -1), so each start has a shortest episode. It is found by
exhaustive search over action sequences of up to three constant full-push segments (bang-bang
control, what minimum-time problems with a bounded push call for), simulated with the env's
arithmetic; :func:`shortest_episode` can also try more switches and coasting. The figures are
the best return found: a bound no policy beats only if no cleverer sequence exists.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import itertools
import os
import sys
import time

import numpy as np

import kerlym
from kerlym.config import ConfigError, parse_settings

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "results")
# RL Zoo DQN (mean ± std of the final return) and its budget in env steps.
RL_ZOO = {
    "CartPole-v1": (500.0, 0.0, 50_000),
    "MountainCar-v0": (-100.8, 9.9, 120_000),
    "Acrobot-v1": (-76.6, 11.8, 100_000),
    "LunarLander-v3": (154.4, 79.2, 100_000),
}
# The RL Zoo's DQN hyperparameters (rl-baselines3-zoo hyperparams/dqn.yml), for --sb3.
_ZOO_ACROBOT = dict(learning_rate=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=0, gamma=0.99)
_ZOO_ACROBOT.update(target_update_interval=250, train_freq=4, gradient_steps=-1, exploration_fraction=0.12)
_ZOO_ACROBOT.update(exploration_final_eps=0.1)
SB3_ZOO = {
    "CartPole-v1": dict(
        learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000, gamma=0.99,
        target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
        exploration_final_eps=0.04,
    ),
    "MountainCar-v0": dict(
        learning_rate=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1000, gamma=0.98,
        target_update_interval=600, train_freq=16, gradient_steps=8, exploration_fraction=0.2,
        exploration_final_eps=0.07,
    ),
    "Acrobot-v1": _ZOO_ACROBOT,
    "LunarLander-v3": _ZOO_ACROBOT,
}  # fmt: skip
# RL Zoo A2C and PPO (the mean return of its one trained agent) and its budget in env steps.
RL_ZOO_AC = {
    ("CartPole-v1", "ppo"): (500.0, 100_000),
    ("Pendulum-v1", "ppo"): (-172.2, 100_000),  # the Zoo's agent sampled with gSDE; kerlym has none
    ("Acrobot-v1", "ppo"): (-73.5, 1_000_000),
    ("LunarLander-v3", "ppo"): (242.1, 1_000_000),
    ("LunarLanderContinuous-v3", "ppo"): (270.9, 1_000_000),
    ("CartPole-v1", "a2c"): (500.0, 500_000),
    ("Acrobot-v1", "a2c"): (-83.4, 500_000),
    ("LunarLander-v3", "a2c"): (155.8, 200_000),
    ("Pendulum-v1", "a2c"): (-163.0, 1_000_000),  # gSDE too
}
# The RL Zoo's entries (rl-baselines3-zoo hyperparams/ppo.yml and a2c.yml) as written there, for --sb3 --agent.
# Keys the yml leaves out take SB3's defaults; sb3_settings() translates normalize, lin_ and policy_kwargs.
_ZOO_PPO_LUNAR = dict(n_envs=16, n_steps=1024, batch_size=64, gae_lambda=0.98, gamma=0.999, n_epochs=4, ent_coef=0.01)
_ZOO_A2C_SDE = dict(
    normalize=True, n_envs=8, ent_coef=0.0, max_grad_norm=0.5, n_steps=8, gae_lambda=0.9, vf_coef=0.4, gamma=0.9,
    use_rms_prop=True, normalize_advantage=False, learning_rate="lin_7e-4", use_sde=True,
    policy_kwargs=dict(log_std_init=-2, ortho_init=False),
)  # fmt: skip
SB3_ZOO_AC = {
    ("CartPole-v1", "ppo"): dict(
        n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
        learning_rate="lin_0.001", clip_range="lin_0.2",
    ),
    ("Pendulum-v1", "ppo"): dict(
        n_envs=4, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0, learning_rate=1e-3,
        clip_range=0.2, use_sde=True, sde_sample_freq=4,
    ),
    ("Acrobot-v1", "ppo"): dict(normalize=True, n_envs=16, n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4,
                               ent_coef=0.0),
    ("LunarLander-v3", "ppo"): _ZOO_PPO_LUNAR,
    ("LunarLanderContinuous-v3", "ppo"): _ZOO_PPO_LUNAR,
    ("CartPole-v1", "a2c"): dict(n_envs=8, ent_coef=0.0),
    ("Acrobot-v1", "a2c"): dict(normalize=True, n_envs=16, ent_coef=0.0),
    ("LunarLander-v3", "a2c"): dict(n_envs=8, gamma=0.995, n_steps=5, learning_rate="lin_0.00083", ent_coef=0.00001),
    ("Pendulum-v1", "a2c"): _ZOO_A2C_SDE,
}  # fmt: skip
TABLE = [(env, agent) for env in RL_ZOO for agent in ("dqn", "ddqn")] + [("CartPole-v1", "pg"), ("Acrobot-v1", "pg")]
TABLE += list(RL_ZOO_AC)
FIELDS = ["env", "agent", "seed", "backend", "steps", "episodes", "eval_mean", "eval_std", "wall_s"]
FIELDS += ["sampled_mean", "online_mean"]  # PG sampling from its policy; with --ema, the online network
GRID = 50  # points on each learning curve


def split_settings(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(KEY=VALUE items, the other arguments)``: settings may follow options of several values (``--seeds``)."""
    items = [a for a in argv if "=" in a and not a.startswith("-")]
    return items, [a for a in argv if not ("=" in a and not a.startswith("-"))]


def configure(env_id: str, agent_name: str, seed: int, settings: dict):
    """The run and agent configs of a table row: the command's defaults, the preset, then ``settings``."""
    return kerlym.configure(env_id, agent_name, preset=True, cli_defaults=True, seed=seed, **settings)


def run(env_id: str, agent_name: str, seed: int, eval_episodes: int, settings: dict | None = None):
    """Train one seed; return its CSV row and its learning curve (steps, smoothed training return)."""
    import keras

    run_cfg, cfg = configure(env_id, agent_name, seed, settings or {})
    agent = kerlym.make(run_cfg, cfg)
    start = time.perf_counter()
    rows = agent.learn(max_steps=run_cfg.steps, verbose=0, eval_episodes=0)
    wall = time.perf_counter() - start
    returns = agent.evaluate(eval_episodes, seed=10_000 + seed)
    # A policy network's greedy (argmax) actions can fail where sampling from it succeeds: report both.
    sampled = agent.evaluate(eval_episodes, seed=10_000 + seed, explore=True) if agent_name == "pg" else None
    online = evaluate_online(agent, eval_episodes, seed=10_000 + seed)
    steps = np.array([r["total_steps"] for r in rows])
    grid, curve = learning_curve(steps, np.array([r["reward"] for r in rows]), run_cfg.steps)
    row = {
        "env": env_id,
        "agent": agent_name,
        "seed": seed,
        "backend": keras.backend.backend(),
        "steps": agent.total_steps,
        "episodes": agent.episode,
        "eval_mean": float(returns.mean()),
        "eval_std": float(returns.std()),
        "wall_s": round(wall, 1),
        "sampled_mean": "" if sampled is None else float(sampled.mean()),
        "online_mean": "" if online is None else float(online.mean()),
    }
    agent.close()
    also = "" if sampled is None else f" (sampling from the policy: {sampled.mean():.1f})"
    also += "" if online is None else f" (online network: {online.mean():.1f})"
    print(
        f"  {env_id} {agent_name} seed {seed}: eval {returns.mean():.1f} ± {returns.std():.1f}{also} in {wall:.0f} s",
        flush=True,
    )
    return row, grid, curve


def run_ray(env_id: str, agent_name: str, seeds, eval_episodes: int, settings: dict, address: str):
    """Train every seed of a row as Ray Tune trials (kerlym's ``--seeds ... --ray``); each seed's row and curve.

    The sweep folder (one kerlym run folder per seed) goes to a temporary folder, printed. Each seed's
    evaluation is the sweep's final greedy one over ``eval_episodes`` episodes (the evaluation env's own
    seeds, not 10000+S, and no sampled or online-network column): a row run through Ray matches one
    run here in its training, not episode for episode in its evaluation.
    """
    import tempfile

    from kerlym import checkpoints, sweep
    from kerlym import config as C
    from kerlym.stats import read_progress

    run_cfg, cfg = configure(env_id, agent_name, seeds[0], settings)
    out = tempfile.mkdtemp(prefix="kerlym-results-")
    run_cfg = C.replace(run_cfg, outdir=out, quiet=True, eval_episodes=eval_episodes)
    if sweep.run_seeds(run_cfg, cfg, seeds, ray=address) is None:
        raise SystemExit(f"interrupted: the sweep folder under {out} resumes with kerlym --resume")
    (sweep_dir,) = (os.path.join(out, d) for d in os.listdir(out))
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    results = []
    for seed in seeds:
        folder = os.path.join(sweep_dir, f"seed-{seed}")
        evaluation = checkpoints.read_evaluation(folder)
        rows = read_progress(os.path.join(folder, "progress.csv"))
        grid, curve = learning_curve(
            np.array([r["total_steps"] for r in rows]), np.array([r["reward"] for r in rows]), run_cfg.steps
        )
        row = {
            "env": env_id, "agent": agent_name, "seed": seed, "backend": backend,
            "steps": evaluation["total_steps"], "episodes": len(rows),
            "eval_mean": evaluation["mean"], "eval_std": evaluation["std"],
            "wall_s": round(evaluation["wall_time"], 1), "sampled_mean": "", "online_mean": "",
        }  # fmt: skip
        print(f"  {env_id} {agent_name} seed {seed}: eval {row['eval_mean']:.1f} ± {row['eval_std']:.1f}", flush=True)
        results.append((row, grid, curve))
    print(f"sweep folder: {sweep_dir}")
    return results


def evaluate_online(agent, episodes: int, seed: int):
    """With a weight average (``--ema``), the same greedy evaluation of the online network, the last weights trained.

    ``None`` for agents that act greedily with the online network anyway.
    """
    if getattr(agent, "ema_model", None) is None:
        return None
    average = agent.greedy_model.get_weights()
    agent.ema_model.set_weights(agent.model.get_weights())
    try:
        return agent.evaluate(episodes, seed=seed)
    finally:
        agent.ema_model.set_weights(average)


def run_sb3(env_id: str, seed: int, eval_episodes: int):
    """SB3 DQN with the RL Zoo's hyperparameters and budget; the same row, curve and evaluation as :func:`run`."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(1)  # like-for-like with a table run on one core; rows may run side by side
    budget, finished = RL_ZOO[env_id][2], []

    class Episodes(BaseCallback):
        def _on_step(self) -> bool:
            finished.extend((self.num_timesteps, i["episode"]["r"]) for i in self.locals["infos"] if "episode" in i)
            return True

    kw = dict(SB3_ZOO[env_id], policy_kwargs=dict(net_arch=[256, 256]))
    model = DQN("MlpPolicy", env_id, seed=seed, device="cpu", verbose=0, **kw)
    start = time.perf_counter()
    model.learn(total_timesteps=budget, callback=Episodes())
    wall = time.perf_counter() - start
    env, returns = gym.make(env_id), []
    for i in range(eval_episodes):
        obs, _ = env.reset(seed=10_000 + seed + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(int(model.predict(obs, deterministic=True)[0]))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    return sb3_row(env_id, "dqn", seed, model.num_timesteps, finished, returns, budget, wall)


def sb3_settings(zoo: dict) -> tuple[dict, int, dict | None]:
    """An RL Zoo entry as ``(SB3 algorithm kwargs, n_envs, VecNormalize kwargs or None)``.

    ``lin_X`` becomes a schedule falling linearly from X to 0 over the run (SB3 calls it with the remaining
    progress, 1 to 0); ``normalize`` wraps the envs in VecNormalize with the entry's gamma, as the Zoo does.
    """
    kw = dict(zoo)
    n_envs, normalize = kw.pop("n_envs", 1), kw.pop("normalize", False)
    for name in ("learning_rate", "clip_range"):
        if isinstance(kw.get(name), str) and kw[name].startswith("lin_"):
            start = float(kw[name][len("lin_") :])
            kw[name] = lambda remaining, start=start: remaining * start
    normalize_kw = None
    if normalize:
        normalize_kw = dict(normalize) if isinstance(normalize, dict) else {}
        normalize_kw.setdefault("gamma", kw.get("gamma", 0.99))
    return kw, n_envs, normalize_kw


def run_sb3_ac(env_id: str, agent_name: str, seed: int, eval_episodes: int):
    """SB3's PPO or A2C with the RL Zoo's entry for ``env_id``: the same row, curve and evaluation as :func:`run`."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    budget, finished = RL_ZOO_AC[(env_id, agent_name)][1], []

    class Episodes(BaseCallback):
        def _on_step(self) -> bool:
            finished.extend((self.num_timesteps, i["episode"]["r"]) for i in self.locals["infos"] if "episode" in i)
            return True

    kw, n_envs, normalize_kw = sb3_settings(SB3_ZOO_AC[(env_id, agent_name)])
    venv = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize_kw is not None:
        venv = VecNormalize(venv, **normalize_kw)
    algo = {"ppo": PPO, "a2c": A2C}[agent_name]
    model = algo("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **kw)
    start = time.perf_counter()
    model.learn(total_timesteps=budget, callback=Episodes())
    wall = time.perf_counter() - start
    if normalize_kw is not None:
        venv.training = False
    env, returns = gym.make(env_id), []
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    for i in range(eval_episodes):
        obs, _ = env.reset(seed=10_000 + seed + i)
        total, done = 0.0, False
        while not done:
            seen = venv.normalize_obs(obs) if normalize_kw is not None else obs
            action = model.predict(seen, deterministic=True)[0]  # Box actions come back clipped to the bounds
            obs, reward, terminated, truncated, _ = env.step(int(action) if discrete else action)
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    return sb3_row(env_id, agent_name, seed, model.num_timesteps, finished, returns, budget, wall)


def sb3_row(env_id, agent_name, seed, steps_done, finished, returns, budget, wall):
    """An SB3 run's table row and learning curve, from its finished (step, return) pairs and eval returns."""
    returns = np.asarray(returns)
    steps = np.array([t for t, _ in finished])
    rewards = np.array([r for _, r in finished], dtype=float)
    grid, curve = learning_curve(steps, rewards, budget)
    row = dict.fromkeys(FIELDS, "")
    row.update(env=env_id, agent=f"sb3-{agent_name}", seed=seed, backend="torch", steps=steps_done)
    row.update(episodes=len(finished), eval_mean=float(returns.mean()), eval_std=float(returns.std()))
    row.update(wall_s=round(wall, 1))
    print(
        f"  {env_id} SB3 {agent_name.upper()} seed {seed}: eval {returns.mean():.1f} ± {returns.std():.1f} "
        f"in {wall:.0f} s",
        flush=True,
    )
    return row, grid, curve


def learning_curve(steps, rewards, budget: int):
    """Training return (mean of the last 10 episodes) on a grid of ``GRID`` env-step points up to ``budget``."""
    smooth = np.array([rewards[max(0, i - 9) : i + 1].mean() for i in range(len(rewards))])
    grid = np.linspace(budget / GRID, budget, GRID)
    return grid, (np.interp(grid, steps, smooth) if len(steps) else np.full(GRID, np.nan))


def save_rows(path: str, new: list[dict], fields: list[str] = FIELDS) -> list[dict]:
    """Merge ``new`` into the CSV (columns ``fields``), replacing lines of the same env, agent, seed and backend."""
    key = lambda r: (r["env"], r["agent"], str(r["seed"]), r["backend"])  # noqa: E731
    with open(path + ".lock", "w") as lock:  # rows of the table may run in parallel processes
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = []
        if os.path.exists(path):
            with open(path, newline="") as f:
                old = list(csv.DictReader(f))
        replaced = {key(r) for r in new}
        rows = [r for r in old if key(r) not in replaced] + new
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
    return rows


def save_curve(env_id: str, agent_name: str, backend: str, seed: int, grid, curve) -> None:
    """Keep each seed's learning curve, so rows run separately still share one plot."""
    path = os.path.join(OUT, f"curve_{env_id}_{agent_name}_{backend}.npz")
    data = dict(np.load(path)) if os.path.exists(path) else {}
    data["grid"], data[f"seed{seed}"] = grid, curve
    np.savez(path, **data)


AC_AGENTS = ("a2c", "ppo", "sb3-a2c", "sb3-ppo")


def plot_curves(env_id: str, actor_critic: bool = False) -> str:
    """Training return against env steps for every agent and backend saved for ``env_id``: mean ± std across seeds.

    The DQN/PG agents and the actor-critic ones (``actor_critic``, ``curve_<env>_ac.png``) get separate plots.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefix = f"curve_{env_id}_"
    saved = [
        name[len(prefix) : -len(".npz")].rsplit("_", 1)
        for name in os.listdir(OUT)
        if name.startswith(prefix) and name.endswith(".npz")
    ]
    saved = [(a, b) for a, b in saved if (a in AC_AGENTS) == actor_critic]
    order = {"dqn": 0, "ddqn": 1, "pg": 2, "sb3-dqn": 3, **{a: i for i, a in enumerate(AC_AGENTS)}}
    saved.sort(key=lambda ab: (order.get(ab[0], len(order)), ab[1]))
    kerlym_backends = {backend for agent_name, backend in saved if not agent_name.startswith("sb3-")}

    fig, ax = plt.subplots(figsize=(6, 4))
    for agent_name, backend in saved:
        data = np.load(os.path.join(OUT, f"{prefix}{agent_name}_{backend}.npz"))
        runs = np.stack([data[k] for k in data.files if k.startswith("seed")])
        mean, std = runs.mean(axis=0), runs.std(axis=0)
        if agent_name.startswith("sb3-"):
            label = f"SB3 {agent_name[4:].upper()}, RL Zoo hyperparameters"
        else:  # name the backend only when more than one has curves for this env
            label = f"kerlym {agent_name}" + (f" ({backend})" if len(kerlym_backends) > 1 else "")
        ax.plot(data["grid"], mean, label=f"{label} ({len(runs)} seeds)")
        ax.fill_between(data["grid"], mean - std, mean + std, alpha=0.25)
    if env_id in RL_ZOO and not actor_critic:
        ax.axhline(RL_ZOO[env_id][0], color="grey", linestyle="--", label="RL Zoo DQN (final eval)")
    for style, agent_name in ((":", "a2c"), ("-.", "ppo")):
        plotted = {a.removeprefix("sb3-") for a, _ in saved}
        if actor_critic and (env_id, agent_name) in RL_ZOO_AC and agent_name in plotted:
            zoo = RL_ZOO_AC[(env_id, agent_name)][0]
            ax.axhline(zoo, color="grey", linestyle=style, label=f"RL Zoo {agent_name.upper()} (final eval)")
    ax.set(title=f"{env_id}: training return (last 10 episodes)", xlabel="env steps", ylabel="return")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = os.path.join(OUT, f"curve_{env_id}{'_ac' if actor_critic else ''}.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def summary(rows: list[dict]) -> str:
    """A Markdown table: one line per env/agent/backend over the seeds in ``rows``."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["agent"] not in AC_AGENTS:
            groups.setdefault((r["env"], r["agent"], r["backend"]), []).append(r)
    lines = [
        "| env | agent | greedy eval (20 episodes) | seeds | RL Zoo DQN | budget | meets RL Zoo mean? "
        "| wall-clock / run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    order = {row: i for i, row in enumerate(TABLE)}
    order.update({(env, "sb3-dqn"): i + 0.5 for i, (env, agent) in enumerate(TABLE) if agent == "ddqn"})
    for (env, agent, backend), rs in sorted(groups.items(), key=lambda kv: order.get(kv[0][:2], 99)):
        means = np.array([float(r["eval_mean"]) for r in rs])
        wall = np.mean([float(r["wall_s"]) for r in rs])
        zoo = RL_ZOO.get(env)
        zoo_text = f"{zoo[0]:.1f} ± {zoo[1]:.1f}" if zoo and agent != "pg" else "-"
        verdict = (
            ("yes" if means.mean() >= zoo[0] else f"**no** ({means.mean():.1f} < {zoo[0]:.1f})")
            if (zoo and agent != "pg")
            else "-"
        )
        steps = int(float(rs[0]["steps"]))
        score = f"{means.mean():.1f} ± {means.std():.1f}"
        for column, label in (("sampled_mean", "sampling"), ("online_mean", "online network")):
            also = [float(r[column]) for r in rs if r.get(column) not in (None, "")]
            if also:
                score += f" ({label}: {np.mean(also):.1f} ± {np.std(also):.1f})"
        lines.append(
            f"| {env} | {agent} | {score} | {len(rs)} | {zoo_text} | "
            f"{steps // 1000}k | {verdict} | {wall:.0f} s ({backend}) |"
        )
    return "\n".join(lines)


def summary_ac(rows: list[dict]) -> str:
    """A Markdown table of the A2C and PPO rows: kerlym beside SB3 run here (same seeds) and the RL Zoo figure."""
    scores: dict[tuple, list[float]] = {}
    for r in rows:
        if r["agent"] in AC_AGENTS:
            scores.setdefault((r["env"], r["agent"].removeprefix("sb3-"), r["agent"].startswith("sb3-")), []).append(
                float(r["eval_mean"])
            )
    lines = [
        "| env | agent | steps | kerlym (greedy, 20 episodes) | SB3 here, RL Zoo settings | RL Zoo | "
        "at or above SB3's mean? |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (env, agent), (zoo, budget) in RL_ZOO_AC.items():
        ours, sb3 = scores.get((env, agent, False)), scores.get((env, agent, True))
        if not ours and not sb3:
            continue
        cell = lambda xs: f"{np.mean(xs):.1f} ± {np.std(xs):.1f} ({len(xs)} seeds)" if xs else "not run"  # noqa: E731
        if ours and sb3:
            verdict = "yes" if np.mean(ours) >= np.mean(sb3) else f"**no** ({np.mean(ours):.1f} < {np.mean(sb3):.1f})"
        else:
            verdict = "-"
        lines.append(f"| {env} | {agent} | {budget // 1000}k | {cell(ours)} | {cell(sb3)} | {zoo:.1f} | {verdict} |")
    return "\n".join(lines)


# -- MountainCar-v0's best possible returns (--optimum) ------------------------------------------------
LEFT, COAST, RIGHT = 0, 1, 2


def episode_lengths(position: float, actions: np.ndarray) -> np.ndarray:
    """Length of the episode each row of ``actions`` ([N, T]) makes from ``position`` at rest; T + 1 if it never ends.

    The dynamics are ``MountainCarEnv.step``'s, in float64 as the env computes them.
    """
    n, horizon = actions.shape
    pos, vel = np.full(n, position), np.zeros(n)
    length = np.full(n, horizon + 1)
    for t in range(horizon):
        vel = np.clip(vel + (actions[:, t] - 1) * 0.001 + np.cos(3 * pos) * -0.0025, -0.07, 0.07)
        pos = np.clip(pos + vel, -1.2, 0.6)
        vel = np.where((pos == -1.2) & (vel < 0), 0.0, vel)
        arrived = (pos >= 0.5) & (vel >= 0) & (length > horizon)
        length[arrived] = t + 1
    return length


def shortest_episode(position: float, switches: int = 2, coast: bool = False, horizon: int = 140) -> int:
    """Fewest steps to the flag from ``position`` over action sequences of at most ``switches + 1`` constant segments.

    Segments push full left or full right (and may coast with ``coast``).
    """
    steps = np.arange(horizon)
    segment_actions = (LEFT, COAST, RIGHT) if coast else (LEFT, RIGHT)
    best = horizon + 1
    for s in range(switches + 1):
        times = np.array(list(itertools.combinations(range(1, horizon), s)), dtype=np.int32)  # [combos, s]
        for chunk in np.array_split(times, max(1, len(times) // 100_000)):
            segment = (steps[None, None, :] >= chunk[:, :, None]).sum(axis=1)  # [combos, horizon]
            for pattern in itertools.product(segment_actions, repeat=s + 1):
                if any(a == b for a, b in itertools.pairwise(pattern)):
                    continue
                best = min(best, int(episode_lengths(position, np.asarray(pattern)[segment]).min()))
    return best


def start_positions(env_seeds) -> list[float]:
    """MountainCar-v0's start position after ``env.reset(seed=s)`` for each seed."""
    import gymnasium as gym

    env = gym.make("MountainCar-v0")
    positions = []
    for s in env_seeds:
        env.reset(seed=int(s))
        positions.append(float(env.unwrapped.state[0]))
    env.close()
    return positions


def mountaincar_optimum(rows: list[dict], seeds, episodes: int, grid: int = 201) -> list[str]:
    """Lines to print: the best mean return from uniform starts, then per seed on its evaluation starts.

    Each seed's line sets the agents' scores from ``rows`` (results.csv lines) beside it; a seed's
    evaluation starts are env seeds ``10000 + seed + i``.
    """
    best: dict[float, int] = {}

    def best_return(position: float) -> int:
        if position not in best:
            best[position] = -shortest_episode(position)
        return best[position]

    uniform = np.array([best_return(x) for x in np.linspace(-0.6, -0.4, grid)])
    lines = [
        f"uniform start in [-0.6, -0.4] ({grid} evenly spaced): best mean return {uniform.mean():.2f} "
        f"(episodes of {-uniform.max()} to {-uniform.min()} steps); RL Zoo's DQN: {RL_ZOO['MountainCar-v0'][0]}",
        "",
    ]
    scores = {(r["agent"], int(r["seed"])): float(r["eval_mean"]) for r in rows if r["env"] == "MountainCar-v0"}
    agents = sorted({a for a, _ in scores})
    lines += [f"| seed | best return on its {episodes} starts | " + " | ".join(agents) + " |"]
    lines += ["| --- | --- |" + " --- |" * len(agents)]
    per_seed = []
    for seed in seeds:
        per_seed.append(np.mean([best_return(x) for x in start_positions(10_000 + seed + i for i in range(episodes))]))
        cells = [f"{scores[(a, seed)]:.2f}" if (a, seed) in scores else "" for a in agents]
        lines.append(f"| {seed} | {per_seed[-1]:.2f} | " + " | ".join(cells) + " |")
    means = [
        f"{np.mean([scores[(a, s)] for s in seeds]):.2f}" if all((a, s) in scores for s in seeds) else ""
        for a in agents
    ]
    lines.append(f"| mean | {np.mean(per_seed):.2f} | " + " | ".join(means) + " |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Settings: KEY=VALUE with kerlym.config field names, e.g. clipnorm=10 replay=uniform; each VALUE is "
        "read as a Python literal (1e-3, None, True), else as a string.",
    )
    p.add_argument(
        "settings",
        nargs="*",
        metavar="KEY=VALUE",
        help="settings on top of the preset (a variant: printed, not saved), e.g. learning_rate=1e-3 steps=2000",
    )
    p.add_argument("--env", help="one env of the table (default: all)")
    p.add_argument("--agent", choices=("dqn", "ddqn", "pg", "a2c", "ppo"), help="one agent (default: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--summary", action="store_true", help="only print the table from the saved CSV")
    p.add_argument(
        "--sb3",
        action="store_true",
        help="SB3 with the RL Zoo's hyperparameters instead: DQN, or PPO/A2C with --agent ppo|a2c",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run each row's seeds as Ray Tune trials (kerlym --seeds --ray): on a local Ray cluster, or ADDRESS",
    )
    p.add_argument(
        "--optimum", action="store_true", help="only print MountainCar's best possible returns beside the saved rows"
    )
    items, argv = split_settings(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    csv_path = os.path.join(OUT, "results.csv")
    if args.summary or args.optimum:
        with open(csv_path, newline="") as f:
            saved = list(csv.DictReader(f))
        if args.optimum:
            print("\n".join(mountaincar_optimum(saved, args.seeds, args.eval_episodes)))
        else:
            print(summary(saved) + "\n\n" + summary_ac(saved))
        return 0
    try:
        settings = parse_settings(items + args.settings)
    except ValueError as e:
        p.error(str(e))
    todo = [(e, a) for e, a in TABLE if (args.env in (None, e)) and (args.agent in (None, a))]
    if args.sb3:
        if settings or args.agent not in (None, "a2c", "ppo"):
            p.error("--sb3 runs SB3's DQN (or --agent ppo|a2c) with the RL Zoo's settings: no other agent or settings")
        if args.agent:
            todo = [(e, f"sb3-{a}") for e, a in SB3_ZOO_AC if args.env in (None, e) and a == args.agent]
        else:
            todo = [(e, "sb3-dqn") for e in SB3_ZOO if args.env in (None, e)]
    if not todo:
        p.error(f"no table row for --env {args.env} --agent {args.agent}")
    for env_id, agent_name in todo if not args.sb3 else ():
        try:  # a bad setting fails here, in one line, before any training
            configure(env_id, agent_name, args.seeds[0], settings)
        except ConfigError as e:
            p.error(f"{env_id} {agent_name}: {e}")
    if args.ray and args.sb3:
        p.error("--ray runs kerlym's rows; SB3's run here (drop --ray or --sb3)")
    os.makedirs(OUT, exist_ok=True)
    rows: list[dict] = []
    for env_id, agent_name in todo:
        if args.ray:
            seeds = run_ray(env_id, agent_name, args.seeds, args.eval_episodes, settings, args.ray)
        else:
            seeds = (None for _ in args.seeds)
        for seed, done in zip(args.seeds, seeds, strict=True):
            if done is not None:
                row, grid, curve = done
            elif agent_name in ("sb3-a2c", "sb3-ppo"):
                row, grid, curve = run_sb3_ac(env_id, agent_name[4:], seed, args.eval_episodes)
            elif args.sb3:
                row, grid, curve = run_sb3(env_id, seed, args.eval_episodes)
            else:
                row, grid, curve = run(env_id, agent_name, seed, args.eval_episodes, settings)
            if settings:  # a variant of a preset: reported, never mixed into the table
                rows.append(row)
                continue
            rows = save_rows(csv_path, [row])
            save_curve(env_id, agent_name, row["backend"], seed, grid, curve)
        if not settings:
            print(f"curve: {plot_curves(env_id, actor_critic=agent_name in AC_AGENTS)}")
    print(summary(rows) + "\n\n" + summary_ac(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
