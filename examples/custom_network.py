"""The README's "Custom Action-Value Function Network", in Keras 3 spelling.

python examples/custom_network.py
"""

from keras.layers import LSTM, Dense, Dropout, Input, Reshape, TimeDistributed
from keras.models import Model
from keras.optimizers import RMSprop

import kerlym


def custom_Q_nn(agent, env, dropout=0, h0_width=8, h1_width=8, **args):
    S = Input(shape=[agent.input_dim])
    h = Reshape([agent.nframes, agent.input_dim // agent.nframes])(S)
    h = TimeDistributed(Dense(h0_width, activation="relu", kernel_initializer="he_normal"))(h)
    h = Dropout(dropout)(h)
    h = LSTM(h1_width, return_sequences=True)(h)
    h = Dropout(dropout)(h)
    h = LSTM(h1_width)(h)
    h = Dropout(dropout)(h)
    V = Dense(int(env.action_space.n), activation="linear", kernel_initializer="zeros")(h)
    model = Model(S, V)
    model.compile(loss="mse", optimizer=RMSprop(learning_rate=0.01))
    return model


if __name__ == "__main__":
    agent = kerlym.agents.D2QN("CartPole-v1", nframes=2, modelfactory=custom_Q_nn, seed=0)
    agent.learn(max_steps=2000)
    print("greedy evaluation:", agent.evaluate(5).mean())
