"""Training on search targets (expert iteration, as AlphaZero) against PPO self-play, at the same CPU time.

Both train kerlym's ``actor_critic_mlp`` network (the PPO agent's own model, from the model factory) on an
OpenSpiel game for ``--cpu-seconds`` of the process's CPU time (counted from the built agent, so TensorFlow's
import is not in it; TensorFlow is held to one thread), then play ``--episodes`` games a row against each of
``--opponents`` (seats alternating, game seeds 10,000 on), greedily and with ``--search N`` at play time.

``--method alphazero`` (the prototype): self-play games in which every move is a PUCT search of
``--simulations`` (:func:`kerlym.puct.search`, the network's softmax as prior and its value head as leaf value,
OpenSpiel's Dirichlet noise ``(0.25, --alpha)`` at the root); a move is drawn from the root's visit counts for
the first ``--temperature-moves`` moves of a game, then the most visited. Each position keeps the visit
distribution as the policy target and the game's outcome from the mover's side (+1 / 0 / -1) as the value
target. After every ``--games-per-update`` games the model takes ``--reuse`` times as many Adam minibatch steps
(``model.train_on_batch``, batches of ``--batch-size``) as the new positions fill, sampled from the last
``--window`` games: cross-entropy of the masked policy against the visit distribution plus the value's squared
error. ``--method ppo``: kerlym's PPO self-play as the ``openspiel:tic_tac_toe -a ppo`` preset (8 envs, 4
snapshots), stopped at the same CPU time.

    python benchmarks/alphazero.py --game tic_tac_toe --method alphazero --cpu-seconds 300
    python benchmarks/alphazero.py --game tic_tac_toe --method ppo --cpu-seconds 300
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

import numpy as np


def search_targets_loss(num_actions: int):
    """``y_true = [visit distribution (A), legal (A), outcome]``, ``y_pred = [logits (A), value]``, per row."""
    from keras import ops

    from kerlym.agents.actor_critic import masked_logits

    def loss(y_true, y_pred):
        target, legal, outcome = y_true[:, :num_actions], y_true[:, num_actions:-1], y_true[:, -1]
        log_probs = ops.log_softmax(masked_logits(y_pred[:, :num_actions], legal), axis=-1)
        cross_entropy = -ops.sum(target * log_probs, axis=-1)
        return ops.mean(cross_entropy + ops.square(y_pred[:, -1] - outcome))

    return loss


def mover_outcomes(returns, movers) -> np.ndarray:
    """The value targets: the finished game's ``returns`` from the side of each position's player to move."""
    return np.array([returns[p] for p in movers], dtype=np.float32)


class ExpertIteration:
    """Self-play with a PUCT search at every move, and training toward the search's visit counts and the outcome."""

    def __init__(self, agent, args, seed: int):
        import keras

        from kerlym import puct

        self.agent, self.args, self.puct = agent, args, puct
        self.env = agent.env.unwrapped
        self.game = self.env.game
        self.num_actions = self.game.num_distinct_actions()
        self.model = agent.model
        self.model.compile(
            optimizer=keras.optimizers.Adam(args.learning_rate), loss=search_targets_loss(self.num_actions)
        )
        self.rng = np.random.default_rng(seed)
        self.window = collections.deque(maxlen=args.window)
        self.games = self.positions_seen = self.updates = 0
        state = self.game.new_initial_state()  # the network sees what the agent's own search would give it
        flat = self.flat(self.env.search_observation(state)[None])
        mask = np.zeros((1, self.num_actions), dtype=bool)
        mask[0, state.legal_actions()] = True
        expected = agent._search_positions(self.env.search_observation(state)[None], mask)
        got = self.positions(flat, mask)
        assert np.allclose(expected[0], got[0], atol=1e-5) and np.allclose(expected[1], got[1], atol=1e-5)

    def flat(self, observations):
        return np.asarray(observations, dtype=np.float32).reshape(len(observations), -1)

    def positions(self, observations, masks):
        out = np.asarray(self.model.predict_on_batch(self.flat(observations)), dtype=np.float64)
        return self.puct.masked_softmax(out[:, : self.num_actions], masks), out[:, -1]

    def visits(self, state, seed: int, evaluator=None) -> np.ndarray:
        """The root's visit counts ``[A]`` after a search from ``state`` with the root's Dirichlet noise."""
        a = self.args
        root = self.puct.search(
            state,
            self.positions,
            self.env.search_observation,
            a.simulations,
            seed=seed,
            evaluator=evaluator,
            dirichlet_noise=(0.25, a.alpha),
        )
        return self.puct.visit_counts(root, self.num_actions).astype(np.float64)

    def play_game(self):
        """One self-play game: ``(observations, legal masks, visit distributions, outcomes for the mover)``."""
        a = self.args
        state = self.game.new_initial_state()
        evaluator = self.puct.position_evaluator(self.positions, self.env.search_observation)  # this game's cache
        rows, movers = [], []
        move = 0
        while not state.is_terminal():
            counts = self.visits(state, int(self.rng.integers(2**31)), evaluator)
            target = counts / counts.sum()
            mask = np.zeros(self.num_actions, dtype=bool)
            mask[state.legal_actions()] = True
            rows.append((self.env.search_observation(state).reshape(-1), mask, target))
            movers.append(state.current_player())
            action = (
                int(self.rng.choice(self.num_actions, p=target))
                if move < a.temperature_moves
                else int(np.argmax(counts))
            )
            state.apply_action(action)
            move += 1
        obs, masks, targets = (np.stack(x) for x in zip(*rows))
        return obs, masks, targets, mover_outcomes(state.returns(), movers)

    def train_step(self, new_positions: int) -> float:
        a = self.args
        obs, masks, targets, outcomes = (np.concatenate(x) for x in zip(*self.window))
        loss = 0.0
        for _ in range(max(1, round(a.reuse * new_positions / a.batch_size))):
            idx = self.rng.integers(len(obs), size=min(a.batch_size, len(obs)))
            y = np.concatenate([targets[idx], masks[idx], outcomes[idx, None]], axis=1).astype(np.float32)
            loss = float(self.model.train_on_batch(obs[idx], y))
            self.updates += 1
        return loss

    def train(self, cpu_seconds: float, start: float) -> dict:
        new, loss = 0, float("nan")
        while time.process_time() - start < cpu_seconds:
            game = self.play_game()
            self.window.append(game)
            self.games += 1
            new += len(game[0])
            self.positions_seen += len(game[0])
            if self.games % self.args.games_per_update == 0:
                loss = self.train_step(new)
                new = 0
            if self.games % 100 == 0:
                used = time.process_time() - start
                print(f"  {self.games} games, {self.updates} updates, loss {loss:.3f}, {used:.0f} CPU s", flush=True)
        return {"games": self.games, "positions": self.positions_seen, "updates": self.updates, "loss": loss}


