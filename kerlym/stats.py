"""Training statistics: the original's binned ``statbin`` and the per-episode progress CSV."""

from __future__ import annotations

import csv
import io
import math
import os
import warnings

import numpy as np

from kerlym._io import CheckpointError

PROGRESS_FIELDS = ["episode", "total_steps", "reward", "length", "epsilon", "loss", "max_q", "min_q", "wall_time"]
# After PROGRESS_FIELDS come the columns an agent adds (its ``metric_names``, e.g. the actor-critic agents'
# losses and entropy of their latest update) and, with actors, ``weight_lag``. A file has the columns of the
# agent that started it; files written before these existed have none and stay readable.


def progress_fields(extra=()) -> list[str]:
    """The progress CSV's columns for an agent whose rows also carry ``extra`` (identifiers, in their order).

    Raises:
        ValueError: an extra column that is not an identifier, or repeats a column.
    """
    bad = [name for name in extra if not str(name).isidentifier() or name in PROGRESS_FIELDS]
    if bad or len(set(extra)) != len(extra):
        raise ValueError(f"progress.csv columns must be new identifiers, got {', '.join(map(str, extra))}")
    return PROGRESS_FIELDS + list(extra)


def _header_fields(path: str) -> list[str] | None:
    """The columns named by the first line of the progress CSV ``path`` when it is a whole, known header."""
    try:
        with open(path, "rb") as f:
            first = f.readline()
    except OSError:
        return None
    values = _csv_values(first) if first.endswith(b"\n") else None
    if values and values[: len(PROGRESS_FIELDS)] == PROGRESS_FIELDS:
        extra = values[len(PROGRESS_FIELDS) :]
        if all(name.isidentifier() and name not in PROGRESS_FIELDS for name in extra):
            return values
    return None


def statbin(values, bin_size: int) -> dict[str, np.ndarray]:
    """Group ``values`` into consecutive bins of ``bin_size`` and summarise each bin.

    Returns arrays ``x`` (episode index at the end of each bin), ``mean``,
    ``std``, ``min``, ``max`` and ``count`` (values in the bin). A last,
    partial bin is included, its ``count`` below ``bin_size``; NaNs (an
    episode without that statistic) are left out of their bin's summaries.
    """
    if bin_size < 1:
        raise ValueError(f"bin_size must be positive, got {bin_size}")
    v = np.asarray(values, dtype=np.float64)
    n_bins = math.ceil(len(v) / bin_size)
    padded = np.full(n_bins * bin_size, np.nan)
    padded[: len(v)] = v
    bins = padded.reshape(n_bins, bin_size)
    with warnings.catch_warnings():  # a bin of only NaNs (e.g. no Q-values yet) summarises to NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "x": np.minimum(np.arange(1, n_bins + 1) * bin_size, len(v)),
            "mean": np.nanmean(bins, axis=1),
            "std": np.nanstd(bins, axis=1),
            "min": np.nanmin(bins, axis=1),
            "max": np.nanmax(bins, axis=1),
            "count": np.minimum(len(v) - np.arange(n_bins) * bin_size, bin_size),
        }


class ProgressWarning(UserWarning):
    """A partial last row of a CSV file was dropped (a write cut short by a full disk or a crash)."""


def append_line(path: str, line: str, header: str | None = None) -> None:
    """Append ``line`` to ``path`` whole, after ``header`` if the file is new or empty.

    The text goes out in one ``write`` call (repeated only for the rest of a
    short write). If writing fails (a full disk), the file is cut back to its
    length before, so it never ends in a partial row.

    Raises:
        CheckpointError: the line cannot be written; the message names the file and the reason.
    """
    fd = _open_append(path)
    try:
        _drop_partial_line(fd, path)
        _write_whole(fd, path, line, header)
    finally:
        os.close(fd)


