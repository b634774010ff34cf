"""The analysis stage: detect (batched over frames), track, align, score, pick best shots.

All per-stream state (tracker, track book, the temporal stage's track buffers) lives here,
in one thread. The stage turns frames into messages for the SR stage: ``SaveRequest`` (write
this face now), ``EmbedRequest``, ``TrackEnd`` and ``FaceRows``, in stream order; every
message goes out through :class:`~cctv_sr.engine.temporal.TemporalStage`, which attaches each
request's track window (and holds it, and what follows, until the window is complete).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from cctv_sr.config import RunConfig, TrackerConfig
from cctv_sr.detect.base import FaceDetector
from cctv_sr.detect.regions import (
    covers,
    detect_regions,
    holds,
    merge_detections,
    merge_regions,
    track_region,
)
from cctv_sr.engine.analysis_stats import AnalysisStats
from cctv_sr.engine.lookback import LookBack, PastFrame, past_boxes
from cctv_sr.engine.scan import FULL, NONE, Scanner, ScanPlan
from cctv_sr.engine.temporal import TemporalStage
from cctv_sr.face.align import choose_lr_side, native_size, similarity_to_template, warp_face
from cctv_sr.face.faceness import Faceness
from cctv_sr.face.quality import face_quality, with_faceness
from cctv_sr.records import (
    AlignedFace,
    AnalysisMessage,
    EmbedRequest,
    FaceDetections,
    FaceRow,
    FaceRows,
    Frame,
)
from cctv_sr.track.appearance import describe
from cctv_sr.track.book import TrackBook
from cctv_sr.track.tracker import FaceTracker

Emit = Callable[[AnalysisMessage], object]
log = logging.getLogger(__name__)

@dataclass
class _StreamState:
    tracker: FaceTracker
    book: TrackBook
    fps: float
    scanner: Scanner
    lookback: LookBack
    last_t: float | None = None  # stream time of the last analysed frame
    session: int | None = None  # Frame.session of the last analysed frame
    planned_session: int | None = None  # ... of the last frame planned (plans run ahead)
    flushed_at: float | None = None  # stream time open tracks' old rows were last sent


@dataclass
class Analyzer:
    """Owns the per-stream state of one or more streams (keyed by ``Frame.stream_id``)."""

    cfg: RunConfig
    detector: FaceDetector
    emit: Emit
    fps_hint: float = 25.0
    stream_fps: dict[str, float] = field(default_factory=dict)  # per stream, over fps_hint
    embed: bool = False  # identity matching is on: also ask for sparse samples over time
    faceness: Faceness | None = None  # face / non-face check folded into each face's quality
    window: int = 1  # frames of each request's track window (temporal.window_frames); 1: none
    live: frozenset[str] = frozenset()  # live streams: open tracks' rows go out after flush_s
    stats: AnalysisStats = field(default_factory=AnalysisStats)
    _streams: dict[str, _StreamState] = field(default_factory=dict)
    _sampled_at: dict[tuple[str, int], float] = field(default_factory=dict)
    temporal: TemporalStage = field(init=False)

    def __post_init__(self) -> None:
        # through self.emit at call time, so a caller may swap the analyzer's emit
        self.temporal = TemporalStage(self.cfg.temporal, lambda m: self.emit(m), self.window,
                                      self.stats.temporal)

    def _state(self, stream_id: str) -> _StreamState:
        st = self._streams.get(stream_id)
        if st is None:
            fps = self.stream_fps.get(stream_id, self.fps_hint)
            st = _StreamState(
                FaceTracker(self.tracker_config(), min_score=self.cfg.detector.score_thresh),
                TrackBook(self.cfg.output.top_k, self.cfg.output.save_all_crops,
                          self.cfg.tracker.min_faces, self.cfg.output.min_shot_gap_s,
                          fps),
                fps,
                Scanner(self.cfg.scan, self.cfg.tracker.max_lost_s),
                LookBack(self.cfg.scan),
            )
            self._streams[stream_id] = st
            src = self.cfg.source  # the analysed frame period (stride, max_fps)
            self.temporal.set_period(stream_id, max(src.stride / fps, 1.0 / src.max_fps
                                                    if src.max_fps > 0 else 0.0), fps)
        return st

    def tracker_config(self) -> TrackerConfig:
        """Tracker settings with the detector's calibrated thresholds where the user set 0."""
        t = self.cfg.tracker
        return replace(t, high_thresh=t.high_thresh or self.detector.track_high_thresh,
                       new_track_thresh=t.new_track_thresh or self.detector.track_new_thresh)

    @staticmethod
    def _t(frame: Frame, st: _StreamState) -> float:
        return frame.seconds if frame.seconds is not None else frame.index / st.fps

    def process(self, frames: Sequence[Frame]) -> None:
        """Plan the search of a batch of frames, detect in one call over all their regions,
        then track and align them one by one, in order.

        Plans of later frames use the tracks' boxes predicted that many frames ahead. A
        full-frame pass (which may start many tracks) is processed before the next frame is
        planned, so the tracks it found get their regions from the next frame on; with
        ``scan.mode = "exhaustive"`` the whole batch goes in one call. A track seen in one
        detection only has no known speed, and a batch's plans do not know the tracks started
        within it: such tracks are searched for again just before each frame is tracked
        (:meth:`_in_doubt`)."""
        start = 0
        while start < len(frames):
            start = self._process_span(frames, start)

    def _process_span(self, frames: Sequence[Frame], start: int) -> int:
        t0 = time.perf_counter()
        plans: list[ScanPlan] = []
        known: list[np.ndarray] = []  # each frame's predicted track boxes (cut faces give way)
        ahead: dict[str, int] = {}
        exhaustive = self.cfg.scan.mode == "exhaustive"
        for frame in frames[start:]:
            st = self._state(frame.stream_id)
            ahead[frame.stream_id] = ahead.get(frame.stream_id, 0) + 1
            tracks = st.tracker.predicted(ahead[frame.stream_id])
            if st.planned_session is not None and frame.session != st.planned_session:
                # reopened after an outage: a fresh background, the whole frame searched
                st.scanner = Scanner(self.cfg.scan, self.cfg.tracker.max_lost_s)
                tracks = []
            st.planned_session = frame.session
            plans.append(st.scanner.plan(frame.image, self._t(frame, st), tracks))
            known.append(np.asarray([box for _, box in tracks], np.float32).reshape(-1, 4))
            self.stats.scan.count(plans[-1])
            if plans[-1].kind == FULL and not exhaustive:
                break
        self.stats.scan_s += time.perf_counter() - t0
        span = frames[start:start + len(plans)]
        t0 = time.perf_counter()
        todo = [i for i, plan in enumerate(plans) if plan.kind != NONE]
        found = detect_regions(self.detector, [span[i].image for i in todo],
                               [plans[i].searched for i in todo], self.cfg.detector.nms_thresh,
                               [known[i] for i in todo])
        self.stats.detect_s += time.perf_counter() - t0
        all_dets = [FaceDetections.empty() for _ in span]
        for i, dets in zip(todo, found):
            all_dets[i] = dets
        for frame, dets, plan in zip(span, all_dets, plans):
            self._process_frame(frame, self._in_doubt(frame, dets, plan), plan)
        return start + len(plans)

    def _in_doubt(self, frame: Frame, dets: FaceDetections, plan: ScanPlan) -> FaceDetections:
        """``dets`` plus what a search of the doubtful tracks' own regions finds, where the
        frame's plan did not search them in a square like their own: tracks seen in one
        detection only (carried at no speed, a walking face leaves its box within two or three
        frames; a batch's plans do not know the tracks started within it), tracks a search
        missed within the last two detection intervals (a face the detector misses in a large
        square at one scale it finds in its own), and tracks searched for in a square planned
        a batch ago that no longer holds them. These searches do not count as searched for: a
        miss here never ends a track."""
        if plan.kind == FULL or self.cfg.scan.mode == "exhaustive":
            return dets
        st = self._state(frame.stream_id)
        doubt = st.tracker.in_doubt(self._t(frame, st), 2 * self.cfg.scan.detect_interval_s)
        tracks = st.tracker.predicted(1)
        height, width = frame.image.shape[:2]
        regions = {tid: track_region(box, self.cfg.scan, width, height) for tid, box in tracks}
        # a track the plan searched for, in a square planned from where it was predicted a
        # batch ago, that no longer holds where it is predicted now
        checked = plan.checked or frozenset()
        doubt |= {tid for tid, box in tracks if tid in checked
                  and not any(holds(p, box, regions[tid]) for p in plan.regions)}
        if not doubt:
            return dets
        t0 = time.perf_counter()
        # unless the plan searched it in a square like its own (a crowd's large square may
        # be where the detector missed it)
        own = [r for tid, r in regions.items() if tid in doubt and not any(
            covers(p, r) and p.side <= 2 * r.side for p in plan.regions)]
        if own:
            merged = merge_regions(own, width, height)
            self.stats.scan.region_count += len(merged)
            known = np.asarray([box for _, box in tracks], np.float32).reshape(-1, 4)
            extra = detect_regions(self.detector, [frame.image], [merged],
                                   self.cfg.detector.nms_thresh, [known])[0]
            dets = merge_detections([dets, extra], self.cfg.detector.nms_thresh)
        self.stats.detect_s += time.perf_counter() - t0
        return dets

    def _process_frame(self, frame: Frame, dets: FaceDetections, plan: ScanPlan) -> None:
        st = self._state(frame.stream_id)
        t = self._t(frame, st)
        # a new shot, or stream time going back (a live stream's clock reset, a pts wrap):
        # no track goes on across it
        went_back = st.last_t is not None and t < st.last_t
        if went_back:
            log.warning("stream %s: time went back from %.3f s to %.3f s; its tracks end here",
                        frame.stream_id, st.last_t, t)
        # a live stream reopened after an outage: nobody is followed across the gap
        reconnected = st.session is not None and frame.session != st.session
        st.last_t, st.session = t, frame.session
        if plan.cut or went_back or reconnected:
            self._end(frame.stream_id, [tr.track_id for tr in st.tracker.finish()], frame.index)
            st.lookback.forget()
        t0 = time.perf_counter()
        looks = describe(frame.image, dets.xyxy) if len(dets) else None
        first_new = st.tracker.next_id
        tracked, ended = st.tracker.update(dets, t, plan.checked, looks)
        carried = st.tracker.carried(t)
        self.stats.track_s += time.perf_counter() - t0
        # the faces found looking back from tracks started now go first (their frames are older)
        rows, faces, times = self._look_back(st, tracked, first_new)
        t0 = time.perf_counter()
        untracked: list[FaceRow] = []
        for i in range(len(tracked)):
            tid = int(tracked.track_id[i]) if tracked.track_id is not None else -1
            row = FaceRow(frame.stream_id, frame.index, frame.pts, frame.time_base, i,
                          tracked.xyxy[i], float(tracked.score[i]), tracked.kps[i],
                          tid if tid >= 0 else None)
            if tid < 0:
                untracked.append(row)
                continue
            rows.append(row)
            faces.append(self.align(frame, tracked, i, tid, t))
            times.append(t)
        # O-Net only for faces that could still become a best shot (it can only lower a score).
        check = [k for k, f in enumerate(faces) if st.book.could_keep(f)]
        if check and self.faceness is not None:
            probs = self.faceness.score([faces[k].crop for k in check])
            for k, p in zip(check, probs):
                faces[k] = replace(faces[k], quality=with_faceness(faces[k].quality, float(p)))
        for row, face, face_t in zip(rows, faces, times):
            self.temporal.add_face(face)  # the face its requests carry (quality included)
            row = replace(row, quality=face.quality, face_id=face.face_id)
            requests = st.book.add(face, row)
            for request in requests:
                self.temporal.send(request)
            if self.embed:
                self._sample(face, face_t, saved=bool(requests))
        for k in range(len(carried)):
            self.temporal.hold(frame.stream_id, int(carried.track_id[k]),  # type: ignore[index]
                               frame.index, frame.pts, frame.time_base, t, frame.image,
                               carried.xyxy[k])
            st.book.add_carried(int(carried.track_id[k]), FaceRow(  # type: ignore[index]
                frame.stream_id, frame.index, frame.pts, frame.time_base, len(tracked) + k,
                carried.xyxy[k], float(carried.score[k]), carried.kps[k],
                int(carried.track_id[k]), detected=False))  # type: ignore[index]
        self.stats.align_s += time.perf_counter() - t0
        if untracked:
            self.temporal.send(FaceRows(frame.stream_id, tuple(untracked),
                                             self._final_before(frame.stream_id,
                                                                frame.index + 1)))
        st.lookback.remember(PastFrame(frame, t, plan, past_boxes([tracked, carried]),
                                       len(tracked) + len(carried)))
        self._end(frame.stream_id, [tr.track_id for tr in ended], frame.index + 1)
        self._flush_open(frame, st, t)
        self.temporal.tick(frame.stream_id, t)
        self.stats.frames += 1
        self.stats.faces += len(tracked)
        self.stats.carried += len(carried)
        self.stats.live_tracks = sum(s.tracker.live_tracks for s in self._streams.values())

    def _look_back(self, st: _StreamState, tracked: FaceDetections, first_new: int
                   ) -> tuple[list[FaceRow], list[AlignedFace], list[float]]:
        """Rows and aligned faces of the tracks started this frame (ids from ``first_new``)
        found in the frames before it (:mod:`cctv_sr.engine.lookback`), oldest first."""
        rows: list[FaceRow] = []
        faces: list[AlignedFace] = []
        times: list[float] = []
        ids = tracked.track_id
        born = [] if ids is None else [i for i in range(len(tracked)) if ids[i] >= first_new]
        if not born or not st.lookback.on:
            return rows, faces, times
        t0 = time.perf_counter()
        chains = st.lookback.search(self.detector, tracked.xyxy[born],
                                    self.cfg.detector.nms_thresh)
        self.stats.detect_s += time.perf_counter() - t0
        for i, chain in zip(born, chains):
            if not chain:
                continue
            tid = int(ids[i])  # type: ignore[index]
            st.tracker.extend_back(tid, [f.det.xyxy[0] for f in chain], chain[0].past.t)
            for found in chain:
                past, det = found.past, found.det.with_track_ids(np.array([tid]))
                frame = past.frame
                rows.append(FaceRow(frame.stream_id, frame.index, frame.pts, frame.time_base,
                                    past.rows, det.xyxy[0], float(det.score[0]), det.kps[0],
                                    tid))
                faces.append(self.align(frame, det, 0, tid, past.t, past.rows))
                past.rows += 1
                times.append(past.t)
                self.stats.looked_back += 1
        return rows, faces, times

    def _flush_open(self, frame: Frame, st: _StreamState, t: float) -> None:
        """Live streams: the rows of open tracks older than ``output.flush_s`` are written
        now (checked twice a second), so an operator sees faces before their tracks end."""
        flush_s = self.cfg.output.flush_s
        if flush_s <= 0 or frame.stream_id not in self.live:
            return
        if st.flushed_at is not None and t - st.flushed_at < min(0.5, flush_s):
            return
        st.flushed_at = t
        rows = st.book.settled(t - flush_s)
        if rows:
            self.temporal.send(FaceRows(frame.stream_id, tuple(rows), self._final_before(
                frame.stream_id, frame.index + 1), tracked=True))

    def _sample(self, face: AlignedFace, t: float, saved: bool) -> None:
        """Best shots are embedded anyway; add one face per ``match.sample_s`` of the track."""
        key = (face.stream_id, face.track_id)
        last = self._sampled_at.get(key)
        if saved or last is None or t - last >= self.cfg.match.sample_s:
            self._sampled_at[key] = t
            if not saved:
                self.temporal.send(EmbedRequest(face))

    def align(self, frame: Frame, dets: FaceDetections, i: int, track_id: int,
              t: float, det_index: int | None = None) -> AlignedFace:
        """Warp detection ``i`` to the canonical template at the side its size calls for, from
        its landmarks smoothed along the track (``temporal.smooth``); ``det_index``: its row
        in the frame, when not ``i``."""
        acfg = self.cfg.align
        kps = self.temporal.smooth(frame.stream_id, track_id, t, dets.xyxy[i], dets.kps[i])
        size_px = native_size(kps)
        side = acfg.out_size if size_px >= acfg.skip_sr_px else choose_lr_side(size_px,
                                                                               acfg.lr_sizes)
        M = similarity_to_template(kps, side)
        crop = warp_face(frame.image, M, side)
        quality = face_quality(crop, kps, M, size_px, float(dets.score[i]))
        return AlignedFace(frame.stream_id, track_id, frame.index, frame.pts, frame.time_base,
                           i if det_index is None else det_index, dets.xyxy[i], kps, crop, M,
                           quality)

    def _final_before(self, stream_id: str, next_frame: int | None) -> int | None:
        """Frames below this have all their face rows emitted (None: every row so far). The
        frames kept for looking back may still get rows."""
        st = self._state(stream_id)
        marks = [m for m in (st.book.first_open_frame(),
                             None if next_frame is None else st.lookback.oldest_index())
                 if m is not None]
        if next_frame is None:
            return min(marks) if marks else None
        return min([next_frame, *marks])

    def _end(self, stream_id: str, track_ids: list[int], next_frame: int | None) -> None:
        book = self._state(stream_id).book
        for tid in track_ids:
            self._sampled_at.pop((stream_id, tid), None)
            self.temporal.end_track(stream_id, tid)
            end = book.end(stream_id, tid)
            if end is not None:
                self.temporal.send(replace(end, rows_final_before=self._final_before(
                    stream_id, next_frame)))
                self.stats.tracks_ended += 0 if end.discarded else 1

    def end_stream(self, stream_id: str) -> None:
        """One input of several ended: end its open tracks and send what waits for it."""
        st = self._streams.get(stream_id)
        if st is None:
            return
        st.tracker.finish()
        self._end(stream_id, st.book.open_tracks(), None)
        self.temporal.flush(stream_id)
        self.stats.live_tracks = sum(s.tracker.live_tracks for s in self._streams.values())

    def finish(self) -> None:
        """End every open track of every stream (end of input or stop)."""
        for stream_id, st in self._streams.items():
            st.tracker.finish()
            self._end(stream_id, st.book.open_tracks(), None)
        self.temporal.flush()
        self.stats.live_tracks = 0
