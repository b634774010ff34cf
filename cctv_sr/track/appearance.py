"""A small colour descriptor of a face and what is just below it, to keep neighbours apart.

Geometry alone lets two people who pass close swap tracks; their colours (skin, hair, collar)
rarely match. The descriptor is a hue x saturation histogram (8 x 4 bins, plus 4 value bins
for the greys that hue cannot tell apart) of the face box widened a little and stretched down
over the chin and collar, read from a 16 x 24 resample, so it costs the same for every face
size (about 30 us). Distances are Hellinger distances in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

_H_BINS, _S_BINS, _V_BINS = 8, 4, 4
DIM = _H_BINS * _S_BINS + _V_BINS


def _patch_box(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int] | None:
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2
    ax0, ax1 = int(max(cx - 0.65 * w, 0)), int(min(cx + 0.65 * w, width))
    ay0, ay1 = int(max(y0 - 0.1 * h, 0)), int(min(y1 + 0.6 * h, height))
    if ax1 - ax0 < 2 or ay1 - ay0 < 2:
        return None
    return ax0, ay0, ax1, ay1


def describe(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, DIM) float32 descriptors (square roots of L1-normalised histograms) of the faces
    at ``boxes`` (xyxy, frame pixels) in the BGR ``image``; zeros for a box off the image."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    out = np.zeros((len(boxes), DIM), np.float32)
    height, width = image.shape[:2]
    for i, box in enumerate(boxes):
        area = _patch_box(box, width, height)
        if area is None:
            continue
        x0, y0, x1, y1 = area
        small = cv2.resize(image[y0:y1, x0:x1], (16, 24), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
        hs = cv2.calcHist([hsv], [0, 1], None, [_H_BINS, _S_BINS], [0, 180, 0, 256]).ravel()
        v = cv2.calcHist([hsv], [2], None, [_V_BINS], [0, 256]).ravel()
        hist = np.concatenate([hs, 0.5 * v])
        out[i] = np.sqrt(hist / max(float(hist.sum()), 1e-9))
    return out


def look_distance(track: np.ndarray, looks: np.ndarray) -> np.ndarray:
    """Hellinger distance from one track descriptor to each row of ``looks`` (in [0, 1]).

    A zero descriptor (a face off the image) is at distance 0 from everything: it cannot
    rule a pair out."""
    looks = np.asarray(looks, np.float32).reshape(-1, DIM)
    t = np.asarray(track, np.float32).reshape(DIM)
    tn = float(np.linalg.norm(t))
    ln = np.linalg.norm(looks, axis=1)
    if tn == 0.0:
        return np.zeros(len(looks), np.float32)
    cos = looks @ t / np.maximum(ln * tn, 1e-9)
    dist = np.sqrt(np.clip(1.0 - cos, 0.0, 1.0))
    return np.where(ln == 0.0, 0.0, dist).astype(np.float32)
