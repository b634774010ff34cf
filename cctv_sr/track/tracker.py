"""ByteTrack-style multi-face tracker: Kalman prediction + two-stage Hungarian assignment.

High-score detections are matched first to every live track; low-score detections may then
continue a track that is still unmatched, which keeps tracks alive through blur and partial
occlusion without letting weak detections start tracks. Every detection row keeps its index:
the returned ``FaceDetections`` has the same rows with a ``track_id`` column (-1 where no track
took the detection), never fewer.

Example::

    tracker = FaceTracker(TrackerConfig(high_thresh=0.7, new_track_thresh=0.8))
    for frame, dets in ...:
        tracked, ended = tracker.update(dets, t=frame.seconds)
    ended += tracker.finish()
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from cctv_sr.config import TrackerConfig
from cctv_sr.errors import ConfigError
from cctv_sr.records import FaceDetections
from cctv_sr.track.appearance import look_distance
from cctv_sr.track.kalman import BoxKalman

_INF = 1e6


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass
class TrackState:
    """Motion state of one live track (mutable, owned by the tracker)."""

    track_id: int
    kalman: BoxKalman
    first_t: float
    last_t: float
    last_step: int
    hits: int = 1
    lost: bool = False
    kps: np.ndarray | None = None  # last detected landmarks, box and score (for carried rows)
    box: np.ndarray | None = None
    score: float = 0.0
    appearance: np.ndarray | None = None  # running colour descriptor (track/appearance.py)

    def observe(self, box: np.ndarray, kps: np.ndarray, score: float,
                appearance: np.ndarray | None, rate: float) -> None:
        self.box, self.kps, self.score = box.copy(), kps.copy(), float(score)
        if appearance is not None:
            self.appearance = (appearance.copy() if self.appearance is None
                               else (1 - rate) * self.appearance + rate * appearance)

    def carried(self) -> tuple[np.ndarray, np.ndarray]:
        """The predicted box, and the last landmarks moved and scaled with the box."""
        pred = self.kalman.box
        if self.box is None or self.kps is None:
            return pred, np.zeros((5, 2), np.float32)
        old_c = (self.box[:2] + self.box[2:]) / 2
        new_c = (pred[:2] + pred[2:]) / 2
        k = float((pred[3] - pred[1]) / max(float(self.box[3] - self.box[1]), 1e-3))
        return pred, ((self.kps - old_c) * k + new_c).astype(np.float32)


class FaceTracker:
    """Assigns stable ids to faces across frames of one stream."""

    def __init__(self, cfg: TrackerConfig, min_score: float = 0.0) -> None:
        if cfg.high_thresh <= 0 or cfg.new_track_thresh <= 0:
            raise ConfigError("tracker.high_thresh and tracker.new_track_thresh must be resolved "
                              "to the detector's values (> 0) before tracking")
        self.cfg = cfg
        self.min_score = min_score
        self._tracks: list[TrackState] = []
        self._next_id = 1
        self._step = 0

    @property
    def next_id(self) -> int:
        """The id the next new track gets (ids grow by one)."""
        return self._next_id

    @property
    def live_tracks(self) -> int:
        return len(self._tracks)

    def _cost(self, tracks: list[TrackState], boxes: np.ndarray, min_iou: float,
              by_distance: bool, looks: np.ndarray | None = None) -> np.ndarray:
        """Assignment costs; pairs that may not match cost ``_INF``.

        ``by_distance=False``: 1 - IoU for pairs with IoU >= ``min_iou``. ``by_distance=True``:
        the centre distance in box sides, for similar-sized pairs within ``max_centre_dist``
        (small fast faces and strided analysis jump further than their own size).
        """
        pred = np.stack([t.kalman.box for t in tracks]) if tracks else np.zeros((0, 4))
        iou = iou_matrix(pred.astype(np.float32), boxes)
        cost = np.full(iou.shape, _INF)
        if iou.size == 0:
            return cost
        same = self._same_look(tracks, looks, len(boxes))
        if not by_distance:
            ok = (iou >= min_iou) & same
            cost[ok] = 1.0 - iou[ok]
            return cost
        side_p = np.sqrt(np.prod(pred[:, 2:] - pred[:, :2], axis=1).clip(1e-6))
        side_b = np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1).clip(1e-6))
        cp = (pred[:, :2] + pred[:, 2:]) / 2
        cb = (boxes[:, :2] + boxes[:, 2:]) / 2
        dist = np.linalg.norm(cp[:, None] - cb[None], axis=2) / np.maximum(side_p[:, None], 1e-6)
        ratio = side_b[None, :] / np.maximum(side_p[:, None], 1e-6)
        ok = (dist <= self.cfg.max_centre_dist) & (ratio > 0.5) & (ratio < 2.0) & same
        cost[ok] = dist[ok]
        return cost

    def _same_look(self, tracks: list[TrackState], looks: np.ndarray | None,
                   n: int) -> np.ndarray:
        """(tracks, detections) pairs whose colour descriptors do not rule the pair out."""
        ok = np.ones((len(tracks), n), bool)
        if looks is None or self.cfg.max_look_dist >= 1.0:
            return ok
        for i, tr in enumerate(tracks):
            if tr.appearance is not None:
                ok[i] = look_distance(tr.appearance, looks) <= self.cfg.max_look_dist
        return ok

    def _match(self, tracks: list[TrackState], rows: np.ndarray, boxes: np.ndarray,
               min_iou: float, by_distance: bool = False,
               looks: np.ndarray | None = None) -> list[tuple[TrackState, int]]:
        """Hungarian assignment of ``tracks`` to detection ``rows``; forbidden pairs never match."""
        if not tracks or len(rows) == 0:
            return []
        cost = self._cost(tracks, boxes[rows], min_iou, by_distance,
                          None if looks is None else looks[rows])
        allowed = cost < _INF
        if not allowed.any():
            return []
        # A forbidden pair costs more than all allowed pairs together: the solver matches as many
        # allowed pairs as it can, at the least cost; forbidden pairs it had to use are dropped.
        solver_cost = np.where(allowed, cost, cost[allowed].sum() + 1.0)
        r, c = linear_sum_assignment(solver_cost)
        return [(tracks[i], int(rows[j])) for i, j in zip(r, c) if allowed[i, j]]

    def update(self, dets: FaceDetections, t: float, checked: Collection[int] | None = None,
               looks: np.ndarray | None = None) -> tuple[FaceDetections, list[TrackState]]:
        """Associate one frame's detections; returns them with ids, and tracks that ended.

        ``checked``: the ids of the tracks the detector searched for this frame (None: all,
        a full-frame pass); a track that was not searched for is not missed, it is carried
        (:meth:`carried`). ``looks``: one colour descriptor per detection
        (:func:`cctv_sr.track.appearance.describe`); pairs further apart than
        ``tracker.max_look_dist`` never match, so neighbours do not swap.

        Matching goes in tiers, each only among what earlier tiers left: confident detections
        to tracks seen last frame by IoU, then to tracks lost for a while by IoU, then to any
        remaining track by centre distance; last, weak detections continue tracks seen last
        frame (IoU). A later tier never takes what an earlier, more certain one could match.
        """
        self._step += 1
        for tr in self._tracks:
            tr.kalman.predict(self._step - tr.last_step)
            tr.last_step = self._step
        ids = np.full(len(dets), -1, dtype=np.int64)
        score = dets.score
        high = np.flatnonzero(score >= self.cfg.high_thresh)
        low = np.flatnonzero((score < self.cfg.high_thresh) & (score >= self.min_score))
        free: list[TrackState] = list(self._tracks)

        def take(pairs: list[tuple[TrackState, int]]) -> None:
            for tr, row in pairs:
                tr.kalman.update(dets.xyxy[row])
                tr.observe(dets.xyxy[row], dets.kps[row], float(score[row]),
                           None if looks is None else looks[row], cfg.look_rate)
                tr.last_t, tr.hits, tr.lost = t, tr.hits + 1, False
                ids[row] = tr.track_id
                free.remove(tr)

        def unmatched(rows: np.ndarray) -> np.ndarray:
            return rows[ids[rows] == -1]

        cfg = self.cfg
        xy = dets.xyxy
        take(self._match([tr for tr in free if not tr.lost], high, xy, cfg.match_iou,
                         looks=looks))
        take(self._match(free, unmatched(high), xy, cfg.match_iou, looks=looks))
        take(self._match(free, unmatched(high), xy, cfg.match_iou, by_distance=True,
                         looks=looks))
        take(self._match([tr for tr in free if not tr.lost], low, xy, cfg.low_match_iou,
                         looks=looks))
        # New tracks from confident detections nobody took.
        for row in high:
            if ids[row] == -1 and score[row] >= cfg.new_track_thresh:
                tr = TrackState(self._next_id, BoxKalman(xy[row]), t, t, self._step)
                tr.observe(xy[row], dets.kps[row], float(score[row]),
                           None if looks is None else looks[row], 1.0)
                self._next_id += 1
                self._tracks.append(tr)
                ids[row] = tr.track_id
        searched = None if checked is None else set(checked)
        ended: list[TrackState] = []
        alive: list[TrackState] = []
        for tr in self._tracks:
            if tr.last_t < t and searched is not None and tr.track_id not in searched:
                # Not searched for this frame: not missed; it ends only by max_lost_s.
                if t - tr.last_t > cfg.max_lost_s:
                    ended.append(tr)
                    continue
            elif tr.last_t < t:
                tr.lost = True
                # A track seen once and missed at once was most likely a false positive.
                if t - tr.last_t > cfg.max_lost_s or tr.hits == 1:
                    ended.append(tr)
                    continue
            alive.append(tr)
        self._tracks = alive
        return dets.with_track_ids(ids), ended

    def extend_back(self, track_id: int, earlier: Sequence[np.ndarray], first_t: float) -> None:
        """A track just started was also found in the analysed frames before (boxes oldest
        first, one per frame, the last of them the frame right before its first one): it
        begins at ``first_t``, counts those detections, and its filter is run over them, so
        it starts with their speed instead of none."""
        tr = next((x for x in self._tracks if x.track_id == track_id), None)
        if tr is None or not len(earlier) or tr.box is None:
            return
        kalman = BoxKalman(np.asarray(earlier[0], np.float32))
        for box in [*earlier[1:], tr.box]:
            kalman.predict(1)
            kalman.update(np.asarray(box, np.float32))
        tr.kalman, tr.first_t, tr.hits = kalman, first_t, tr.hits + len(earlier)

    def carried(self, t: float) -> FaceDetections:
        """Rows for the tracks not seen at ``t`` and not missed either (the detector did not
        look for them this frame): predicted boxes, the last landmarks moved with the box, the
        last score; ``track_id`` set. A track seen once is carried too: if it never reaches
        ``tracker.min_faces`` detections the track book drops its carried rows with it."""
        tracks = [tr for tr in self._tracks if tr.last_t < t and not tr.lost]
        if not tracks:
            return FaceDetections.empty().with_track_ids(np.zeros((0,), np.int64))
        boxes, kps = zip(*(tr.carried() for tr in tracks))
        return FaceDetections(np.stack(boxes), np.array([tr.score for tr in tracks]),
                              np.stack(kps), np.array([tr.track_id for tr in tracks]))

    def predicted(self, steps_ahead: int = 1) -> list[tuple[int, np.ndarray]]:
        """(track id, box) of every live track ``steps_ahead`` analysed frames from now."""
        out = []
        for tr in self._tracks:
            out.append((tr.track_id, tr.kalman.ahead(steps_ahead)))
        return out

    def in_doubt(self, t: float, within_s: float) -> set[int]:
        """Ids of the live tracks seen in one detection only (their speed is not known), and
        of those missed by a search since their last detection at most ``within_s`` before
        stream time ``t`` (a detector misses a face at some scales and finds it at others)."""
        return {tr.track_id for tr in self._tracks
                if tr.hits < 2 or (tr.lost and t - tr.last_t <= within_s)}

    def finish(self) -> list[TrackState]:
        """End every live track (end of stream)."""
        ended, self._tracks = self._tracks, []
        return ended