def make_agent(game: str, method: str, seed: int, learning_rate: float):
    import kerlym

    settings = {"modelfactory": "actor_critic_mlp", "nframes": 1, "seed": seed, "env_kwargs": {"player": "alternate"}}
    if method == "ppo" and game == "tic_tac_toe":
        return kerlym.make(f"openspiel:{game}", "ppo", preset=True, steps=10**9, **settings)  # stopped by CPU time
    if method == "ppo":  # connect four: the self-play settings of the README's 400k-step row
        more = {"n_steps": 256, "batch_size": 256, "n_epochs": 4, "self_play_every": 20000}
        return kerlym.make(
            f"openspiel:{game}", "ppo", concurrency=8, vector_env="sync", self_play=4, steps=10**9, **more, **settings
        )
    return kerlym.make(f"openspiel:{game}", "ppo", learning_rate=learning_rate, **settings)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="tic_tac_toe")
    parser.add_argument("--method", choices=("alphazero", "ppo"), default="alphazero")
    parser.add_argument("--cpu-seconds", type=float, default=300.0)
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation games per seed and row")
    parser.add_argument("--search", type=int, default=64)
    parser.add_argument("--opponents", default="random,mcts:200")
    parser.add_argument("--simulations", type=int, default=32, help="alphazero: simulations a training move")
    parser.add_argument("--temperature-moves", type=int, default=4)
    parser.add_argument("--alpha", type=float, default=1.0, help="alphazero: the root's Dirichlet alpha")
    parser.add_argument("--window", type=int, default=500, help="alphazero: replay window, in games")
    parser.add_argument("--games-per-update", type=int, default=8)
    parser.add_argument("--reuse", type=float, default=4.0, help="alphazero: times each position is trained on")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--out", default=None, help="append each row as a JSON line to this file")
    parser.add_argument("--table", default=None, metavar="FILE", help="print the table of --out's rows, then exit")
    return parser


