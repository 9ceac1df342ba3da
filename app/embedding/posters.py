"""Poster fetching: local files or URLs, a disk cache, bounded concurrency and timeouts.

A missing or broken poster is a counted failure, never an exception: the movie keeps its text.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import httpx
from PIL import Image, UnidentifiedImageError

from app.files import atomic_write

log = logging.getLogger(__name__)

DECODE_SIZE = (256, 256)  # JPEG draft mode decodes at reduced scale: 2x faster for big posters
MAX_BYTES = 20 * 1024 * 1024
# Unusable posters logged one by one per loader (one ingest); the others are only counted (the
# summary's `failed`): a catalogue of TMDB paths without its images is otherwise a line per movie.
MAX_POSTER_WARNINGS = 10


class PosterLoader:
    def __init__(self, cache_dir: Path, timeout_s: float = 10.0, concurrency: int = 8) -> None:
        self.cache_dir = Path(cache_dir)
        self.concurrency = concurrency
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=True)
        self._failures = 0
        self._failures_lock = threading.Lock()

    def load_many(self, refs: Sequence[str | None]) -> list[Image.Image | None]:
        """One image (or None on any failure) per reference, in order."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self.load, refs))

    def load(self, ref: str | None) -> Image.Image | None:
        if not ref:
            return None
        try:
            data = self._fetch(ref) if ref.startswith(("http://", "https://")) else Path(ref).read_bytes()
            return _decode(data)
        except (OSError, httpx.HTTPError, UnidentifiedImageError, ValueError) as exc:
            self._log_failure(ref, exc)
            return None

    def _log_failure(self, ref: str, exc: Exception) -> None:
        with self._failures_lock:
            self._failures += 1
            n = self._failures
        if n <= MAX_POSTER_WARNINGS:
            log.warning("poster unusable", extra={"poster": ref, "error": str(exc)})
        elif n == MAX_POSTER_WARNINGS + 1:
            log.warning(
                "more posters unusable: counted as `failed` in the summary, not logged; relative paths "
                "resolve against MOVIEREC_POSTER_BASE, else the movies file's folder"
            )

    def _fetch(self, url: str) -> bytes:
        cached = cache_path(self.cache_dir, url)
        if cached.exists():
            return cached.read_bytes()
        response = self._client.get(url)
        response.raise_for_status()
        if len(response.content) > MAX_BYTES:
            raise ValueError(f"poster larger than {MAX_BYTES} bytes")
        with atomic_write(cached, suffix=".part") as tmp:
            tmp.write_bytes(response.content)
        return response.content

    def close(self) -> None:
        self._client.close()


def cache_path(cache_dir: Path, url: str) -> Path:
    """Where a fetched poster URL is kept: one file per URL, named by its SHA-1."""
    return Path(cache_dir) / (hashlib.sha1(url.encode()).hexdigest() + ".img")


def poster_file(cache_dir: Path, ref: str | None) -> Path | None:
    """The image file behind a poster reference: a URL's cached copy, or the local file itself;
    None when there is none (never fetched, or deleted since)."""
    if not ref:
        return None
    path = cache_path(cache_dir, ref) if ref.startswith(("http://", "https://")) else Path(ref)
    return path if path.is_file() else None


def image_media_type(path: Path) -> str | None:
    """The MIME type of an image file, read from its content (cached copies have no extension);
    None when the file is not a readable image."""
    try:
        with Image.open(path) as image:
            return Image.MIME.get(image.format or "")
    except (OSError, UnidentifiedImageError):
        return None


def _decode(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.draft("RGB", DECODE_SIZE)
    image.load()  # decode now, in the worker thread, so corrupt files fail here
    return image.convert("RGB")
