"""Square search regions: where faces may be, scaled so the detector sees them comfortably.

A region is a square of the frame (always inside it) and the factor it is resized by before
detection: a 16 px face in a region scaled 2.5x is seen at 40 px, where detectors find it; a
120 px face is seen at 64. The detector's input side is rounded up to a multiple of 32 px.
Regions come from motion blobs (the head is the top of a person-sized blob) and from the
predicted boxes of live tracks, and overlapping ones are merged. :func:`detect_regions` runs
any :class:`~cctv_sr.detect.base.FaceDetector` over them in one batched call and maps boxes
and landmarks back to frame pixels exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from cctv_sr.config import ScanConfig
from cctv_sr.detect.base import FaceDetector
from cctv_sr.detect.boxes import nms
from cctv_sr.records import FaceDetections

# A face is not shrunk below this many pixels (landmarks found on it align the crop).
MIN_SEEN_FACE_PX = 48.0
# Detector input side above which a region is shrunk instead (its faces are large anyway).
MAX_INPUT_PX = 640
# Detector input sides are rounded up to a multiple of this: YuNet pads its input to 32 px
# anyway, and a few sizes let a detector keep one network per size (no reallocation per call).
INPUT_STEP = 32
# A person is about this many face widths tall (head to feet); a blob's face is guessed at no
# more than its height over this (a blob of several people is as tall as one of them).
PERSON_FACES = 6.5


@dataclass(frozen=True)
class Region:
    """Frame square ``[x0, x0 + side) x [y0, y0 + side)`` seen at ``scale`` by the detector."""

    x0: int
    y0: int
    side: int
    scale: float

    @property
    def xyxy(self) -> np.ndarray:
        return np.array([self.x0, self.y0, self.x0 + self.side, self.y0 + self.side], np.float32)

    @property
    def input_side(self) -> int:
        """The side the detector sees: ``side * scale`` rounded up to :data:`INPUT_STEP`."""
        seen = max(1, int(round(self.side * self.scale)))
        return -(-seen // INPUT_STEP) * INPUT_STEP


def _square(cx: float, cy: float, side: float, scale: float, width: int, height: int) -> Region:
    """A square of ``side`` around (cx, cy), shifted (and if need be shrunk) into the frame."""
    s = int(round(min(max(side, 16.0), width, height)))
    x0 = int(round(min(max(cx - s / 2, 0), width - s)))
    y0 = int(round(min(max(cy - s / 2, 0), height - s)))
    scale = min(scale, MAX_INPUT_PX / s)
    return Region(x0, y0, s, scale)


def face_scale(face_px: float, cfg: ScanConfig) -> float:
    """The factor that shows a face of ``face_px`` at about ``cfg.target_face_px``; large faces
    are shrunk, but never below :data:`MIN_SEEN_FACE_PX`."""
    face_px = max(face_px, 1.0)
    return min(cfg.max_upscale, max(cfg.target_face_px / face_px, min(1.0, MIN_SEEN_FACE_PX /
                                                                       face_px)))


def track_region(box: np.ndarray, cfg: ScanConfig, width: int, height: int,
                 faces: float | None = None) -> Region:
    """The region that re-finds a tracked face of box ``box`` (xyxy, frame pixels): a square
    of ``faces`` face widths (default ``scan.region_faces``) at the face's scale."""
    x0, y0, x1, y1 = (float(v) for v in box)
    face = max(x1 - x0, y1 - y0, 1.0)
    side = max((cfg.region_faces if faces is None else faces) * face, float(cfg.min_region_px))
    return _square((x0 + x1) / 2, (y0 + y1) / 2, side, face_scale(face, cfg), width, height)


