"""Ingest throughput: movies/s for text and posters/s for images, pipeline against the raw model.

Text, per batch size and text backend (--backends: torch, onnx, onnx-int8, openvino; the same
texts each time: `movie_text` of the first --limit demo movies, or of --movies FILE's):
- pipeline: the real ingest (`ingest.run`) of those demo movies into a fresh temporary data dir,
  with a text-only `MovieEmbedder` (text batch = ingest batch = the batch size); timed: its index
  step (`IngestSummary.seconds`: hashes, embed, upsert, publish), not the database's part;
- raw:      `TextEncoder.model.encode(texts, batch_size=B)` on the same texts in one call: that
  backend's own model (sentence-transformers for torch, the ONNX Runtime / OpenVINO session else);
- raw_chunked (extra): the same, called once per ingest batch, as the pipeline calls it. Its gap to
  raw is padding: sentence-transformers sorts texts by length within one call only.
Images, per batch size (posters: real photos, written as 500x750 JPEG files, so decode counts):
- pipeline: `MovieEmbedder`'s poster path (PosterLoader.load_many: read + draft decode, then the
  image encoder's transform + CNN), called per ingest batch with image batch = the batch size;
- raw:      the CNN alone on pre-decoded, pre-transformed tensors, in batches of the same size.
ratio = pipeline / raw. The target for text is >= 0.8.

Also reported (--json "overhead"): where the text pipeline's time goes (embed, upsert, flush,
publish, the rest), and micro-timings of the Edge adapter's upsert and flush.

Run: .venv/bin/python bench/ingest_throughput.py [--limit 1024] [--posters 64] [--batch-sizes 16,64,256]
                                     [--backends all|torch,onnx,onnx-int8,openvino] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, emit, format_table, log, parse_ints, timer

from app.catalog.models import Movie
from app.embedding.image import ImageEncoder
from app.embedding.movie import EmbedResult, MovieEmbedder
from app.embedding.posters import PosterLoader
from app.settings import Settings
from app.vectorstore.base import Manifest, MovieFilter, MovieIndex, MoviePoint, StoredMovie

POSTER_SIZE = (500, 750)  # TMDB's w500 posters
MIN_SOURCE_SIDE = 128  # skip icons and tiny test images
WARMUP_TEXTS = 16


# -- inputs --------------------------------------------------------------------------------------
def text_movies(limit: int, movies_file: Path | None = None) -> list[Movie]:
    """The first `limit` movies of the demo catalogue, or of `movies_file` (the tmdb source's format),
    validated as the ingest does; posters cleared (text only)."""
    from app.datasets import load_catalogue, validate

    if movies_file:
        source = load_catalogue("tmdb", movies=movies_file, limit=limit)
    else:
        source = load_catalogue("demo", limit=limit)
    movies, _, _ = validate(source)
    for m in movies:
        m.poster = None
    return movies


def photo_sources() -> list[Path]:
    """scikit-image's sample photos and the repo's fixture posters (unreadable ones are skipped later)."""
    spec = importlib.util.find_spec("skimage")
    found: list[Path] = []
    if spec and spec.submodule_search_locations:
        data = Path(spec.submodule_search_locations[0]) / "data"
        found += sorted(p for p in data.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    found += sorted((ROOT / "tests" / "fixtures" / "tmdb" / "posters").glob("*.jpg"))
    return found


def write_posters(n: int, folder: Path) -> list[Path]:
    """`n` poster-shaped JPEGs made from the real photos, repeated in turn."""
    from PIL import Image, ImageOps

    photos = []
    for path in photo_sources():
        try:
            with Image.open(path) as im:
                if min(im.size) >= MIN_SOURCE_SIDE:
                    photos.append(ImageOps.fit(im.convert("RGB"), POSTER_SIZE))
        except OSError:
            continue  # the fixture's broken.jpg, on purpose
    if not photos:
        raise SystemExit("no photos found: install scikit-image")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"poster-{i:05d}.jpg"
        photos[i % len(photos)].save(path, "JPEG", quality=90)
        paths.append(path)
    log(f"wrote {n} posters from {len(photos)} photos into {folder}")
    return paths


# -- timing wrappers around the real store and index ---------------------------------------------
@dataclass
class Spent:
    """Seconds spent per named operation."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, start: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


class TimedIndex:
    """A MovieIndex that times the writes the pipeline makes, passing everything through."""

    def __init__(self, inner: MovieIndex, spent: Spent) -> None:
        self.inner, self.spent = inner, spent

    def __getattr__(self, name: str) -> Any:
        """Anything else (query_fused, set_vectors, ...) goes straight to the wrapped index."""
        return getattr(self.inner, name)

    def upsert(self, points: Sequence[MoviePoint]) -> None:
        start = time.perf_counter()
        self.inner.upsert(points)
        self.spent.add("upsert", start)

    def flush(self) -> None:
        start = time.perf_counter()
        self.inner.flush()
        self.spent.add("flush", start)

    def payload_field(self, key: str) -> dict[int, Any]:
        start = time.perf_counter()
        out = self.inner.payload_field(key)
        self.spent.add("hashes_count", start)
        return out

    def count(self, filter: MovieFilter | None = None) -> int:
        start = time.perf_counter()
        out = self.inner.count(filter)
        self.spent.add("hashes_count", start)
        return out

    def delete(self, ids: Iterable[int]) -> None:
        self.inner.delete(ids)

    def retrieve(self, ids: Sequence[int], vectors: Sequence[str] = ()) -> list[StoredMovie]:
        return self.inner.retrieve(ids, vectors)

    def close(self) -> None:
        self.inner.close()


class TimedStore:
    """The real EdgeStore, timing stage and publish; publish gets the real index back."""

    def __init__(self, inner: Any, spent: Spent) -> None:
        self.inner, self.spent = inner, spent

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def manifest(self) -> Manifest | None:
        return self.inner.manifest()

    def published_hashes(self) -> dict[int, str]:
        return self.inner.published_hashes()

    def stage(self, manifest: Manifest, rebuild: bool, points: int = 0) -> TimedIndex:
        start = time.perf_counter()
        index = self.inner.stage(manifest, rebuild, points)
        self.spent.add("stage", start)
        return TimedIndex(index, self.spent)

    def publish(self, index: TimedIndex, manifest: Manifest) -> None:
        start = time.perf_counter()
        self.inner.publish(index.inner, manifest)  # optimize + flush + close + rename
        self.spent.add("publish", start)


class TimedEmbedder(MovieEmbedder):
    """A text-only MovieEmbedder whose `embed` is timed ("embed").

    `raw`, when given, runs on each batch just before the embedder does, timed apart as "raw_interleaved":
    the raw model on the very batches the pipeline embeds, interleaved with them.
    """

    def __init__(
        self, text: Any, batch_size: int, spent: Spent, raw: Callable[[Sequence[Movie]], None] | None = None
    ) -> None:
        super().__init__(text, None, None, text_batch_size=batch_size)
        self.spent, self.raw = spent, raw

    def embed(self, movies: Sequence[Movie]) -> EmbedResult:
        if self.raw is not None:
            start = time.perf_counter()
            self.raw(movies)
            self.spent.add("raw_interleaved", start)
        start = time.perf_counter()
        out = super().embed(movies)
        self.spent.add("embed", start)
        return out


# -- text ----------------------------------------------------------------------------------------
@dataclass
class Models:
    text: Any
    image: Any | None
    image_note: str


def text_raw(models: Models, texts: list[str], batch_size: int) -> float:
    """Seconds for one model.encode call on all the texts (it sorts them by length: least padding)."""
    with timer() as t:
        _encode(models, texts, batch_size)
    return t[0]


def _encode(models: Models, texts: list[str], batch_size: int) -> None:
    models.text.model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )


