"""An ONNX export of a trained SR net (``cctv-sr export``), run by onnxruntime for TrainedSR.

The file's metadata (:mod:`cctv_sr.train.export`) gives its arch and
:class:`~cctv_sr.models.spec.ModelSpec`; its input is ``(batch, T*3, side, side)`` BGR in
[0, 1] at the one side of ``spec.input_sides``. Crops of another side are resized to it first
with torch's bicubic (:func:`cctv_sr.archs.common.bicubic`: ``align_corners=False``,
anti-aliased when shrinking, on the float crops, so no uint8 rounding in between), the
resampling the nets themselves do at the top of ``forward``. At the export side the result
matches the checkpoint run by torch; at other sides it can differ slightly (lrnet's bicubic
skip then starts from the resized crop, not from the crop itself).

The session runs on the providers :func:`cctv_sr.models.ort.choose_providers` picks for
``sr.device`` (the CPU by default) with as many intra-op threads as torch uses.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from cctv_sr.archs.common import bicubic
from cctv_sr.errors import ContractError, ModelError
from cctv_sr.models.ort import create_session
from cctv_sr.train.export import INPUT, OUTPUT, onnx_metadata, spec_from_metadata

log = logging.getLogger(__name__)


class OnnxSRNet:
    """Callable like the torch net: ``(N, T*3, s, s)`` float tensor -> ``(N, 3, H, W)``."""

    def __init__(self, path: Path, device: str = "cpu") -> None:
        self.path = Path(path)
        self.session = create_session(str(self.path), device=device,
                                      threads=torch.get_num_threads(), what=str(self.path))
        meta = onnx_metadata(self.session)
        self.spec = spec_from_metadata(meta, self.path)
        self.arch = meta.get("cctv_sr.arch", self.spec.arch)
        self.step = int(meta.get("cctv_sr.step", "0") or 0)
        if len(self.spec.input_sides) != 1:
            raise ModelError(f"{self.path}: expected one input side in its spec, got "
                             f"{self.spec.input_sides}")
        self.side = self.spec.input_sides[0]
        names = [i.name for i in self.session.get_inputs()]
        if names != [INPUT]:
            raise ModelError(f"{self.path}: expected one input named {INPUT!r}, got {names}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, T*3, s, s)`` BGR in [0, 1], any ``s`` (resized to ``side`` first)."""
        channels = 3 * self.spec.window
        if x.ndim != 4 or x.shape[1] != channels:
            raise ContractError(f"{self.path}: input must be (N, {channels}, s, s), got "
                                f"{tuple(x.shape)}")
        x = bicubic(x.float().cpu(), self.side)
        out = self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(x.numpy(), np.float32)})
        return torch.from_numpy(np.asarray(out[0], np.float32))
