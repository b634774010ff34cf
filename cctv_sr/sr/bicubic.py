"""Bicubic interpolation: the baseline every SR model must beat."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cctv_sr.config import SRConfig
from cctv_sr.sr.base import SuperResolver, check_crops, empty_batch, resize_square


class BicubicSR(SuperResolver):
    """``cv2.resize`` with INTER_CUBIC to any side (INTER_AREA when shrinking); no weights."""

    name = "bicubic"
    scale = 0

    def __init__(self, cfg: SRConfig | None = None, model_path: Path | None = None) -> None:
        super().__init__(cfg or SRConfig(), model_path)
        self.model_files = ()

    def upscale(self, crops: np.ndarray, out_size: int) -> np.ndarray:
        """(N, S, S, 3) uint8 BGR -> (N, out_size, out_size, 3) uint8 BGR."""
        crops = check_crops(crops, out_size)
        if crops.shape[0] == 0:
            return empty_batch(out_size)
        return np.stack([resize_square(crop, out_size) for crop in crops])