def text_pipeline(
    models: Models,
    movies: list[Movie],
    batch_size: int,
    settings: Settings,
    interleave: bool = True,
    movies_file: Path | None = None,
) -> tuple[float, float, dict[str, float]]:
    """Seconds of the ingest's index step for `movies` (the first demo movies, or `movies_file`'s) into a fresh data dir
    beside `settings`' (less the interleaved raw calls), the seconds of the raw model on the same
    batches, and where the index step's time went."""
    import ingest
    from app.catalog.text import movie_text
    from app.vectorstore import open_store

    spent = Spent()
    fresh = settings.model_copy(update={"data_dir": settings.data_dir / f"text-b{batch_size}-{time.time_ns()}"})

    def raw(batch: Sequence[Movie]) -> None:
        _encode(models, [movie_text(m) for m in batch], batch_size)

    summary = ingest.run(
        fresh,
        "tmdb" if movies_file else "demo",
        movies=movies_file,
        limit=len(movies),
        rebuild=True,
        batch_size=batch_size,
        collab=False,  # text only: the collab fit is another benchmark's (bench/collab_fit.py)
        store=TimedStore(open_store(fresh), spent),  # type: ignore[arg-type]
        make_embedder=lambda _with_images: TimedEmbedder(models.text, batch_size, spent, raw if interleave else None),
    )
    assert summary.embedded == len(movies), summary
    raw_s = spent.seconds.pop("raw_interleaved", 0.0)
    parts = {k: round(v, 3) for k, v in spent.seconds.items()}
    parts["other"] = round(summary.seconds - raw_s - sum(spent.seconds.values()), 3)
    return summary.seconds - raw_s, raw_s, parts


