"""Per-track bookkeeping: the faces of each live track and its top-k best shots.

The book decides, face by face, which crops are worth writing now (they entered the track's
top-k by quality) and which written crops fall out (evicted), so output folders always hold the
current best shots and an hour of footage does not become a million files. A track's face rows
are held until the track ends, so their crop paths are final when they are written, except
that :meth:`TrackBook.settled` hands over the rows of a long open track that are older than
``output.flush_s`` (written without crop refs; the track's final record lists its best crops).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from cctv_sr.records import AlignedFace, FaceRow, SaveRequest, TrackEnd, TrackSummary


@dataclass
class _Track:
    rows: list[FaceRow] = field(default_factory=list)
    heap: list[tuple[float, int, str]] = field(default_factory=list)  # (quality, frame, id)
    pending: list[AlignedFace] = field(default_factory=list)  # before min_faces is reached
    saved: set[str] = field(default_factory=set)
    best: tuple[float, int] = (-1.0, -1)
    detected: int = 0
    first: FaceRow | None = None  # the track's first row (rows may have been handed over)
    last: FaceRow | None = None
    n_rows: int = 0
    times: dict[str, float] = field(default_factory=dict)  # kept face id -> time slot


class TrackBook:
    """Top-k selection per track; not thread-safe (lives in the analysis thread)."""

    def __init__(self, top_k: int, save_all: bool, min_faces: int,
                 min_gap_s: float = 0.0, fps: float = 25.0) -> None:
        self.top_k = top_k
        self.save_all = save_all
        self.min_faces = max(1, min_faces)
        self.min_gap_s = min_gap_s
        self.fps = fps
        self._tracks: dict[int, _Track] = {}

    def add(self, face: AlignedFace, row: FaceRow) -> list[SaveRequest]:
        """Record one tracked face; returns the writes (and evictions) it causes."""
        tr = self._tracks.setdefault(face.track_id, _Track())
        self._row(tr, row)
        tr.detected += 1
        if face.quality.score > tr.best[0]:
            tr.best = (face.quality.score, face.frame_index)
        if tr.detected < self.min_faces:
            tr.pending.append(face)
            return []
        out = [r for f in tr.pending for r in self._offer(tr, f)]
        tr.pending.clear()
        return out + self._offer(tr, face)

    def add_carried(self, track_id: int, row: FaceRow) -> None:
        """Record a row the track carried between detections (no crop, never a best shot)."""
        tr = self._tracks.get(track_id)
        if tr is not None:
            self._row(tr, row)

    @staticmethod
    def _row(tr: _Track, row: FaceRow) -> None:
        tr.rows.append(row)
        tr.first = tr.first or row
        tr.last = row
        tr.n_rows += 1

    def settled(self, before_s: float) -> list[FaceRow]:
        """Rows older than stream time ``before_s`` of open tracks that are sure to be kept
        (``min_faces`` reached), handed over for writing now; in frame order."""
        out: list[FaceRow] = []
        for tr in self._tracks.values():
            if tr.detected < self.min_faces:
                continue
            k = 0
            while k < len(tr.rows) and self._row_time(tr.rows[k]) < before_s:
                k += 1
            out += tr.rows[:k]
            del tr.rows[:k]
        return sorted(out, key=lambda r: (r.frame_index, r.det_index))

    def _row_time(self, row: FaceRow) -> float:
        return row.seconds if row.seconds is not None else row.frame_index / self.fps

    def _time(self, face: AlignedFace) -> float:
        return face.seconds if face.seconds is not None else face.frame_index / self.fps

    def could_keep(self, face: AlignedFace) -> bool:
        """Whether ``face`` (at its present quality) could enter its track's best shots now;
        a later check can only lower its score, so a face that could not is never checked."""
        tr = self._tracks.get(face.track_id)
        if self.save_all or tr is None or tr.detected + 1 < self.min_faces:
            return True
        rival = self._rival(tr, self._slot(self._time(face)))
        return rival is None or (face.quality.score, face.frame_index) > rival[:2]

    def _rival(self, tr: _Track, slot: float) -> tuple[float, int, str] | None:
        """The kept shot a face of ``slot`` competes with: its slot's kept face, else the
        worst kept face when the top-k is full; None when there is room."""
        near = [it for it in tr.heap if tr.times[it[2]] == slot]
        if near:
            return near[0]
        return tr.heap[0] if len(tr.heap) >= self.top_k else None

    def _slot(self, t: float) -> float:
        return float(np.floor(t / self.min_gap_s)) if self.min_gap_s > 0 else t

    def _offer(self, tr: _Track, face: AlignedFace) -> list[SaveRequest]:
        """Keep the top-k by quality, spread over time: stream time is cut into slots of
        ``min_gap_s`` and a slot keeps at most one face (a face competes with its slot's
        kept face only), so near-duplicate neighbours never fill the top-k."""
        if self.save_all:
            tr.saved.add(face.face_id)
            return [SaveRequest(face)]
        item = (face.quality.score, face.frame_index, face.face_id)
        slot = self._slot(self._time(face))
        rival = self._rival(tr, slot)
        if rival is None:
            return self._keep(tr, face, item, slot, None)
        if item[:2] <= rival[:2]:
            return []
        tr.heap.remove(rival)
        heapq.heapify(tr.heap)
        return self._keep(tr, face, item, slot, rival[2])

    @staticmethod
    def _keep(tr: _Track, face: AlignedFace, item: tuple[float, int, str], t: float,
              evicted: str | None) -> list[SaveRequest]:
        heapq.heappush(tr.heap, item)
        tr.saved.add(face.face_id)
        tr.times[face.face_id] = t
        if evicted is None:
            return [SaveRequest(face)]
        tr.saved.discard(evicted)
        tr.times.pop(evicted, None)
        return [SaveRequest(face, (evicted,))]

    def end(self, stream_id: str, track_id: int) -> TrackEnd | None:
        """Close a track; None when it never had a face."""
        tr = self._tracks.pop(track_id, None)
        if tr is None or tr.first is None or tr.last is None:
            return None
        discarded = tr.detected < self.min_faces  # then no row was handed over
        rows = [r for r in tr.rows if r.detected] if discarded else tr.rows
        first, last = (rows[0], rows[-1]) if discarded else (tr.first, tr.last)
        ranked = sorted(tr.heap, reverse=True) if not self.save_all else []
        kept = tuple(i for _, _, i in ranked) if ranked else tuple(sorted(tr.saved))
        summary = TrackSummary(
            stream_id=stream_id,
            track_id=track_id,
            first_frame=first.frame_index,
            last_frame=last.frame_index,
            first_seconds=first.seconds,
            last_seconds=last.seconds,
            n_faces=tr.detected,
            best_frame=tr.best[1],
            best_quality=tr.best[0],
            n_carried=0 if discarded else tr.n_rows - tr.detected,
        )
        return TrackEnd(summary, tuple(rows), () if discarded else kept, discarded)

    def open_tracks(self) -> list[int]:
        return list(self._tracks)

    def first_open_frame(self) -> int | None:
        """The earliest frame holding a face row of a track still open (None: no open track)."""
        firsts = [tr.rows[0].frame_index for tr in self._tracks.values() if tr.rows]
        return min(firsts) if firsts else None
