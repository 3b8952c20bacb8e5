"""How a setting is declared: :func:`setting`, the :func:`configclass` decorator, checks and flag spellings.

Standard library only, so that ``kerlym --help`` and argument errors stay instant.
"""

from __future__ import annotations

import difflib
import math
import numbers
import typing
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass

DTYPE_POLICIES = ("float32", "mixed_bfloat16")
REPLAY_MODES = ("newest", "uniform")
PREPROCESSOR_NAMES = ("none", "atari", "karpathy")
SCHEDULES = ("constant", "linear")
ACTOR_MODES = ("local", "process", "ray")
VECTOR_MODES = ("async", "sync", "envpool")
# --mlflow without a URI: MLflow's own embedded store, a SQLite file beside its ./mlruns artifact folder.
MLFLOW_DEFAULT_URI = "sqlite:///mlflow.db"
# The names keras.optimizers.get takes (any case) and kerlym's rmsprop_tf; and the names keras.losses.get takes (as
# spelled). Keras 3.15's, kept here so that the command checks them without importing Keras; tests/test_config.py
# checks them against the installed Keras.
OPTIMIZER_NAMES = (
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "ftrl",
    "lion",
    "muon",
    "nadam",
    "rmsprop",
    "rmsprop_tf",
    "schedulefreeadamw",
    "sgd",
)
LOSS_NAMES = (
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "categorical_hinge",
    "circle",
    "cosine_similarity",
    "ctc",
    "dice",
    "hinge",
    "huber",
    "kl_divergence",
    "log_cosh",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
    "poisson",
    "sparse_categorical_crossentropy",
    "squared_hinge",
    "tversky",
    # Keras's short names and class names for the same losses
    "bce",
    "kld",
    "mae",
    "mape",
    "mse",
    "msle",
    "BCE",
    "KLD",
    "MAE",
    "MAPE",
    "MSE",
    "MSLE",
    "CTC",
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy",
    "CategoricalHinge",
    "Circle",
    "CosineSimilarity",
    "Dice",
    "Hinge",
    "Huber",
    "KLDivergence",
    "LogCosh",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Poisson",
    "SparseCategoricalCrossentropy",
    "SquaredHinge",
    "Tversky",
)


class ConfigError(ValueError):
    """A setting, or a combination of settings, that can never train; the message is one line."""


class ConfigTypeError(ConfigError, TypeError):
    """A setting or argument of the wrong type (2.5 for an integer, 3 for a name); a TypeError too."""


# The --help groups, in order: a field's ``topic`` names its group, and the group's title.
TOPICS = {
    "environment": "environment: which env, and what the agent observes of it",
    "agent": "agent: the learning algorithm and its settings",
    "network": "network and optimizer",
    "schedule": "schedule: when and how much to train, exploration over time",
    "run control": "run control: how long, seeds, checkpoints, resume",
    "output": "output: what the run prints, plots and writes",
    "evaluation": "evaluation: greedy evaluations during and after training",
}

# setting(check=NAME): what each check accepts, and the end of its error. None passes where the field's type allows it.
CHECKS = {
    "positive": ("must be positive and finite", lambda v: math.isfinite(v) and v > 0),
    "at least 0": ("must be at least 0", lambda v: math.isfinite(v) and v >= 0),
    "fraction": ("must be in [0, 1]", lambda v: math.isfinite(v) and 0 <= v <= 1),
    "rate": ("must be in [0, 1)", lambda v: math.isfinite(v) and 0 <= v < 1),
    "finite": ("must be a finite number", math.isfinite),
    "keywords": ("must be a dict of keyword arguments", lambda v: isinstance(v, dict)),
    "seed": ("must be an integer from 0 to 2**32 - 1", lambda v: 0 <= v < 2**32),
}


# Every setting's command-line spellings by field name, as configclass completes them: short flags, --NAME, the rest.
_FLAGS: dict[str, tuple[str, ...]] = {}


def flag(name: str) -> str:
    """A setting as the user types it, every spelling: ``-m/--max_memory/--max_mem`` (``--NAME`` for a non-flag)."""
    return "/".join(_FLAGS.get(name, (f"--{name}",)))


def setting(default, help: str, aliases: tuple[str, ...] = (), cli_default=MISSING, topic=None, check=None, **meta):
    """A config field: its default, docstring (``help``), other command-line spellings and validation.

    Args:
        default: the Python API's default.
        help: one line saying what the setting does (the flag's help), true for every class that has it.
        aliases: the command's spellings besides ``--<field name>``: a short flag, the original's long flag
            (``("-m", "--max_mem")``); its long ones are also accepted as Python keywords and config.json keys.
        cli_default: the command's default where the original command's differed from the Python API's.
        topic: the ``--help`` group of the flag, a key of ``TOPICS``; None: the setting has no flag.
        check: the validation, a key of ``CHECKS`` (``"positive"``); a field with ``choices`` is also checked
            against them.
        **meta: more for the flag: ``choices``, ``metavar``, ``cli_nargs``, ``cli_type``; ``api_function=True``:
            the Python API also takes a function here (a model factory), which passes the checks; ``names``: the
            names a string value may take (any case if ``names_ignore_case``), refused with a did-you-mean.
    """
    if topic is not None and topic not in TOPICS or check is not None and check not in CHECKS:
        raise ValueError(f"unknown topic {topic!r} or check {check!r}")
    metadata = {"help": help, "flags": aliases, "cli_default": cli_default, "topic": topic, "check": check, **meta}
    return field(default=default, metadata=metadata)