def bench_text(
    encoders: dict[str, Any],
    movies: list[Movie],
    batch_sizes: list[int],
    device: str,
    settings: Settings,
    repeats: int,
    movies_file: Path | None = None,
) -> list[dict[str, Any]]:
    """`encoders`: text backend -> TextEncoder. Backends take turns within each batch size, so drift on
    a shared machine hits them alike."""
    from app.catalog.text import movie_text

    texts = [movie_text(m) for m in movies]
    for text in encoders.values():  # warm model and engine
        text_pipeline(Models(text, None, ""), movies[:WARMUP_TEXTS], WARMUP_TEXTS, settings, False, movies_file)
    rows = []
    for bs in batch_sizes:
        for backend, text in encoders.items():
            models = Models(text, None, "")
            # Best of `repeats`. The per-batch raw runs interleaved with the pipeline's batches; the one-call
            # raw runs just before, so drift on a shared machine hits them alike.
            raw, chunked, pipe, parts = [], [], [], {}
            for _ in range(repeats):
                raw.append(text_raw(models, texts, bs))
                seconds, raw_chunked, p = text_pipeline(models, movies, bs, settings, movies_file=movies_file)
                if not pipe or seconds < min(pipe):
                    parts = p
                pipe.append(seconds)
                chunked.append(raw_chunked)
            row = _text_row(device, bs, len(texts), min(pipe), min(raw), min(chunked), parts, backend, text.precision)
            rows.append(row)
    return rows


def _text_row(
    device: str,
    bs: int,
    n: int,
    pipe_s: float,
    raw_s: float,
    chunked_s: float,
    parts: dict[str, float],
    backend: str = "torch",
    precision: str = "fp32",
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "device": device,
        "backend": backend,
        "precision": precision,
        "batch_size": bs,
        "pipeline_movies_per_s": round(n / pipe_s, 2),
        "raw_movies_per_s": round(n / raw_s, 2),
        "raw_chunked_movies_per_s": round(n / chunked_s, 2),
    }
    row["ratio"] = round(row["pipeline_movies_per_s"] / row["raw_movies_per_s"], 3)
    row["ratio_vs_chunked"] = round(row["pipeline_movies_per_s"] / row["raw_chunked_movies_per_s"], 3)
    row["pipeline_seconds"] = parts
    log(
        f"text {device} {backend} b{bs}: pipeline {row['pipeline_movies_per_s']}/s, raw {row['raw_movies_per_s']}/s, "
        f"raw per batch {row['raw_chunked_movies_per_s']}/s; {parts}"
    )
    return row


# -- images --------------------------------------------------------------------------------------
class TimedLoader(PosterLoader):
    """A PosterLoader whose read + decode is timed ("read_decode")."""

    def __init__(self, cache: Path, spent: Spent) -> None:
        super().__init__(cache)
        self.spent = spent

    def load_many(self, refs: Sequence[str | None]) -> list[Any]:
        start = time.perf_counter()
        out = super().load_many(refs)
        self.spent.add("read_decode", start)
        return out


