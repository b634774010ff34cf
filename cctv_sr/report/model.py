"""What a run report shows, as typed records: the run (run.json), its streams, their tracks
(tracks.jsonl) with their match lines (matches.jsonl), the run's events (events.jsonl) and
every problem found while reading the files.

Every path in these records is an ``href``: a relative POSIX path from OUTDIR (where
report.html lives) to a file that exists inside OUTDIR, checked by
:func:`cctv_sr.report.load.safe_href`; a path that is not safe is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

# a track's state on the page (filters, colours)
MATCHED = "matched"
NO_MATCH = "no_match"
NOT_MATCHABLE = "not_matchable"
NOT_SCORED = "not_scored"

# run.json statuses that mean the outputs are not the whole run
PARTIAL_STATUSES = ("running", "interrupted", "stopped", "failed")


@dataclass(frozen=True)
class InputInfo:
    """One input of the run, as run.json records it (``url`` already has passwords masked)."""

    stream: str
    url: str
    sha256: str | None
    is_live: bool
    width: int | None
    height: int | None
    fps: float | None
    codec: str
    duration_s: float | None
    frame_count: int | None


@dataclass(frozen=True)
class ModelFile:
    path: str
    sha256: str | None


@dataclass(frozen=True)
class ModelInfo:
    """A backend the run loaded: its role (detector, sr, embedder, ...), name and files."""

    role: str
    name: str
    target: str
    files: tuple[ModelFile, ...]


@dataclass(frozen=True)
class GalleryInfo:
    path: str
    people: int | None
    embedder: str
    threshold: float | None
    threshold_rule: str


@dataclass(frozen=True)
class Stat:
    """One number of run.json's counts, matching counts or timing."""

    key: str
    value: float


@dataclass(frozen=True)
class RunInfo:
    """run.json, reduced to what the report shows."""

    status: str
    error: str | None
    started_at: str | None
    finished_at: str | None
    version: str | None
    inputs: tuple[InputInfo, ...]
    models: tuple[ModelInfo, ...]
    gallery: GalleryInfo | None
    counts: tuple[Stat, ...]
    matching: tuple[Stat, ...]
    timing: tuple[Stat, ...]

    @property
    def partial(self) -> bool:
        return self.status != "complete"


@dataclass(frozen=True)
class Crop:
    """A kept face: its LR crop and enhanced version as hrefs (``None``: missing / unsafe)."""

    face_id: str
    lr: str | None
    sr: str | None


@dataclass(frozen=True)
class Candidate:
    name: str
    score: float | None
    score_lr: float | None
    score_sr: float | None
    score_head: float | None


@dataclass(frozen=True)
class Match:
    """A track's line of matches.jsonl."""

    decision: str | None
    reason: str | None
    matchable: bool
    threshold: float | None
    margin: float | None
    n_embedded: int | None
    n_usable: int | None
    decision_lr_only: str | None
    decision_sr_only: str | None
    decision_head_only: str | None
    candidates: tuple[Candidate, ...]
    side_by_side: str | None  # href of the track's match.png


@dataclass(frozen=True)
class Track:
    """A track's line of tracks.jsonl (times in stream seconds) and its match, if any."""

    stream: str
    track_id: int
    first_frame: int | None  # None: known from its match line only (run cut short)
    last_frame: int | None
    first_seconds: float | None
    last_seconds: float | None
    n_faces: int
    best_quality: float | None
    crops: tuple[Crop, ...]
    match: Match | None

    @property
    def state(self) -> str:
        if self.match is None:
            return NOT_SCORED
        if self.match.decision is not None:
            return MATCHED
        return NO_MATCH if self.match.matchable else NOT_MATCHABLE


@dataclass(frozen=True)
class Event:
    """One line of events.jsonl: its kind, when, and every other field as text."""

    event: str
    utc: str | None
    seconds: float | None
    stream: str | None
    fields: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Issue:
    """Something wrong or missing in the files read (a truncated line, a missing file)."""

    path: str
    problem: str


@dataclass(frozen=True)
class StreamData:
    """One camera: its folder under OUTDIR ("" for a one-input run), input and tracks."""

    stream: str
    folder: str
    fps: float | None
    tracks: tuple[Track, ...]
    scored: bool  # a matches.jsonl was read for this stream


@dataclass(frozen=True)
class RunReport:
    run: RunInfo
    streams: tuple[StreamData, ...]
    events: tuple[Event, ...]
    issues: tuple[Issue, ...]

    @property
    def tracks(self) -> tuple[Track, ...]:
        return tuple(t for s in self.streams for t in s.tracks)

    def people(self) -> tuple[str, ...]:
        """Every person a track was matched to, sorted."""
        names = {t.match.decision for t in self.tracks
                 if t.match is not None and t.match.decision is not None}
        return tuple(sorted(names))
