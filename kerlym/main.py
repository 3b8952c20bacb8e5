"""The ``kerlym`` command: train, resume, watch and evaluate agents on Gymnasium environments.

Start-up imports only the standard library, so ``--help``, ``--version`` and
argument errors answer at once; Gymnasium, Keras and matplotlib are imported
when a run actually starts.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import signal
import sys
import time

from kerlym.runs import first_line

AGENT_NAMES = ("dqn", "ddqn", "pg")
NETWORK_NAMES = (
    "simple_dnn",
    "zoo_mlp",
    "simple_rnn",
    "simple_cnn",
    "nature_cnn",
    "karpathy_simple_pgnet",
    "pgconvnet",
)
CONV_NETWORKS = ("simple_cnn", "nature_cnn", "pgconvnet")
PG_NETWORKS = ("karpathy_simple_pgnet", "pgconvnet")
PREPROCESSOR_NAMES = ("none", "atari", "karpathy")
DTYPE_POLICIES = ("float32", "mixed_bfloat16")  # kerlym.agents.base.DTYPE_POLICIES
REPLAY_MODES = ("newest", "uniform")  # kerlym.agents.dqn.REPLAY_MODES

# The original KeRLym's defaults, then the options kerlym adds.
DEFAULTS = {
    "env": "MountainCar-v0",
    "net": None,  # simple_dnn, or karpathy_simple_pgnet for -a pg
    "update_freq": 1000,
    "update_size": 1100,
    "replay": "newest",
    "batch_size": 32,
    "dropout": 0.5,
    "epsilon": 0.1,
    "epsilon_decay": 1e-4,
    "epsilon_min": 0.05,
    "discount": 0.99,
    "num_frames": 2,
    "max_mem": 100_000,
    "plots": False,
    "plot_rate": 10,
    "submit": False,
    "agent": "ddqn",
    "difference": False,
    "learning_rate": 1e-4,
    "preprocessor": "none",
    "render": False,
    "concurrency": 1,
    "steps": None,
    "episodes": None,
    "seed": None,
    "outdir": "runs",
    "preset": False,
    "exploration_steps": None,
    "target_update": None,
    "learning_starts": None,
    "optimizer": "rmsprop",
    "clipnorm": None,
    "loss": "mse",
    "checkpoint_every": 10_000,
    "save_memory": False,
    "eval_episodes": 20,
    "eval_every": None,
    "quiet": False,
    "pong_reset": None,
    "dtype_policy": "float32",
    "ema": None,
}
# What --resume and --play may change on a saved run; everything else comes from its config.json.
RUNTIME_OPTIONS = (
    "steps",
    "episodes",
    "plots",
    "plot_rate",
    "render",
    "submit",
    "quiet",
    "eval_episodes",
    "eval_every",
    "checkpoint_every",
    "save_memory",
    "dtype_policy",  # weights are float32 under either policy
)


class UsageError(Exception):
    """Bad input: reported as one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    from kerlym import __version__

    p = _Parser(
        prog="kerlym",
        description="Train Keras deep RL agents (DQN, double DQN, policy gradient) on Gymnasium environments.",
        epilog="Example: kerlym -e CartPole-v1 -a ddqn --preset -P",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=34),
    )

    def opt(*flags, help, **kw):
        dest = kw.get("dest") or flags[-1].lstrip("-")
        shown = DEFAULTS.get(dest)
        if dest == "net":
            shown = "simple_dnn; karpathy_simple_pgnet for -a pg"
        p.add_argument(*flags, default=None, help=f"{help} [{shown}]", **kw)

    opt("-e", "--env", help="Which Gymnasium environment to run")
    opt("-n", "--net", help=f"NN architecture: {', '.join(NETWORK_NAMES)}")
    opt("-f", "--update_freq", type=int, help="Frequency of NN updates specified in time steps")
    opt("-u", "--update_size", type=int, help="Number of samples to train on each update")
    opt(
        "--replay",
        help="What each DQN/D2QN update samples: newest (the newest -f transitions plus uniform replay, "
        "the original's scheme) or uniform (all from replay, as SB3 does)",
    )
    opt("-b", "--batch_size", type=int, help="Batch size during NN training")
    opt("-o", "--dropout", type=float, help="Dropout rate in the NN")
    opt("-p", "--epsilon", type=float, help="Exploration (1.0) vs exploitation (0.0) action probability")
    opt("-D", "--epsilon_decay", type=float, help="Rate of epsilon decay per episode: epsilon *= (1-decay)")
    opt("-s", "--epsilon_min", type=float, help="Min epsilon value after decay")
    opt("-d", "--discount", type=float, help="Discount rate for future rewards")
    opt("-t", "--num_frames", type=int, help="Number of sequential observations stacked into one state")
    opt("-m", "--max_mem", type=int, help="Max number of samples to remember")
    opt(
        "-P",
        "--plots",
        action=argparse.BooleanOptionalAction,
        help="Plot learning statistics while running (PNG in the run folder)",
    )
    opt("-F", "--plot_rate", type=int, help="Plot update rate in episodes (and bin size)")
    opt(
        "-S",
        "--submit",
        action=argparse.BooleanOptionalAction,
        help="Write a results bundle in the run folder (OpenAI's upload service is gone): episode "
        "statistics, a greedy evaluation as JSON and evaluation videos",
    )
    opt("-a", "--agent", help=f"Which learning algorithm to use: {', '.join(AGENT_NAMES)}")
    opt("-i", "--difference", action="store_true", help="Compute difference images for training")
    opt("-r", "--learning_rate", type=float, help="Optimizer learning rate")
    opt("-E", "--preprocessor", help=f"Observation preprocessor: {', '.join(PREPROCESSOR_NAMES)}")
    opt(
        "-R",
        "--render",
        action=argparse.BooleanOptionalAction,
        help="Render the environment in a window (needs a display)",
    )
    opt("-c", "--concurrency", type=int, help="Env copies stepping in parallel processes, feeding one learner")
    opt("--steps", type=int, help="Stop after this many env steps in total (default: run until Ctrl-C)")
    opt("--episodes", type=int, help="Stop after this many episodes in total")
    opt("--seed", type=int, help="Random seed for the env, NumPy and Keras")
    opt("--outdir", help="Folder that holds run folders")
    opt("--preset", action="store_true", help="Use kerlym's tuned settings for this env and agent (flags override)")
    opt("--exploration_steps", type=int, help="Anneal epsilon linearly to -s over this many steps instead of -D")
    opt("--target_update", type=int, help="Env steps between target-network syncs (default: -f)")
    opt("--learning_starts", type=int, help="Transitions in memory before the first update (default: -b)")
    opt("--optimizer", help="Optimizer the built-in networks compile (any Keras name)")
    opt("--loss", help="Loss the built-in Q-networks compile (any Keras name, e.g. huber)")
    opt(
        "--ema",
        type=int,
        metavar="STEPS",
        help="DQN/D2QN: act greedily (evaluation, --play, best.keras) with an exponential moving average of the "
        "Q-network's weights over about this many env steps (default, and 0: the online network)",
    )
    opt("--clipnorm", type=float, help="Clip the global gradient norm (SB3's max_grad_norm; default: no clipping)")
    opt("--checkpoint_every", type=int, help="Env steps between checkpoints")
    opt("--save_memory", action=argparse.BooleanOptionalAction, help="Include the replay memory in checkpoints")
    opt("--eval_episodes", type=int, help="Greedy episodes per evaluation (--eval_every, -S, --play)")
    opt("--eval_every", type=int, help="Evaluate greedily every N steps; keeps the best model as best.keras")
    opt(
        "--pong_reset",
        type=int,
        choices=(0, 1),
        help="PG: reset the running return at each point (default: on for Pong)",
    )
    opt(
        "--dtype_policy",
        help=f"Keras dtype policy of the networks: {', '.join(DTYPE_POLICIES)}. mixed_bfloat16 computes "
        "layers in bfloat16 (faster convolutions on CPUs with bfloat16 instructions, TensorFlow backend), "
        "weights and losses in float32",
    )
    opt(
        "-q",
        "--quiet",
        action=argparse.BooleanOptionalAction,
        help="Print a progress line every 10 s instead of one per episode",
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="Continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--play", metavar="RUN_DIR", help="Watch/evaluate the saved agent in RUN_DIR without training")
    p.add_argument("--best", action="store_true", help="With --play: use best.keras (see --eval_every)")
    p.add_argument("--version", action="version", version=f"kerlym {__version__}")
    return p


