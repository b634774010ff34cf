"""Watchlist alerts as they happen: a track's running decision turned into events.jsonl lines.

The identity sink re-decides an open track each time a new embedded face arrives (the same
gate, threshold and rule as its final decision). :class:`TrackAlerts` turns those decisions
into :class:`~cctv_sr.io.events.AlertEvent` lines: the first time a track names a person, an
alert; later, one more event only when the decision gets stronger (the same person's score up
by ``min_gain``) or names someone else, each saying which event it replaces (``update``,
``replaces``); and when the track ends, its final decision if it differs from what was sent.
A track whose final decision names no one after an alert gets an ``alert_withdrawn`` line.
So there is one alert per person per track, and its updates. Used from the writer thread only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from cctv_sr import EVIDENCE_NOTE
from cctv_sr.identity.match import Candidate, TrackMatch
from cctv_sr.io.events import AlertCandidate, AlertEvent, AlertWithdrawn, EventLog
from cctv_sr.io.lines import CropRef
from cctv_sr.io.live import StreamClock


@dataclass(frozen=True)
class _Sent:
    person: str
    score: float
    event_id: str


@dataclass(frozen=True)
class TrackSpan:
    """What an alert says about the track beside its decision."""

    stream: str
    track_id: int
    first_seconds: float | None
    last_seconds: float | None
    n_faces: int  # usable faces the decision rests on
    crops: tuple[CropRef, ...]  # its best crops now (relative to the stream's folder)


def _candidate(c: Candidate) -> AlertCandidate:
    def r(x: float | None) -> float | None:
        return None if x is None else round(float(x), 4)

    return AlertCandidate(c.name, round(float(c.score), 4), r(c.lr), r(c.sr), r(c.head))


class TrackAlerts:
    """Per-track alert state of one stream's identity sink."""

    def __init__(self, events: EventLog, stream_dir: Path, clock: StreamClock,
                 min_gain: float = 0.02) -> None:
        self.events = events
        self.stream_dir = Path(stream_dir)
        self.clock = clock
        self.min_gain = min_gain
        self._sent: dict[tuple[str, int], _Sent] = {}

    def consider(self, span: TrackSpan, result: TrackMatch | None, final: bool) -> str | None:
        """Send what ``result`` (the track's decision now) calls for; returns the event_id of
        the alert standing for this track afterwards (None: none)."""
        key = (span.stream, span.track_id)
        sent = self._sent.get(key)
        name = None if result is None else result.decision
        if name is None or result is None:
            if final and sent is not None:
                reason = "no decision" if result is None else (result.reason or "no match")
                self.events.emit(AlertWithdrawn(span.stream, span.track_id, sent.person,
                                                sent.event_id, reason), time.time())
                del self._sent[key]
                return None
            if final:
                self._sent.pop(key, None)
            return None if sent is None else sent.event_id
        top = result.combined[0]
        if (sent is not None and name == sent.person
                and top.score < sent.score + self.min_gain):
            if final:
                del self._sent[key]
            return sent.event_id  # nothing new to say
        event = AlertEvent(
            stream=span.stream, track_id=span.track_id, person=name,
            score=round(float(top.score), 4), threshold=round(float(result.threshold), 4),
            scores=_candidate(top), candidates=tuple(_candidate(c) for c in result.combined),
            n_faces=span.n_faces, first_seconds=_r(span.first_seconds),
            last_seconds=_r(span.last_seconds), first_utc=self.clock.utc(span.first_seconds),
            last_utc=self.clock.utc(span.last_seconds), best_crops=self._paths(span.crops),
            final=final, update=sent is not None,
            replaces=None if sent is None else sent.event_id, notice=EVIDENCE_NOTE)
        event_id = self.events.emit(event, time.time())
        self._sent[key] = _Sent(name, float(top.score), event_id)
        if final:
            del self._sent[key]  # the track is over: nothing more to say about it
        return event_id

    def _paths(self, crops: tuple[CropRef, ...]) -> tuple[str, ...]:
        root = self.events.path.parent
        out: list[str] = []
        for ref in crops:
            for rel in (ref.lr, ref.sr):
                out.append(Path(os.path.relpath(self.stream_dir / rel, root)).as_posix())
        return tuple(out)


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
