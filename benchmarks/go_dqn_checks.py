"""Why the Go9x9-v0 DQN preset loses to `random` more than a random player does: the checks behind benchmarks/README.md.

    KERAS_BACKEND=jax python benchmarks/go_dqn_checks.py            # seed 0, the preset's 100k steps
    KERAS_BACKEND=jax python benchmarks/go_dqn_checks.py --agent ddqn discount=0.95

Trains the preset (``kerlym -e Go9x9-v0 -a AGENT --preset --seed S``, changed by ``KEY=VALUE`` settings)
while logging every observation and action mask the env returns, then checks the plumbing:

- the replay memory's frames and stored next-state masks equal the env's, slot by slot;
- every stored transition's reward and ``terminated`` equal the env's step that produced it;
- one compiled update's loss equals the Huber loss of ``Q(s, a)`` against
  ``r + discount * (1 - terminated) * max over legal a' of Q_target(s', a')`` computed here in NumPy
  (with ``n_step=N``, the batch's n-step sums and ``discount ** n``);

and then what the greedy policy does in 100 games against ``random`` (seeded as
``benchmarks/env_results.py`` seeds them): every move is played with ``illegal_move_mode="raise"``,
how the games end, the same policy with pass and resign masked out while a point is legal, a random
legal player that never passes on the same games, the mean of each episode's greedy max-Q over
training, and the Q-values at the empty board (a true value lies in [-1, 1]: the only reward is the
+1/-1 at the game's end). Prints only.
"""

from __future__ import annotations

import argparse
import collections
import time

import gymnasium as gym
import numpy as np

import kerlym
from kerlym.config import ConfigError, parse_settings
from kerlym.envs import go

PASS, RESIGN = 81, 82


def logging_env(log: list) -> None:
    """Patch GoEnv so that every reset and step appends ``(kind, obs, mask, reward, terminated)`` to ``log``."""
    reset, result = go.GoEnv.reset, go.GoEnv._result

    def logged_reset(self, **kwargs):
        obs, info = reset(self, **kwargs)
        log.append(("reset", obs.copy(), info["action_mask"].astype(bool), 0.0, False))
        return obs, info

    def logged_result(self, reward):
        out = result(self, reward)
        log.append(("step", out[0].copy(), out[4]["action_mask"].astype(bool), reward, out[2]))
        return out

    go.GoEnv.reset, go.GoEnv._result = logged_reset, logged_result


def check_replay(memory, log: list) -> None:
    """The memory's surviving slots against the env's log (the memory's write ``w`` is the log's entry ``w``)."""
    assert memory.writes == len(log), (memory.writes, len(log))
    slot_log, bad_frames, bad_masks = {}, 0, 0
    for w in range(max(0, memory.writes - memory.capacity), memory.writes):
        i = w % memory.capacity
        slot_log[i] = log[w]
        bad_frames += not np.array_equal(memory.frames[i], log[w][1])
        bad_masks += not np.array_equal(memory.masks[i], log[w][2])
    bad_transitions = 0
    for i in np.flatnonzero(memory.valid):
        kind, _, _, reward, terminated = slot_log[memory.next[i]]
        bad_transitions += kind != "step" or memory.rewards[i] != reward or memory.terminated[i] != terminated
    ends = memory.valid & memory.terminated
    print(f"replay: {len(slot_log)} slots, {bad_frames} frames and {bad_masks} masks differ from the env's;")
    print(f"  {int(memory.valid.sum())} transitions, {bad_transitions} with a reward or end differing from the env's;")
    values, counts = np.unique(memory.rewards[ends], return_counts=True)
    print("  terminal rewards:", ", ".join(f"{v:+g} x{n}" for v, n in zip(values, counts)))


