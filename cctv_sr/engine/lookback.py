"""Look back: a face found for the first time is searched for in the frames just before it.

Between detections, and in the squares a plan did not put over them, nobody looks: someone
who stepped out from behind a pillar, or out of a group's motion, is found up to
``scan.detect_interval_s`` after they appeared. When a region search starts a track, the
analysis hands its first box to :meth:`LookBack.search`, which searches a square around it in
the stream's last ``scan.look_back`` analysed frames, newest first, each around where the face
was found in the frame after it (moved on at the speed between the two, once known). The walk
back stops at a frame that searched the spot already (its plan holds the square at the same
scale, or a full pass did at native scale), where the face is not found, or at a shot cut.

What it finds are detections like any other, in the frame they were found in: the track
begins there (with the speed they give it) and their rows are written as ``detected``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cctv_sr.config import ScanConfig
from cctv_sr.detect.base import FaceDetector
from cctv_sr.detect.regions import Region, covers, detect_regions, track_region
from cctv_sr.engine.scan import FULL, NONE, ScanPlan
from cctv_sr.records import FaceDetections, Frame
from cctv_sr.track.tracker import iou_matrix

# The square searched, in face widths: room for a face walking 0.4 of its width a frame.
LOOK_FACES = 3.5
# A face found a frame earlier is the same one when its centre is within this many face
# widths of where it was expected and its size within this factor of the later face's.
MAX_SHIFT_FACES = 0.8
MAX_SIZE_RATIO = 1.5
# A face already written in that frame (by another track) at this IoU is not found again.
TAKEN_IOU = 0.3


@dataclass
class PastFrame:
    """One analysed frame kept for looking back: the frame, its stream time and plan, the
    boxes of the face rows it has (any later row must not repeat one), and their count (the
    next row's index in the frame)."""

    frame: Frame
    t: float
    plan: ScanPlan
    boxes: np.ndarray
    rows: int


@dataclass(frozen=True)
class Found:
    """A face found looking back: the frame it is in and its detection (one row)."""

    past: PastFrame
    det: FaceDetections


class LookBack:
    """The last ``cfg.look_back`` analysed frames of one stream (not thread-safe)."""

    def __init__(self, cfg: ScanConfig) -> None:
        self.cfg = cfg
        self._past: deque[PastFrame] = deque(maxlen=max(cfg.look_back, 1))

    @property
    def on(self) -> bool:
        return self.cfg.look_back > 0 and self.cfg.mode != "exhaustive"

    def remember(self, past: PastFrame) -> None:
        """Keep an analysed frame (after its rows are made); a shot cut forgets the frames
        before it, which show another scene."""
        if not self.on:
            return
        if past.plan.cut:
            self._past.clear()
        self._past.append(past)

    def forget(self) -> None:
        self._past.clear()

    def oldest_index(self) -> int | None:
        """The earliest frame that may still get rows (None: none is kept)."""
        return self._past[0].frame.index if self._past else None

    def search(self, detector: FaceDetector, boxes: np.ndarray, nms_thresh: float
               ) -> list[list[Found]]:
        """For each first box (N, 4) of a new track (in the frame after the kept ones), the
        faces found before it, oldest first; one detector call per frame stepped back."""
        chains: list[list[Found]] = [[] for _ in range(len(boxes))]
        if not self.on or not len(boxes):
            return chains
        last = [np.asarray(b, np.float32) for b in boxes]  # the face in the frame after
        speed = [np.zeros(4, np.float32) for _ in range(len(boxes))]  # per frame, backwards
        active = list(range(len(boxes)))
        for past in reversed(self._past):
            height, width = past.frame.image.shape[:2]
            asks: list[tuple[int, np.ndarray, Region]] = []
            for i in active:
                expect = last[i] + speed[i]
                region = track_region(expect, self.cfg, width, height, LOOK_FACES)
                if not _searched(past.plan, region):
                    asks.append((i, expect, region))
            if not asks:
                break
            found = detect_regions(detector, [past.frame.image], [[r for _, _, r in asks]],
                                   nms_thresh)[0]
            active = []
            for i, expect, _ in asks:
                det = _same_face(found, expect, last[i], past.boxes)
                if det is None:
                    continue
                box = det.xyxy[0]
                speed[i] = box - last[i]
                last[i] = box
                past.boxes = np.concatenate([past.boxes, box[None]])
                chains[i].insert(0, Found(past, det))
                active.append(i)
            if not active:
                break
        return chains


def _searched(plan: ScanPlan, region: Region) -> bool:
    """Whether the frame's own search already covered ``region`` as closely."""
    if plan.kind == NONE:
        return False
    if plan.kind == FULL:
        return region.scale <= 1.1
    return any(covers(r, region) for r in plan.regions)


def _same_face(found: FaceDetections, expect: np.ndarray, later: np.ndarray,
               taken: np.ndarray) -> FaceDetections | None:
    """The detection that is the face expected at ``expect`` (near it, of the later face's
    size, not a face the frame already has), else None."""
    if not len(found):
        return None
    face = float(max(later[2] - later[0], later[3] - later[1], 1.0))
    centre = (expect[:2] + expect[2:]) / 2
    c = (found.xyxy[:, :2] + found.xyxy[:, 2:]) / 2
    shift = np.linalg.norm(c - centre, axis=1) / face
    size = np.maximum(found.xyxy[:, 2] - found.xyxy[:, 0], found.xyxy[:, 3] - found.xyxy[:, 1])
    ratio = np.maximum(size / face, face / np.maximum(size, 1e-3))
    ok = (shift <= MAX_SHIFT_FACES) & (ratio <= MAX_SIZE_RATIO)
    if len(taken):
        ok &= iou_matrix(found.xyxy, taken).max(axis=1) < TAKEN_IOU
    if not ok.any():
        return None
    best = int(np.flatnonzero(ok)[np.argmin(shift[ok])])
    return found[[best]]


def past_boxes(parts: Sequence[FaceDetections]) -> np.ndarray:
    """The boxes (N, 4) of a frame's row sets, in one array."""
    arrays = [p.xyxy for p in parts if len(p)]
    return np.concatenate(arrays).astype(np.float32) if arrays else np.zeros((0, 4), np.float32)
