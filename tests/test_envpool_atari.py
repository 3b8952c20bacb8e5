"""``--vector_env envpool``: EnvPool's Atari frames against the atari preprocessor's, its episodes, and its refusals."""

import os
import subprocess
import sys

import numpy as np
import pytest

from kerlym.envs import envpool_atari

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
ENV.pop("DISPLAY", None)


def needs_envpool():
    return pytest.importorskip("envpool", reason='EnvPool is an extra: pip install ".[envpool]"')


def test_envpool_ids_of_ale_games():
    assert envpool_atari.envpool_id("pong") == "Pong-v5"
    assert envpool_atari.envpool_id("space_invaders") == "SpaceInvaders-v5"


def test_envpool_settings_follow_the_id_as_the_atari_preprocessor_does():
    noframeskip = envpool_atari.envpool_kwargs("PongNoFrameskip-v4")
    v5 = envpool_atari.envpool_kwargs("ALE/Breakout-v5")
    assert noframeskip["repeat_action_probability"] == 0.0 and v5["repeat_action_probability"] == 0.25
    assert noframeskip["full_action_space"] is False
    # 108,000 emulator frames at 4 per step; the atari preprocessor's frame skip and max-pool, no frames stacked.
    assert noframeskip["max_episode_steps"] == 27_000
    same = dict(frame_skip=4, noop_max=30, img_height=84, img_width=84, gray_scale=True, stack_num=1)
    assert {k: v5[k] for k in same} == same
    assert not (v5["episodic_life"] or v5["reward_clip"] or v5["use_fire_reset"])


def test_without_envpool_the_refusal_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "envpool", None)
    why = envpool_atari.refusal("PongNoFrameskip-v4", "atari")
    assert why == '--vector_env envpool needs EnvPool: pip install ".[envpool]"'


@pytest.mark.parametrize(
    "flags, message",
    [
        (["-e", "CartPole-v1"], "steps ALE (Atari) ids such as PongNoFrameskip-v4; CartPole-v1 is not one"),
        (["-e", "PongNoFrameskip-v4", "-E", "karpathy"], "use -E atari, or --vector_env async for the karpathy"),
        (["-e", "PongNoFrameskip-v4", "-E", "none"], "gives the atari preprocessor's frames"),
        (["-e", "PongNoFrameskip-v4", "-E", "atari", "--env-kwargs", "mode=1"], "it does not take --env_kwargs"),
        (["-e", "PongNoFrameskip-v4", "-E", "atari", "-S"], "it does not take -S/--submit"),
    ],
)
def test_combinations_envpool_cannot_give_are_refused_in_one_line(tmp_path, flags, message):
    out = subprocess.run(
        [sys.executable, "-m", "kerlym", *flags, "-a", "dqn", "--vector_env", "envpool", "--outdir", str(tmp_path)],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("kerlym: error: ") and message in out.stderr, out.stderr
    assert os.listdir(tmp_path) == []  # refused before a run folder exists


@pytest.mark.parametrize("env_id", ["PongNoFrameskip-v4", "ALE/Breakout-v5"])
def test_frames_are_the_atari_preprocessors_pixel_for_pixel(env_id):
    needs_envpool()
    from kerlym import preproc
    from kerlym.envs import make_env

    single = preproc.atari(make_env(env_id))
    frame, _ = single.reset(seed=0)
    envs = envpool_atari.EnvPoolVectorEnv(env_id, 2)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, *single.observation_space.shape) == (2, 84, 84, 1)
    assert obs.dtype == single.observation_space.dtype == np.uint8
    # The first screen, the same grayscale, resize and layout (a transposed frame would differ by 30+ levels).
    np.testing.assert_array_equal(obs[0], frame)
    envs.close()
    single.close()