# -- configuration -----------------------------------------------------------
def resolve_config(args: argparse.Namespace) -> dict:
    """Defaults, then the preset, then the flags the user gave."""
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("resume", "play", "best")}
    cfg = dict(DEFAULTS)
    agent = given.get("agent", cfg["agent"])
    env = given.get("env", cfg["env"])
    if given.get("preset"):
        from kerlym import presets

        try:
            cfg.update(presets.get(env, agent))
        except KeyError as e:
            raise UsageError(e.args[0]) from None
    cfg.update(given)
    if cfg["ema"] == 0:  # --ema 0 turns a preset's weight average off
        cfg["ema"] = None
    if cfg["net"] is None:
        cfg["net"] = default_net(cfg["agent"])
    return cfg


def default_net(agent: str) -> str:
    return "karpathy_simple_pgnet" if agent == "pg" else "simple_dnn"


def validate(cfg: dict) -> None:
    """Check every value that needs no environment; raise :class:`UsageError`."""
    if cfg["agent"] not in AGENT_NAMES:
        raise UsageError(f"unknown agent {cfg['agent']!r}; choose one of: {', '.join(AGENT_NAMES)}")
    if cfg["net"] not in NETWORK_NAMES:
        raise UsageError(f"unknown net {cfg['net']!r}; choose one of: {', '.join(NETWORK_NAMES)}")
    if cfg["dtype_policy"] not in DTYPE_POLICIES:
        raise UsageError(f"unknown dtype policy {cfg['dtype_policy']!r}; choose one of: {', '.join(DTYPE_POLICIES)}")
    if cfg["replay"] not in REPLAY_MODES:
        raise UsageError(f"unknown replay {cfg['replay']!r}; choose one of: {', '.join(REPLAY_MODES)}")
    if cfg["preprocessor"] not in PREPROCESSOR_NAMES:
        raise UsageError(
            f"unknown preprocessor {cfg['preprocessor']!r}; choose one of: {', '.join(PREPROCESSOR_NAMES)}"
        )
    if not 0.0 <= cfg["epsilon"] <= 1.0:
        raise UsageError(f"epsilon must be in [0, 1], got {cfg['epsilon']}")
    if not 0.0 <= cfg["epsilon_min"] <= 1.0:
        raise UsageError(f"epsilon_min must be in [0, 1], got {cfg['epsilon_min']}")
    if not 0.0 <= cfg["discount"] <= 1.0:
        raise UsageError(f"discount must be in [0, 1], got {cfg['discount']}")
    if not 0.0 <= cfg["dropout"] < 1.0:
        raise UsageError(f"dropout must be in [0, 1), got {cfg['dropout']}")
    positive = (
        "batch_size",
        "plot_rate",
        "max_mem",
        "update_freq",
        "update_size",
        "num_frames",
        "checkpoint_every",
        "concurrency",
    )
    optional = ("steps", "episodes", "exploration_steps", "target_update", "eval_episodes", "eval_every", "ema")
    for key in positive + optional:
        if cfg[key] is not None and cfg[key] <= 0:
            raise UsageError(f"{key} must be positive, got {cfg[key]}")
    if cfg["learning_rate"] <= 0:
        raise UsageError(f"learning_rate must be positive, got {cfg['learning_rate']}")
    if cfg["max_mem"] < cfg["batch_size"]:
        raise UsageError(f"max_mem ({cfg['max_mem']}) must be at least the batch size ({cfg['batch_size']})")
    if cfg["agent"] != "pg" and cfg["update_size"] < cfg["batch_size"]:
        raise UsageError(f"update_size ({cfg['update_size']}) must be at least the batch size ({cfg['batch_size']})")
    if cfg["agent"] == "pg" and cfg["ema"] is not None:
        raise UsageError("--ema applies to -a dqn and -a ddqn, not -a pg")
    if cfg["agent"] == "pg" and cfg["net"] not in PG_NETWORKS:
        raise UsageError(f"-a pg needs a policy network: {', '.join(PG_NETWORKS)} (got {cfg['net']})")
    if cfg["agent"] != "pg" and cfg["net"] in PG_NETWORKS:
        raise UsageError(
            f"{cfg['net']} is a policy network for -a pg; Q-learning agents need one of: "
            + ", ".join(n for n in NETWORK_NAMES if n not in PG_NETWORKS)
        )
    if cfg["render"] and not _has_display():
        raise UsageError("--render needs a display, and none was found (DISPLAY is unset); use -S to record videos")


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def check_env_id(env_id: str) -> None:
    import gymnasium as gym

    from kerlym.envs import register_atari

    register_atari(env_id)
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"unknown environment {env_id!r}{hint}")


