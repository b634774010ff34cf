"""Central value types that cross module boundaries.

Conventions used everywhere in the package:

* Images are ``numpy.ndarray`` of shape (H, W, 3), dtype uint8, **BGR** colour order.
* Coordinates are pixels in the frame the record names, x to the right, y down, float32.
* Landmarks (``kps``) come in the canonical order of the ArcFace 5-point template, as seen in
  the image: eye on the image left, eye on the image right, nose tip, mouth corner on the image
  left, mouth corner on the image right. Every detector adapter converts to this order.
* Time is exact: ``pts`` in units of ``time_base`` (a :class:`fractions.Fraction`), as PyAV
  reports it; ``seconds`` is derived.

All records are frozen dataclasses validated in ``__post_init__``; invalid input raises
:class:`~cctv_sr.errors.ContractError` (a ``ValueError``: a bug in whatever made the value),
never ``AssertionError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TypeAlias

import numpy as np

from cctv_sr.errors import ContractError

N_KPS = 5


def _check_image(name: str, image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ContractError(f"{name} must be a uint8 numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ContractError(f"{name} must have shape (H, W, 3), got {image.shape}")


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded video frame.

    ``index`` counts every decoded frame of the stream (0-based), including frames that
    ``--stride``/``--max-fps`` skip, so indices stay comparable across settings, and goes on
    across a live stream's reconnects. ``pts`` is stream time from 0 at the first frame
    (:mod:`cctv_sr.io.live`), monotonic across reconnects.
    """

    stream_id: str
    index: int
    pts: int | None
    time_base: Fraction
    image: np.ndarray  # (H, W, 3) uint8 BGR
    session: int = 0  # a live stream's connection number: a new one follows an outage

    def __post_init__(self) -> None:
        _check_image("Frame.image", self.image)
        if self.index < 0:
            raise ContractError(f"Frame.index must be >= 0, got {self.index}")
        if not isinstance(self.time_base, Fraction) or self.time_base <= 0:
            raise ContractError(
                f"Frame.time_base must be a positive Fraction, got {self.time_base}")

    @property
    def seconds(self) -> float | None:
        """Presentation time in seconds, or None when the container gave no pts."""
        return None if self.pts is None else float(self.pts * self.time_base)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, eq=False)
