"""Model factories: the user's extension point.

A model factory is ``factory(agent, env, dropout=..., learning_rate=..., **kwargs)``
returning a *compiled* ``keras.Model`` that maps a flat input of shape
``(agent.input_dim,)`` to one output per action. The agent trains with the
optimizer and loss the factory compiled. ``agent.input_dim_orig`` is
``[nframes, *observation_shape]`` for factories that want to reshape.

``optimizer`` and ``loss`` keyword arguments choose what the built-in
factories compile (any Keras identifier or object); their defaults are the
original KeRLym's RMSprop and mean squared error. ``clipnorm`` clips the
global gradient norm of an optimizer given by name.

Every built-in factory's output layer computes in float32 (``dtype="float32"``), as Keras's mixed-precision
guide advises: under ``dtype_policy="mixed_bfloat16"`` Q-values and action probabilities keep full precision.
"""

from __future__ import annotations


def _action_count(env) -> int:
    n = getattr(env.action_space, "n", None)
    if n is None:
        raise ValueError(f"the networks need a discrete action space, got {env.action_space}")
    return int(n)


def _compile(model, learning_rate, optimizer="rmsprop", loss="mse", clipnorm=None):
    from kerlym import optimizers

    if isinstance(optimizer, str):
        config = {"learning_rate": learning_rate}
        if clipnorm is not None:  # clip the global gradient norm, as SB3's max_grad_norm does
            config["global_clipnorm"] = clipnorm
        optimizer = optimizers.get(optimizer, **config)
    model.compile(optimizer=optimizer, loss=loss)
    return model


def _frames_with_channels(agent, factory):
    """``input_dim_orig`` as ``[nframes, H, W, C]``; vector observations are refused."""
    shape = list(agent.input_dim_orig)
    if len(shape) == 3:  # [nframes, H, W]: grayscale without a channel axis
        shape.append(1)
    if len(shape) != 4:
        raise ValueError(
            f"{factory} is a convolutional network and needs image observations, "
            f"got observation shape {tuple(shape[1:])}"
        )
    return shape


def _is_channels_first(frame_shape) -> bool:
    """A ``(C, H, W)`` frame: a few planes before a larger image, as Go's ``(3, N, N)`` board planes or connect
    four's ``(3, 6, 7)``."""
    channels, height, width = frame_shape
    return channels <= 4 and min(height, width) > channels


def _frames(s, agent, factory):
    """The flat input ``s`` as ``[nframes, H, W, C]`` frames, and that shape.

    Conv2D wants channels last, so ``(C, H, W)`` frames are transposed inside the model.
    """
    from keras import layers

    shape = _frames_with_channels(agent, factory)
    h = layers.Reshape(shape)(s)
    if _is_channels_first(shape[1:]):
        h = layers.Permute((1, 3, 4, 2))(h)
        shape = [shape[0], shape[2], shape[3], shape[1]]
    return h, shape


def simple_dnn(agent, env, dropout=0.5, learning_rate=1e-4, optimizer="rmsprop", loss="mse", **kwargs):
    """Two 256-unit ReLU layers with dropout and a zero-initialised linear output."""
    import keras
    from keras import layers

    s = keras.Input(shape=(agent.input_dim,))
    h = layers.Dense(256, activation="relu", kernel_initializer="he_normal")(s)
    h = layers.Dropout(dropout)(h)
    h = layers.Dense(256, activation="relu", kernel_initializer="he_normal")(h)
    h = layers.Dropout(dropout)(h)
    v = layers.Dense(_action_count(env), kernel_initializer="zeros", dtype="float32")(h)
    return _compile(keras.Model(s, v, name="simple_dnn"), learning_rate, optimizer, loss, kwargs.get("clipnorm"))


def _linear(units: int, fan_in: int, activation=None, dtype=None):
    """A Dense layer initialised as torch's ``nn.Linear``: weights and biases uniform in ±1/sqrt(fan_in)."""
    import keras
    from keras import layers

    bound = 1.0 / float(fan_in) ** 0.5
    return layers.Dense(
        units,
        activation=activation,
        dtype=dtype,
        kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound),
    )


