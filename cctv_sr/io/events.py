"""``events.jsonl``: what happened during a run, as it happens, one JSON line per event.

Camera outages (a live stream that dropped and came back, or was given up) and watchlist
alerts (a track's evidence cleared the decision rule) are written here the moment they happen,
by whichever thread sees them: the decode thread of a stream for outages, the writer thread for
alerts. :class:`EventLog` serialises them (a lock), flushes each line, never writes one twice
(``event_id`` is unique within a run) and hands every alert to its listeners (the webhook
sender) after the line is on disk, so a receiver never learns of an alert the file lacks.

Line formats are the dataclasses below; every line has ``event`` (its kind), ``event_id``,
``utc`` (wall-clock time it was written, ISO 8601) and ``stream``. ``event_id`` is the run's
random prefix and a counter (``3f9c2a1b-000001``), unique across runs.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from cctv_sr.errors import OutputError

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"


def utc_iso(epoch_s: float | None) -> str | None:
    """``epoch_s`` (seconds since 1970, UTC) as ISO 8601 with milliseconds and a ``Z``."""
    if epoch_s is None:
        return None
    stamp = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class OutageStart:
    """A live stream stopped delivering frames (ended, failed, refused or stalled)."""

    stream: str
    reason: str
    seconds: float | None  # stream time of the last frame before the outage
    frame_index: int  # frames decoded so far (the next frame's index)
    event: str = "outage_start"


@dataclass(frozen=True)
class OutageEnd:
    """The stream delivers frames again after ``attempts`` reopen attempts."""

    stream: str
    duration_s: float  # wall time from the last frame before to the first frame after
    attempts: int
    frames_lost: int  # duration_s times the stream's frame rate, rounded
    seconds: float | None  # stream time of the first frame after the outage
    event: str = "outage_end"


@dataclass(frozen=True)
class StreamLost:
    """The stream was given up after ``attempts`` failed reopen attempts in a row."""

    stream: str
    reason: str
    attempts: int
    event: str = "stream_lost"


@dataclass(frozen=True)
class AlertCandidate:
    name: str
    score: float  # the combined score the decision used
    lr: float | None  # the embedder on the LR crops
    sr: float | None  # the embedder on the enhanced crops
    head: float | None  # the LR identity head


@dataclass(frozen=True)
class AlertEvent:
    """A watchlist alert: a track's evidence named a person (``update``: a later, stronger
    decision for the same person and track, or the track's final decision naming someone
    else)."""

    stream: str
    track_id: int
    person: str
    score: float
    threshold: float
    scores: AlertCandidate  # the named person's three scores
    candidates: tuple[AlertCandidate, ...]
    n_faces: int  # usable faces the decision rests on
    first_seconds: float | None
    last_seconds: float | None
    first_utc: str | None
    last_utc: str | None
    best_crops: tuple[str, ...]  # paths relative to OUTDIR (LR, then SR, of each best shot)
    final: bool  # the track has ended
    update: bool  # replaces an earlier alert of this track
    replaces: str | None  # event_id of the alert it updates
    notice: str
    event: str = "alert"


@dataclass(frozen=True)
class AlertWithdrawn:
    """A track's final decision names no one, after an alert that named ``person``."""

    stream: str
    track_id: int
    person: str
    replaces: str  # event_id of the alert withdrawn
    reason: str
    event: str = "alert_withdrawn"


Event = OutageStart | OutageEnd | StreamLost | AlertEvent | AlertWithdrawn
Listener = Callable[[dict[str, Any]], None]


@dataclass
class EventCounts:
    outages: int = 0
    outage_s: float = 0.0
    frames_lost: int = 0
    streams_lost: int = 0
    alerts: int = 0
    alert_updates: int = 0
    alerts_withdrawn: int = 0


class EventLog:
    """Appends events to ``OUTDIR/events.jsonl`` (thread-safe; one line per event)."""

    def __init__(self, outdir: Path) -> None:
        self.path = Path(outdir) / EVENTS_FILE
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._next = 1
        self.counts = EventCounts()
        self._error: OutputError | None = None  # the first write failure, raised by close()
        # unique across runs, so a webhook receiver de-duplicating by event_id never drops
        # a later run's alerts
        self.run_id = uuid.uuid4().hex[:8]
        try:
            self._file: IO[str] | None = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise OutputError.cannot_write(self.path, exc) from None

    def listen(self, listener: Listener) -> None:
        """Call ``listener(line)`` with each alert (and withdrawal) line after it is
        written."""
        self._listeners.append(listener)

    def emit(self, event: Event, utc: float) -> str:
        """Write ``event`` at wall time ``utc`` (epoch seconds); returns its ``event_id``.

        A write failure (disk full) is logged once per event and raised as OutputError to the
        caller's thread, which decides whether the run can go on."""
        with self._lock:
            event_id = f"{self.run_id}-{self._next:06d}"
            self._next += 1
            line = {"event": event.event, "event_id": event_id, "utc": utc_iso(utc),
                    **{k: v for k, v in asdict(event).items() if k != "event"}}
            if self._file is None:
                raise OutputError(f"{self.path}: already closed")
            try:
                self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
                self._file.flush()
            except OSError as exc:
                error = OutputError.cannot_write(self.path, exc)
                self._error = self._error or error
                raise error from None
            self._count(event)  # counted once on disk: run.json says what the file holds
        if isinstance(event, (AlertEvent, AlertWithdrawn)):
            for listener in self._listeners:
                try:
                    listener(line)
                except Exception:  # noqa: BLE001 - a listener never stops the run
                    log.exception("an alert listener failed")
        return event_id

    def _count(self, event: Event) -> None:
        c = self.counts
        if isinstance(event, OutageStart):
            c.outages += 1
        elif isinstance(event, OutageEnd):
            c.outage_s += event.duration_s
            c.frames_lost += event.frames_lost
        elif isinstance(event, StreamLost):
            c.streams_lost += 1
        elif isinstance(event, AlertWithdrawn):
            c.alerts_withdrawn += 1
        elif event.update:
            c.alert_updates += 1
        else:
            c.alerts += 1

    def close(self) -> None:
        """Close the file; raises the first write failure (OutputError), if any, so the run
        reports it as its error even when it happened in a decode thread."""
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError as exc:
                    self._error = self._error or OutputError.cannot_write(self.path, exc)
                self._file = None
            if self._error is not None:
                raise self._error