class TimedImageEncoder:
    """An ImageEncoder passing everything to `inner`, its transform + CNN timed ("transform_cnn")."""

    def __init__(self, inner: ImageEncoder, spent: Spent) -> None:
        self.inner, self.spent = inner, spent
        self.name, self.dim = inner.name, inner.dim

    def encode(self, images: Sequence[Any], batch_size: int = 16) -> np.ndarray:
        start = time.perf_counter()
        out = self.inner.encode(images, batch_size=batch_size)
        self.spent.add("transform_cnn", start)
        return out


class PosterPath:
    """MovieEmbedder's poster path with its two stages timed: read + decode, transform + CNN."""

    def __init__(self, models: Models, batch_size: int, cache: Path) -> None:
        self.spent = Spent()
        self.loader = TimedLoader(cache, self.spent)
        image = TimedImageEncoder(models.image, self.spent)
        self.embedder = MovieEmbedder(models.text, image, self.loader, image_batch_size=batch_size)

    def run(self, movies: Sequence[Movie]) -> float:
        """Seconds for one ingest batch of posters."""
        with timer() as t:
            _, failures = self.embedder.embed_posters(movies)
        assert failures == 0, f"{failures} posters failed to load"
        return t[0]

    def close(self) -> None:
        self.loader.close()


def image_raw(models: Models, tensors: list[Any], batch_size: int) -> float:
    """Seconds for the CNN alone on pre-decoded tensors, batched and laid out as encode() does."""
    import torch

    enc = models.image
    with torch.inference_mode(), timer() as t:
        for start in range(0, len(tensors), batch_size):
            batch = torch.stack(tensors[start : start + batch_size]).to(enc.device)
            batch = batch.half() if enc.half else batch.to(memory_format=torch.channels_last)
            enc.features(batch).float().cpu()
    return t[0]


def bench_images(
    models: Models, paths: list[Path], batch_sizes: list[int], device: str, workdir: Path, repeats: int
) -> list[dict[str, Any]]:
    """Raw and pipeline interleaved batch by batch (alternating which goes first), so load spikes from
    other users hit both alike. With one batch in all (B >= posters), raw always goes first."""
    decoder = PosterLoader(workdir / "decode-cache")
    tensors = [models.image.transform(decoder.load(str(p))) for p in paths]  # pre-decoded, untimed
    decoder.close()
    movies = [Movie(id=i, title=f"poster {i}", poster=str(p)) for i, p in enumerate(paths)]
    rows = []
    for bs in batch_sizes:
        image_raw(models, tensors[:bs], bs)  # warm-up: the CPU backend prepares kernels per input shape
        raw, pipe, parts = [], [], {}
        for _ in range(repeats):
            path = PosterPath(models, bs, workdir / "poster-cache")
            r = p = 0.0
            try:
                for k, start in enumerate(range(0, len(movies), bs)):
                    if k % 2:  # alternate which goes first, so warm caches favour neither
                        p += path.run(movies[start : start + bs])
                        r += image_raw(models, tensors[start : start + bs], bs)
                    else:
                        r += image_raw(models, tensors[start : start + bs], bs)
                        p += path.run(movies[start : start + bs])
            finally:
                path.close()
            if not pipe or p < min(pipe):
                parts = {k: round(v, 3) for k, v in path.spent.seconds.items()}
            raw.append(r)
            pipe.append(p)
        rows.append(_image_row(device, bs, models, len(paths), min(pipe), min(raw), parts))
    return rows


def _image_row(
    device: str, bs: int, models: Models, n: int, pipe_s: float, raw_s: float, parts: dict[str, float]
) -> dict[str, Any]:
    row = {
        "device": device,
        "batch_size": bs,
        "model": models.image.name + models.image_note,
        "pipeline_posters_per_s": round(n / pipe_s, 2),
        "raw_posters_per_s": round(n / raw_s, 2),
    }
    row["ratio"] = round(row["pipeline_posters_per_s"] / row["raw_posters_per_s"], 3)
    row["pipeline_seconds"] = parts
    log(f"image {device} b{bs}: pipeline {row['pipeline_posters_per_s']}/s, raw {row['raw_posters_per_s']}/s; {parts}")
    return row


