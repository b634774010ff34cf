"""Synthetic CCTV-like clips: real face photos moving across a textured background.

Used by the tests and by ``samples/make_synthetic_clip.py``. Faces come from photos the user
supplies (the tests use the group photo that ships in the insightface wheel); each moves along a
straight line while its size changes, pasted with a soft elliptical mask, then the whole frame
gets mild sensor noise. Ground-truth face boxes come with every frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from cctv_sr.errors import ConfigError

# Face boxes (x, y, w, h) in insightface's t1.jpg (1280x886, insightface==2.1), left to right.
T1_FACE_BOXES: tuple[tuple[int, int, int, int], ...] = (
    (61, 268, 107, 129),
    (267, 151, 105, 127),
    (466, 267, 102, 145),
    (749, 352, 99, 123),
    (906, 58, 99, 144),
    (1126, 273, 95, 124),
)


@dataclass(frozen=True, eq=False)
class Walker:
    """One face moving from ``start`` to ``end`` (centre, frame px) between two frames.

    ``patch`` is a head crop whose face box is the central ``face_frac`` of its width;
    ``start_px``/``end_px`` are the face widths at the two ends.
    """

    patch: np.ndarray
    start: tuple[float, float]
    end: tuple[float, float]
    start_px: float
    end_px: float
    first_frame: int
    last_frame: int
    face_frac: float = 1.0 / 1.8

    def at(self, index: int) -> tuple[float, float, float] | None:
        """(cx, cy, face width) at frame ``index``, or None when not on screen."""
        if not self.first_frame <= index <= self.last_frame:
            return None
        span = max(self.last_frame - self.first_frame, 1)
        u = (index - self.first_frame) / span
        cx = self.start[0] + u * (self.end[0] - self.start[0])
        cy = self.start[1] + u * (self.end[1] - self.start[1])
        return cx, cy, self.start_px + u * (self.end_px - self.start_px)


def head_patches(photo: np.ndarray, boxes: Sequence[tuple[int, int, int, int]] = T1_FACE_BOXES,
                 margin: float = 1.8) -> list[np.ndarray]:
    """Square head crops around each face box, ``margin`` times the box width."""
    out = []
    h, w = photo.shape[:2]
    for x, y, bw, bh in boxes:
        cx, cy = x + bw / 2, y + bh / 2
        side = int(round(bw * margin))
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
        padded = cv2.copyMakeBorder(photo, pad, pad, pad, pad, cv2.BORDER_REFLECT101)
        out.append(padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side].copy())
    return out


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured, face-free backdrop (gradients plus blurred noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([80 + 60 * xx / width, 90 + 40 * yy / height, 100 + 30 * (xx + yy) /
                     (width + height)], axis=2)
    noise = cv2.GaussianBlur(rng.normal(0, 25, (height, width, 3)).astype(np.float32), (0, 0), 3)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _paste(frame: np.ndarray, patch: np.ndarray, cx: float, cy: float, side: int) -> None:
    if side < 4:
        return
    small = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)
    mask = np.zeros((side, side), np.float32)
    cv2.ellipse(mask, (side // 2, side // 2), (int(side * 0.42), int(side * 0.48)), 0, 0, 360,
                1.0, -1)
    soft = np.asarray(cv2.GaussianBlur(mask, (0, 0), max(side * 0.04, 0.5)))[..., None]
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    h, w = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if fx0 >= fx1 or fy0 >= fy1:
        return
    px0, py0 = fx0 - x0, fy0 - y0
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    src = small[py0:py0 + fy1 - fy0, px0:px0 + fx1 - fx0].astype(np.float32)
    m = soft[py0:py0 + fy1 - fy0, px0:px0 + fx1 - fx0]
    frame[fy0:fy1, fx0:fx1] = np.clip(m * src + (1 - m) * region, 0, 255).astype(np.uint8)


def render_clip(walkers: Sequence[Walker], width: int, height: int, n_frames: int,
                seed: int = 0, noise_sigma: float = 2.0
                ) -> Iterator[tuple[np.ndarray, list[tuple[int, np.ndarray]]]]:
    """Yield ``(frame, truth)`` per frame; truth lists ``(walker index, face xyxy)`` on screen."""
    if width < 16 or height < 16 or n_frames < 1:
        raise ConfigError(f"clip too small: {width}x{height}, {n_frames} frames")
    rng = np.random.default_rng(seed)
    bg = background(width, height, seed)
    for index in range(n_frames):
        frame = bg.copy()
        truth: list[tuple[int, np.ndarray]] = []
        for k, walker in enumerate(walkers):
            pos = walker.at(index)
            if pos is None:
                continue
            cx, cy, face_w = pos
            side = int(round(face_w / walker.face_frac))
            _paste(frame, walker.patch, cx, cy, side)
            half = face_w / 2
            truth.append((k, np.array([cx - half, cy - half, cx + half, cy + half], np.float32)))
        if noise_sigma > 0:
            noisy = frame.astype(np.float32) + rng.normal(0, noise_sigma, frame.shape)
            frame = np.clip(noisy, 0, 255).astype(np.uint8)
        yield frame, truth
