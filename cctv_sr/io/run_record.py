"""run.json as a dataclass: what a run was given, what it used, what it did, how it ended.

:class:`RunRecord` is written when the run starts (``status: running``) and replaced,
atomically, whenever it changes and at the end, so a crash leaves ``running`` behind and is
visible. ``to_json()`` is the exact object written.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from cctv_sr import EVIDENCE_NOTE, __version__
from cctv_sr.alerts import WebhookCounts
from cctv_sr.config import RunConfig
from cctv_sr.identity.sink import MatchCounts
from cctv_sr.io.container import SourceInfo
from cctv_sr.io.events import EventCounts
from cctv_sr.io.lines import EmbedderRef
from cctv_sr.models.resolve import sha256_file
from cctv_sr.records import StageTimes

_VERSIONED = ("numpy", "torch", "av", "opencv-contrib-python-headless", "onnxruntime",
              "onnxruntime-gpu", "mtcnn")


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def library_versions() -> dict[str, str]:
    """cctv-sr, Python and the installed versions of the libraries results depend on."""
    out = {"cctv-sr": __version__, "python": platform.python_version()}
    for dist in _VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass
class InputRecord:
    """The input as opened (``url`` has any stream password masked) and its sha256."""

    url: str
    is_live: bool
    width: int
    height: int
    fps: float | None
    codec: str
    time_base: str
    duration_s: float | None
    frame_count: int | None
    sha256: str | None = None
    stream: str = "cam0"  # the stream id its records carry
    # where its records' utc comes from: live (wall time of its first frame), creation_time
    # (the file's container metadata) or none
    utc_origin: str = "none"
    frames_expected: int | None = None  # set when the file ended early (truncated)
    truncated: bool = False

    @classmethod
    def of(cls, info: SourceInfo, stream: str = "cam0") -> InputRecord:
        return cls(info.url, info.is_live, info.width, info.height, info.fps, info.codec,
                   str(info.time_base), info.duration_s, info.frame_count, stream=stream)


@dataclass(frozen=True)
class StreamRecord:
    """One stream of a run of several inputs: its folder under OUTDIR and what it wrote."""

    folder: str
    counts: dict[str, int]


@dataclass(frozen=True)
class FileRecord:
    path: str
    sha256: str | None


@dataclass(frozen=True)
class ModelRecord:
    """A loaded backend: its name, implementing class and weight files with their sha256."""

    name: str
    target: str  # "module:Class"
    files: tuple[FileRecord, ...]

    @classmethod
    def of(cls, model: object) -> ModelRecord:
        files = []
        for p in getattr(model, "model_files", ()):
            path = Path(p)
            files.append(FileRecord(str(path), sha256_file(path) if path.is_file() else None))
        return cls(str(getattr(model, "name", type(model).__name__)),
                   f"{type(model).__module__}:{type(model).__name__}", tuple(files))


@dataclass(frozen=True)
class GalleryRecord:
    """The gallery a run matched against, with the embedder that built it and the threshold
    the decisions used (``thresholds``: the calibrated ones, by FAR; ``thresholds_by_size``:
    the decision threshold of a track with full evidence whose faces are at most that many
    pixels, from thresholds calibrated at that size)."""

    path: str
    people: int
    embedder: EmbedderRef
    threshold: float
    threshold_rule: str
    thresholds: dict[str, float]
    thresholds_by_size: dict[str, float] = field(default_factory=dict)


@dataclass
class RunCounts:
    frames_decoded: int = 0
    frames_analysed: int = 0
    frames_skipped: int = 0
    frames_dropped_live: int = 0
    decode_errors: int = 0
    reconnects: int = 0  # live outages the stream came back from (events.jsonl has each)
    reconnect_attempts: int = 0
    stalls: int = 0  # sessions the watchdog gave up on (source.stall_timeout_s)
    frames_lost: int = 0  # frames the outages cost (their length times the frame rate)
    detections: int = 0
    sr_faces: int = 0
    embedded_faces: int = 0
    head_faces: int = 0  # faces the LR identity head embedded
    faces: int = 0
    faces_untracked: int = 0
    tracks: int = 0
    crops_written: int = 0
    crops_removed: int = 0
    carried_rows: int = 0  # face rows carried by tracks between detections (detected: false)
    looked_back: int = 0  # faces found in the frames before a new track's first (detected)
    frames_full_scan: int = 0  # frames the detector searched whole
    frames_region_scan: int = 0  # frames searched in regions only
    frames_no_scan: int = 0  # frames nothing was searched in (tracks carried the faces)
    regions_searched: int = 0
    shot_cuts: int = 0  # each one ended every open track
    windows: int = 0  # faces sent to SR / embedding with a track window (temporal.frames > 1)
    window_frames: int = 0  # the frames of track those windows held (valid slots, centres too)
    window_between: int = 0  # frames between detections aligned from interpolated landmarks
    analysis_workers: int = 1  # analysis threads (several inputs: one stream each)


@dataclass
class RunTiming(StageTimes):
    """The pipeline's stage times plus the analysed frames per second of the whole run."""

    analysed_fps: float | None = None


@dataclass
class RunRecord:
    """Everything run.json holds. ``status``: running | complete | truncated (a file ended
    before its container said it would) | stopped | interrupted | failed."""

    input: InputRecord  # the first input (of ``inputs``)
    settings: RunConfig
    models: dict[str, ModelRecord]
    gallery: GalleryRecord | None = None
    tool: str = "cctv-sr"
    status: str = "running"
    notice: str = EVIDENCE_NOTE
    started_at: str = field(default_factory=now_utc)
    versions: dict[str, str] = field(default_factory=library_versions)
    matching: MatchCounts | None = None
    error: str | None = None
    finished_at: str | None = None
    counts: RunCounts = field(default_factory=RunCounts)
    timing: RunTiming = field(default_factory=RunTiming)
    inputs: list[InputRecord] = field(default_factory=list)  # every input, in stream order
    streams: dict[str, StreamRecord] | None = None  # several inputs: per stream
    events: EventCounts = field(default_factory=EventCounts)  # what events.jsonl holds
    webhook: WebhookCounts | None = None  # --alert-webhook deliveries

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        timing = data["timing"]
        for key, value in timing.items():
            if isinstance(value, float):
                timing[key] = round(value, 4)
        order = ("tool", "status", "notice", "started_at", "input", "inputs", "settings",
                 "models", "gallery", "versions", "matching", "error", "finished_at", "counts",
                 "events", "webhook", "streams", "timing")
        return {key: data[key] for key in order}