def zoo_mlp(agent, env, dropout=0.0, learning_rate=1e-4, optimizer="adam", loss="huber", units=(256, 256), **kwargs):
    """SB3's DQN network as the RL Zoo tuned it: two 256-unit ReLU layers, each layer initialised as torch's.

    ``units``: the hidden layers' widths, SB3's ``net_arch`` (``--net-kwargs units=[64,64]``). The same shape
    as :func:`simple_dnn`, whose He-normal weights have 6x the variance and whose output layer starts at zero.
    The CartPole-v1 presets use this one; how the two compare on the classic tasks is in benchmarks/README.md
    ("Preset choices").
    """
    import keras
    from keras import layers

    s = keras.Input(shape=(agent.input_dim,))
    h, fan_in = s, agent.input_dim
    for width in units:
        h = _linear(int(width), fan_in, "relu")(h)
        h = layers.Dropout(dropout)(h)
        fan_in = int(width)
    v = _linear(_action_count(env), fan_in, dtype="float32")(h)
    return _compile(keras.Model(s, v, name="zoo_mlp"), learning_rate, optimizer, loss, kwargs.get("clipnorm"))


def simple_rnn(
    agent, env, dropout=0.0, learning_rate=1e-4, h0_width=8, h1_width=8, optimizer="rmsprop", loss="mse", **kwargs
):
    """Per-frame Dense, then two LSTMs over the ``nframes`` axis."""
    import keras
    from keras import layers

    s = keras.Input(shape=(agent.input_dim,))
    h = layers.Reshape((agent.nframes, agent.input_dim // agent.nframes))(s)
    h = layers.TimeDistributed(layers.Dense(h0_width, activation="relu", kernel_initializer="he_normal"))(h)
    h = layers.Dropout(dropout)(h)
    h = layers.LSTM(h1_width, return_sequences=True)(h)
    h = layers.Dropout(dropout)(h)
    h = layers.LSTM(h1_width)(h)
    h = layers.Dropout(dropout)(h)
    v = layers.Dense(_action_count(env), kernel_initializer="zeros", dtype="float32")(h)
    return _compile(keras.Model(s, v, name="simple_rnn"), learning_rate, optimizer, loss, kwargs.get("clipnorm"))


def _gru_over_frames(agent, factory, frame_layer, rnn_units):
    """The flat input and a GRU's last state over its ``nframes`` vector frames, oldest first.

    ``frame_layer(size)`` builds the layer each frame goes through before the GRU; image
    observations are refused.
    """
    import keras
    from keras import layers

    shape = list(agent.input_dim_orig)
    if len(shape) != 2:
        raise ValueError(f"{factory} reads a window of vector observations, got observation shape {tuple(shape[1:])}")
    nframes, size = shape
    s = keras.Input(shape=(agent.input_dim,))
    h = layers.Reshape((nframes, size))(s)
    h = layers.TimeDistributed(frame_layer(size), name="frame")(h)
    return s, layers.GRU(int(rnn_units), name="gru")(h)


def q_rnn(agent, env, dropout=0.0, learning_rate=1e-4, optimizer="adam", loss="huber", rnn_units=64, **kwargs):
    """A GRU over the ``nframes`` stacked observations, then a 256-unit ReLU layer and a linear Q-value per action.

    The Q-network counterpart of :func:`actor_critic_rnn`: each frame goes through
    a 64-unit ReLU layer, a GRU of ``rnn_units`` reads the frames oldest first, and
    its last state feeds the Q head. As there, the memory is the frame window (``-t``),
    re-read each step, so replay stores nothing beyond the stacked observations.
    Dense layers are initialised as :func:`zoo_mlp`'s.
    """
    import keras
    from keras import layers

    s, h = _gru_over_frames(agent, "q_rnn", lambda size: _linear(64, size, "relu"), rnn_units)
    h = layers.Dropout(dropout)(h) if dropout else h
    h = _linear(256, int(rnn_units), "relu")(h)
    v = _linear(_action_count(env), 256, dtype="float32")(h)
    return _compile(keras.Model(s, v, name="q_rnn"), learning_rate, optimizer, loss, kwargs.get("clipnorm"))


def simple_cnn(agent, env, dropout=0.0, learning_rate=1e-3, optimizer="rmsprop", loss="mse", **kwargs):
    """Per-frame Conv2D 16@8x8/4 and 32@4x4/2, Dense 256, linear output."""
    import keras
    from keras import layers

    s = keras.Input(shape=(agent.input_dim,))
    h, _ = _frames(s, agent, "simple_cnn")
    h = layers.TimeDistributed(layers.Conv2D(16, 8, strides=4, padding="same", activation="relu"))(h)
    h = layers.TimeDistributed(layers.Conv2D(32, 4, strides=2, padding="same", activation="relu"))(h)
    h = layers.Flatten()(h)
    h = layers.Dense(256, activation="relu")(h)
    h = layers.Dropout(dropout)(h)
    v = layers.Dense(_action_count(env), kernel_initializer="zeros", dtype="float32")(h)
    return _compile(keras.Model(s, v, name="simple_cnn"), learning_rate, optimizer, loss, kwargs.get("clipnorm"))


def nature_cnn(agent, env, dropout=0.0, learning_rate=1e-4, optimizer="adam", loss="huber", **kwargs):
    """The DQN Nature network (and SB3's NatureCNN): frames become channels, pixels scaled by 1/255."""
    import keras
    from keras import layers

    s = keras.Input(shape=(agent.input_dim,))
    h, (nframes, height, width, channels) = _frames(s, agent, "nature_cnn")
    h = layers.Permute((2, 3, 1, 4))(h)
    h = layers.Reshape((height, width, nframes * channels))(h)
    h = layers.Rescaling(1.0 / 255)(h)
    h = layers.Conv2D(32, 8, strides=4, activation="relu")(h)
    h = layers.Conv2D(64, 4, strides=2, activation="relu")(h)
    h = layers.Conv2D(64, 3, strides=1, activation="relu")(h)
    h = layers.Flatten()(h)
    h = layers.Dense(512, activation="relu")(h)
    v = layers.Dense(_action_count(env), dtype="float32")(h)
    return _compile(keras.Model(s, v, name="nature_cnn"), learning_rate, optimizer, loss, kwargs.get("clipnorm"))


def board_cnn(
    agent, env, dropout=0.0, learning_rate=1e-4, optimizer="adam", loss="huber", filters=32, conv_layers=3, **kwargs
):
    """A Q-network for board games whose first ``H * W`` actions are the board's points, row by row (Go).

    ``conv_layers`` 3x3 same-padding convolutions of ``filters`` keep a feature vector per
    point, so a pattern learnt in one place is known everywhere; a 1x1 convolution turns
    each point's features into that point's Q-value, and a linear layer over the whole
    board gives the Q-values of the actions after the points (Go's pass and resign).
    Frames are stacked as channels; both heads start at zero, as ``simple_dnn``'s.
    """
    import keras

    s = keras.Input(shape=(agent.input_dim,))
    h = _board_trunk(s, agent, env, "board_cnn", filters, conv_layers, dropout)
    q = _point_outputs(h, _action_count(env))
    return _compile(keras.Model(s, q, name="board_cnn"), learning_rate, optimizer, loss, kwargs.get("clipnorm"))


def _board_trunk(s, agent, env, name: str, filters, conv_layers, dropout):
    """The board networks' trunk: the frames as an ``H x W`` image, ``conv_layers`` 3x3 same-padding
    convolutions of ``filters``; refuses an env whose actions are neither the points first (Go) nor one per
    column (connect four)."""
    from keras import layers

    h, (nframes, height, width, channels) = _frames(s, agent, name)
    if not board_actions_fit(height, width, _action_count(env)):
        raise ValueError(
            f"{name} needs an action per point of the {height}x{width} board first, or one per column; the env has "
            f"{_action_count(env)} actions"
        )
    h = layers.Permute((2, 3, 1, 4))(h)
    h = layers.Reshape((height, width, nframes * channels))(h)
    for _ in range(int(conv_layers)):
        h = layers.Conv2D(int(filters), 3, padding="same", activation="relu", kernel_initializer="he_normal")(h)
    return layers.Dropout(dropout)(h) if dropout else h


def board_actions_fit(height: int, width: int, actions: int) -> bool:
    """Whether the board networks can give ``actions`` outputs on an ``height x width`` board: one per point first
    (then pass, resign...), or one per column (a game that drops pieces into columns)."""
    return actions >= height * width or actions == width


def _point_outputs(h, n: int, name: str | None = None):
    """One output per point (a 1x1 convolution of the trunk ``h``), then a linear layer over the board for the
    ``n - H * W`` actions after the points (pass, resign); or, with one action per column, a linear layer over the
    board for each column."""
    from keras import layers

    height, width = h.shape[1], h.shape[2]
    if n < height * width:  # one per column (board_actions_fit)
        return layers.Dense(n, kernel_initializer="zeros", dtype="float32", name=name)(layers.Flatten()(h))
    out = layers.Flatten()(layers.Conv2D(1, 1, kernel_initializer="zeros", dtype="float32")(h))
    if n > out.shape[-1]:
        rest = layers.Dense(n - out.shape[-1], kernel_initializer="zeros", dtype="float32")(layers.Flatten()(h))
        out = layers.Concatenate(dtype="float32", name=name)([out, rest])
    return out


# -- policy networks (softmax over actions) for the PG agent ------------------
# Compiled with categorical cross-entropy: PG weights it per sample by the
# advantage, which is exactly the REINFORCE loss -A * log pi(a|s).


def karpathy_simple_pgnet(
    agent, env, dropout=0.5, learning_rate=1e-4, optimizer="rmsprop", loss="categorical_crossentropy", **kwargs
):
    """Karpathy's Pong policy: Dense 200 ReLU, dropout, softmax over actions."""
    import keras
    from keras import layers

    s = keras.Input(shape=(agent.input_dim,))
    h = layers.Dense(200, activation="relu", kernel_initializer="he_normal")(s)
    h = layers.Dropout(dropout)(h)
    p = layers.Dense(_action_count(env), activation="softmax", kernel_initializer="zeros", dtype="float32")(h)
    return _compile(
        keras.Model(s, p, name="karpathy_simple_pgnet"), learning_rate, optimizer, loss, kwargs.get("clipnorm")
    )


def pgconvnet(
    agent, env, dropout=0.5, learning_rate=1e-4, optimizer="rmsprop", loss="categorical_crossentropy", **kwargs
):
    """Per-frame Conv2D 16@8x8/4, Dense 64, Dense 16 (dropout between), softmax over actions."""
    import keras
    from keras import layers

    shape = _frames_with_channels(agent, "pgconvnet")
    s = keras.Input(shape=(agent.input_dim,))
    h = layers.Reshape(shape)(s)
    h = layers.TimeDistributed(layers.Conv2D(16, 8, strides=4, padding="same", activation="relu"))(h)
    h = layers.Flatten()(h)
    h = layers.Dropout(dropout)(h)
    h = layers.Dense(64, activation="relu", kernel_initializer="he_normal")(h)
    h = layers.Dropout(dropout)(h)
    h = layers.Dense(16, activation="relu", kernel_initializer="he_normal")(h)
    h = layers.Dropout(dropout)(h)
    p = layers.Dense(_action_count(env), activation="softmax", kernel_initializer="zeros", dtype="float32")(h)
    return _compile(keras.Model(s, p, name="pgconvnet"), learning_rate, optimizer, loss, kwargs.get("clipnorm"))


# Name -> factory, for the CLI and presets. Never eval() a user's string.
_FACTORIES = (
    simple_dnn,
    zoo_mlp,
    simple_rnn,
    q_rnn,
    simple_cnn,
    nature_cnn,
    board_cnn,
    karpathy_simple_pgnet,
    pgconvnet,
)
NETWORKS = {f.__name__: f for f in _FACTORIES}
CONV_NETWORKS = {"simple_cnn", "nature_cnn", "board_cnn", "pgconvnet"}
POLICY_NETWORKS = {"karpathy_simple_pgnet", "pgconvnet"}
MULTI_HEAD_Q_NETWORKS = {"board_cnn"}  # Q-values from more than one output layer: no dueling head replaces them


def get(name: str):
    """The factory registered as ``name``; ``KeyError`` lists the valid names."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise KeyError(f"unknown network {name!r}; choose one of: {', '.join(sorted(NETWORKS))}") from None


# -- actor-critic networks for -a a2c, a3c and ppo -------------------------------
# An actor-critic factory returns a compiled model with two outputs: the policy head
# ([B, num_actions] logits for a discrete action space, [B, action_dim] Gaussian means for a
# Box one) and the value head ([B, 1]). The agent adds the learned log-std of a Gaussian
# policy itself. Only the optimizer matters; the agents write their own loss.


def _policy_size(env) -> int:
    """Logits per discrete action space, or means per dimension of a Box one."""
    import numpy as np

    n = getattr(env.action_space, "n", None)
    return int(n) if n is not None else int(np.prod(env.action_space.shape))


# SB3's A2C runs torch's RMSprop, which divides by sqrt(v) + 1e-5; Keras's divides by sqrt(v + epsilon). With
# epsilon 1e-5 inside the root the floor would be 3e-3, 300 times torch's, and small gradients would take far
# smaller steps than SB3's. 1e-10 inside gives torch's floor of 1e-5 (within a factor sqrt(2) where sqrt(v) ~ 1e-5).
RMSPROP_EPSILON = 1e-10


def _compile_actor_critic(model, learning_rate, optimizer, clipnorm=None):
    """Compile with SB3's optimizer settings for a named one: Adam's epsilon 1e-5, RMSprop's decay 0.99 and torch's
    epsilon 1e-5 (:data:`RMSPROP_EPSILON`); ``rmsprop_tf`` is SB3's ``RMSpropTFLike`` (:mod:`kerlym.optimizers`)."""
    from kerlym import optimizers

    if isinstance(optimizer, str):
        config = {"learning_rate": learning_rate}
        if optimizer.lower() == "adam":
            config["epsilon"] = 1e-5
        if optimizer.lower() == "rmsprop":
            config.update(rho=0.99, epsilon=RMSPROP_EPSILON)
        if clipnorm is not None:
            config["global_clipnorm"] = clipnorm
        optimizer = optimizers.get(optimizer, **config)
    model.compile(optimizer=optimizer)
    return model


def _orthogonal_dense(units, gain, activation=None, dtype=None, name=None):
    from keras import layers

    from kerlym.layers import Orthogonal

    return layers.Dense(
        units,
        activation=activation,
        dtype=dtype,
        name=name,
        kernel_initializer=Orthogonal(gain),
        bias_initializer="zeros",
    )


def actor_critic_mlp(agent, env, dropout=0.0, learning_rate=3e-4, optimizer="adam", net_arch=(64, 64), **kwargs):
    """SB3's default MlpPolicy: separate 64-64 tanh trunks for the policy and the value.

    ``net_arch``: each trunk's layer widths, as SB3's ``net_arch=dict(pi=..., vf=...)`` with the two the same
    (``--net-kwargs net_arch=[256,256]``). Orthogonal initialisation as SB3's: gain sqrt(2) in the trunks, 0.01
    for the policy head (a near-uniform first policy), 1 for the value head.
    """
    import keras

    s = keras.Input(shape=(agent.input_dim,))
    trunks = []
    for prefix in ("pi", "vf"):
        h = s
        for i, width in enumerate(net_arch):
            h = _orthogonal_dense(int(width), 2**0.5, "tanh", name=f"{prefix}_{i}")(h)
            h = keras.layers.Dropout(dropout)(h) if dropout else h
        trunks.append(h)
    pi = _orthogonal_dense(_policy_size(env), 0.01, dtype="float32", name="policy")(trunks[0])
    v = _orthogonal_dense(1, 1.0, dtype="float32", name="value")(trunks[1])
    model = keras.Model(s, [pi, v], name="actor_critic_mlp")
    return _compile_actor_critic(model, learning_rate, optimizer, kwargs.get("clipnorm"))


def actor_critic_cnn(agent, env, dropout=0.0, learning_rate=2.5e-4, optimizer="adam", **kwargs):
    """The Nature CNN as one trunk shared by the policy and value heads (SB3's CnnPolicy for Atari)."""
    import keras
    from keras import layers

    from kerlym.layers import Orthogonal

    nframes, height, width, channels = _frames_with_channels(agent, "actor_critic_cnn")
    s = keras.Input(shape=(agent.input_dim,))
    h = layers.Reshape((nframes, height, width, channels))(s)
    h = layers.Permute((2, 3, 1, 4))(h)
    h = layers.Reshape((height, width, nframes * channels))(h)
    h = layers.Rescaling(1.0 / 255)(h)
    gain = 2**0.5
    for filters, size, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
        h = layers.Conv2D(filters, size, strides=stride, activation="relu", kernel_initializer=Orthogonal(gain))(h)
    h = layers.Flatten()(h)
    h = _orthogonal_dense(512, gain, "relu")(h)
    h = layers.Dropout(dropout)(h) if dropout else h
    pi = _orthogonal_dense(_policy_size(env), 0.01, dtype="float32", name="policy")(h)
    v = _orthogonal_dense(1, 1.0, dtype="float32", name="value")(h)
    model = keras.Model(s, [pi, v], name="actor_critic_cnn")
    return _compile_actor_critic(model, learning_rate, optimizer, kwargs.get("clipnorm"))


def actor_critic_board(
    agent, env, dropout=0.0, learning_rate=3e-4, optimizer="adam", filters=64, conv_layers=4, **kwargs
):
    """``board_cnn``'s trunk with a policy and a value head, for board games whose first ``H * W`` actions are the
    points (Go).

    ``conv_layers`` 3x3 same-padding convolutions of ``filters``; the policy is a 1x1 convolution to one logit per
    point and a linear layer over the board for the actions after the points (pass, resign); the value is 64 ReLU
    units over the trunk's features and one linear output.
    """
    import keras
    from keras import layers

    s = keras.Input(shape=(agent.input_dim,))
    h = _board_trunk(s, agent, env, "actor_critic_board", filters, conv_layers, dropout)
    pi = _point_outputs(h, _action_count(env), name="policy")
    # A value head of one ReLU filter (AlphaGo Zero's, there after batch norm) can die at the start and stay 0:
    # cloned from GnuGo's games, its error stayed at 1.0. 64 ReLU units over the whole trunk learn.
    v = layers.Dense(64, activation="relu", kernel_initializer="he_normal")(layers.Flatten()(h))
    v = layers.Dense(1, dtype="float32", name="value")(v)
    model = keras.Model(s, [pi, v], name="actor_critic_board")
    return _compile_actor_critic(model, learning_rate, optimizer, kwargs.get("clipnorm"))


def actor_critic_rnn(agent, env, dropout=0.0, learning_rate=3e-4, optimizer="adam", rnn_units=64, **kwargs):
    """A GRU over the ``nframes`` stacked observations, then SB3-style 64-tanh policy and value heads.

    Each frame goes through a 64-unit tanh layer, a GRU of ``rnn_units`` reads the
    frames oldest first, and its last state feeds both heads. The memory is the
    frame window (``nframes``, ``-t`` on the command line): the agent's frame history is the GRU's input
    sequence, so acting and updating need nothing beyond the stacked observation,
    and the GRU re-reads the window each step rather than carrying a state across
    the episode. Vector observations; orthogonal initialisation as
    :func:`actor_critic_mlp`'s.
    """
    import keras
    from keras import layers

    s, h = _gru_over_frames(agent, "actor_critic_rnn", lambda size: _orthogonal_dense(64, 2**0.5, "tanh"), rnn_units)
    h = layers.Dropout(dropout)(h) if dropout else h
    heads = [_orthogonal_dense(64, 2**0.5, "tanh", name=f"{prefix}_0")(h) for prefix in ("pi", "vf")]
    pi = _orthogonal_dense(_policy_size(env), 0.01, dtype="float32", name="policy")(heads[0])
    v = _orthogonal_dense(1, 1.0, dtype="float32", name="value")(heads[1])
    model = keras.Model(s, [pi, v], name="actor_critic_rnn")
    return _compile_actor_critic(model, learning_rate, optimizer, kwargs.get("clipnorm"))


NETWORKS.update({f.__name__: f for f in (actor_critic_mlp, actor_critic_cnn, actor_critic_board, actor_critic_rnn)})
CONV_NETWORKS.update({"actor_critic_cnn", "actor_critic_board"})
ACTOR_CRITIC_NETWORKS = {"actor_critic_mlp", "actor_critic_cnn", "actor_critic_board", "actor_critic_rnn"}
VECTOR_NETWORKS = {"q_rnn", "actor_critic_rnn"}  # a GRU over vector observations; images are refused


def board_size(frame_shape) -> tuple[int, int]:
    """The ``(H, W)`` of a board frame: ``(C, H, W)`` planes, ``(H, W, C)`` or ``(H, W)``."""
    if len(frame_shape) == 3 and _is_channels_first(frame_shape):
        return int(frame_shape[1]), int(frame_shape[2])
    return int(frame_shape[0]), int(frame_shape[1])