def check_update(agent) -> None:
    """One compiled update's loss against the same loss computed here."""
    batch = agent.sample_update()
    s, a, r, s2, d, *rest, legal2 = (x[0] for x in batch)  # the preset's update is one minibatch
    discount = agent.discount ** rest[0] if rest else agent.discount  # n_step > 1: gamma ** rewards summed
    q = np.asarray(agent.model(s.astype(np.float32)))
    q_next = np.asarray(agent.target_model(s2.astype(np.float32)))
    if agent.name == "ddqn":
        best = np.where(legal2, np.asarray(agent.model(s2.astype(np.float32))), -np.inf).argmax(1)
        v_next = q_next[np.arange(len(best)), best]
    else:
        v_next = np.where(legal2, q_next, -np.inf).max(1)
    y = r + discount * (1 - d) * v_next
    e = q[np.arange(len(a)), a] - y
    huber = np.mean(np.where(np.abs(e) <= 1, 0.5 * e**2, np.abs(e) - 0.5))
    print(f"update: loss by hand {huber:.6g}, compiled {float(agent.steps.update(batch)[0]):.6g}")


def play(policy, games: int, seed: int) -> str:
    """``policy(obs, mask, env) -> action`` against ``random`` for ``games`` games; its win rate and how games ended."""
    env = gym.make("Go9x9-v0", opponent="random", illegal_move_mode="raise").unwrapped
    ends, passes = collections.Counter(), 0
    for g in range(games):
        obs, info = env.reset(seed=10_000 + 1000 * seed + g)
        done = False
        while not done:
            action = policy(obs, info["action_mask"].astype(bool), env)
            passes += action == PASS
            obs, reward, done, _, info = env.step(action)
        ends[(info["end"], "won" if reward > 0 else "lost")] += 1
    wins = sum(n for (_, result), n in ends.items() if result == "won")
    listed = ", ".join(f"{end} {result} {n}" for (end, result), n in sorted(ends.items()))
    return f"wins {wins}/{games}; {passes} passes; ends: {listed}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agent", default="dqn", choices=["dqn", "ddqn"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--games", type=int, default=100)
    parser.add_argument("settings", nargs="*", help="KEY=VALUE changes to the preset")
    args = parser.parse_args()
    try:
        settings = parse_settings(args.settings)
    except ConfigError as e:
        parser.error(str(e))

    log: list = []
    logging_env(log)
    run, cfg = kerlym.configure("Go9x9-v0", args.agent, preset=True, cli_defaults=True, seed=args.seed, **settings)
    agent = kerlym.make(run, cfg)
    start = time.perf_counter()
    agent.learn(max_steps=run.steps, verbose=0)
    print(f"{args.agent} {settings or ''} seed {args.seed}: {run.steps} steps in {time.perf_counter() - start:.0f} s")
    check_replay(agent.memory, log)
    check_update(agent)

    for lo in range(0, run.steps, 20_000):
        rows = [r for r in agent.episodes if lo < r["total_steps"] <= lo + 20_000]
        max_q = [r["max_q"] for r in rows if np.isfinite(r["max_q"])]
        mean_return = np.mean([r["reward"] for r in rows])
        span = f"{lo // 1000}k-{(lo + 20_000) // 1000}k"
        print(f"  steps {span}: mean max-Q {np.mean(max_q):.2f}, return {mean_return:+.2f}")
    obs, _ = gym.make("Go9x9-v0", opponent="random").reset(seed=0)
    q = np.asarray(agent.act(obs.reshape(1, -1), explore=False)[1])[0]
    points = f"{q[:PASS].min():.2f} to {q[:PASS].max():.2f}"
    print(f"empty board: Q(pass) {q[PASS]:.2f}, Q(resign) {q[RESIGN]:.2f}, Q(points) {points}")

    def greedy(obs, mask, env):
        return int(agent.act(obs.reshape(1, -1), explore=False, masks=mask.reshape(1, -1))[0][0])

    def greedy_playing_on(obs, mask, env):
        mask = mask.copy()
        mask[RESIGN] = False
        mask[PASS] = not mask[:PASS].any()
        return greedy(obs, mask, env)

    rng = np.random.default_rng(args.seed)

    def random_playing_on(obs, mask, env):
        points = np.flatnonzero(mask[:PASS])
        return int(rng.choice(points)) if len(points) else PASS

    print("greedy:", play(greedy, args.games, args.seed))
    print("greedy, no pass or resign while a point is legal:", play(greedy_playing_on, args.games, args.seed))
    print("random legal point, no pass or resign:", play(random_playing_on, args.games, args.seed))
    agent.close()


if __name__ == "__main__":
    main()