def table(results: list[dict]) -> list[str]:
    """Markdown rows per game, method, opponent and search: win rate and mean return over seeds, pooled counts."""
    from kerlym.stats import wilson_interval

    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["game"], r["method"], r["cpu_budget"], r["opponent"], r["search"]), []).append(r)
    lines = [
        "| game | method | CPU s | opponent | search | seeds | win rate (mean ± std) | mean return (mean ± std) "
        "| wins / draws / losses | pooled win rate, 95% |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (game, method, budget, opponent, search), rows in groups.items():
        rates = np.array([r["win_rate"] for r in rows])
        means = np.array([r["mean"] for r in rows])
        w, d, ls = (sum(r[k] for r in rows) for k in ("wins", "draws", "losses"))
        lo, hi = wilson_interval(w, w + d + ls)
        lines.append(
            f"| {game} | {method} | {budget:.0f} | {opponent} | {search or '-'} | {len(rows)} "
            f"| {rates.mean():.2f} ± {rates.std():.2f} | {means.mean():.2f} ± {means.std():.2f} | {w} / {d} / {ls} "
            f"| {w / (w + d + ls):.2f} ({lo:.2f}-{hi:.2f}) |"
        )
    return lines


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.table:
        with open(args.table) as f:
            print("\n".join(table([json.loads(line) for line in f if line.strip()])))
        return 0
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")  # before TensorFlow's import: one core, as the budget says
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

    from kerlym.envs import make_env
    from kerlym.stats import game_results

    results: list[dict] = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        agent = make_agent(args.game, args.method, seed, args.learning_rate)
        start = time.process_time()
        wall = time.perf_counter()
        if args.method == "alphazero":
            info = ExpertIteration(agent, args, seed).train(args.cpu_seconds, start)
        else:

            def spent(agent, row, start=start):
                return time.process_time() - start >= args.cpu_seconds

            agent.learn(callback=spent, verbose=0, eval_episodes=0)
            info = {"steps": agent.total_steps, "episodes": agent.episode}
        info.update(cpu_s=round(time.process_time() - start, 1), wall_s=round(time.perf_counter() - wall, 1))
        print(f"seed {seed} {args.method} trained: {info}", flush=True)
        for opponent in args.opponents.split(","):
            for search in (0, args.search):
                env = make_env(f"openspiel:{args.game}", env_kwargs={"opponent": opponent, "player": "alternate"})
                returns = agent.evaluate(args.episodes, env=env, seed=10_000, search=search)
                env.close()
                result = {**game_results(returns), "mean": float(returns.mean())}
                print(f"seed {seed} vs {opponent} search {search}: {result}", flush=True)
                line = {"game": args.game, "method": args.method, "seed": seed, "opponent": opponent}
                line.update(search=search, cpu_budget=args.cpu_seconds, train=info, **result)
                results.append(line)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(line) + "\n")
        agent.close()

    print(f"\n{args.game}, {args.method}, {args.cpu_seconds:.0f} CPU s: seeds {args.seeds}, {args.episodes} games\n")
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