def make_env_factory(cfg: dict, submit_stats: list | None = None):
    """A zero-argument callable making the run's env (with rendering and episode statistics)."""
    import gymnasium as gym

    from kerlym.envs import make_env

    def make():
        env = make_env(cfg["env"], render_mode="human" if cfg["render"] else None)  # registers ALE ids
        if submit_stats is not None:
            env = gym.wrappers.RecordEpisodeStatistics(env, buffer_length=1_000_000)
            submit_stats.append(env)
        return env

    if submit_stats is None and not cfg["render"]:
        make.env_id = cfg["env"]  # nothing added to the plain env: copies may come from ale-py's vector env
    return make


def check_env(cfg: dict, make_env) -> None:
    """Refuse env/agent/net combinations that cannot work, before any model is built."""
    import gymnasium as gym

    from kerlym import preproc

    try:
        env = make_env()
    except Exception as e:  # a missing extra (box2d, ...) or a broken env
        raise UsageError(f"cannot create {cfg['env']}: {first_line(e)}") from None
    try:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise UsageError(
                f"{cfg['env']} has a continuous action space ({env.action_space}); "
                f"-a {cfg['agent']} needs discrete actions"
            )
        env = preproc.apply(env, preproc.PREPROCESSORS[cfg["preprocessor"]])
        shape = env.observation_space.shape
        if cfg["net"] in CONV_NETWORKS and len(shape) not in (2, 3):
            raise UsageError(
                f"{cfg['net']} is a convolutional network but {cfg['env']} observations have shape "
                f"{shape}; use simple_dnn or an image env"
            )
    finally:
        env.close()


