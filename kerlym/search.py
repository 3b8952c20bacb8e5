"""Search spaces for ``kerlym --tune SPACE_FILE``: a YAML file of settings and their distributions.

    learning_rate: {loguniform: [1.0e-5, 1.0e-3]}
    batch_size: {choice: [32, 64, 128]}
    discount: {uniform: [0.95, 0.999]}

Each name must be a setting of the agent (checked against its config, with a
did-you-mean); Ray Tune and PyYAML are imported only where they are used.
"""

from __future__ import annotations

from typing import NamedTuple

from kerlym import config as C
from kerlym._io import install_hint
from kerlym.agents import AGENT_CONFIGS


class SpaceError(ValueError):
    """A bad search space (an unknown setting, kind or range, unreadable YAML); the message is one line."""


class Dist(NamedTuple):
    """One searched setting: ``uniform``/``loguniform`` over [low, high], or a ``choice`` of values."""

    kind: str
    low: float | None = None
    high: float | None = None
    values: tuple = ()
    integer: bool = False


KINDS = ("uniform", "loguniform", "choice")


def parse_space(space, agent: str, base: C.AgentConfig) -> dict[str, Dist]:
    """A search space (a mapping as read from YAML) checked against ``agent``'s config fields.

    Each entry is ``name: {uniform: [low, high]}``, ``{loguniform: [low, high]}`` or ``{choice: [v, ...]}``.
    On an integer setting (``batch_size``) uniform and log-uniform draw integers from [low, high].
    Every bound and choice must be a valid value of the setting (checked on ``base``).

    Raises:
        SpaceError: a name that is not a setting of ``agent`` (with a did-you-mean), an unknown kind, a bad range.
    """
    import difflib

    if not isinstance(space, dict) or not space:
        raise SpaceError("the search space must map setting names to {uniform|loguniform|choice: ...}")
    space = C.canonical(space)  # another spelling of a setting (n_step) names its field
    cls = AGENT_CONFIGS[agent]
    known = [n for n in C.field_names(cls) if n != "seed"]
    types = {f.name: str(f.type) for f in C.fields(cls)}
    out = {}
    for name, entry in space.items():
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise SpaceError(f"-a {agent} has no setting {name!r} to search{hint}")
        if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in KINDS:
            raise SpaceError(f"{name}: give one of {', '.join(KINDS)}, e.g. {name}: {{choice: [1, 2]}}; got {entry!r}")
        ((kind, args),) = entry.items()
        integer = types[name].startswith("int")
        if kind == "choice":
            if not isinstance(args, list) or not args:
                raise SpaceError(f"{name}: choice takes a non-empty list of values, got {args!r}")
            dist = Dist(kind, values=tuple(args), integer=integer)
            tried = list(args)
        else:
            ok = isinstance(args, list) and len(args) == 2 and all(isinstance(a, (int, float)) for a in args)
            if not ok or not args[0] < args[1]:
                raise SpaceError(f"{name}: {kind} takes [low, high] with low < high, got {args!r}")
            if kind == "loguniform" and args[0] <= 0:
                raise SpaceError(f"{name}: loguniform needs a positive low bound, got {args[0]}")
            if integer and not all(float(a).is_integer() for a in args):
                raise SpaceError(f"{name} is an integer setting: give integer bounds, got {args!r}")
            cast = int if integer else float
            dist = Dist(kind, cast(args[0]), cast(args[1]), integer=integer)
            tried = [dist.low, dist.high]
        for value in tried:  # each bound or choice must be a value the config accepts
            try:
                C.replace(base, **{name: value})
            except (C.ConfigError, TypeError) as e:
                raise SpaceError(f"{name}: {value!r} is not a valid value: {e}") from None
        out[name] = dist
    return out


def read_space(path: str, agent: str, base: C.AgentConfig) -> dict[str, Dist]:
    """The search space in the YAML file ``path`` (see :func:`parse_space`)."""
    try:
        import yaml
    except ImportError:
        raise SpaceError(f"--tune reads YAML: {install_hint('ray')}") from None
    try:
        with open(path) as f:
            space = yaml.safe_load(f)
    except OSError as e:
        raise SpaceError(f"cannot read the search space {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise SpaceError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    except UnicodeDecodeError as e:  # a binary file
        raise SpaceError(
            f"{path} is not a YAML text file: byte {e.object[e.start]:#04x} at {e.start} is not UTF-8"
        ) from None
    return parse_space(space, agent, base)


def to_tune(space: dict[str, Dist]) -> dict:
    """The space as Ray Tune sample domains (which ``OptunaSearch`` turns into Optuna distributions)."""
    from ray import tune

    out = {}
    for name, d in space.items():
        if d.kind == "choice":
            out[name] = tune.choice(list(d.values))
        elif d.integer:  # randint's upper bound is exclusive; the YAML's is inclusive
            out[name] = (tune.lograndint if d.kind == "loguniform" else tune.randint)(d.low, d.high + 1)
        else:
            out[name] = (tune.loguniform if d.kind == "loguniform" else tune.uniform)(d.low, d.high)
    return out
