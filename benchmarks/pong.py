"""Learning Pong from pixels on this CPU: how far an agent gets in a time budget.

    python benchmarks/pong.py --agent dqn --minutes 115                  # train, then summarise
    KERAS_BACKEND=jax python benchmarks/pong.py --agent pg --minutes 55
    python benchmarks/pong.py --agent ppo --minutes 85                   # TensorFlow: the fast backend here
    python benchmarks/pong.py --agent dqn --run runs/PongNoFrameskip-v4-dqn-...   # summarise a run
    python benchmarks/pong.py --agent dqn --minutes 75 dtype_policy=mixed_bfloat16 --tag bf16

``--agent dqn`` trains ``kerlym -e PongNoFrameskip-v4 -a dqn --preset`` (the Nature
network on 4 stacked 84x84 frames from Gymnasium's AtariPreprocessing, see
``kerlym/presets.py``); ``--agent pg`` runs ``examples/pg_pong.sh`` (Karpathy's
setup: 80x80 binary difference frames, a 200-unit policy network, RMSprop 1e-3,
the return reset at each point); ``--agent ppo`` and ``--agent a2c`` train their
Pong presets (the RL Zoo's ``atari`` entries: the Nature-CNN actor-critic over
ale-py's vector env). Each is stopped with Ctrl-C (SIGINT) after
the time budget, which checkpoints the run. Settings given as ``KEY=VALUE``
(:mod:`kerlym.config` field names; values read as Python literals, else as
strings) are added to the command as its flags. The summary reports Karpathy's running reward (an exponential
average, 0.99 per episode, started at -21) and the steps at which the 20-episode
mean first passed -19, -15, -10, 0 and +10, and writes the curve to
``benchmarks/results/pong_<agent>[_<tag>].png``.
"""

import argparse
import csv
import glob
import os
import signal
import subprocess
import sys

import numpy as np
from results import parse_settings, split_settings

HERE = os.path.dirname(os.path.abspath(__file__))
PRESET_AGENTS = ("dqn", "a2c", "ppo")  # trained as kerlym -e PongNoFrameskip-v4 -a AGENT --preset
COMMANDS = {
    "pg": ["bash", os.path.join(HERE, "..", "examples", "pg_pong.sh")],
    **{a: ["kerlym", "-e", "PongNoFrameskip-v4", "-a", a, "--preset", "-P", "-F", "10"] for a in PRESET_AGENTS},
}
ENV_IDS = {"pg": "Pong-v0", **{a: "PongNoFrameskip-v4" for a in PRESET_AGENTS}}


def command_flags(settings: dict) -> list[str]:
    """The ``kerlym`` command's flags that give ``settings`` (config field names), e.g. ``["--max_mem", "50000"]``.

    Raises:
        ValueError: a name that is no setting of the command (the message is one line).
    """
    from dataclasses import fields

    from kerlym import config

    classes = (config.RunConfig, config.DQNConfig, config.PGConfig, config.PPOConfig)
    known = {f.name: f for cls in classes for f in fields(cls)}
    flags = []
    for key, value in settings.items():
        if key not in known or not known[key].metadata.get("flags"):
            raise ValueError(f"{key!r} is no setting of the kerlym command")
        flag = known[key].metadata["flags"][-1]
        if known[key].metadata.get("cli_type") == "01":
            flags += [flag, str(int(value))]
        elif isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, str(value)]
    return flags


def train(agent: str, minutes: float, outdir: str, seed: int, flags: list[str]) -> str:
    cmd = [*COMMANDS[agent], "--seed", str(seed), "-q", "--outdir", outdir, "--checkpoint_every", "100000", *flags]
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        proc.wait(timeout=minutes * 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # the CLI saves a checkpoint and exits 0
        proc.wait()
    return sorted(glob.glob(os.path.join(outdir, f"{ENV_IDS[agent]}-{agent}-*")))[-1]


def running_reward(rewards: np.ndarray) -> np.ndarray:
    out, value = np.empty(len(rewards)), -21.0
    for i, r in enumerate(rewards):
        value = 0.99 * value + 0.01 * r
        out[i] = value
    return out


def summarise(agent: str, run: str, tag: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(os.path.join(run, "progress.csv")) as f:
        rows = list(csv.DictReader(f))
    rewards = np.array([float(r["reward"]) for r in rows])
    steps = np.array([int(r["total_steps"]) for r in rows])
    running = running_reward(rewards)
    hours = float(rows[-1]["wall_time"]) / 3600
    print(f"run: {run}")
    print(f"episodes {len(rows)}, agent steps {steps[-1]:,} ({ENV_IDS[agent]}), {hours:.2f} h")
    chunk = max(1, len(rewards) // 8)
    for lo in range(0, len(rewards), chunk):
        hi = min(len(rewards), lo + chunk)
        print(
            f"  episodes {lo + 1:5d}-{hi:5d} (to step {steps[hi - 1]:>9,}): mean reward "
            f"{rewards[lo:hi].mean():6.2f} ± {rewards[lo:hi].std():5.2f}, running {running[hi - 1]:6.2f}"
        )
    window = min(20, len(rewards))
    rolling = np.convolve(rewards, np.ones(window) / window, mode="valid")
    for level in (-19, -15, -10, 0, 10):
        above = np.flatnonzero(rolling > level)
        if len(above):
            i = above[0] + window - 1
            minutes = float(rows[i]["wall_time"]) / 60
            print(f"  {window}-episode mean first above {level:+d}: step {steps[i]:,}, {minutes:.0f} min")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, rewards, ".", markersize=3, alpha=0.4, label="episode reward")
    ax.plot(steps[window - 1 :], rolling, label=f"mean of the last {window} episodes")
    ax.plot(steps, running, label="running reward (0.99 EMA)")
    ax.set(
        title=f"{agent.upper()}{f' ({tag})' if tag else ''} on {ENV_IDS[agent]} from pixels "
        f"({hours:.1f} h on 2 CPU cores)",
        xlabel="agent steps" if agent == "pg" else "agent steps (4 emulator frames each)",
        ylabel="reward",
        ylim=(-21.5, 21.5),
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    out = os.path.join(HERE, "results", f"pong_{agent}{'_' + tag if tag else ''}.png")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"curve: {out}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", choices=sorted(COMMANDS), default="dqn")
    p.add_argument("--run", help="summarise this existing run folder instead of training")
    p.add_argument("--minutes", type=float, default=115.0)
    p.add_argument("--outdir", default="runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "settings",
        nargs="*",
        metavar="KEY=VALUE",
        help="settings added to the command, by kerlym.config field name, e.g. dtype_policy=mixed_bfloat16; each "
        "VALUE is read as a Python literal (1e-3, True), else as a string",
    )
    p.add_argument("--tag", default="", help="suffix of the curve's file name")
    items, argv = split_settings(sys.argv[1:])
    args = p.parse_args(argv)
    try:
        flags = command_flags(parse_settings(items + args.settings))
    except ValueError as e:
        p.error(str(e))
    run = args.run or train(args.agent, args.minutes, args.outdir, args.seed, flags)
    summarise(args.agent, run, args.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
