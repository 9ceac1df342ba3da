"""Helpers the benchmark scripts share: percentiles, tables, logging and the offline model environment.

The scripts run as `.venv/bin/python bench/<name>.py` from the repository root: Python puts bench/
first on sys.path, so they import this module as `common` (and each other by name), and `app` and
`ingest` from the installed (editable) package.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from app.catalog.models import Movie
    from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

# Offline by construction: the models load from installed packages, never from the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the table or the JSON object."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def timer() -> Iterator[list[float]]:
    """`with timer() as t: ...` then `t[0]` is the elapsed seconds."""
    out: list[float] = []
    start = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - start)


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 of durations given in seconds, in milliseconds."""
    if not seconds:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan")}
    ms = np.asarray(seconds) * 1000.0
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3), "p99_ms": round(float(p99), 3)}


def parse_ints(text: str) -> list[int]:
    """'10000,100000' -> [10000, 100000]; underscores and 'k'/'m' suffixes allowed ('100k', '1m')."""
    out = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        if not part:
            continue
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1], 1)
        out.append(round(float(part[:-1] if scale > 1 else part) * scale))
    if not out:
        raise ValueError(f"no numbers in {text!r}")
    return out


def add_fold_args(parser: argparse.ArgumentParser) -> None:
    """The validation benches' data options: --dataset, --split (MSR's item split or the user one)
    and --seeds (the outer splits, each with its inner validation split at seed + 100)."""
    parser.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "demo"])
    parser.add_argument("--split", default="item", choices=["item", "user"])
    parser.add_argument("--seeds", default="1,2,3", type=parse_ints)


def paired_difference(values: np.ndarray, base: np.ndarray) -> str:
    """ "+0.0012±0.0004": the mean of `values - base` (per user, paired) ± its standard error."""
    diff = values - base
    return f"{diff.mean():+.4f}±{diff.std() / np.sqrt(len(diff)):.4f}"


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain fixed-width table of the given columns; missing values print as '-'."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def emit(table: str, payload: dict[str, Any], as_json: bool) -> None:
    """With --json, the JSON object alone on stdout and the table on stderr; else the table on stdout."""
    if as_json:
        print(table, file=sys.stderr)
        print(json.dumps(payload, default=_jsonable))
    else:
        print(table)


def eval_text_vectors(movies: Sequence[Movie], settings: Settings) -> dict[int, np.ndarray]:
    """Movie id -> text vector as `movierec eval` embeds them: its cache in the data dir, the settings'
    text model (built by the app's factory) on CPU, for the movies the cache lacks."""
    from app.embedding.factory import build_text_encoder
    from app.embedding.text import text_model_id
    from app.evaluation.embed_cache import cached_text_vectors

    model = text_model_id(settings.text_backend)  # int8 vectors are cached apart
    return cached_text_vectors(
        movies, settings.data_dir / "eval-cache", lambda: build_text_encoder(settings, "cpu"), model
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
