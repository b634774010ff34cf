"""Identity output of a run: per-track matching against a gallery, written to matches.jsonl.

Lives in the writer thread: it collects the LR and SR vectors (and the LR identity head's,
when one ran) of each track's embedded faces (best shots plus a sparse sample over time) and
keeps the best-quality saved crops of each track in memory; when the track ends it scores the
track against the gallery (:mod:`cctv_sr.identity.match`), writes one line to
``matches.jsonl`` and a side-by-side image (best LR crop, its SR, the candidate's gallery
photo) into the track folder. Nothing the run wrote is read back from disk.
"""

from __future__ import annotations

import logging
import textwrap
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from cctv_sr import EVIDENCE_NOTE
from cctv_sr.config import GateConfig
from cctv_sr.errors import OutputError
from cctv_sr.face.draw import MATCH_BGR, NO_MATCH_BGR, panel, side_by_side
from cctv_sr.identity.alerts import TrackAlerts, TrackSpan
from cctv_sr.identity.gate import FaceEvidence, TrackGate, gate_track
from cctv_sr.identity.match import (
    DecisionRule,
    TrackEmbeddings,
    TrackMatch,
    WatchlistThreshold,
    match_track,
)
from cctv_sr.io.lines import CandidateLine, EmbedderRef, GateLine, HeadRef, MatchLine, to_line
from cctv_sr.io.outdir import OutputWriter
from cctv_sr.records import (
    AlignedFace,
    Embedded,
    EnhancedFace,
    FaceVectors,
    Saved,
    TrackEnd,
    WriterMessage,
)

log = logging.getLogger(__name__)


@dataclass
class MatchCounts:
    tracks_scored: int = 0
    tracks_matched: int = 0
    lr_only_would_match: int = 0  # tracks LR alone would have matched
    sr_only_would_match: int = 0  # tracks SR alone would have matched
    head_only_would_match: int = 0  # tracks the LR identity head alone would have matched
    lr_sr_disagree: int = 0  # LR-only and SR-only decisions name different people (or one None)
    head_lr_disagree: int = 0  # head-only and embedder-LR-only decisions differ (with a head)
    sr_only_rejected: int = 0  # SR alone said a name, the combined decision said no match
    not_matchable: int = 0  # tracks the gate held back (not faces, too few usable faces)


@dataclass(frozen=True)
class MatchedTrack:
    """A track the run named someone in (for the end-of-run summary)."""

    person: str
    stream: str
    track_id: int
    score: float
    first_seconds: float | None
    last_seconds: float | None
    first_utc: str | None


@dataclass(frozen=True)
class GalleryView:
    """What matching needs from a gallery: names, templates, and a photo per name."""

    names: list[str]
    templates: np.ndarray  # (P, D) float32, L2-normalised
    photos: dict[str, Path]  # one photo per person, for the side-by-side image