def holds(square: Region, box: np.ndarray, own: Region) -> bool:
    """Whether ``square`` holds the face box ``box`` (xyxy) whole, at no coarser a scale than
    the face's ``own`` region (:func:`track_region`): a search there looked for that face."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return (square.scale >= 0.9 * own.scale and x0 >= square.x0 and y0 >= square.y0
            and x1 <= square.x0 + square.side and y1 <= square.y0 + square.side)


def blob_region(blob: np.ndarray, cfg: ScanConfig, width: int, height: int) -> Region:
    """The head region of a motion blob: the top of a person-sized (tall) blob, else around it.

    A walking person's blob is about 2.5 face widths wide, so its face is guessed at 0.4 of
    the blob's width (a head-only blob: half its larger side), and never above the blob's
    height over :data:`PERSON_FACES`: people side by side or one above the other make one blob
    as tall as one of them, and a guess from its width would shrink their faces away."""
    x0, y0, x1, y1 = (float(v) for v in blob)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    tallest = h / PERSON_FACES
    if h >= 1.5 * w:
        face = min(0.4 * w, tallest)
        side = max(1.3 * w, float(cfg.min_region_px))
        return _square((x0 + x1) / 2, y0 + 0.45 * side, side, face_scale(face, cfg), width,
                       height)
    face = min(0.5 * max(w, h), tallest)
    side = max(1.3 * max(w, h), float(cfg.min_region_px))
    return _square((x0 + x1) / 2, (y0 + y1) / 2, side, face_scale(face, cfg), width, height)


def fresh_region(blob: np.ndarray, top: float, cfg: ScanConfig, width: int,
                 height: int) -> Region:
    """The region of newly moving pixels ``blob`` (someone who just appeared where others
    moved before). They are often only the part of a body beyond the earlier motion (the
    legs, the torso), the head anywhere above them up to ``top`` (the top of the motion they
    are part of): a square from the blob's bottom up to ``top`` (at least 2.6 blob widths),
    the face guessed at 0.4 of the blob's width (a body is about 2.5 faces wide)."""
    x0, y0, x1, y1 = (float(v) for v in blob)
    w = max(x1 - x0, 1.0)
    side = max(2.6 * w, y1 - min(top, y0), float(cfg.min_region_px))
    return _square((x0 + x1) / 2, y1 - side / 2, side, face_scale(0.4 * w, cfg), width,
                   height)


def _overlap(a: Region, b: Region) -> float:
    """Intersection over the smaller square's area."""
    ix = min(a.x0 + a.side, b.x0 + b.side) - max(a.x0, b.x0)
    iy = min(a.y0 + a.side, b.y0 + b.side) - max(a.y0, b.y0)
    if ix <= 0 or iy <= 0:
        return 0.0
    return ix * iy / float(min(a.side, b.side) ** 2)


def covers(a: Region, b: Region, share: float = 0.5) -> bool:
    """Whether ``a`` holds at least ``share`` of ``b``'s area at no coarser a scale."""
    return a.scale >= 0.9 * b.scale and _overlap(a, b) * min(a.side, b.side) ** 2 >= (
        share * b.side ** 2)


def merge_regions(regions: Sequence[Region], width: int, height: int,
                  min_overlap: float = 0.3) -> list[Region]:
    """Regions that overlap by ``min_overlap`` of the smaller one become their bounding square
    at the larger scale (the smaller faces decide), unless that square would be seen above
    :data:`MAX_INPUT_PX` (then both stay: a large region never drags a small face's region
    down to its own scale)."""
    out = list(regions)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if _overlap(a, b) < min_overlap:
                    continue
                x0, y0 = min(a.x0, b.x0), min(a.y0, b.y0)
                x1, y1 = max(a.x0 + a.side, b.x0 + b.side), max(a.y0 + a.side, b.y0 + b.side)
                side = max(x1 - x0, y1 - y0)
                scale = max(a.scale, b.scale)
                if side * scale > MAX_INPUT_PX:
                    continue
                out[i] = _square((x0 + x1) / 2, (y0 + y1) / 2, side, scale, width, height)
                del out[j]
                merged = True
                break
            if merged:
                break
    return out


def region_image(image: np.ndarray, region: Region) -> np.ndarray:
    """The region's pixels resized to its input side (BGR uint8, contiguous)."""
    crop = image[region.y0:region.y0 + region.side, region.x0:region.x0 + region.side]
    side = region.input_side
    if side == region.side:
        return np.ascontiguousarray(crop)
    interp = cv2.INTER_LINEAR if side > region.side else cv2.INTER_AREA
    return cv2.resize(crop, (side, side), interpolation=interp)


def to_frame(dets: FaceDetections, region: Region) -> FaceDetections:
    """Detections on a region's input image mapped back to frame pixels."""
    k = region.side / float(region.input_side)
    offset = np.array([region.x0, region.y0], np.float32)
    xyxy = dets.xyxy * k + np.tile(offset, 2)
    return FaceDetections(xyxy, dets.score, dets.kps * k + offset)


def concat(parts: Sequence[FaceDetections]) -> FaceDetections:
    if not parts:
        return FaceDetections.empty()
    return FaceDetections(np.concatenate([p.xyxy for p in parts]),
                          np.concatenate([p.score for p in parts]),
                          np.concatenate([p.kps for p in parts]))


def merge_detections(parts: Sequence[FaceDetections], nms_thresh: float) -> FaceDetections:
    """One frame's detections from several regions: NMS across them, sorted by score."""
    dets = concat(parts)
    if len(dets) == 0:
        return dets
    keep = nms(dets.xyxy, dets.score, nms_thresh)
    return dets[np.asarray(keep, np.int64)]


