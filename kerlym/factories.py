"""What kerlym checks of a user's model factory: its name, the arguments it names, and Keras 1 spellings.

The original KeRLym's factories were written for Keras 1; a factory that still
uses its names (``init=``, ``Convolution2D``) gets an error that says what
Keras 3 calls them.
"""

from __future__ import annotations

import inspect
import re

# Keras 1 spellings (the original KeRLym's factories) and what Keras 3 calls them.
KERAS1_NAMES = {
    "init": "kernel_initializer=",
    "lr": "learning_rate=",
    "nb_filter": "filters=",
    "nb_row": "kernel_size=",
    "nb_col": "kernel_size=",
    "border_mode": "padding=",
    "subsample": "strides=",
    "output_dim": "units=",
    "W_regularizer": "kernel_regularizer=",
    "b_regularizer": "bias_regularizer=",
    "Convolution2D": "Conv2D",
    "Convolution1D": "Conv1D",
    "pool_length": "pool_size=",
    "nb_epoch": "epochs=",
}
# Keras 3's error for a layer whose first argument went in under its Keras 1 keyword names no keyword at all.
_MISSING_ARGUMENT = {"filters": "nb_filter", "units": "output_dim"}


def keras1_hint(message: str) -> str | None:
    """A hint naming the Keras 3 spelling of a Keras 1 name in a model factory's error, or ``None``."""
    quoted = re.findall(r"'(\w+)'", message)
    old = [name for name in quoted if name in KERAS1_NAMES]
    if old:
        return "Keras 3 spells " + ", ".join(f"{name} as {KERAS1_NAMES[name]}" for name in dict.fromkeys(old))
    missing = re.search(r"missing 1 required positional argument: '(\w+)'", message)
    if missing and missing.group(1) in _MISSING_ARGUMENT:
        name = missing.group(1)
        return f"Keras 3 spells {_MISSING_ARGUMENT[name]}= as {name}= (or pass it first, positionally)"
    return None


def factory_name(factory) -> str:
    """A model factory's name, for messages."""
    return getattr(factory, "__name__", repr(factory))


def named_parameters(fn) -> set[str]:
    """The keyword arguments a function names explicitly (not its ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return set()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in params if p.kind in kinds}


def unknown_argument(config_cls, rest: dict, factory) -> tuple[str, str] | None:
    """The first key of ``rest`` that is neither a field of ``config_cls`` nor a parameter ``factory`` names, and
    a did-you-mean for it (``"; did you mean filters?"``, or ``""``); None if there is none."""
    import difflib
    from dataclasses import fields

    names = {f.name for f in fields(config_cls)}
    accepted = named_parameters(factory)
    for key in rest:
        if key not in accepted:
            close = difflib.get_close_matches(key, sorted(names | accepted), n=1)
            return key, f"; did you mean {close[0]}?" if close else ""
    return None


def refuse_unknown_arguments(owner: str, config_cls, rest: dict, factory) -> None:
    """Refuse keyword arguments that are neither fields of ``config_cls`` nor parameters ``factory`` names.

    Args:
        owner: the agent class's name, for the message.
        config_cls: the agent's config class.
        rest: the keyword arguments that are not its fields (for the factory).
        factory: the model factory.

    Raises:
        TypeError: one line naming the first such argument, with a did-you-mean.
    """
    unknown = unknown_argument(config_cls, rest, factory)
    if unknown is not None:
        key, hint = unknown
        raise TypeError(
            f"{owner} got an unexpected argument {key!r}: it is neither a setting of "
            f"{config_cls.__name__} nor a parameter that {factory_name(factory)} names{hint}"
        )


def net_kwargs_problem(config_cls, net_kwargs: dict, factory) -> str | None:
    """What is wrong with ``net_kwargs`` (``--net-kwargs``) for ``factory``, in one line; None if nothing.

    A key that is a setting (``learning_rate``, ``dropout``, ``env``: the factory gets those from the configs)
    should be given as its setting; any other key must be a parameter the factory names.
    """
    from kerlym.config import RunConfig, canonical, field_names, flag

    settings = set(field_names(config_cls)) | set(field_names(RunConfig))
    for key in net_kwargs:
        name = next(iter(canonical({key: None})))  # max_mem is max_memory
        if name in settings:
            return f"{key} is a setting, not a network argument: use {flag(name)} instead (in Python, {name}=...)"
    unknown = unknown_argument(config_cls, net_kwargs, factory)
    if unknown is not None:
        key, hint = unknown
        return f"{factory_name(factory)} takes no argument {key!r}{hint}"
    return None


def build_model(agent):
    """Call ``agent``'s model factory under its dtype policy, and refuse what does not fit the agent.

    Args:
        agent: the agent; its ``modelfactory``, ``dtype_policy``, ``dropout``, ``learning_rate`` and
            ``factory_kwargs`` make the call, its ``input_dim`` and ``check_outputs`` check the result.

    Raises:
        ValueError: not a compiled ``keras.Model``, or inputs or outputs of the wrong shape (one line);
            a Keras 1 spelling in the factory gets a hint naming the Keras 3 one.
    """
    import warnings

    import keras

    from kerlym._io import first_line


    name = factory_name(agent.modelfactory)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(agent.dtype_policy)
    try:
        model = agent.modelfactory(
            agent, agent.env, dropout=agent.dropout, learning_rate=agent.learning_rate, **agent.factory_kwargs
        )
    except (TypeError, ValueError, AttributeError) as e:
        hint = keras1_hint(str(e))
        if hint is None:
            raise
        raise type(e)(f"{first_line(e)}; {hint}") from e
    finally:
        keras.config.set_dtype_policy(previous)
    if not isinstance(model, keras.Model):
        raise ValueError(f"{name} must return a keras.Model, got {type(model).__name__}")
    agent.check_outputs(model, name)
    inp = tuple(model.input_shape)
    if inp[1:] != (agent.input_dim,):
        raise ValueError(f"{name} takes input shape {inp}, but states have shape (None, {agent.input_dim})")
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(f"{name} returned a model that is not compiled; call model.compile(optimizer, loss)")
    last = model.layers[-1].compute_dtype
    if last != "float32":
        warnings.warn(
            f"{name}'s output layer computes in {last}, so its outputs are rounded to {last} before the "
            "float32 loss; build it with dtype='float32'",
            stacklevel=4,
        )
    return model