class IdentityWriter:
    """Per-track matching and matches.jsonl (used from the writer thread only)."""

    def __init__(self, writer: OutputWriter, gallery: GalleryView, rule: DecisionRule,
                 top_k: int, embedder: EmbedderRef, gate: GateConfig | None = None,
                 head: HeadRef | None = None) -> None:
        self.writer = writer
        self.gallery = gallery
        self.rule = rule
        self.top_k = top_k
        self.embedder = embedder
        self.head = head
        self.gate = gate or GateConfig()
        self._warned_clamp = False
        self.counts = MatchCounts()
        self.write_s = 0.0
        self._tracks: dict[tuple[str, int], TrackEmbeddings] = {}
        self._evidence: dict[tuple[str, int], list[FaceEvidence]] = {}
        self._best: dict[tuple[str, int], EnhancedFace] = {}  # best-quality saved crop
        self._span: dict[tuple[str, int], tuple[float | None, float | None]] = {}
        self.alerts: TrackAlerts | None = None  # set by the run: alerts as tracks go
        self.matched: list[MatchedTrack] = []
        path = writer.outdir / "matches.jsonl"
        try:
            self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise OutputError.cannot_write(path, exc) from None

    def handle(self, item: WriterMessage) -> None:
        if isinstance(item, Saved):
            self._keep_best(item.enhanced)
            if item.vectors is not None:
                self.add(item.enhanced.face, item.vectors)
        elif isinstance(item, Embedded):
            self.add(item.face, item.vectors)
        elif isinstance(item, TrackEnd):
            self.end_track(item)

    def _keep_best(self, enhanced: EnhancedFace) -> None:
        face = enhanced.face
        key = (face.stream_id, face.track_id)
        best = self._best.get(key)
        if best is None or (face.quality.score, face.frame_index) > (
                best.face.quality.score, best.face.frame_index):
            self._best[key] = enhanced

    def add(self, face: AlignedFace, vectors: FaceVectors) -> None:
        key = (face.stream_id, face.track_id)
        acc = self._tracks.setdefault(key, TrackEmbeddings())
        if face.face_id in acc.face_ids:
            return  # the same face offered twice (best shot and time sample)
        acc.add(face.face_id, face.quality.score, vectors.lr, vectors.sr, vectors.head,
                vectors.frames)
        self._evidence.setdefault(key, []).append(
            FaceEvidence(face.face_id, face.quality, vectors.faceness))
        first, last = self._span.get(key, (face.seconds, face.seconds))
        if face.seconds is not None:
            first = face.seconds if first is None else min(first, face.seconds)
            last = face.seconds if last is None else max(last, face.seconds)
        self._span[key] = (first, last)
        if self.alerts is not None:  # the open track's decision so far: an alert now?
            t0 = time.perf_counter()
            result, gate, _ = self._decide(acc, self._evidence[key])
            best = self._best.get(key)
            crops = () if best is None else (
                self.writer.crop_ref(face.stream_id, face.track_id, best.face.face_id),)
            self.alerts.consider(TrackSpan(face.stream_id, face.track_id, first, last,
                                           gate.n_usable, crops), result, final=False)
            self.write_s += time.perf_counter() - t0

    def end_track(self, end: TrackEnd) -> None:
        s = end.summary
        key = (s.stream_id, s.track_id)
        acc = self._tracks.pop(key, None)
        evidence = self._evidence.pop(key, [])
        best = self._best.pop(key, None)
        self._span.pop(key, None)
        if end.discarded or acc is None:
            if self.alerts is not None:
                self.alerts.consider(TrackSpan(s.stream_id, s.track_id, s.first_seconds,
                                               s.last_seconds, 0, ()), None, final=True)
            return
        t0 = time.perf_counter()
        result, gate, chosen = self._decide(acc, evidence)
        alert = None
        if self.alerts is not None:
            kept = tuple(self.writer.crop_ref(s.stream_id, s.track_id, f) for f in end.kept)
            alert = self.alerts.consider(TrackSpan(s.stream_id, s.track_id, s.first_seconds,
                                                   s.last_seconds, gate.n_usable, kept),
                                         result, final=True)
        if result is None:
            return
        self._count(result, gate)
        if result.decision is not None:
            self.matched.append(MatchedTrack(
                result.decision, s.stream_id, s.track_id, round(result.combined[0].score, 4),
                s.first_seconds, s.last_seconds, self.writer.clock.utc(s.first_seconds)))
        picture = self._side_by_side(end, result, best, gate)
        line = MatchLine(
            stream=s.stream_id,
            track_id=s.track_id,
            first_seconds=s.first_seconds,
            last_seconds=s.last_seconds,
            n_faces=s.n_faces,
            n_embedded=result.n_faces,
            n_frames=result.n_frames,
            decision=result.decision,
            decision_lr_only=result.decision_lr,
            decision_sr_only=result.decision_sr,
            decision_head_only=result.decision_head,
            reason=result.reason,
            threshold=round(result.threshold, 4),
            margin=result.margin,
            gate=_gate_line(gate, chosen, fixed=self.rule.fixed is not None),
            candidates=tuple(CandidateLine(c.name, c.score, c.lr, c.sr, c.head)
                             for c in result.combined),
            best_crops=tuple(self.writer.crop_ref(s.stream_id, s.track_id, f)
                             for f in end.kept),
            side_by_side=None if picture is None else self.writer.rel(picture),
            embedder=self.embedder,
            head=self.head if result.head else None,
            notice=EVIDENCE_NOTE,
            first_utc=self.writer.clock.utc(s.first_seconds),
            last_utc=self.writer.clock.utc(s.last_seconds),
            alert_event=alert,
        )
        try:
            self._file.write(to_line(line))
            self._file.flush()
        except OSError as exc:
            raise OutputError.cannot_write(self._file.name, exc) from None
        self.write_s += time.perf_counter() - t0

    def _decide(self, acc: TrackEmbeddings, evidence: list[FaceEvidence]
                ) -> tuple[TrackMatch | None, TrackGate, WatchlistThreshold | None]:
        """The track's decision on its evidence so far (gate, then the rule's threshold)."""
        gate = gate_track(evidence, self.gate)
        chosen = None
        if gate.matchable:  # the decision rests on the usable faces, at their evidence's bar
            usable = set(gate.usable_ids)  # the largest of them sets the size's thresholds
            size = max(f.quality.size_px for f in evidence if f.face_id in usable)
            chosen = self.rule.choose(gate.far_factor, size)
            if chosen is not None and chosen.beyond_calibration and not self._warned_clamp:
                self._warned_clamp = True
                log.warning("a track resting on %d faces needs a per-pair FAR of %.1e, finer "
                            "than the embedder's calibration: its threshold is the finest "
                            "calibrated one, so short tracks get no stricter bar than long "
                            "ones here", gate.n_usable, chosen.pair_far)
            result = match_track(acc.subset(gate.usable_ids), self.gallery.names,
                                 self.gallery.templates, self.rule.thresholds_for(size),
                                 self.top_k, self.rule.threshold(gate.far_factor, size))
        else:  # scored for the record on every face, but never named
            result = match_track(acc, self.gallery.names, self.gallery.templates,
                                 self.rule.thresholds, self.top_k, self.rule.threshold())
            if result is not None:
                result = replace(result, decision=None, decision_lr=None, decision_sr=None,
                                 decision_head=None, reason=f"not matchable: {gate.reason}")
        return result, gate, chosen

    def _count(self, r: TrackMatch, gate: TrackGate) -> None:
        c = self.counts
        c.tracks_scored += 1
        c.not_matchable += not gate.matchable
        c.tracks_matched += r.decision is not None
        c.lr_only_would_match += r.decision_lr is not None
        c.sr_only_would_match += r.decision_sr is not None
        c.head_only_would_match += r.decision_head is not None
        c.lr_sr_disagree += r.decision_lr != r.decision_sr
        c.head_lr_disagree += bool(r.head) and r.decision_head != r.decision_lr
        c.sr_only_rejected += r.decision_sr is not None and r.decision is None

    def _side_by_side(self, end: TrackEnd, result: TrackMatch, best: EnhancedFace | None,
                      gate: TrackGate) -> Path | None:
        if not end.kept or best is None:
            return None
        s = end.summary
        top = result.combined[0]
        name = result.decision or top.name
        photo_path = self.gallery.photos.get(name)
        photo = cv2.imread(str(photo_path)) if photo_path is not None else None
        lr_label = ["LR (input)"] if top.head is None else ["LR (input)", f"head {top.head:.3f}"]
        lr_sr = [panel(best.face.crop, lr_label), panel(best.sr, ["SR (aid only)"])]
        if result.decision is not None:
            image = side_by_side(
                [*lr_sr, panel(photo, [name, f"score {top.score:.3f}"])],
                banner=f"MATCH: {name} ({top.score:.3f} >= {result.threshold:.3f})",
                banner_bgr=MATCH_BGR)
        elif not gate.matchable:  # held back by the gate: no gallery photo at all
            why = textwrap.wrap(gate.reason or "", 24) or [""]
            image = side_by_side([*lr_sr, panel(None, ["not matched:", *why], dim=True)],
                                 banner="NOT MATCHABLE: no gallery name given",
                                 banner_bgr=NO_MATCH_BGR)
        else:  # the nearest person is shown greyed out, labelled as NOT a match
            image = side_by_side(
                [*lr_sr, panel(photo, ["nearest, NOT a match:", name,
                                       f"score {top.score:.3f}"], dim=True)],
                banner=f"NO MATCH ({result.reason})", banner_bgr=NO_MATCH_BGR)
        out = self.writer.track_dir(s.stream_id, s.track_id) / "match.png"
        if not cv2.imwrite(str(out), image):
            raise OutputError(f"{out}: could not write image")
        return out

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _gate_line(gate: TrackGate, chosen: WatchlistThreshold | None, fixed: bool) -> GateLine:
    best = gate.best_faceness
    return GateLine(matchable=gate.matchable, reason=gate.reason, n_faces=gate.n_faces,
                    n_usable=gate.n_usable, n_not_face=gate.n_not_face,
                    best_faceness=round(best, 4) if best == best else None,
                    far_factor=1.0 if fixed and gate.matchable else round(gate.far_factor, 4),
                    pair_far=None if chosen is None else float(f"{chosen.pair_far:.3e}"),
                    beyond_calibration=bool(chosen is not None and chosen.beyond_calibration))