def _spelled(name: str, f: Field) -> Field:
    """``f`` with ``--<name>`` among its flags: short flags first, then ``--<name>``, then the other long ones."""
    if f.metadata["topic"] is None:
        return f
    given = f.metadata["flags"]
    long = tuple(s for s in given if s.startswith("--") and s != f"--{name}")
    flags = (*(s for s in given if not s.startswith("--")), f"--{name}", *long)
    if _FLAGS.setdefault(name, flags) != flags:
        raise TypeError(f"two declarations of {name!r} disagree on its flags")
    return field(default=f.default, metadata={**f.metadata, "flags": flags})


# Type checkers read a configclass as a frozen dataclass (typing.dataclass_transform, Python 3.11+).
_as_dataclass = getattr(typing, "dataclass_transform", lambda **_: lambda f: f)


@_as_dataclass(frozen_default=True, field_specifiers=(setting,))
def configclass(cls=None, /, **new_defaults):
    """Class decorator: ``cls`` as a frozen dataclass of settings; ``@configclass`` or ``@configclass(name=value)``.

    Each field declared in ``cls`` gets ``--<field name>`` as its long flag, beside the spellings its
    :func:`setting` gives. ``new_defaults`` give fields declared elsewhere (inherited, or a shared setting such as
    :data:`BATCH_SIZE`) another default, for the Python API and the command alike; their help, flags and
    validation stay those of their one declaration.
    """
    if cls is None:
        return lambda cls: configclass(cls, **new_defaults)
    own = cls.__annotations__  # this class's fields only (an empty dict where it declares none)
    for name in own:
        if isinstance(cls.__dict__.get(name), Field):
            setattr(cls, name, _spelled(name, cls.__dict__[name]))
    base = cls.__bases__[0]
    inherited = {f.name: f for f in fields(base)} if is_dataclass(base) else {}
    for name, default in new_defaults.items():
        declared = cls.__dict__.get(name) if name in own else inherited.get(name)
        if not isinstance(declared, Field):
            raise TypeError(f"{cls.__name__} has no setting {name!r} to give a default")
        own.setdefault(name, declared.type)  # the field keeps its place among the inherited ones
        setattr(cls, name, field(default=default, metadata={**declared.metadata, "cli_default": MISSING}))
    return dataclass(frozen=True)(cls)


def _check_fields(config) -> None:
    """Each field's type, check and choices (a field's one validation); None and functions pass where they may."""
    for f in fields(config):
        value = getattr(config, f.name)
        if (value is None and "None" in str(f.type)) or (callable(value) and f.metadata.get("api_function")):
            continue
        choices, check = f.metadata.get("choices"), f.metadata.get("check")
        if choices and value not in choices:
            raise ConfigError(f"unknown {f.name.replace('_', ' ')} {value!r}; choose one of: {', '.join(choices)}")
        _check_type(f, value)
        if check and (value is None or not CHECKS[check][1](value)):
            raise ConfigError(f"{flag(f.name)} {CHECKS[check][0]}, got {value!r}")
        if f.metadata.get("names"):
            _check_name(f, value)


def _check_type(f: Field, value) -> None:
    """Refuse a value of the wrong type: 2.5 or "100" for an integer setting, "0.1" for a number, 3 for a name."""
    kind = str(f.type).split("|")[0].strip()
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise ConfigTypeError(f"{flag(f.name)} must be an integer, got {value!r}")
    if kind == "float" and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise ConfigTypeError(f"{flag(f.name)} must be a number, got {value!r}")
    if kind == "str" and not isinstance(value, str):
        what = "a name or a function" if f.metadata.get("api_function") else "a string"
        raise ConfigTypeError(f"{flag(f.name)} must be {what}, got {value!r}")


def _check_name(f: Field, value: str) -> None:
    """Refuse a name the field's ``names`` lack, suggesting the closest."""
    names = f.metadata["names"]
    ignore_case = f.metadata.get("names_ignore_case", False)
    if (value.lower() if ignore_case else value) in names:
        return
    close = difflib.get_close_matches(value.lower() if ignore_case else value, names, n=6, cutoff=0.6)
    close = list({n.lower(): n for n in reversed(close)}.values())[::-1][:3]  # huber, not huber and Huber
    listed = ", ".join(n for n in names if n.islower())
    hint = f"did you mean {', '.join(close)}?" if close else f"choose one of: {listed}"
    raise ConfigError(f"unknown {f.name} {value!r}; {hint}")