def _open_append(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {e.strerror or e}") from None


def _write_whole(fd: int, path: str, line: str, header: str | None) -> None:
    size = os.fstat(fd).st_size
    data = ((header if header and size == 0 else "") + line).encode()
    try:
        done = 0
        while done < len(data):
            done += os.write(fd, data[done:])
    except OSError as e:
        try:
            os.ftruncate(fd, size)
        except OSError:
            note = f"; {path} may end in a partial row, which reading it drops"
        else:
            note = ""
        raise CheckpointError(f"cannot write {path}: {e.strerror or e}{note}") from None


def _drop_partial_line(fd: int, path: str) -> None:
    """Cut a file that does not end in a line end back to its last one, so appended rows start on a new line."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = max(0, size - 65536)  # a row is far shorter than this
    keep = os.pread(fd, size - start, start).rfind(b"\n") + 1
    keep = start + keep if keep else 0
    try:
        os.ftruncate(fd, keep)
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {e.strerror or e}") from None
    warnings.warn(f"{path} ended in a partial row (a write was cut short); dropped it", ProgressWarning, stacklevel=3)


def csv_line(row: dict, fields: list[str]) -> str:
    """``row`` as one CSV line (fields in order, missing ones empty), as ``csv.DictWriter`` writes it."""
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore").writerow(row)
    return buffer.getvalue()


class ProgressCSV:
    """Appends one row per episode to ``progress.csv``; each row reaches the file whole or not at all.

    Args:
        path: the CSV file. One that exists keeps its own columns (a run resumed from an older file too).
        extra: columns after PROGRESS_FIELDS for a new file (the agent's ``metric_names``).

    Raises:
        CheckpointError: from ``__init__`` or :meth:`write` when the file cannot be written.
    """

    def __init__(self, path: str, extra=()):
        self.path = path
        self._fd = _open_append(path)
        _drop_partial_line(self._fd, path)
        new = os.fstat(self._fd).st_size == 0
        self.fields = (None if new else _header_fields(path)) or progress_fields(extra)
        self._header = csv_line(dict(zip(self.fields, self.fields, strict=True)), self.fields)
        if new:
            _write_whole(self._fd, path, "", self._header)

    def write(self, row: dict) -> None:
        _write_whole(self._fd, self.path, csv_line(row, self.fields), self._header)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_table(path: str, fields: list[str]) -> tuple[list[dict[str, str]], str | None]:
    """The rows of a kerlym CSV file (``fields`` as its header) as dicts of strings, and a note on a dropped row.

    A last row that is incomplete (no line end, too few or too many values)
    is what a write cut short leaves: it is dropped and the note says so. A
    missing file has no rows.

    Raises:
        CheckpointError: a wrong header or a bad row before the last one, naming the file and line.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: the text after the last line end ("" when there is none)
    rows, note = [], None
    for number, raw in enumerate(complete, start=1):
        values = _csv_values(raw)
        if number == 1:
            if values != fields:
                raise CheckpointError(f"{path} line 1 is not the header {','.join(fields)}")
            continue
        if values is None or len(values) != len(fields):
            if number == len(complete) and not tail:
                note = f"{path} line {number} is incomplete (a write was cut short); dropped it"
                break
            raise CheckpointError(f"{path} line {number} is corrupt: expected {len(fields)} values")
        rows.append(dict(zip(fields, values, strict=True)))
    if tail:  # a header cut short too: the file has no rows yet
        note = f"{path} line {len(complete) + 1} is incomplete (a write was cut short); dropped it"
    return rows, note


def _csv_values(raw: bytes) -> list[str] | None:
    try:
        text = raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        return None
    return next(csv.reader([text]), [])


def _progress_row(raw: dict[str, str], path: str, number: int) -> dict:
    try:
        row = {k: float(v) if v != "" else float("nan") for k, v in raw.items()}
        for k in ("episode", "total_steps", "length"):
            row[k] = int(row[k])
    except ValueError as e:
        raise CheckpointError(f"{path} line {number} is corrupt: {e}") from None
    return row


def load_progress(path: str) -> tuple[list[dict], str | None]:
    """All rows of a progress CSV as dicts of floats (ints for counters), and a note if a partial last row was dropped.

    Raises:
        CheckpointError: a corrupt row other than the last, naming the file and line.
    """
    raw_rows, note = read_table(path, _header_fields(path) or PROGRESS_FIELDS)
    rows = []
    for i, raw in enumerate(raw_rows):
        try:
            rows.append(_progress_row(raw, path, i + 2))
        except CheckpointError as e:
            if i < len(raw_rows) - 1 or note:
                raise
            note = f"{e}; dropped it"  # the last row: what a write cut short leaves
    return rows, note


def read_progress(path: str, until_step: int | None = None) -> list[dict]:
    """Rows of a progress CSV as dicts of floats (ints for counters), up to ``until_step`` total steps.

    A partial last row is dropped with a :class:`ProgressWarning`; use
    :func:`load_progress` to get that note as a value instead.

    Raises:
        CheckpointError: a corrupt row other than the last, naming the file and line.
    """
    rows, note = load_progress(path)
    if note:
        warnings.warn(note, ProgressWarning, stacklevel=2)
    return [r for r in rows if until_step is None or r["total_steps"] <= until_step]


def truncate_progress(
    path: str, until_step: int | None = None, until_episode: int | None = None
) -> tuple[list[dict], str | None]:
    """Keep the rows of ``path`` up to a checkpoint (``total_steps <= until_step``, ``episode <= until_episode``).

    This is what a resume does: the episodes after the checkpoint will be run
    again. Giving the checkpoint's episode count makes the rows kept agree
    with it exactly. A partial last row is dropped too; the note says so. The
    file is rewritten atomically, only when something was dropped.

    Raises:
        CheckpointError: a corrupt row other than the last, or the file cannot be rewritten.
    """
    rows, note = load_progress(path)
    kept = [
        r
        for r in rows
        if (until_step is None or r["total_steps"] <= until_step)
        and (until_episode is None or r["episode"] <= until_episode)
    ]
    if note or len(kept) < len(rows):
        rewrite_progress(path, kept)
    return kept, note


def rewrite_progress(path: str, rows: list[dict]) -> None:
    """Replace ``path`` with exactly ``rows``, atomically (used when resuming drops episodes after a checkpoint).

    Raises:
        CheckpointError: it cannot be written; the old file is kept.
    """
    from kerlym._io import temporary_path

    tmp = temporary_path(path)
    extra = [name for name in (rows[0] if rows else ()) if name not in PROGRESS_FIELDS]
    fields = _header_fields(path) or progress_fields(extra)
    try:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # never there, or the error above says why
        raise CheckpointError(f"cannot rewrite {path}: {e.strerror or e} (the old file is kept)") from None


# -- two-player games: wins, draws and losses ------------------------------------------------------------------------
def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a rate of ``successes`` in ``n`` trials (``z=1.96``: 95%); ``(0, 1)`` for n=0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def game_results(returns) -> dict:
    """A two-player game's episodes as ``wins``, ``draws``, ``losses`` (return > 0, = 0, < 0), the win rate
    and its Wilson 95% interval ``win_rate_95``."""
    returns = np.asarray(returns, dtype=np.float64)
    wins, losses = int((returns > 0).sum()), int((returns < 0).sum())
    n = len(returns)
    return {
        "wins": wins,
        "draws": n - wins - losses,
        "losses": losses,
        "win_rate": wins / n if n else float("nan"),
        "win_rate_95": list(wilson_interval(wins, n)),
    }


def opponent_results(returns) -> dict:
    """An evaluation against one opponent: the returns' ``mean`` and ``std`` and :func:`game_results`."""
    returns = np.asarray(returns, dtype=np.float64)
    mean = float(returns.mean()) if len(returns) else float("nan")
    std = float(returns.std()) if len(returns) else float("nan")
    return {"episodes": len(returns), "mean": mean, "std": std, **game_results(returns)}


def game_results_text(results: dict) -> str:
    """``wins 12, draws 3, losses 5; win rate 0.60 (95% 0.39-0.78)``."""
    lo, hi = results["win_rate_95"]
    return (
        f"wins {results['wins']}, draws {results['draws']}, losses {results['losses']}; "
        f"win rate {results['win_rate']:.2f} (95% {lo:.2f}-{hi:.2f})"
    )
