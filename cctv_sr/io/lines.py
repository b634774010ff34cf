"""The records behind every JSONL line a run writes, one dataclass per file.

One name per field across the files: ``stream`` and ``track_id`` everywhere; a crop is always
a :class:`CropRef` (``face_id``, ``lr``, ``sr`` paths relative to OUTDIR); times are
``seconds`` (stream time); scores of a candidate are ``score`` (the decision's), ``score_lr``,
``score_sr`` and ``score_head`` (the LR identity head's; null when no head ran). A line is
``json.dumps(dataclasses.asdict(record))``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cctv_sr.records import FaceRow, Quality, TrackSummary


def rounded(x: Any, nd: int = 2) -> Any:
    """Numbers (or nested lists of them) rounded to ``nd`` decimals, as plain lists."""
    return np.round(np.asarray(x, dtype=np.float64), nd).tolist()


def to_line(record: Any) -> str:
    """One JSONL line (with its newline) for a line record."""
    return json.dumps(asdict(record), ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class CropRef:
    """A face's crop files: the LR crop and its enhanced version, relative to OUTDIR."""

    face_id: str
    lr: str
    sr: str


@dataclass(frozen=True)
class QualityLine:
    size_px: float
    size: float
    sharpness: float
    frontal: float
    det_score: float
    score: float
    faceness: float | None  # O-Net face probability, folded into ``score`` (null: unchecked)

    @classmethod
    def of(cls, q: Quality) -> QualityLine:
        def r(v: float) -> float:
            return round(float(v), 4)

        return cls(r(q.size_px), r(q.size), r(q.sharpness), r(q.frontal), r(q.det_score),
                   r(q.score), None if np.isnan(q.faceness) else r(q.faceness))


@dataclass(frozen=True)
class FaceLine:
    """faces.jsonl: one detected face. ``track_id`` and ``crop`` are null for detections no
    track took (or of tracks too short to keep); ``crop`` is set for the kept best shots."""

    stream: str
    frame: int
    pts: int | None
    time_base: str
    seconds: float | None  # stream time from the stream's first frame (a player's 0:00)
    utc: str | None  # wall-clock time (live: as received; files: creation_time + seconds)
    det: int
    face_id: str | None
    box: list[float]
    score: float
    landmarks: list[list[float]]
    track_id: int | None
    quality: QualityLine | None
    crop: CropRef | None
    detected: bool  # false: carried by its track between detections (landmarks predicted)

    @classmethod
    def of(cls, row: FaceRow, crop: CropRef | None, tracked: bool = True,
           utc: str | None = None) -> FaceLine:
        return cls(
            stream=row.stream_id,
            frame=row.frame_index,
            pts=row.pts,
            time_base=str(row.time_base),
            seconds=None if row.seconds is None else round(row.seconds, 6),
            utc=utc,
            det=row.det_index,
            face_id=row.face_id if tracked else None,
            box=rounded(row.xyxy),
            score=round(float(row.score), 4),
            landmarks=rounded(row.kps),
            track_id=row.track_id if tracked else None,
            quality=None if row.quality is None else QualityLine.of(row.quality),
            crop=crop,
            detected=row.detected,
        )


@dataclass(frozen=True)
class TrackLine:
    """tracks.jsonl: one finished track and its best crops (best first)."""

    stream: str
    track_id: int
    first_frame: int
    last_frame: int
    first_seconds: float | None
    last_seconds: float | None
    n_faces: int
    best_frame: int
    best_quality: float
    best_crops: tuple[CropRef, ...]
    folder: str
    n_carried: int  # rows carried between detections (faces.jsonl ``detected: false``)
    first_utc: str | None = None
    last_utc: str | None = None

    @classmethod
    def of(cls, s: TrackSummary, best: tuple[CropRef, ...], folder: str,
           utc: tuple[str | None, str | None] = (None, None)) -> TrackLine:
        return cls(s.stream_id, s.track_id, s.first_frame, s.last_frame, s.first_seconds,
                   s.last_seconds, s.n_faces, s.best_frame, round(s.best_quality, 4), best,
                   folder, s.n_carried, *utc)


@dataclass(frozen=True)
class CandidateLine:
    """A gallery person scored against a track: the combined, LR-only, SR-only and head-only
    scores (with a head, ``score`` averages ``score_head`` and ``score_sr``)."""

    name: str
    score: float
    score_lr: float | None
    score_sr: float | None
    score_head: float | None


@dataclass(frozen=True)
class GateLine:
    """The matching gate's verdict on a track (:mod:`cctv_sr.identity.gate`)."""

    matchable: bool
    reason: str | None  # why it is not matchable
    n_faces: int  # embedded faces judged
    n_usable: int  # faces that passed every bar (the decision rests on these)
    n_not_face: int  # faces the face / non-face check rejected
    best_faceness: float | None
    far_factor: float  # the per-pair FAR of this track's threshold was multiplied by this
    pair_far: float | None  # the per-pair FAR its threshold was read at (None: fixed/unused)
    beyond_calibration: bool  # that FAR is finer than the finest calibrated point: clamped


@dataclass(frozen=True)
class EmbedderRef:
    name: str
    version: str


@dataclass(frozen=True)
class HeadRef:
    """The LR identity head a run scored tracks with (:mod:`cctv_sr.embed.lrhead`)."""

    name: str
    version: str


@dataclass(frozen=True)
class MatchLine:
    """matches.jsonl: one track scored against the gallery."""

    stream: str
    track_id: int
    first_seconds: float | None
    last_seconds: float | None
    n_faces: int
    n_embedded: int
    n_frames: int  # frames the decision rests on: the embedded faces and their windows' frames
    decision: str | None
    decision_lr_only: str | None
    decision_sr_only: str | None
    decision_head_only: str | None  # None also when no head ran (see ``head``)
    reason: str | None  # why there is no match: the gate's reason or the score's
    threshold: float  # this track's threshold (the gallery's, stricter for short tracks)
    margin: float | None  # combined top-1 minus top-2 score
    gate: GateLine
    candidates: tuple[CandidateLine, ...]
    best_crops: tuple[CropRef, ...]
    side_by_side: str | None
    embedder: EmbedderRef
    head: HeadRef | None  # None: no LR identity head ran
    notice: str
    first_utc: str | None = None
    last_utc: str | None = None
    alert_event: str | None = None  # events.jsonl event_id of the alert this track raised
