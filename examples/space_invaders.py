"""The original README's Python example, rewritten for Gymnasium and Keras 3.

    python examples/space_invaders.py [steps]

D2QN on Space Invaders from pixels with simple_cnn, Karpathy's preprocessing
and difference frames.
"""

import sys

import kerlym

agent = kerlym.agents.D2QN(
    "SpaceInvaders-v0",
    nframes=1,
    epsilon=0.5,
    discount=0.99,
    modelfactory=kerlym.networks.simple_cnn,
    update_nsamp=1000,
    batch_size=32,
    dropout=0.1,
    max_memory=1_000_000,
    epsilon_schedule=lambda episode, epsilon: max(0.1, epsilon * (1 - 1e-4)),
    difference_obs=True,
    preprocessor=kerlym.preproc.karpathy_preproc,
    learning_rate=1e-3,
    seed=0,
)
agent.learn(max_steps=int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
print("greedy evaluation over 5 episodes:", agent.evaluate(5).mean())
agent.save("space_invaders.keras")
