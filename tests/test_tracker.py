"""Tracker and per-track top-k bookkeeping on small literal inputs."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from cctv_sr.config import TrackerConfig
from cctv_sr.errors import ConfigError
from cctv_sr.records import AlignedFace, FaceDetections, FaceRow, Quality
from cctv_sr.track.book import TrackBook
from cctv_sr.track.tracker import FaceTracker, iou_matrix


def tcfg(**kw: float) -> TrackerConfig:
    """Tracker settings with explicit thresholds (0 would mean "the detector's default")."""
    return TrackerConfig(**{"high_thresh": 0.8, "new_track_thresh": 0.85, **kw})


def dets(boxes: list[list[float]], scores: list[float]) -> FaceDetections:
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    kps = np.zeros((len(boxes), 5, 2), np.float32)
    return FaceDetections(xyxy, np.array(scores, np.float32), kps)


def box(cx: float, cy: float, s: float = 20.0) -> list[float]:
    return [cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2]


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 1 / 3, 0.0]], atol=1e-6)
    assert iou_matrix(a, b[:0]).shape == (1, 0)


def test_two_faces_keep_their_ids_while_moving() -> None:
    tr = FaceTracker(tcfg())
    ids = []
    for i in range(20):
        d = dets([box(20 + 4 * i, 50), box(200 - 4 * i, 120)], [0.95, 0.9])
        out, ended = tr.update(d, t=i / 10)
        assert not ended
        ids.append(tuple(out.track_id))
    assert len(set(ids)) == 1 and -1 not in ids[0] and ids[0][0] != ids[0][1]


def test_rows_are_never_dropped_and_low_scores_continue_tracks() -> None:
    tr = FaceTracker(tcfg(), min_score=0.3)
    out, _ = tr.update(dets([box(50, 50)], [0.95]), t=0.0)
    first = out.track_id[0]
    out, _ = tr.update(dets([box(52, 50)], [0.95]), t=0.1)
    # A blurred frame: only a low-score detection, plus a low-score stray elsewhere.
    out, _ = tr.update(dets([box(400, 400), box(54, 50)], [0.4, 0.5]), t=0.2)
    assert len(out) == 2
    assert out.track_id.tolist() == [-1, first]


def test_fast_small_face_is_followed_by_centre_distance() -> None:
    tr = FaceTracker(tcfg())
    got = set()
    for i in range(6):  # 15 px jumps with 12 px boxes: no IoU overlap between frames
        out, _ = tr.update(dets([box(20 + 15 * i, 40, 12)], [0.95]), t=i * 0.2)
        got.add(int(out.track_id[0]))
    assert len(got) == 1


def test_track_ends_after_max_lost_and_one_hit_tracks_die_at_once() -> None:
    tr = FaceTracker(tcfg(max_lost_s=0.5))
    tr.update(dets([box(50, 50), box(300, 300)], [0.95, 0.95]), t=0.0)
    _, ended = tr.update(dets([box(50, 50)], [0.95]), t=0.1)
    assert [e.hits for e in ended] == [1]  # the face seen once
    _, ended = tr.update(dets([], []), t=0.3)
    assert ended == []
    _, ended = tr.update(dets([], []), t=0.7)
    assert len(ended) == 1 and ended[0].hits == 2
    assert tr.finish() == []


def test_new_tracks_need_a_confident_detection() -> None:
    tr = FaceTracker(tcfg(new_track_thresh=0.9), min_score=0.3)
    out, _ = tr.update(dets([box(50, 50), box(150, 50)], [0.85, 0.95]), t=0.0)
    assert out.track_id[0] == -1 and out.track_id[1] > 0


def _face(track: int, frame: int, q: float) -> tuple[AlignedFace, FaceRow]:
    quality = Quality(40.0, 0.5, 0.5, 0.5, 0.9, q)
    crop = np.zeros((16, 16, 3), np.uint8)
    z = np.zeros((5, 2), np.float32)
    face = AlignedFace("cam0", track, frame, frame, Fraction(1, 25), 0, np.zeros(4), z, crop,
                       np.eye(2, 3, dtype=np.float32), quality)
    row = FaceRow("cam0", frame, frame, Fraction(1, 25), 0, np.zeros(4), 0.9, z, track,
                  quality, face.face_id)
    return face, row


def test_book_keeps_top_k_and_evicts_the_worst() -> None:
    book = TrackBook(top_k=2, save_all=False, min_faces=2)
    writes = []
    for frame, q in enumerate([0.5, 0.2, 0.9, 0.1, 0.7]):
        writes += book.add(*_face(7, frame, q))
    saved = [w.face.frame_index for w in writes]
    evicted = [e for w in writes for e in w.evict]
    assert saved == [0, 1, 2, 4]  # frame 0 waited for min_faces, then 0 and 1 were offered
    assert evicted == ["f0000001_d00", "f0000000_d00"]
    end = book.end("cam0", 7)
    assert end is not None and not end.discarded
    assert end.kept == ("f0000002_d00", "f0000004_d00")
    assert end.summary.n_faces == 5 and end.summary.best_frame == 2
    assert end.summary.first_seconds == pytest.approx(0.0)
    assert end.summary.last_seconds == pytest.approx(4 / 25)


def test_book_short_track_is_discarded_without_writes() -> None:
    book = TrackBook(top_k=3, save_all=False, min_faces=3)
    assert book.add(*_face(1, 0, 0.5)) == [] and book.add(*_face(1, 1, 0.6)) == []
    end = book.end("cam0", 1)
    assert end is not None and end.discarded and len(end.rows) == 2


def test_book_save_all_keeps_everything() -> None:
    book = TrackBook(top_k=1, save_all=True, min_faces=1)
    writes = [w for f in range(4) for w in book.add(*_face(2, f, 0.1 * f))]
    assert len(writes) == 4 and all(not w.evict for w in writes)
    assert len(book.end("cam0", 2).kept) == 4


def test_occluded_face_reappearing_does_not_steal_the_visible_track() -> None:
    """A face hidden behind another must not swap ids with it when it comes back (seen on
    facenet_pytorch_video.mp4: the lost track's prediction drifts onto the visible face)."""
    tr = FaceTracker(tcfg(max_lost_s=2.0))
    front = []
    for i in range(10):  # both visible; the back face walks toward the front one
        out, _ = tr.update(dets([box(100 + i, 100, 60), box(40 + 4 * i, 90, 36)], [0.99, 0.99]),
                           t=i * 0.04)
        front.append(out.track_id[0])
    back_id = out.track_id[1]
    for i in range(10, 20):  # the back face is hidden behind the front one
        out, _ = tr.update(dets([box(100 + i, 100, 60)], [0.99]), t=i * 0.04)
        front.append(out.track_id[0])
    # It reappears off to the side, too far for its own track to reach.
    out, _ = tr.update(dets([box(120, 100, 60), box(170, 55, 36)], [0.99, 0.99]), t=0.8)
    front.append(out.track_id[0])
    assert len(set(front)) == 1
    assert out.track_id[1] not in (front[0], -1) and back_id != front[0]


def test_unresolved_thresholds_are_refused() -> None:
    with pytest.raises(ConfigError, match="high_thresh"):
        FaceTracker(TrackerConfig())