# -- adapter overhead ----------------------------------------------------------------------------
def adapter_overhead(
    models: Models, movies: list[Movie], batch_size: int, manifest: Manifest, workdir: Path, rounds: int = 5
) -> dict[str, float]:
    """Per ingest batch: encode, to_point, EdgeIndex.upsert and flush."""
    from app.embedding.movie import MovieEmbedder
    from app.vectorstore.edge import EdgeIndex
    from ingest.pipeline import to_point

    batch = movies[:batch_size]
    embedder = MovieEmbedder(models.text, None, None, text_batch_size=batch_size)
    with timer() as e:
        vectors = embedder.embed(batch).vectors
    with timer() as tp:
        pts = [to_point(m, v.as_dict(), False) for m, v in zip(batch, vectors, strict=True)]
    index = EdgeIndex.create(workdir / f"overhead-{time.time_ns()}", manifest)
    upsert, flush = [], []
    for _ in range(rounds):
        with timer() as t:
            index.upsert(pts)
        upsert.append(t[0])
        with timer() as t:
            index.flush()
        flush.append(t[0])
    index.close()
    ms = 1000.0
    return {
        "batch_size": len(batch),
        "encode_ms": round(e[0] * ms, 2),
        "to_point_ms": round(tp[0] * ms, 3),
        "upsert_ms": round(float(np.median(upsert)) * ms, 3),
        "flush_ms": round(float(np.median(flush)) * ms, 3),
    }


# -- main ----------------------------------------------------------------------------------------
def load_models(device: str, settings: Settings, backend: str = "auto") -> Models:
    """The text and poster models as the settings name them (MOVIEREC_TEXT_MODEL_PATH,
    MOVIEREC_EFFICIENTNET_WEIGHTS); resnet50 with random weights."""
    from app.embedding.factory import build_image_encoder
    from app.embedding.image import ResNet50Encoder
    from app.embedding.text import TextEncoder

    with timer() as t:
        text = TextEncoder(device, settings.text_model_path, backend, settings.model_cache_dir)
        if settings.image_model == "resnet50":
            image, note = ResNet50Encoder(device, weights="random"), " (random weights: speed only)"
        else:
            image, note = build_image_encoder(settings, device), ""
    log(f"loaded models on {device} (text: {text.backend}, {text.precision}) in {t[0]:.1f} s")
    return Models(text, image, note)


def load_text_encoders(device: str, backends: str, settings: Settings) -> dict[str, Any]:
    """Text backend -> TextEncoder. `all`: torch and every CPU backend whose packages are installed;
    on CUDA only torch runs (the others are CPU runtimes)."""
    from app.embedding.text import TEXT_BACKENDS, TextEncoder, resolve_text_backend
    from app.embedding.text_backends import runtime_installed

    if backends == "all":
        wanted = [b for b in TEXT_BACKENDS if b != "auto" and (b == "torch" or runtime_installed(b))]
    else:
        wanted = [b.strip() for b in backends.split(",") if b.strip()]
    if device != "cpu":
        skipped = [b for b in wanted if b not in ("auto", "torch")]
        if skipped:
            log(f"{device}: skipping text backends {skipped} (CPU only)")
        wanted = [b for b in wanted if b not in skipped] or ["torch"]
    encoders: dict[str, Any] = {}
    for requested in wanted:
        backend = resolve_text_backend(requested, device)
        if backend not in encoders:
            with timer() as t:
                encoders[backend] = TextEncoder(device, settings.text_model_path, backend, settings.model_cache_dir)
            note = " (exported now)" if encoders[backend].exported else ""
            log(f"text {backend} on {device} ({encoders[backend].precision}) loaded in {t[0]:.1f} s{note}")
    return encoders