def build_agent(cfg: dict, make_env):
    """The agent a config describes."""
    from kerlym import agents, networks, preproc

    common = dict(
        nframes=cfg["num_frames"],
        discount=cfg["discount"],
        modelfactory=networks.get(cfg["net"]),
        dropout=cfg["dropout"],
        difference_obs=cfg["difference"],
        preprocessor=preproc.PREPROCESSORS[cfg["preprocessor"]],
        learning_rate=cfg["learning_rate"],
        seed=cfg["seed"],
        optimizer=cfg["optimizer"],
        clipnorm=cfg["clipnorm"],
        concurrency=cfg["concurrency"],
        dtype_policy=cfg["dtype_policy"],
    )
    if cfg["agent"] == "pg":
        extra = {} if cfg["pong_reset"] is None else {"reset_on_score": bool(cfg["pong_reset"])}
        return agents.AGENTS["pg"](make_env, **common, **extra)
    decay, eps_min = cfg["epsilon_decay"], cfg["epsilon_min"]
    return agents.AGENTS[cfg["agent"]](
        make_env,
        epsilon=cfg["epsilon"],
        update_freq=cfg["update_freq"],
        update_nsamp=cfg["update_size"],
        replay=cfg["replay"],
        batch_size=cfg["batch_size"],
        max_memory=cfg["max_mem"],
        epsilon_schedule=lambda episode, eps: max(eps_min, eps * (1.0 - decay)),
        epsilon_min=eps_min,
        epsilon_decay_steps=cfg["exploration_steps"],
        target_update_freq=cfg["target_update"],
        learning_starts=cfg["learning_starts"],
        ema_steps=cfg["ema"],
        loss=cfg["loss"],
        **common,
    )


