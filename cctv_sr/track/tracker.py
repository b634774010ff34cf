"""ByteTrack-style multi-face tracker: Kalman prediction + two-stage Hungarian assignment.

High-score detections are matched first to every live track; low-score detections may then
continue a track that is still unmatched, which keeps tracks alive through blur and partial
occlusion without letting weak detections start tracks. Every detection row keeps its index:
the returned ``FaceDetections`` has the same rows with a ``track_id`` column (-1 where no track
took the detection), never fewer.

Example::

    tracker = FaceTracker(TrackerConfig())
    for frame, dets in ...:
        tracked, ended = tracker.update(dets, t=frame.seconds)
    ended += tracker.finish()
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from cctv_sr.config import TrackerConfig
from cctv_sr.records import FaceDetections
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


class FaceTracker:
    """Assigns stable ids to faces across frames of one stream."""

    def __init__(self, cfg: TrackerConfig, min_score: float = 0.0) -> None:
        self.cfg = cfg
        self.min_score = min_score
        self._tracks: list[TrackState] = []
        self._next_id = 1
        self._step = 0

    @property
    def live_tracks(self) -> int:
        return len(self._tracks)

    def _cost(self, tracks: list[TrackState], boxes: np.ndarray, min_iou: float) -> np.ndarray:
        pred = np.stack([t.kalman.box for t in tracks]) if tracks else np.zeros((0, 4))
        iou = iou_matrix(pred.astype(np.float32), boxes)
        cost = np.full(iou.shape, _INF)
        if iou.size == 0:
            return cost
        cost[iou >= min_iou] = 1.0 - iou[iou >= min_iou]
        # Small fast faces (and strided analysis) can jump further than their own size between
        # analysed frames: allow a centre-distance match, always ranked behind any IoU match.
        side_p = np.sqrt(np.prod(pred[:, 2:] - pred[:, :2], axis=1).clip(1e-6))
        side_b = np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1).clip(1e-6))
        cp = (pred[:, :2] + pred[:, 2:]) / 2
        cb = (boxes[:, :2] + boxes[:, 2:]) / 2
        dist = np.linalg.norm(cp[:, None] - cb[None], axis=2) / np.maximum(side_p[:, None], 1e-6)
        ratio = side_b[None, :] / np.maximum(side_p[:, None], 1e-6)
        near = (dist <= self.cfg.max_centre_dist) & (ratio > 0.5) & (ratio < 2.0) & (iou < min_iou)
        cost[near] = 1.0 + dist[near]
        return cost

    @staticmethod
    def _assign(cost: np.ndarray) -> list[tuple[int, int]]:
        if cost.size == 0:
            return []
        rows, cols = linear_sum_assignment(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] < _INF]

    def update(self, dets: FaceDetections, t: float) -> tuple[FaceDetections, list[TrackState]]:
        """Associate one frame's detections; returns them with ids, and tracks that ended."""
        self._step += 1
        for tr in self._tracks:
            tr.kalman.predict(self._step - tr.last_step)
            tr.last_step = self._step
        ids = np.full(len(dets), -1, dtype=np.int64)
        score = dets.score
        high = np.flatnonzero(score >= self.cfg.high_thresh)
        low = np.flatnonzero((score < self.cfg.high_thresh) & (score >= self.min_score))

        def take(pairs: list[tuple[int, int]], tracks: list[TrackState], rows: np.ndarray) -> None:
            for ti, di in pairs:
                tr, row = tracks[ti], int(rows[di])
                tr.kalman.update(dets.xyxy[row])
                tr.last_t, tr.hits, tr.lost = t, tr.hits + 1, False
                ids[row] = tr.track_id

        # Stage 1: high-score detections against every live track.
        pairs = self._assign(self._cost(self._tracks, dets.xyxy[high], self.cfg.match_iou))
        take(pairs, self._tracks, high)
        matched = {ti for ti, _ in pairs}
        rest = [tr for i, tr in enumerate(self._tracks) if i not in matched and not tr.lost]
        # Stage 2: low-score detections may continue tracks seen in the previous frame.
        pairs2 = self._assign(self._cost(rest, dets.xyxy[low], self.cfg.low_match_iou))
        take(pairs2, rest, low)
        # New tracks from confident detections nobody took.
        for row in high:
            if ids[row] == -1 and score[row] >= self.cfg.new_track_thresh:
                tr = TrackState(self._next_id, BoxKalman(dets.xyxy[row]), t, t, self._step)
                self._next_id += 1
                self._tracks.append(tr)
                ids[row] = tr.track_id
        ended: list[TrackState] = []
        alive: list[TrackState] = []
        for tr in self._tracks:
            if tr.last_t < t:
                tr.lost = True
                # A track seen once and missed at once was most likely a false positive.
                if t - tr.last_t > self.cfg.max_lost_s or tr.hits == 1:
                    ended.append(tr)
                    continue
            alive.append(tr)
        self._tracks = alive
        return dets.with_track_ids(ids), ended

    def finish(self) -> list[TrackState]:
        """End every live track (end of stream)."""
        ended, self._tracks = self._tracks, []
        return ended