def default_devices() -> str:
    import torch

    return "cpu,cuda" if torch.cuda.is_available() else "cpu"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # 1024: with the fast backends, a fixed ~0.1 s of stage and publish weighs on the ratio at 256.
    p.add_argument("--limit", type=int, default=1024, help="demo movies whose texts are embedded (default 1024)")
    p.add_argument(
        "--movies",
        type=Path,
        help="embed the texts of this movies file (the tmdb source's format: JSON, JSONL or CSV) instead of "
        "the demo catalogue's",
    )
    p.add_argument("--posters", type=int, default=64, help="poster files to embed (default 64)")
    p.add_argument(
        "--batch-sizes",
        type=parse_ints,
        default=parse_ints("16,64,256"),
        help="batch sizes, comma-separated (default 16,64,256)",
    )
    p.add_argument("--device", help="devices, comma-separated: cpu, cuda (default: cpu, plus cuda when available)")
    p.add_argument(
        "--backends",
        default="all",
        help="text backends, comma-separated: auto, torch, onnx, onnx-int8, openvino; all (default): torch and "
        "every installed CPU backend (on CUDA: torch only)",
    )
    p.add_argument(
        "--image-model",
        choices=("efficientnet-lite0", "resnet50"),
        default="efficientnet-lite0",
        help="poster CNN; resnet50 runs with random weights (same speed, no download)",
    )
    p.add_argument("--repeats", type=int, default=1, help="runs per measurement; the best is kept (default 1)")
    p.add_argument("--skip-text", action="store_true", help="images only")
    p.add_argument("--skip-images", action="store_true", help="text only")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p.parse_args(argv)


def run_device(
    device: str, args: argparse.Namespace, movies: list[Movie], posters: list[Path], settings: Settings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    from app.embedding.factory import build_manifest

    workdir, manifest = settings.data_dir, build_manifest(settings)
    text_rows: list[dict[str, Any]] = []
    overhead: dict[str, Any] = {}
    if not args.skip_text:
        encoders = load_text_encoders(device, args.backends, settings)
        text_rows = bench_text(encoders, movies, args.batch_sizes, device, settings, args.repeats, args.movies)
        first = next(iter(encoders.values()))
        overhead = {
            "device": device,
            "backend": first.backend,
            **adapter_overhead(Models(first, None, ""), movies, 64, manifest, workdir),
        }
        del encoders
    image_rows = []
    if not args.skip_images:
        models = load_models(device, settings)
        image_rows = bench_images(models, posters, args.batch_sizes, device, workdir, args.repeats)
    return text_rows, image_rows, overhead


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    devices = [d.strip() for d in (args.device or default_devices()).split(",") if d.strip()]
    # Libraries print to stdout (EfficientNet's "Loaded pretrained weights"): keep it for the table/JSON.
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, contextlib.redirect_stdout(sys.stderr):
        workdir = Path(tmp)
        settings = Settings(data_dir=workdir, qdrant_url=None, database_url=None, image_model=args.image_model)
        movies = [] if args.skip_text else text_movies(args.limit, args.movies)
        posters = [] if args.skip_images else write_posters(args.posters, workdir / "posters")
        text, image, overhead = [], [], []
        for device in devices:
            t, i, o = run_device(device, args, movies, posters, settings)
            text, image, overhead = text + t, image + i, overhead + ([o] if o else [])
    payload = {
        "device": ",".join(devices),
        "text": text,
        "image": image,
        "overhead": overhead,
        "params": {
            "limit": len(movies),
            "posters": len(posters),
            "image_model": args.image_model,
            "repeats": args.repeats,
            "backends": args.backends,
        },
    }
    emit(tables(text, image, overhead), payload, args.json)


def tables(text: list[dict[str, Any]], image: list[dict[str, Any]], overhead: list[dict[str, Any]]) -> str:
    out = []
    if text:
        out.append(
            format_table(
                text,
                (
                    "device",
                    "backend",
                    "precision",
                    "batch_size",
                    "pipeline_movies_per_s",
                    "raw_movies_per_s",
                    "ratio",
                    "raw_chunked_movies_per_s",
                    "ratio_vs_chunked",
                ),
            )
        )
        out.append(
            format_table(
                [{k: r[k] for k in ("device", "backend", "batch_size")} | r["pipeline_seconds"] for r in text],
                _keys(text, "pipeline_seconds"),
            )
        )
    if image:
        out.append(
            format_table(
                image, ("device", "batch_size", "model", "pipeline_posters_per_s", "raw_posters_per_s", "ratio")
            )
        )
    if overhead:
        out.append(format_table(overhead, list(overhead[0])))
    return "\n\n".join(out)


def _keys(rows: list[dict[str, Any]], nested: str) -> list[str]:
    keys: dict[str, None] = dict.fromkeys(("device", "backend", "batch_size"))
    for r in rows:
        keys.update(dict.fromkeys(r[nested]))
    return list(keys)


if __name__ == "__main__":
    main()
