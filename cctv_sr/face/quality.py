"""Per-face quality: how useful a crop is for identification (size, sharpness, pose).

All terms are in [0, 1]; the combined score ranks a track's faces to keep the best shots. The
analysis stage also folds in the O-Net face / non-face probability (:func:`with_faceness`), so
a sign or a hand the detector took for a face never becomes a track's best shot.
"""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from cctv_sr.face.align import template
from cctv_sr.records import Quality

# Size at which a face counts as fully resolved for identification (112-template pixels).
FULL_SIZE_PX = 80.0
# Template eye distance at side 112, the unit of the pose residual.
_EYE_DIST_112 = float(np.linalg.norm(template(112)[1] - template(112)[0]))
# Laplacian variance (on a 32 px grey crop) at which sharpness reaches 1 - 1/e.
_SHARPNESS_SCALE = 150.0


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the crop resampled to 32 x 32, mapped to [0, 1)."""
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    if grey.shape[0] != 32:
        interp = cv2.INTER_AREA if grey.shape[0] > 32 else cv2.INTER_CUBIC
        grey = cv2.resize(grey, (32, 32), interpolation=interp)
    var = float(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F).var())
    return 1.0 - math.exp(-var / _SHARPNESS_SCALE)


def frontalness(kps: np.ndarray, M: np.ndarray, side: int) -> float:
    """How well the landmarks fit the frontal template after the best similarity warp.

    Turned heads move the nose and mouth away from where a frontal face has them; the mean
    residual, in template eye distances, is 0 for a perfect frontal face.
    """
    pts = np.asarray(kps, dtype=np.float32).reshape(5, 2)
    mapped = pts @ np.asarray(M, dtype=np.float32)[:, :2].T + np.asarray(M, np.float32)[:, 2]
    residual = float(np.linalg.norm(mapped - template(side), axis=1).mean())
    residual /= _EYE_DIST_112 * side / 112.0
    return float(np.clip(1.0 - residual / 0.3, 0.0, 1.0))


# How much a doubtful face / non-face verdict costs: the score is multiplied by faceness ** this,
# so a shop sign's 0.05 puts it far below any real face, a blurred face's 0.6 costs 23%.
FACENESS_WEIGHT = 0.5


def with_faceness(q: Quality, faceness: float) -> Quality:
    """``q`` with the crop's face / non-face probability folded into its score."""
    p = float(np.clip(faceness, 0.0, 1.0))
    return replace(q, faceness=p, score=float(q.score * p ** FACENESS_WEIGHT))


def face_quality(crop: np.ndarray, kps: np.ndarray, M: np.ndarray, size_px: float,
                 det_score: float) -> Quality:
    """Quality of one aligned crop; ``score`` is a weighted geometric mean of the terms."""
    size = float(np.clip(size_px / FULL_SIZE_PX, 0.0, 1.0))
    sharp = sharpness(crop)
    frontal = frontalness(kps, M, crop.shape[0])
    det = float(np.clip(det_score, 0.0, 1.0))
    eps = 1e-3
    score = math.exp(
        0.4 * math.log(size + eps)
        + 0.2 * math.log(sharp + eps)
        + 0.3 * math.log(frontal + eps)
        + 0.1 * math.log(det + eps)
    )
    return Quality(size_px=float(size_px), size=size, sharpness=sharp, frontal=frontal,
                   det_score=det, score=float(np.clip(score, 0.0, 1.0)))
