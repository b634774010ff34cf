"""Box helpers shared by the detectors: NMS, squaring, clipping, letterboxing.

Boxes are ``(N, 4)`` float arrays of ``x1, y1, x2, y2`` in continuous pixel coordinates
(pixel ``i`` covers ``[i, i + 1)``).
"""

from __future__ import annotations

import numpy as np

from cctv_sr.records import FaceDetections


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``(N, 4)`` boxes; degenerate boxes have area 0."""
    w = np.clip(boxes[:, 2] - boxes[:, 0], 0.0, None)
    h = np.clip(boxes[:, 3] - boxes[:, 1], 0.0, None)
    return w * h


def nms(boxes: np.ndarray, scores: np.ndarray, thresh: float, mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression; indices of the kept boxes, best score first.

    ``mode="union"`` is the usual IoU; ``mode="min"`` divides the intersection by the smaller
    box's area, which also removes a box lying mostly inside a better one.
    """
    n = boxes.shape[0]
    if n == 0:
        return np.zeros((0,), np.int64)
    boxes = boxes.astype(np.float64, copy=False)
    areas = box_areas(boxes)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if rest.size == 0:
            break
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0.0, None) * np.clip(yy2 - yy1, 0.0, None)
        if mode == "min":
            denom = np.minimum(areas[i], areas[rest])
        else:
            denom = areas[i] + areas[rest] - inter
        overlap = inter / np.maximum(denom, 1e-9)
        order = rest[overlap <= thresh]
    return np.asarray(keep, np.int64)


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    thresh: float,
    mode: str = "union",
) -> np.ndarray:
    """NMS applied independently within each group id (e.g. the frame index).

    Returns indices into ``boxes``, grouped by id and best first within each group.
    """
    if boxes.shape[0] == 0:
        return np.zeros((0,), np.int64)
    kept = []
    for g in np.unique(groups):
        members = np.nonzero(groups == g)[0]
        kept.append(members[nms(boxes[members], scores[members], thresh, mode)])
    return np.concatenate(kept)


def square(boxes: np.ndarray) -> np.ndarray:
    """Boxes grown to squares of side ``max(w, h)`` about the same centre."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    cx = boxes[:, 0] + w * 0.5
    cy = boxes[:, 1] + h * 0.5
    out[:, 0] = cx - side * 0.5
    out[:, 1] = cy - side * 0.5
    out[:, 2] = cx + side * 0.5
    out[:, 3] = cy + side * 0.5
    return out


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boxes clipped to the frame ``[0, width] x [0, height]``."""
    out = boxes.copy()
    out[:, 0::2] = np.clip(out[:, 0::2], 0.0, float(width))
    out[:, 1::2] = np.clip(out[:, 1::2], 0.0, float(height))
    return out


def finalize(
    xyxy: np.ndarray,
    score: np.ndarray,
    kps: np.ndarray,
    *,
    width: int,
    height: int,
    score_thresh: float,
    nms_thresh: float,
    min_side: float = 0.0,
) -> FaceDetections:
    """Common tail of every detector for one image.

    Keeps rows with ``score >= score_thresh`` whose larger box side (before clipping) is at
    least ``min_side``, applies IoU NMS, clips boxes to the frame and sorts by score.
    """
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    score = np.asarray(score, np.float32).reshape(-1)
    kps = np.asarray(kps, np.float32).reshape(-1, 5, 2)
    side = np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
    ok = (score >= score_thresh) & (side >= min_side) & np.isfinite(xyxy).all(axis=1)
    xyxy, score, kps = xyxy[ok], score[ok], kps[ok]
    if xyxy.shape[0] == 0:
        return FaceDetections.empty()
    keep = nms(xyxy, score, nms_thresh)
    return FaceDetections(clip_boxes(xyxy[keep], width, height), score[keep], kps[keep])


def letterbox_scale(height: int, width: int, size: int, allow_upscale: bool) -> float:
    """Factor that fits an image's long side into ``size`` (never above 1 unless allowed)."""
    scale = size / float(max(height, width))
    return scale if allow_upscale else min(scale, 1.0)


def round_up(value: int, multiple: int) -> int:
    """``value`` rounded up to a multiple of ``multiple``."""
    return int(-(-value // multiple) * multiple)