def test_an_episode_is_the_whole_game_and_restarts_within_the_step():
    needs_envpool()
    envs = envpool_atari.EnvPoolVectorEnv("ALE/Breakout-v5", 2)
    obs, info = envs.reset(seed=1)
    assert list(info["lives"]) == [5, 5]
    rng = np.random.default_rng(0)
    returns, lengths, lives_seen = np.zeros(2), np.zeros(2, int), [set(), set()]
    for _ in range(2000):
        obs, rewards, terminated, truncated, info = envs.step(rng.integers(0, 4, 2))
        returns += rewards
        lengths += 1
        for i in range(2):
            lives_seen[i].add(int(info["lives"][i]))
        done = np.flatnonzero(terminated | truncated)
        if done.size:
            i = done[0]
            break
    else:
        raise AssertionError("random play should lose Breakout's five lives within 2000 steps")
    # Losing a life does not end the episode: it ends with the game, after every life is lost.
    assert terminated[i] and info["lives"][i] == 0 and lives_seen[i] == {0, 1, 2, 3, 4, 5}
    assert info["elapsed_step"][i] == lengths[i]
    assert returns[i] == int(returns[i]) >= 0  # Breakout's rewards are unclipped whole points (1, 4 or 7 a brick)
    # The new game's first frame is in place of the last one, which is in final_obs.
    assert (info["final_obs"][i] != obs[i]).any()
    obs2, *_ = envs.step(np.zeros(2, int))
    assert envs.env is not None and obs2.shape == (2, 84, 84, 1)
    envs.close()


@pytest.mark.slow
def test_episode_rows_and_replay_frames_come_through_the_runner():
    needs_envpool()
    from kerlym.agents import D2QN
    from kerlym.preproc import atari

    agent = D2QN(
        "ALE/Breakout-v5", preprocessor=atari, nframes=4, concurrency=2, vector_env="envpool", seed=0,
        learning_starts=10**6, max_memory=5000, modelfactory="simple_cnn", epsilon=1.0, epsilon_min=1.0,
    )  # fmt: skip
    envs = agent.vector_env()
    assert isinstance(envs, envpool_atari.EnvPoolVectorEnv)
    seen = []  # every reward and episode end EnvPool gave, per env
    step = envs.step

    def spy(actions):
        out = step(actions)
        seen.append((out[1].copy(), (out[2] | out[3]).copy()))
        return out

    envs.step = spy
    rows = agent.learn(max_steps=800, verbose=0, eval_episodes=0)
    expected = []
    for i in range(2):
        total, length = 0.0, 0
        for rewards, done in seen:
            total, length = total + rewards[i], length + 1
            if done[i]:
                expected.append((total, length))
                total, length = 0.0, 0
    assert len(rows) >= 2
    assert sorted((r["reward"], r["length"]) for r in rows) == sorted(expected)
    # One uint8 copy of each frame; the four-frame states are stacked from it.
    assert agent.memory.frames.dtype == np.uint8 and agent.memory.frames.shape[1:] == (84, 84, 1)
    b = agent.memory.sample(8, np.random.default_rng(0))
    assert b.states.shape == (8, 4 * 84 * 84)
    agent.close()


def test_play_and_export_of_an_envpool_run_take_what_training_with_envpool_refuses():
    from kerlym.config import ConfigError
    from kerlym.make import check_env, configure

    run, config = configure("PongNoFrameskip-v4", "dqn", preprocessor="atari", vector_env="envpool", submit=True)
    with pytest.raises(ConfigError, match="it does not take -S/--submit"):
        check_env(run, config)
    check_env(run, config, training=False)  # --play RUN -S plays and records through Gymnasium's own env


def test_the_python_api_refuses_what_envpool_cannot_give_when_its_envs_are_made():
    from kerlym.agents import DQN
    from kerlym.preproc import karpathy_preproc

    agent = DQN("PongNoFrameskip-v4", preprocessor=karpathy_preproc, vector_env="envpool", learning_starts=10**6)
    with pytest.raises(ValueError, match="--vector_env async for the karpathy_preproc preprocessor"):
        agent.vector_env()
    agent.close()
