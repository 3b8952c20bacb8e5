"""Training statistics: the original's binned ``statbin`` and the per-episode progress CSV."""

from __future__ import annotations

import csv
import math
import os
import warnings

import numpy as np

PROGRESS_FIELDS = ["episode", "total_steps", "reward", "length", "epsilon", "loss", "max_q", "min_q", "wall_time"]


def statbin(values, bin_size: int) -> dict[str, np.ndarray]:
    """Group ``values`` into consecutive bins of ``bin_size`` and summarise each bin.

    Returns arrays ``x`` (episode index at the end of each bin), ``mean``,
    ``std``, ``min`` and ``max``. A last, partial bin is included; NaNs (an
    episode without that statistic) are left out of their bin.
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
        }


class ProgressCSV:
    """Appends one row per episode to ``progress.csv``, flushing each row so nothing is lost."""

    def __init__(self, path: str):
        self.path = path
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        self._file = open(path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=PROGRESS_FIELDS, extrasaction="ignore")
        if new:
            self._writer.writeheader()
            self._file.flush()

    def write(self, row: dict) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_progress(path: str, until_step: int | None = None) -> list[dict]:
    """Rows of a progress CSV as dicts of floats (ints for counters), up to ``until_step`` total steps."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            row = {k: float(v) if v not in ("", None) else float("nan") for k, v in raw.items()}
            for k in ("episode", "total_steps", "length"):
                row[k] = int(row[k])
            if until_step is not None and row["total_steps"] > until_step:
                break
            rows.append(row)
    return rows


def rewrite_progress(path: str, rows: list[dict]) -> None:
    """Replace ``path`` with exactly ``rows`` (used when resuming drops episodes after a checkpoint)."""
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=PROGRESS_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