def cut_rows(dets: FaceDetections, region: Region, width: int, height: int) -> np.ndarray:
    """Which detections of a region's input image (``width`` x ``height`` frame) its edges
    cut: the box reaches an edge of the region that lies inside the frame."""
    side = float(region.input_side)
    edge = 0.5  # input pixels
    xyxy = dets.xyxy
    cut = ((region.x0 > 0) & (xyxy[:, 0] <= edge)) | ((region.y0 > 0) & (xyxy[:, 1] <= edge))
    cut |= (region.x0 + region.side < width) & (xyxy[:, 2] >= side - edge)
    cut |= (region.y0 + region.side < height) & (xyxy[:, 3] >= side - edge)
    return np.asarray(cut, bool)


def drop_cut_duplicates(dets: FaceDetections, cut: np.ndarray, inside: float = 0.5,
                        known: np.ndarray | None = None) -> FaceDetections:
    """``dets`` without the cut ones (``cut`` mask) that are a face seen whole in another
    region (they lie mostly, ``inside`` of their area, within a detection no edge cut) or a
    face followed already: a ``known`` face box (N, 4; the live tracks' predicted boxes) lies
    mostly within the cut box grown by half its size each way (an edge through a face leaves
    a box shifted off it, below the face when the top edge cuts it). A cut box's IoU with the
    whole one can be too low for NMS or for the tracker: a second track would start on it, or
    the track would jump onto it. A cut face of no one known is kept."""
    if not cut.any():
        return dets
    whole = dets.xyxy[~cut]
    known = np.zeros((0, 4), np.float32) if known is None else np.asarray(
        known, np.float32).reshape(-1, 4)
    drop = np.zeros(len(dets), bool)
    for k in np.nonzero(cut)[0]:
        box = dets.xyxy[k]
        grow = 0.5 * (box[2:] - box[:2])
        drop[k] = bool((_share_inside(box, whole) >= inside).any() or (
            _share_inside_of(known, np.concatenate([box[:2] - grow, box[2:] + grow]))
            >= inside).any())
    return dets if not drop.any() else dets[np.nonzero(~drop)[0]]


def _share_inside(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The share of ``box``'s area inside each of ``boxes`` (N, 4)."""
    iw = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
    return iw * ih / max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-6)


def _share_inside_of(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The share of each of ``boxes`` (N, 4) inside ``box``."""
    iw = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
    return iw * ih / area


def detect_regions(detector: FaceDetector, images: Sequence[np.ndarray],
                   regions: Sequence[Sequence[Region] | None], nms_thresh: float,
                   known: Sequence[np.ndarray] | None = None) -> list[FaceDetections]:
    """Faces of each frame, searched in its regions (None: the whole frame), in one detector
    call over every region of every frame; boxes and landmarks in frame pixels. A face a
    region's edge cuts is dropped where another region sees it whole or where it lies in one
    of the frame's ``known`` face boxes (:func:`drop_cut_duplicates`)."""
    inputs: list[np.ndarray] = []
    owners: list[tuple[int, Region | None]] = []
    for i, (image, frame_regions) in enumerate(zip(images, regions)):
        if frame_regions is None:
            inputs.append(image)
            owners.append((i, None))
            continue
        for region in frame_regions:
            inputs.append(region_image(image, region))
            owners.append((i, region))
    found = detector.detect(inputs) if inputs else []
    per_frame: list[list[FaceDetections]] = [[] for _ in images]
    cuts: list[list[np.ndarray]] = [[] for _ in images]
    for (i, owner), dets in zip(owners, found):
        if owner is None:
            per_frame[i].append(dets)
            cuts[i].append(np.zeros(len(dets), bool))
        else:
            height, width = images[i].shape[:2]
            cuts[i].append(cut_rows(dets, owner, width, height))
            per_frame[i].append(to_frame(dets, owner))
    out = []
    for i, parts in enumerate(per_frame):
        if len(parts) == 1 and regions[i] is None:
            out.append(parts[0])
            continue
        kept = drop_cut_duplicates(concat(parts), np.concatenate(cuts[i]) if parts
                                   else np.zeros(0, bool),
                                   known=None if known is None else known[i])
        out.append(merge_detections([kept], nms_thresh))
    return out


def region_cost(regions: Sequence[Region]) -> float:
    """Detector input pixels of the regions, in megapixels (for logs and tests)."""
    return sum(r.input_side ** 2 for r in regions) / 1e6 if regions else 0.0

