"""Low-resolution probes from 128x128 canonical crops (docs/EVAL.md sections 1.2 and 2).

Still: Gaussian blur with sigma = 0.25 * (128 / s) on the 128 crop, resize to s x s with area
interpolation, Gaussian noise of sigma 3 (0-255 scale), JPEG quality 60 (``cv2.imencode``).
Burst: T frames of the same crop, each first moved by its own sub-pixel jitter (translation up
to +-0.5 LR pixel, rotation up to +-2 degrees about the crop centre, applied on the 128 crop),
then degraded like a still with its own noise and its own JPEG encoding.

Every random draw comes from a generator seeded by the probe's file name (and the size), so
each method is scored on byte-identical probes, in any process and in any order::

    lr = degrade(crop, 16, seed_of("Colin_Powell_0002.jpg"))       # (16, 16, 3) uint8
    frames = burst(crop, 16, seed_of("Colin_Powell_0002.jpg"), 5)  # (5, 16, 16, 3) uint8
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from cctv_sr.errors import ConfigError

HR_SIDE = 128
BLUR_K = 0.25  # blur sigma = BLUR_K * (HR_SIDE / s) HR pixels
NOISE_SIGMA = 3.0
JPEG_QUALITY = 60
JITTER_SHIFT_LR = 0.5  # max translation, LR pixels
JITTER_ROT_DEG = 2.0  # max rotation, degrees

_STILL, _BURST = 0, 1


def seed_of(file_name: str, seed: int = 0) -> int:
    """A 64-bit seed from a probe's file name (sha256 of its UTF-8 bytes); another ``seed``
    (``eval identify --seed``) draws another set of degradations of the same probes (seed 0
    is the benchmark's fixed set, unchanged)."""
    text = file_name if seed == 0 else f"{int(seed)}/{file_name}"
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _check(crop: np.ndarray, size: int) -> None:
    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 3 \
            or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1]:
        raise ConfigError(f"degrade: expected a square (S, S, 3) uint8 crop, got "
                          f"{getattr(crop, 'shape', type(crop).__name__)}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) \
            or not 1 <= size <= crop.shape[0]:
        raise ConfigError(f"degrade: probe size must be in 1..{crop.shape[0]}, got {size!r}")


def _lr(crop: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Blur, area-resize, noise, JPEG: one LR frame (the rng supplies the noise)."""
    sigma = BLUR_K * (crop.shape[0] / size)
    blurred = cv2.GaussianBlur(crop, (0, 0), sigmaX=sigma, sigmaY=sigma)
    small = cv2.resize(blurred, (size, size), interpolation=cv2.INTER_AREA)
    noise = np.asarray(rng.normal(0.0, NOISE_SIGMA, small.shape), np.float32)
    noisy = small.astype(np.float32) + noise
    noisy = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("cv2.imencode failed")
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if out is None:  # pragma: no cover - decoding what OpenCV just encoded
        raise RuntimeError("cv2.imdecode failed")
    return np.asarray(out)


def degrade(crop: np.ndarray, size: int, seed: int) -> np.ndarray:
    """One still LR probe of side ``size`` from a square HR crop, (size, size, 3) uint8."""
    _check(crop, size)
    return _lr(crop, int(size), np.random.default_rng([seed, int(size), _STILL]))


def jitter_matrix(side: int, size: int, dx_lr: float, dy_lr: float, angle_deg: float
                  ) -> np.ndarray:
    """The (2, 3) affine of one burst frame on the ``side`` crop: rotation about the centre,
    then a shift given in LR pixels of a ``size`` probe."""
    centre = ((side - 1) / 2.0, (side - 1) / 2.0)
    m = np.asarray(cv2.getRotationMatrix2D(centre, angle_deg, 1.0), np.float64)
    m[:, 2] += np.array([dx_lr, dy_lr]) * (side / size)
    return m


def burst(crop: np.ndarray, size: int, seed: int, frames: int = 5) -> np.ndarray:
    """``frames`` LR frames of the same crop, each with its own jitter, noise and JPEG,
    (frames, size, size, 3) uint8."""
    _check(crop, size)
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ConfigError(f"burst: frames must be a positive integer, got {frames!r}")
    rng = np.random.default_rng([seed, int(size), _BURST])
    side = crop.shape[0]
    shifts = rng.uniform(-JITTER_SHIFT_LR, JITTER_SHIFT_LR, (frames, 2))
    angles = rng.uniform(-JITTER_ROT_DEG, JITTER_ROT_DEG, frames)
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        m = jitter_matrix(side, int(size), shifts[t, 0], shifts[t, 1], angles[t])
        moved = cv2.warpAffine(crop, m, (side, side), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT101)
        out[t] = _lr(moved, int(size), rng)
    return out


def make_probes(crops: np.ndarray, file_names: list[str], size: int, frames: int = 0,
                seed: int = 0) -> np.ndarray:
    """Probes for a batch: (N, size, size, 3) stills when ``frames`` is 0, else
    (N, frames, size, size, 3) bursts; ``seed`` picks the set of degradations
    (:func:`seed_of`)."""
    if len(crops) != len(file_names):
        raise ConfigError(f"make_probes: {len(crops)} crops but {len(file_names)} names")
    if len(crops) == 0:
        return np.zeros((0, frames, size, size, 3) if frames else (0, size, size, 3), np.uint8)
    if frames:
        return np.stack([burst(c, size, seed_of(n, seed), frames)
                         for c, n in zip(crops, file_names)])
    return np.stack([degrade(c, size, seed_of(n, seed)) for c, n in zip(crops, file_names)])
