"""The default face embedder: MobileFaceNet (128-d) run by PyTorch, weights shipped in the package.

The weights are foamliu's ``mobilefacenet.pt`` state dict (Apache-2.0 repository; trained on
MS-Celeb-1M, see README "Models and licences"), loaded strictly into the project's own
:class:`~cctv_sr.embed.mobilefacenet_net.MobileFaceNet`. The file sits in
``cctv_sr/models/weights/`` and resolves through the ``mobilefacenet`` manifest like any other
file, so ``embedder.model_path`` or ``$CCTV_SR_MODELS`` still override it.

Input: canonical BGR crops of any side (resized to 112), RGB, ``x / 255`` then ImageNet
mean/std, the transform it was trained with. Batches of ``cfg.batch_size`` on ``cfg.device``
(``cpu`` or ``cuda``), under :func:`torch.inference_mode`, batch norms folded and
channels-last; outputs are L2-normalised.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from cctv_sr.config import EmbedderConfig
from cctv_sr.detect.mtcnn import torch_device
from cctv_sr.embed.base import (
    FaceEmbedder,
    check_crops,
    chunks,
    l2_normalise,
    model_version,
    resize_crops,
)
from cctv_sr.embed.mobilefacenet_net import MobileFaceNet, inference_form
from cctv_sr.errors import ModelError

log = logging.getLogger(__name__)

INPUT_SIDE = 112
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, on the 0-1 scale
IMAGENET_STD = (0.229, 0.224, 0.225)


class MobileFaceNetEmbedder(FaceEmbedder):
    """MobileFaceNet in PyTorch: ``(N, S, S, 3)`` canonical BGR crops to ``(N, 128)`` unit
    vectors, batched."""

    name = "mobilefacenet"
    dim = 128

    def __init__(self, cfg: EmbedderConfig, model_path: Path | None = None) -> None:
        super().__init__(cfg, model_path)
        path = self.require_model_path()
        if path.suffix.lower() == ".onnx":
            raise ModelError(f"{path}: the mobilefacenet embedder loads the PyTorch state dict "
                             "(mobilefacenet.pt); for the ONNX export use embedder.name="
                             "mobilefacenet_onnx")
        self.device = torch_device(cfg.device)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several unrelated types for a bad file
            raise ModelError(f"{path}: cannot read a MobileFaceNet state dict: {exc}") from None
        net = MobileFaceNet()
        try:
            net.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError) as exc:
            raise ModelError(f"{path}: not a MobileFaceNet state dict: "
                             f"{str(exc).splitlines()[0]}") from None
        # inference form: batch norms folded into the convolutions, channels-last memory
        # (together about 2x faster on CPU than the plain module; outputs agree within 1e-5)
        self._net = inference_form(net).to(self.device)
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self._mean, self._std = mean.to(self.device), std.to(self.device)
        self.model_files = (path,)
        self.version = model_version(self.default_manifest(), path)
        log.info("mobilefacenet embedder: %s on %s, batch %d", path, self.device,
                 cfg.batch_size)

    def preprocess(self, crops: np.ndarray) -> torch.Tensor:
        """Model input ``(N, 3, 112, 112)`` float32 on the device, RGB, normalised."""
        rgb = np.ascontiguousarray(resize_crops(crops, INPUT_SIDE)[..., ::-1])
        x = torch.from_numpy(rgb).to(self.device).permute(0, 3, 1, 2).float()
        return ((x - self._mean) / self._std).contiguous(memory_format=torch.channels_last)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings ``(N, 128)`` float32 of canonical BGR crops."""
        crops = check_crops(crops)
        out = np.zeros((len(crops), self.dim), np.float32)
        with torch.inference_mode():
            for part in chunks(len(crops), self.cfg.batch_size):
                out[part] = self._net(self.preprocess(crops[part])).float().cpu().numpy()
        return l2_normalise(out)
