"""The super-resolver interface and the resize helpers every backend shares.

A super-resolver takes a batch of square aligned face crops, ``(N, S, S, 3)`` uint8 BGR, and
returns ``(N, out_size, out_size, 3)`` uint8 BGR. A model whose native scale does not land on
``out_size`` exactly runs once and is then resized the rest of the way (bicubic up, area down);
:meth:`SuperResolver.describe` reports that, e.g. ``"espcn_x4+bicubic_x2"``. When ``out_size``
is not larger than ``S`` no model runs and the crops are only resized (``"area_x0.5"``,
``"none"``).
"""

from __future__ import annotations

import abc
from pathlib import Path

import cv2
import numpy as np

from cctv_sr.config import SRConfig
from cctv_sr.errors import ContractError


def check_crops(crops: np.ndarray, out_size: int) -> np.ndarray:
    """Validate a crop batch and an output side; returns the batch as a contiguous array."""
    if not isinstance(crops, np.ndarray) or crops.dtype != np.uint8:
        raise ContractError(f"SR crops must be a uint8 numpy array, got {type(crops).__name__} "
                          f"{getattr(crops, 'dtype', '')}")
    if crops.ndim != 4 or crops.shape[3] != 3 or crops.shape[1] != crops.shape[2]:
        raise ContractError(f"SR crops must have shape (N, S, S, 3), got {crops.shape}")
    if crops.shape[1] < 1:
        raise ContractError(f"SR crops must have a side >= 1, got {crops.shape}")
    if isinstance(out_size, bool) or not isinstance(out_size, (int, np.integer)) or out_size < 1:
        raise ContractError(f"SR out_size must be a positive integer, got {out_size!r}")
    return np.ascontiguousarray(crops)


def resize_square(image: np.ndarray, out_size: int) -> np.ndarray:
    """Resize one square image to ``out_size``: bicubic when enlarging, area when shrinking."""
    side = image.shape[0]
    if side == out_size:
        return image
    interp = cv2.INTER_CUBIC if out_size > side else cv2.INTER_AREA
    return cv2.resize(image, (out_size, out_size), interpolation=interp)


def _factor(ratio: float) -> str:
    return f"x{ratio:.3g}"


def resize_step(from_size: int, to_size: int) -> str:
    """Name of the resize that takes ``from_size`` to ``to_size`` ("" when none is needed)."""
    if from_size == to_size:
        return ""
    kind = "bicubic" if to_size > from_size else "area"
    return f"{kind}_{_factor(to_size / from_size)}"


def empty_batch(out_size: int) -> np.ndarray:
    """A (0, out_size, out_size, 3) uint8 batch."""
    return np.zeros((0, out_size, out_size, 3), np.uint8)


class SuperResolver(abc.ABC):
    """Upscales batches of aligned face crops.

    Attributes: ``name`` (e.g. ``"bicubic"``, ``"espcn_x4"``), ``scale`` (the model's native
    scale; 0 for scale-free methods such as bicubic), ``model_files`` (the weight files in use),
    ``window`` (the frames T of a track window the model fuses itself; 1 for single-frame
    models, which :meth:`upscale_windows` gives the centre crop).
    """

    name: str = ""
    scale: int = 0
    window: int = 1
    model_files: tuple[Path, ...] = ()

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`~cctv_sr.errors.BackendUnavailableError` (naming what to install) when
        an optional dependency of this backend is missing. The registry calls it before it
        resolves weights, so nothing is downloaded for a backend that cannot run."""
        return None  # no optional dependency unless a backend says so

    def __init__(self, cfg: SRConfig, model_path: Path | None = None) -> None:
        self.cfg = cfg

    @abc.abstractmethod
    def upscale(self, crops: np.ndarray, out_size: int) -> np.ndarray:
        """(N, S, S, 3) uint8 BGR -> (N, out_size, out_size, 3) uint8 BGR; N may be 0."""

    def upscale_windows(self, windows: np.ndarray, out_size: int) -> np.ndarray:
        """(N, T, S, S, 3) uint8 BGR track windows (``T == window``, the face to enhance in
        the centre slot) -> (N, out_size, out_size, 3); a single-frame model takes the centre."""
        self.check_windows(windows)
        return self.upscale(np.ascontiguousarray(windows[:, self.window // 2]), out_size)

    def check_windows(self, windows: np.ndarray) -> None:
        """ContractError unless ``windows`` is ``(N, window, S, S, 3)``."""
        if windows.ndim != 5 or windows.shape[1] != self.window:
            raise ContractError(f"SR {self.name!r} takes windows (N, {self.window}, S, S, 3), "
                                f"got {windows.shape}")

    def describe(self, in_size: int, out_size: int) -> str:
        """What :meth:`upscale` does for this in/out side, e.g. ``"espcn_x4+bicubic_x2"``."""
        if self.scale <= 0 or out_size <= in_size:
            return resize_step(in_size, out_size) or "none"
        rest = resize_step(in_size * self.scale, out_size)
        return f"{self.name}+{rest}" if rest else self.name

    def __repr__(self) -> str:
        files = ", ".join(str(p) for p in self.model_files)
        return f"{type(self).__name__}(name={self.name!r}, scale={self.scale}, files=[{files}])"
