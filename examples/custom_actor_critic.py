"""A custom actor-critic network: one shared trunk, a policy head and a value head.

An actor-critic factory (for ``-a a2c``, ``a3c`` and ``ppo``) returns a compiled
Keras model with two outputs: the policy ``[batch, actions]`` (logits for
discrete actions; the Gaussian's means for ``Box`` actions) and the value
``[batch, 1]``. The agent adds the loss; the optimizer is the one compiled here.

python examples/custom_actor_critic.py
"""

import keras
from keras import layers

import kerlym


def shared_trunk_ac(agent, env, width=64, learning_rate=7e-4, **args):
    """Both heads on one tanh trunk; the policy head starts near uniform (small weights)."""
    s = keras.Input(shape=(agent.input_dim,))
    h = layers.Dense(width, activation="tanh")(s)
    h = layers.Dense(width, activation="tanh")(h)
    actions = int(env.action_space.n) if hasattr(env.action_space, "n") else env.action_space.shape[0]
    policy = layers.Dense(actions, kernel_initializer=keras.initializers.Orthogonal(0.01), name="policy")(h)
    value = layers.Dense(1, name="value")(h)
    model = keras.Model(s, [policy, value])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate))
    return model


if __name__ == "__main__":
    agent = kerlym.agents.A2C("CartPole-v1", modelfactory=shared_trunk_ac, n_steps=8, seed=0)
    agent.learn(max_steps=20_000)
    print("greedy evaluation:", agent.evaluate(5).mean())
