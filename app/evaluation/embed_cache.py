"""Text embeddings for evaluation, cached on disk so a second run does not embed again.

One .npz per text model under `<data dir>/eval-cache/`, keyed by a hash of the exact text a
movie is embedded from: a changed title or overview gets a new entry, an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from app.catalog.models import Movie
from app.catalog.text import movie_text
from app.embedding.text import TEXT_MODEL, TextEncoder
from app.files import atomic_write

BATCH = 64


def text_key(text: str, model_id: str = TEXT_MODEL) -> str:
    return hashlib.sha256(f"{model_id}\n{text}".encode()).hexdigest()[:32]


def cached_text_vectors(
    movies: Sequence[Movie],
    cache_dir: Path,
    make_encoder: Callable[[], TextEncoder],
    model_id: str = TEXT_MODEL,
) -> dict[int, np.ndarray]:
    """Movie id -> unit text vector; only movies missing from the cache are embedded (and added).
    `model_id` is the manifest's text model: the int8 backend's vectors get a cache of their own."""
    path = Path(cache_dir) / f"text-{model_id}.npz"
    cache = _load(path)
    texts = {m.id: movie_text(m) for m in movies}
    keys = {mid: text_key(t, model_id) for mid, t in texts.items()}
    missing = sorted({keys[mid]: mid for mid in texts if keys[mid] not in cache}.values())
    if missing:
        vectors = make_encoder().encode([texts[mid] for mid in missing], batch_size=BATCH)
        cache.update({keys[mid]: v for mid, v in zip(missing, vectors, strict=True)})
        _save(path, cache)
    return {mid: cache[keys[mid]] for mid in texts}


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    with np.load(path) as data:
        return dict(zip(data["keys"].tolist(), data["vectors"], strict=True))


def _save(path: Path, cache: dict[str, np.ndarray]) -> None:
    """Written all at once, so a killed run leaves the old cache, never half a file."""
    with atomic_write(path, suffix=".tmp.npz") as tmp:  # np.savez adds .npz to a name without it
        np.savez(tmp, keys=np.array(list(cache)), vectors=np.stack(list(cache.values())).astype(np.float32))