# -- running -----------------------------------------------------------------
class Reporter:
    """Per-episode lines (or a line every 10 s with -q), progress.csv and the live plot."""

    def __init__(self, cfg, run_dir, agent, rows):
        from kerlym import runs
        from kerlym.stats import ProgressCSV

        self.cfg, self.run_dir, self.agent, self.rows = cfg, run_dir, agent, rows
        self.csv = ProgressCSV(os.path.join(run_dir, runs.PROGRESS))
        self.plot = None
        if cfg["plots"]:
            from kerlym.plots import TrainingPlot

            self.plot = TrainingPlot(
                cfg["agent"],
                cfg["env"],
                os.path.join(run_dir, runs.PLOT),
                cfg["plot_rate"],
                live=True,
                values=cfg["agent"] != "pg",
            )
            self.plot.update(rows)
        self.t0, self.steps0 = time.perf_counter(), agent.total_steps
        self.last_line = self.t0
        self.next_checkpoint = (agent.total_steps // cfg["checkpoint_every"] + 1) * cfg["checkpoint_every"]
        every = cfg["eval_every"]
        self.next_eval = None if every is None else (agent.total_steps // every + 1) * every

    def speed(self) -> float:
        return (self.agent.total_steps - self.steps0) / max(time.perf_counter() - self.t0, 1e-9)

    def status(self) -> str:
        recent = [r["reward"] for r in self.rows[-100:]]
        mean = sum(recent) / len(recent) if recent else float("nan")
        eps = getattr(self.agent, "epsilon", None)
        eps_text = f"  epsilon {eps:.3f}" if eps is not None else ""
        return (
            f"{self.agent.total_steps} steps  {self.speed():.0f} steps/s{eps_text}  mean reward (last 100) {mean:.2f}"
        )

    def on_step(self, agent) -> None:
        now = time.perf_counter()
        if now - self.last_line >= 10:
            self.last_line = now
            print(f"   ... {self.status()}", flush=True)
        if agent.total_steps >= self.next_checkpoint:
            self.checkpoint()
        if self.next_eval is not None and agent.total_steps >= self.next_eval:
            self.evaluate()

    def evaluate(self) -> None:
        """Greedy evaluation: a row in evaluations.csv, and best.keras when it is the best so far."""
        from kerlym import runs

        every = self.cfg["eval_every"]
        self.next_eval = (self.agent.total_steps // every + 1) * every
        returns = self.agent.evaluate(self.cfg["eval_episodes"])
        mean, std = float(returns.mean()), float(returns.std())
        best = runs.record_evaluation(self.run_dir, self.agent, mean, std)
        print(
            f"   eval at {self.agent.total_steps} steps: {mean:.2f} ± {std:.2f}"
            + ("  (best so far: saved best.keras)" if best else ""),
            flush=True,
        )

    def on_episode(self, agent, row) -> None:
        self.rows.append(row)
        self.csv.write(row)
        if not self.cfg["quiet"]:
            print(
                f" * Episode {row['episode']:08d}  Frame {row['length']:6d}  Reward {row['reward']:9.2f}  "
                f"Loss {row['loss']:.4g}  | {self.status()}",
                flush=True,
            )
        if self.plot is not None and row["episode"] % self.cfg["plot_rate"] == 0:
            self.plot.update(self.rows)

    def checkpoint(self) -> str:
        from kerlym import runs

        path = runs.save_checkpoint(self.run_dir, self.agent, include_memory=self.cfg["save_memory"])
        every = self.cfg["checkpoint_every"]
        self.next_checkpoint = (self.agent.total_steps // every + 1) * every
        return path

    def close(self) -> None:
        if self.plot is not None:
            self.plot.update(self.rows)
            self.plot.close()
        self.csv.close()


def write_submission(cfg, run_dir, agent, stats_envs) -> str:
    """The -S results bundle: episode statistics, a greedy evaluation and videos."""
    import numpy as np

    out = os.path.join(run_dir, "submission")
    os.makedirs(out, exist_ok=True)
    train_env = stats_envs[0] if stats_envs and agent.concurrency == 1 else None
    if train_env is not None:  # Gymnasium's RecordEpisodeStatistics around the env that trained
        episode_stats = {
            "source": "RecordEpisodeStatistics",
            "returns": [float(x) for x in train_env.return_queue],
            "lengths": [int(x) for x in train_env.length_queue],
            "times": [float(x) for x in train_env.time_queue],
        }
    else:  # -c N: the copies step in other processes or threads; the agent's own rows count the same episodes
        episode_stats = {
            "source": "kerlym episode rows",
            "returns": [float(r["reward"]) for r in agent.episodes],
            "lengths": [int(r["length"]) for r in agent.episodes],
            "times": [],  # episodes of different copies overlap in time
        }
    with open(os.path.join(out, "episode_statistics.json"), "w") as f:
        json.dump(episode_stats, f)
    video_note = _record_videos(cfg, agent, os.path.join(out, "videos"))
    returns = agent.evaluate(cfg["eval_episodes"])
    evaluation = {
        "env": cfg["env"],
        "agent": cfg["agent"],
        "total_steps": agent.total_steps,
        "episodes": len(returns),
        "returns": returns.tolist(),
        "mean": float(np.mean(returns)),
        "std": float(np.std(returns)),
        "videos": video_note,
    }
    with open(os.path.join(out, "evaluation.json"), "w") as f:
        json.dump(evaluation, f, indent=2)
    print(f"greedy evaluation over {len(returns)} episodes: {evaluation['mean']:.2f} ± {evaluation['std']:.2f}")
    return out


def _record_videos(cfg, agent, folder, episodes=3) -> str:
    import gymnasium as gym

    from kerlym import preproc

    env = None
    if not _has_display():
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame renders off-screen
    try:
        env = gym.make(cfg["env"], render_mode="rgb_array")
        env = gym.wrappers.RecordVideo(env, folder, episode_trigger=lambda i: True, disable_logger=True)
        env = preproc.apply(env, preproc.PREPROCESSORS[cfg["preprocessor"]])
        agent.evaluate(episodes, env=env)
    except Exception as e:  # no rgb_array rendering, a missing renderer or video writer
        msg = first_line(e)
        print(f"kerlym: note: no evaluation videos: {msg}", file=sys.stderr)
        return f"not recorded: {msg}"
    finally:
        if env is not None:
            env.close()
    return folder


def train(cfg: dict, run_dir: str, resume_from: str | None) -> int:
    from kerlym import runs
    from kerlym.stats import read_progress, rewrite_progress

    stats_envs: list | None = [] if cfg["submit"] else None
    with native_stderr_silenced():
        agent = build_agent(cfg, make_env_factory(cfg, stats_envs))
    rows = []
    if resume_from:
        with native_stderr_silenced():
            runs.restore_checkpoint(resume_from, agent)
        progress = os.path.join(run_dir, runs.PROGRESS)
        rows = read_progress(progress, until_step=agent.total_steps)
        rewrite_progress(progress, rows)  # drop episodes after the checkpoint: they will be re-run
        print(f"resumed {run_dir} at step {agent.total_steps}, episode {agent.episode}")
    runs.write_config(run_dir, cfg)
    print(f"run folder: {run_dir}")
    reporter = Reporter(cfg, run_dir, agent, rows)

    interrupted = []

    def on_sigint(signum, frame):
        interrupted.append(signum)
        agent.request_stop()

    previous = {s: signal.signal(s, on_sigint) for s in (signal.SIGINT, signal.SIGTERM)}
    steps_left = None if cfg["steps"] is None else max(0, cfg["steps"] - agent.total_steps)
    episodes_left = None if cfg["episodes"] is None else max(0, cfg["episodes"] - agent.episode)
    try:
        if steps_left != 0 and episodes_left != 0:
            agent.learn(
                max_steps=steps_left,
                max_episodes=episodes_left,
                callback=reporter.on_episode,
                step_callback=reporter.on_step,
            )
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        path = reporter.checkpoint()
        reporter.close()
    if interrupted:
        print(f"\ninterrupted at step {agent.total_steps}: checkpoint saved in {path}")
        print(f"continue with: kerlym --resume {run_dir}")
    else:
        print(f"finished at step {agent.total_steps}; checkpoint saved in {path}")
    if cfg["plots"]:
        print(f"plot: {os.path.join(run_dir, runs.PLOT)}")
    if cfg["submit"] and not interrupted:
        print(f"results bundle: {write_submission(cfg, run_dir, agent, stats_envs)}")
    agent.close()
    return 0


def check_fixed_settings(args: argparse.Namespace, cfg: dict) -> None:
    """With --resume or --play, a setting the run fixed (not in RUNTIME_OPTIONS) may be repeated, not changed."""
    for key, value in vars(args).items():
        if value is None or key in RUNTIME_OPTIONS or key in ("resume", "play", "best", "outdir"):
            continue
        if key == "seed" and args.play:  # seeds the evaluation episodes of --play
            continue
        same = value == cfg.get(key) or (key == "ema" and value == 0 and cfg.get(key) is None)  # 0: no average
        if not same:
            flags = {a.dest: "/".join(a.option_strings) for a in build_parser()._actions}
            changeable = ", ".join(flags[k].split("/")[-1] for k in RUNTIME_OPTIONS)
            raise UsageError(
                f"{flags[key]} {value} differs from this run's {key} ({cfg.get(key)}); a saved run keeps its "
                f"settings, except {changeable}"
            )


def saved_config(run_dir: str, overrides: dict) -> dict:
    """A saved run's settings (defaults for any it lacks), with ``overrides`` applied."""
    from kerlym import runs

    saved = runs.read_config(run_dir)
    if not isinstance(saved, dict):
        raise runs.CheckpointError(f"{os.path.join(run_dir, runs.CONFIG)} is corrupt: not a JSON object")
    cfg = {**DEFAULTS, **saved, **overrides}
    if cfg["net"] is None:
        cfg["net"] = default_net(cfg["agent"])
    return cfg


def play(cfg: dict, model_path: str, seed: int | None = None) -> int:
    """Greedy episodes with a saved agent (a checkpoint folder or a ``.keras`` file); no training, nothing written."""
    import numpy as np

    from kerlym import runs

    with native_stderr_silenced():
        agent = build_agent(cfg, make_env_factory(cfg))
        weights = runs.greedy_weights(model_path)
        try:
            agent.greedy_model.set_weights(weights)
        except ValueError as e:
            raise runs.CheckpointError(f"{model_path} does not match this agent's network: {first_line(e)}") from None
    returns = agent.evaluate(cfg["eval_episodes"], seed=seed)
    agent.close()
    for i, r in enumerate(returns):
        print(f" * Episode {i + 1}: reward {r:.2f}")
    print(f"mean reward {np.mean(returns):.2f} ± {np.std(returns):.2f} over {len(returns)} episodes ({model_path})")
    return 0


@contextlib.contextmanager
def native_stderr_silenced():
    """Silence what native libraries write to stderr while Keras and the agent start up.

    TensorFlow's C++ start-up logs ("Could not find cuda drivers", CPU
    feature notes) ignore ``TF_CPP_MIN_LOG_LEVEL`` and would bury kerlym's
    own one-line messages. Python exceptions still surface normally: they
    are printed after the block has restored stderr.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.resume and args.play:
            raise UsageError("--resume and --play cannot be used together")
        saved_dir = args.resume or args.play
        if saved_dir:
            from kerlym import runs

            overrides = {k: getattr(args, k) for k in RUNTIME_OPTIONS if getattr(args, k) is not None}
            cfg = saved_config(saved_dir, overrides)
            check_fixed_settings(args, cfg)
            if args.best and not args.play:
                raise UsageError("--best goes with --play")
            checkpoint = runs.best_model(saved_dir) if args.best else runs.latest_checkpoint(saved_dir)
            validate(cfg)
            check_env(cfg, make_env_factory(cfg))
            if args.play:
                return play(cfg, checkpoint, seed=args.seed)
            return train(cfg, saved_dir, checkpoint)
        cfg = resolve_config(args)
        validate(cfg)
        check_env_id(cfg["env"])
        check_env(cfg, make_env_factory(cfg))
        from kerlym import runs

        # Every check above ran before the run folder exists, so bad input never leaves one behind.
        return train(cfg, runs.new_run_dir(cfg["outdir"], cfg["env"], cfg["agent"]), None)
    except UsageError as e:
        print(f"kerlym: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from kerlym.runs import CheckpointError

        if isinstance(e, CheckpointError):
            print(f"kerlym: error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
