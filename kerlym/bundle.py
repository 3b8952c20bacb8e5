"""The ``-S`` results bundle: episode statistics, a greedy evaluation and videos, under ``RUN_DIR/submission``."""

from __future__ import annotations

import json
import os
import sys

from kerlym._io import first_line


def has_display() -> bool:
    """Whether windows can open here (``-R``): on macOS and Windows, elsewhere with DISPLAY or WAYLAND_DISPLAY."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def write_bundle(run, run_dir, agent, stats_envs, evaluation: dict | None = None) -> str:
    """The -S results bundle: episode statistics, a greedy evaluation and videos.

    Args:
        run: the run's config.
        run_dir: the run folder; the bundle goes in its ``submission`` folder.
        agent: the agent; its episode rows are the training's statistics where Gymnasium's
            RecordEpisodeStatistics did not see them all (a resumed run, ``-c N``, ``--play``).
        stats_envs: the RecordEpisodeStatistics wrappers of the training env, or ``None``.
        evaluation: the greedy evaluation already made (:func:`kerlym.session.evaluation_record`: the end of
            training, or ``--play``'s); else one is run here.
    """
    import numpy as np

    out = os.path.join(run_dir, "submission")
    os.makedirs(out, exist_ok=True)
    train_env = stats_envs[0] if stats_envs and agent.concurrency == 1 else None
    rows = [float(r["reward"]) for r in agent.episodes]
    seen = [float(x) for x in train_env.return_queue] if train_env is not None else []
    if train_env is not None and (len(seen) != len(rows) or not np.allclose(seen, rows)):
        train_env = None  # a resumed run: the wrapper saw only this session's episodes; the rows hold them all
    if train_env is not None:  # Gymnasium's RecordEpisodeStatistics around the env that trained
        episode_stats = {
            "source": "RecordEpisodeStatistics",
            "returns": [float(x) for x in train_env.return_queue],
            "lengths": [int(x) for x in train_env.length_queue],
            "times": [float(x) for x in train_env.time_queue],
        }
    else:  # -c N (copies step elsewhere), a resumed run, --play: the agent's own rows count the same episodes
        episode_stats = {
            "source": "kerlym episode rows",
            "returns": [float(r["reward"]) for r in agent.episodes],
            "lengths": [int(r["length"]) for r in agent.episodes],
            "times": [],  # episodes of different copies overlap in time
        }
    with open(os.path.join(out, "episode_statistics.json"), "w") as f:
        json.dump(episode_stats, f)
    video_note = record_videos(run, agent, os.path.join(out, "videos"))
    if evaluation is None:
        from kerlym.checkpoints import evaluation_record, weights_label

        evaluation = evaluation_record(run, agent, agent.evaluate(run.eval_episodes), weights_label(agent))
    evaluation = {**evaluation, "videos": video_note}
    with open(os.path.join(out, "evaluation.json"), "w") as f:
        json.dump(evaluation, f, indent=2)
    print(
        f"greedy evaluation over {evaluation['episodes']} episodes: {evaluation['mean']:.2f} ± {evaluation['std']:.2f}"
    )
    return out


def record_videos(run, agent, folder, episodes: int = 3) -> str:
    """Record greedy episodes as videos in ``folder``: ``episodes``, at most the run's ``eval_episodes``.

    Returns the folder, or why no video was made.
    """
    episodes = min(episodes, run.eval_episodes)
    import gymnasium as gym

    from kerlym import preproc
    from kerlym.envs import make_env

    env = None
    if not has_display():
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame renders off-screen
    try:
        env = make_env(run.env, "rgb_array", run.env_kwargs, run.gym_packages)
        env = gym.wrappers.RecordVideo(env, folder, episode_trigger=lambda i: True, disable_logger=True)
        env = preproc.apply(env, agent.preprocessor)
        agent.evaluate(episodes, env=env)
    except Exception as e:  # no rgb_array rendering, a missing renderer or video writer
        msg = first_line(e)
        print(f"kerlym: note: no evaluation videos: {msg}", file=sys.stderr)
        return f"not recorded: {msg}"
    finally:
        if env is not None:
            env.close()
    return folder
