"""PUCT Monte Carlo tree search at play time, with the agent's own networks: ``--search N``.

The tree search is OpenSpiel's (``open_spiel.python.algorithms.mcts.MCTSBot`` with its PUCT child
selection, ``Q + c * prior * sqrt(N_parent) / (1 + N_child)``, on cloned OpenSpiel states); kerlym
plugs the agent's network in as its evaluator. A position is scored from the seat of the player to
move, with that player's observation tensor, so one network scores both sides (the game is zero-sum):

- the prior is the policy over the legal actions (actor-critic agents: the policy head's softmax;
  DQN and D2QN: a softmax of the Q-values over the legal actions);
- the leaf value is the value head (DQN and D2QN: the largest legal Q-value), and the opponent's is
  its negative. Terminal positions are scored by the game's own returns; at play time the search
  proves what it can from them (``solve``, OpenSpiel's MCTS-Solver), while searches that make
  training targets average them as AlphaZero does.

Network calls are batched where that pays: the first time a position with at most
:data:`BATCH_CHILDREN` legal moves is evaluated (tic-tac-toe, connect four), its children are
evaluated in the same call, so when the search expands a child later its prior and value are already
known. A position with more (Go) is evaluated alone: a search visits few children of a wide node, and
scoring all of them made a Go search several times slower (``benchmarks/README.md``). A chance
node (dice, deals) left unexpanded at a leaf is worth 0. The search is deterministic for a seed
(the seed orders children with equal scores).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

C_PUCT = 2.0  # OpenSpiel's AlphaZero default
BATCH_CHILDREN = 16  # a position with at most this many legal moves is scored with its children in one call


def masked_softmax(logits: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Softmax of each row of ``logits`` over its legal actions (``masks`` true); 0 on illegal ones."""
    logits = np.where(masks, np.asarray(logits, dtype=np.float64), -np.inf)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def position_evaluator(positions: Callable, observation: Callable, batch_children: int | None = None):
    """OpenSpiel's ``mcts.Evaluator`` around a network: ``positions(obs [B, ...], masks [B, A]) -> (priors, values)``.

    Args:
        positions: scores a batch of observations, each from the seat of its player to move, with that
            player's legal actions: priors ``[B, A]`` and values ``[B]``, from that player's side.
        observation: ``state -> obs`` from the seat of the player to move.
        batch_children: score a position's children in the same call when it has at most this many legal moves
            (default :data:`BATCH_CHILDREN`).
    """
    if batch_children is None:
        batch_children = BATCH_CHILDREN
    from open_spiel.python.algorithms import mcts

    class NetworkEvaluator(mcts.Evaluator):
        def __init__(self):
            self.cache: dict[str, tuple[np.ndarray, float]] = {}
            self.calls = 0  # network calls, for tests and benchmarks

        def scored(self, state) -> tuple[np.ndarray, float]:
            key = state.history_str()
            if key not in self.cache:
                batch = [state]
                legal = [] if state.is_chance_node() else state.legal_actions()
                if len(legal) <= batch_children:
                    for action in legal:
                        child = state.child(action)
                        if not child.is_terminal() and not child.is_chance_node():
                            batch.append(child)
                batch = [s for s in batch if s.history_str() not in self.cache]
                num_actions = state.get_game().num_distinct_actions()
                masks = np.zeros((len(batch), num_actions), dtype=bool)
                for row, s in enumerate(batch):
                    masks[row, s.legal_actions()] = True
                priors, values = positions(np.stack([observation(s) for s in batch]), masks)
                self.calls += 1
                for s, p, v in zip(batch, priors, values):
                    self.cache[s.history_str()] = (np.asarray(p), float(v))
            return self.cache[key]

        def evaluate(self, state):
            if state.is_chance_node():
                return np.zeros(2)
            value = self.scored(state)[1]
            return np.array([value, -value] if state.current_player() == 0 else [-value, value])

        def prior(self, state):
            if state.is_chance_node():
                return state.chance_outcomes()
            priors = self.scored(state)[0]
            return [(a, float(priors[a])) for a in state.legal_actions()]

    return NetworkEvaluator()


def search(
    state,
    positions: Callable,
    observation: Callable,
    simulations: int,
    seed: int = 0,
    c_puct=C_PUCT,
    evaluator=None,
    dirichlet_noise: tuple[float, float] | None = None,
    solve: bool = False,
):
    """PUCT search from ``state``: OpenSpiel's root ``SearchNode`` after ``simulations`` simulations.

    The most visited child (``root.best_child().action``; a child found to end the game in a win first)
    is the move; :func:`visit_counts` its visit counts. ``positions`` and ``observation``: see
    :func:`position_evaluator`; or give ``evaluator``, one it made (its ``calls`` count network calls).
    ``dirichlet_noise=(epsilon, alpha)`` mixes ``Dirichlet(alpha)`` noise into the root's priors with weight
    ``epsilon`` (OpenSpiel's, drawn from the seed's random state), as training on search targets does.
    ``solve``: OpenSpiel's MCTS-Solver: a position whose outcome the search proves (an end of the game in
    the tree, then up: a move with a won reply for the player to move there, or all replies proven) is
    scored by its outcome from then on, in choosing what to visit and the move; without it (as AlphaZero
    trains) only the network's values and the game ends reached count, by their averages.
    """
    from open_spiel.python.algorithms import mcts

    if simulations < 1:
        raise ValueError(f"a search needs at least 1 simulation, got {simulations}")
    evaluator = evaluator or position_evaluator(positions, observation)
    bot = mcts.MCTSBot(
        state.get_game(),
        uct_c=c_puct,
        max_simulations=int(simulations),
        evaluator=evaluator,
        solve=solve,
        random_state=np.random.RandomState(seed),
        child_selection_fn=mcts.SearchNode.puct_value,
        dirichlet_noise=dirichlet_noise,
    )
    return bot.mcts_search(state)


def visit_counts(root, num_actions: int) -> np.ndarray:
    """The root's visit count per action, ``[num_actions]`` (0 for actions not searched or illegal)."""
    counts = np.zeros(num_actions, dtype=np.int64)
    for child in root.children:
        counts[child.action] = child.explore_count
    return counts
