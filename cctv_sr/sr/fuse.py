"""Robust fusion of a track window into one LR crop, for single-frame SR models.

A window's crops are one face, aligned to the same template, in neighbouring frames of its
track; each carries its own sensor noise and compression error, and the face itself may have
moved a little (expression, pose, an alignment error). :func:`fuse_windows` averages the
window per pixel with weights that fall off with the difference from the centre crop:
``w = exp(-(d / sigma)^2 / 2)``, ``d`` the pixel's grey-level difference from the centre
(after a 3x3 box blur of both, so the weight follows structure, not single noisy pixels).
Where the frames agree the noise averages out; where the face changed (a blink, a turning
head) the centre wins, so nothing is smeared or ghosted. Padded (invalid) slots get weight 0;
the centre always has weight 1.

The fused crop then goes through the SR model like any still (``Accelerator.enhance``): the
single-frame path of issue 10.
"""

from __future__ import annotations

import numpy as np

from cctv_sr.errors import ContractError

__all__ = ["fuse_windows"]


def _box3(x: np.ndarray) -> np.ndarray:
    """3x3 box blur over the two image axes (-3, -2) of a float array, edges replicated."""
    pad = [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)]
    p = np.pad(x, pad, mode="edge")
    h, w = x.shape[-2:]
    out = np.zeros_like(x)
    for dy in range(3):
        for dx in range(3):
            out += p[..., dy:dy + h, dx:dx + w]
    return out / 9.0


def fuse_windows(crops: np.ndarray, valid: np.ndarray, sigma: float = 6.0) -> np.ndarray:
    """``(N, T, S, S, 3)`` uint8 windows and ``(N, T)`` validity -> ``(N, S, S, 3)`` uint8
    fused crops (the centre slot ``T // 2`` is the reference). ``T == 1`` returns the crops."""
    crops = np.asarray(crops)
    valid = np.asarray(valid, bool)
    if crops.dtype != np.uint8 or crops.ndim != 5 or crops.shape[-1] != 3:
        raise ContractError(f"fuse_windows: crops must be uint8 (N, T, S, S, 3), got "
                            f"{crops.dtype} {crops.shape}")
    if valid.shape != crops.shape[:2]:
        raise ContractError(f"fuse_windows: valid {valid.shape} for crops {crops.shape}")
    if not sigma > 0:
        raise ContractError(f"fuse_windows: sigma must be > 0, got {sigma}")
    n, t = crops.shape[:2]
    if t == 1 or n == 0:
        return np.ascontiguousarray(crops[:, t // 2])
    x = crops.astype(np.float32)
    grey = _box3(x.mean(axis=-1))  # (N, T, S, S)
    diff = grey - grey[:, t // 2:t // 2 + 1]
    w = np.exp(-0.5 * (diff / float(sigma)) ** 2) * valid[:, :, None, None]
    w[:, t // 2] = 1.0
    fused = (x * w[..., None]).sum(axis=1) / w.sum(axis=1)[..., None]
    return np.clip(np.rint(fused), 0, 255).astype(np.uint8)
