"""Canonical face alignment: 5 landmarks -> the ArcFace template scaled to a square crop.

The same code aligns faces in the pipeline and (later) training data, so a model sees at train
time exactly what the pipeline feeds it.

Example::

    M = similarity_to_template(kps, side=32)       # frame -> crop affine, (2, 3) float32
    crop = warp_face(frame.image, M, side=32)      # (32, 32, 3) uint8, anti-aliased
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from cctv_sr.errors import ConfigError, ContractError

# ArcFace 5-point template for a 112x112 crop, canonical order (see cctv_sr.records).
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
TEMPLATE_SIDE = 112.0


def template(side: int) -> np.ndarray:
    """The ArcFace template scaled to a ``side`` x ``side`` crop, (5, 2) float32."""
    if side <= 0:
        raise ConfigError(f"crop side must be positive, got {side}")
    return ARCFACE_112 * np.float32(side / TEMPLATE_SIDE)


def similarity_to_template(kps: np.ndarray, side: int) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) from ``kps`` to the
    template at ``side``; the closed-form Umeyama solution, deterministic for 5 points."""
    src = np.asarray(kps, dtype=np.float64).reshape(5, 2)
    dst = template(side).astype(np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    var_src = (src_c**2).sum() / 5.0
    if var_src < 1e-9:
        raise ContractError("degenerate landmarks: all five points coincide")
    cov = dst_c.T @ src_c / 5.0
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign)) / var_src
    m = np.zeros((2, 3), dtype=np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = dst_mean - scale * rot @ src_mean
    return m.astype(np.float32)


def affine_scale(M: np.ndarray) -> float:
    """The uniform scale factor of a similarity transform (crop pixels per frame pixel)."""
    return float(math.sqrt(abs(np.linalg.det(np.asarray(M, dtype=np.float64)[:, :2]))))


def native_size(kps: np.ndarray) -> float:
    """The side a 112-template crop of this face would have at the frame's own resolution."""
    return TEMPLATE_SIDE / max(affine_scale(similarity_to_template(kps, int(TEMPLATE_SIDE))), 1e-6)


def warp_face(image: np.ndarray, M: np.ndarray, side: int) -> np.ndarray:
    """Warp ``image`` with ``M`` into a ``side`` x ``side`` crop.

    When the warp shrinks the face, it is first warped at an integer multiple of ``side`` and
    then area-averaged down, so small crops are anti-aliased instead of point-sampled.
    """
    scale = affine_scale(M)
    factor = 1 if scale >= 0.75 else min(8, int(math.ceil(1.0 / scale)))
    if factor == 1:
        return cv2.warpAffine(
            image, M, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
        )
    big = np.asarray(M, dtype=np.float32) * np.float32(factor)
    # Pixel centres: scaling about the origin shifts centres by (factor - 1) / 2 big pixels.
    big[:, 2] += (factor - 1) / 2.0
    warped = cv2.warpAffine(
        image, big, (side * factor, side * factor), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT101,
    )
    return cv2.resize(warped, (side, side), interpolation=cv2.INTER_AREA)


def choose_lr_side(size_px: float, lr_sizes: tuple[int, ...]) -> int:
    """The largest LR side not above the face's native size (the smallest when none is)."""
    fitting = [s for s in sorted(lr_sizes) if s <= size_px]
    return fitting[-1] if fitting else min(lr_sizes)
