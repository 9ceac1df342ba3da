"""Pick the compute device once; CUDA when present."""

from __future__ import annotations

import glob
import os
import sys

# Device nodes a CUDA-capable torch needs to see a GPU: NVIDIA's driver, ROCm's (torch.cuda serves
# AMD GPUs too), and WSL2's GPU paravirtualisation.
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")


def gpu_visible() -> bool:
    """Whether this process could see a GPU at all: a GPU driver's device node exists and
    CUDA_VISIBLE_DEVICES does not hide every device. Cheap, and imports nothing."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(glob.glob(pattern) for pattern in GPU_DEVICE_NODES)


# What `ingest`, `serve`, `status` and `eval` say when MOVIEREC_DEVICE asks for a GPU that is not there.
CUDA_SETTING_MISSING = "MOVIEREC_DEVICE=cuda, but CUDA is not available on this machine; set it to cpu or auto"


def resolve_device(requested: str = "auto") -> str:
    """ "auto" -> "cuda" when torch sees a GPU, else "cpu"; "cpu" and "cuda" as asked.

    Raises ValueError for another name, or for "cuda" where CUDA is not available. Without a GPU
    device node "auto" answers "cpu" without importing torch: importing it costs about 0.5 GB of
    resident memory (its CUDA libraries included) and 1-2 s, in every API worker and ingest, for
    nothing when the text model runs on OpenVINO or ONNX Runtime."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {requested!r}: use auto, cpu or cuda")
    if requested == "cpu" or (requested == "auto" and not gpu_visible() and "torch" not in sys.modules):
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise ValueError("device 'cuda' was requested but CUDA is not available; use cpu or auto")
    return "cuda" if available else "cpu"


def default_batch_size(device: str, kind: str) -> int:
    """Large batches on a GPU, where they pay; modest ones on a CPU, where they only add latency."""
    if device == "cuda":
        return 1024 if kind == "text" else 256
    # Measured on the demo texts, length-sorted, 2 CPU cores: batch 16-32 ~113 texts/s, 64: 93, 128: 62.
    return 32 if kind == "text" else 16