class FaceDetections:
    """Faces found in one frame, column-oriented.

    xyxy: (N, 4) float32, box corners in frame pixels.
    score: (N,) float32, detector confidence in [0, 1].
    kps: (N, 5, 2) float32, landmarks in canonical order (see module docstring).
    track_id: (N,) int64 or None; -1 marks a detection that no track took.
    """

    xyxy: np.ndarray
    score: np.ndarray
    kps: np.ndarray
    track_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = xyxy.shape[0]
        score = np.asarray(self.score, dtype=np.float32).reshape(-1)
        kps = np.asarray(self.kps, dtype=np.float32).reshape(-1, N_KPS, 2)
        if score.shape[0] != n or kps.shape[0] != n:
            raise ContractError(
                f"FaceDetections columns disagree: xyxy {n}, score {score.shape[0]}, "
                f"kps {kps.shape[0]}"
            )
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "kps", kps)
        if self.track_id is not None:
            tid = np.asarray(self.track_id, dtype=np.int64).reshape(-1)
            if tid.shape[0] != n:
                raise ContractError(f"FaceDetections.track_id has {tid.shape[0]} rows, want {n}")
            object.__setattr__(self, "track_id", tid)

    @classmethod
    def empty(cls) -> FaceDetections:
        z = np.zeros
        return cls(z((0, 4), np.float32), z((0,), np.float32), z((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: np.ndarray | slice | list[int]) -> FaceDetections:
        """Rows selected by a boolean mask, an index array or a slice; same type back."""
        return FaceDetections(
            self.xyxy[index],
            self.score[index],
            self.kps[index],
            None if self.track_id is None else self.track_id[index],
        )

    def with_track_ids(self, track_id: np.ndarray) -> FaceDetections:
        return FaceDetections(self.xyxy, self.score, self.kps, track_id)

    def scaled(self, factor: float) -> FaceDetections:
        """Coordinates multiplied by ``factor`` (to map detections on a resized frame back)."""
        return FaceDetections(self.xyxy * factor, self.score, self.kps * factor, self.track_id)


@dataclass(frozen=True)
class Quality:
    """How useful one face crop is for identification, each term in [0, 1].

    size_px: the face's native side in the frame, in pixels of a 112-template crop
    (eye distance scaled to the template), not clipped.
    """

    size_px: float
    size: float
    sharpness: float
    frontal: float
    det_score: float
    score: float
    faceness: float = float("nan")  # O-Net face probability of the crop (NaN: not checked)


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """One face warped to the canonical template.

    crop: (S, S, 3) uint8 BGR, the face at the canonical template scaled to side S.
    M: (2, 3) float32 affine that maps frame pixels to crop pixels.
    """

    stream_id: str
    track_id: int
    frame_index: int
    pts: int | None
    time_base: Fraction
    det_index: int
    xyxy: np.ndarray
    kps: np.ndarray
    crop: np.ndarray
    M: np.ndarray
    quality: Quality

    def __post_init__(self) -> None:
        _check_image("AlignedFace.crop", self.crop)
        if self.crop.shape[0] != self.crop.shape[1]:
            raise ContractError(f"AlignedFace.crop must be square, got {self.crop.shape}")
        if np.asarray(self.M).shape != (2, 3):
            raise ContractError(f"AlignedFace.M must be (2, 3), got {np.asarray(self.M).shape}")

    @property
    def seconds(self) -> float | None:
        return None if self.pts is None else float(self.pts * self.time_base)

    @property
    def face_id(self) -> str:
        """Stable name of this face within a run: frame index and detection row."""
        return f"f{self.frame_index:07d}_d{self.det_index:02d}"


@dataclass(frozen=True, eq=False)
class TrackWindow:
    """The unit of SR work: T aligned crops of one track centred on one face.

    crops: (T, S, S, 3) uint8 BGR; valid: (T,) bool, False for padded slots; the centre slot
    (index T // 2) is always valid and is the face being enhanced.
    """

    centre: AlignedFace
    crops: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        crops = np.asarray(self.crops)
        valid = np.asarray(self.valid, dtype=bool)
        if crops.ndim != 4 or crops.shape[0] != valid.shape[0]:
            raise ContractError(f"TrackWindow crops {crops.shape} and valid {valid.shape} disagree")
        if not valid[crops.shape[0] // 2]:
            raise ContractError("TrackWindow centre slot must be valid")

    @classmethod
    def single(cls, face: AlignedFace) -> TrackWindow:
        return cls(face, face.crop[None], np.ones((1,), bool))


@dataclass(frozen=True, eq=False)
class EnhancedFace:
    """An aligned face and its super-resolved version.

    sr: (R, R, 3) uint8 BGR at the output side R (the canonical 128), or the LR crop warped
    straight to R when the face was large enough to skip SR (``sr_method == "none"``).
    """

    face: AlignedFace
    sr: np.ndarray
    sr_method: str
    frames: int = 1  # frames of the track window the SR crop rests on (valid slots used)


@dataclass(frozen=True)
class TrackSummary:
    """One finished track, as written to tracks.jsonl."""

    stream_id: str
    track_id: int
    first_frame: int
    last_frame: int
    first_seconds: float | None
    last_seconds: float | None
    n_faces: int  # detected faces
    best_frame: int
    best_quality: float
    n_carried: int = 0  # rows the track carried between detections (not detected)



@dataclass
class StageTimes:
    """Seconds spent per pipeline stage, summed over a run, and its wall time (mutable: the
    pipeline fills it in as the run goes; run.json reports it)."""

    detect_s: float = 0.0
    scan_s: float = 0.0  # motion, shot cuts and region planning
    track_s: float = 0.0
    align_s: float = 0.0
    sr_s: float = 0.0
    embed_s: float = 0.0
    head_s: float = 0.0  # the LR identity head (not part of embed_s)
    write_s: float = 0.0
    wall_s: float = 0.0

# ------------------------------------------------------------------------- stage messages
# What the pipeline's threads hand each other (see cctv_sr/engine/pipeline.py):
#   analysis --AnalysisMessage--> accelerator --WriterMessage--> writer
# Each queue carries exactly one of these unions, plus the channel's end / failure markers.


@dataclass(frozen=True, eq=False)
class FaceRow:
    """One detection as it goes to faces.jsonl (crop paths are filled in by the writer)."""

    stream_id: str
    frame_index: int
    pts: int | None
    time_base: Fraction
    det_index: int
    xyxy: np.ndarray
    score: float
    kps: np.ndarray
    track_id: int | None
    quality: Quality | None = None
    face_id: str | None = None
    detected: bool = True  # False: carried by its track between detections (no crop)

    @property
    def seconds(self) -> float | None:
        return None if self.pts is None else float(self.pts * self.time_base)


@dataclass(frozen=True, eq=False)
class SaveRequest:
    """Enhance this face and write its LR and SR crops now; delete the crops of ``evict``.
    ``window``: the face's track window (:mod:`cctv_sr.engine.temporal`; None: the face alone)."""

    face: AlignedFace
    evict: tuple[str, ...] = ()
    window: TrackWindow | None = None


@dataclass(frozen=True, eq=False)
class EmbedRequest:
    """Enhance and embed this face for identity (a sparse sample; its crops are not written)."""

    face: AlignedFace
    window: TrackWindow | None = None


@dataclass(frozen=True, eq=False)
class TrackEnd:
    """A finished track: its summary, all its face rows, and the face ids whose crops remain.

    ``rows_final_before``: every face row of this stream with a smaller frame index has now
    been emitted (no open track holds one), so the writer may write those rows in time order.
    """

    summary: TrackSummary
    rows: tuple[FaceRow, ...]
    kept: tuple[str, ...]
    discarded: bool = False  # too short: rows go out untracked and its crops are removed
    rows_final_before: int | None = None  # None: no track of the stream is open any more


@dataclass(frozen=True, eq=False)
class FaceRows:
    """Face rows final before any track end: detections of one frame no track took
    (``tracked`` False), or the rows of an open track older than ``output.flush_s``
    (``tracked`` True: written now, without crop refs, so a live run shows its faces within
    seconds). ``rows_final_before`` as in TrackEnd."""

    stream_id: str
    rows: tuple[FaceRow, ...]
    rows_final_before: int | None = None
    tracked: bool = False


@dataclass(frozen=True, eq=False)
class FaceVectors:
    """One face's identity vectors: from its LR crop and from its SR crop (L2-normalised), the
    face / non-face score of its LR crop (:mod:`cctv_sr.face.faceness`; NaN: not scored), and
    the LR identity head's vector of its LR crop, in the embedder's space (None: no head ran;
    :mod:`cctv_sr.embed.lrhead`)."""

    lr: np.ndarray
    sr: np.ndarray
    faceness: float = float("nan")
    head: np.ndarray | None = None
    frames: int = 1  # frames these vectors rest on: the face and its window's other frames


@dataclass(frozen=True, eq=False)
class Saved:
    """A SaveRequest done: the enhanced face (crops in memory), evictions, optional vectors."""

    enhanced: EnhancedFace
    evict: tuple[str, ...] = ()
    vectors: FaceVectors | None = None


@dataclass(frozen=True, eq=False)
class Embedded:
    """An EmbedRequest done: the face and its identity vectors."""

    face: AlignedFace
    vectors: FaceVectors


@dataclass(frozen=True)
class StreamEnd:
    """In a run of several inputs, after the last frame of ``stream_id`` (the others go on)."""

    stream_id: str


AnalysisMessage: TypeAlias = SaveRequest | EmbedRequest | TrackEnd | FaceRows
WriterMessage: TypeAlias = Saved | Embedded | TrackEnd | FaceRows


def stream_of(message: AnalysisMessage | WriterMessage) -> str:
    """The stream id any stage message belongs to."""
    if isinstance(message, (SaveRequest, EmbedRequest, Embedded)):
        return message.face.stream_id
    if isinstance(message, Saved):
        return message.enhanced.face.stream_id
    if isinstance(message, TrackEnd):
        return message.summary.stream_id
    if isinstance(message, FaceRows):
        return message.stream_id
    raise ContractError(f"no stream for a {type(message).__name__}")
