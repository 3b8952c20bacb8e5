"""kerlym's settings as typed, frozen dataclasses: one per agent family plus one for the run.

Every setting is declared once, here: one name (the Python API's keyword and
the command's long flag, ``--max_memory``), one default per class, one
docstring and one validation. A subclass changes an inherited default with
``@configclass(name=value)`` rather than declaring the field again. The
command's flags are generated from these fields (``kerlym.main``); each
declaration adds the original KeRLym spellings (``-m``, ``--max_mem``), which
also stay accepted as Python keywords and in old ``config.json`` files
(:data:`OLD_NAMES`), and, where the original command's default differed from
the Python API's, the command's default. Presets (:mod:`kerlym.presets`) are
dictionaries of these field names, checked against the same classes.

This module imports only the standard library, so that ``kerlym --help`` and
argument errors stay instant.
"""

from __future__ import annotations

from dataclasses import MISSING, fields, replace  # noqa: F401 (C.replace, C.fields, C.MISSING)

from kerlym.config.classes import (  # noqa: F401 (kerlym.config's API)
    AVERAGE_SYMMETRIES,
    BATCH_SIZE,
    A2CConfig,
    ActorCriticConfig,
    AgentConfig,
    DQNConfig,
    PGConfig,
    PPOConfig,
    RunConfig,
)
from kerlym.config.declare import (  # noqa: F401 (kerlym.config's API)
    _FLAGS,
    ACTOR_MODES,
    CHECKS,
    DTYPE_POLICIES,
    LOSS_NAMES,
    MLFLOW_DEFAULT_URI,
    OPTIMIZER_NAMES,
    PREPROCESSOR_NAMES,
    REPLAY_MODES,
    SCHEDULES,
    TOPICS,
    VECTOR_MODES,
    ConfigError,
    ConfigTypeError,
    configclass,
    flag,
    setting,
)

# Each setting's other long spellings and the field they name: the command's flag names that config.json used
# before these classes existed (num_frames, max_mem...), and names since changed (n_step). Python keywords,
# preset files and config.json files may use them.
OLD_NAMES = {s[2:]: name for name, flags in _FLAGS.items() for s in flags if s.startswith("--") and s[2:] != name}


def canonical(values: dict) -> dict:
    """``values`` with each key that is another spelling of a setting (``n_step``, ``max_mem``) renamed to its field."""
    return {OLD_NAMES.get(key, key): value for key, value in values.items()}


def parse_settings(items) -> dict:
    """``["KEY=VALUE", ...]`` as a dict; each value a Python literal (``3``, ``0.5``, ``True``, ``[1, 2]``) or a string.

    A value that starts as a literal would (a digit, a sign, a bracket or a quote) must be one: ``(nan,nan)`` or
    ``[1,`` is refused rather than passed on as a string; ``KEY="'(nan,nan)'"`` passes that string.

    Raises:
        ConfigError: an item that is not ``KEY=VALUE`` with an identifier for a key, or a value that looks like a
            literal but is not one (one line).
    """
    import ast

    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"settings are KEY=VALUE pairs, got {item!r}")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            if text.strip()[:1] in tuple("0123456789+-.([{'\""):
                raise ConfigError(
                    f"{item} is not a Python literal (numbers, quoted strings, True, False, None, and tuples, "
                    f"lists and dicts of them); to pass it as a string, quote it: {key}=\"'{text}'\""
                ) from None
            out[key] = text
    return out


def defaults(cls, cli: bool = False) -> dict:
    """A config class's defaults; ``cli``: the command's, where the original command's differ."""
    out = {}
    for f in fields(cls):
        cli_default = f.metadata.get("cli_default", MISSING)
        out[f.name] = cli_default if cli and cli_default is not MISSING else f.default
    return out


# What --resume and --play may change on a saved run; every other setting comes from its config.json.
RUNTIME_FIELDS = (
    "steps",
    "episodes",
    "plots",
    "plot_rate",
    "render",
    "submit",
    "quiet",
    "tensorboard",
    "mlflow",
    "wandb",
    "eval_episodes",
    "eval_every",
    "search",
    "average_symmetries",  # how greedy moves and a search's scores are read from the network, not what it learns
    "checkpoint_every",
    "save_memory",
    "dtype_policy",  # weights are float32 under either policy
    "actors",  # where acting runs, not what is learned
    "vector_env",  # how the env copies step
    "actor_sync_every",
)


def field_names(cls) -> list[str]:
    return [f.name for f in fields(cls)]


def config_dict(run: RunConfig, cfg: AgentConfig) -> dict:
    """What a run's ``config.json`` holds: every field of the run and of the agent, by name."""
    return {**to_dict(run), **to_dict(cfg)}


def to_dict(config) -> dict:
    """A config's fields as a JSON-able dict (a factory or preprocessor function is saved by its name)."""
    out = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if callable(value):
            value = getattr(value, "__name__", repr(value))
        out[f.name] = value
    return out
