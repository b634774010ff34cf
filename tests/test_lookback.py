"""Looking back (issue 9): a face found for the first time is searched for in the frames before
it, and young tracks learn their speed at once.

Real parts: the shipped YuNet, insightface's t1.jpg faces, real H.264 clips encoded with PyAV,
the whole ``cctv-sr run`` pipeline.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from cctv_sr.cli.main import main
from cctv_sr.config import DetectorConfig, ScanConfig, TrackerConfig
from cctv_sr.data.synth import _paste, background, head_patches
from cctv_sr.detect import create_detector
from cctv_sr.detect.regions import Region
from cctv_sr.engine.lookback import LookBack, PastFrame
from cctv_sr.engine.scan import FULL, NONE, REGIONS, ScanPlan
from cctv_sr.records import FaceDetections, Frame
from cctv_sr.track.tracker import FaceTracker, iou_matrix
from tests.videos import encode_clip

FACE = 40  # px
SPEED = 4  # px per frame, to the right


def _frames(group_photo: np.ndarray, n: int, appear: int, width: int = 640, height: int = 480
            ) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """A backdrop whose middle never stops moving (fresh noise every frame, like a crowd) and a
    face that appears inside that motion at frame ``appear`` and walks right; the frames and
    the face's box per frame (None before it appears)."""
    rng = np.random.default_rng(5)
    patch = head_patches(group_photo)[1]
    bg = background(width, height, seed=2)
    frames, boxes = [], []
    for i in range(n):
        frame = bg.copy()
        frame[120:420, 220:480] = rng.integers(60, 200, (300, 260, 3), np.uint8)
        box = None
        if i >= appear:
            cx, cy = 300 + SPEED * (i - appear), 230
            _paste(frame, patch, cx, cy, int(round(FACE * 1.8)))
            box = np.array([cx - FACE / 2, cy - FACE / 2, cx + FACE / 2, cy + FACE / 2])
        frames.append(frame)
        boxes.append(box)
    return frames, boxes


def _yunet():
    return create_detector(DetectorConfig(name="yunet"))


def _past(frames: list[np.ndarray], plans: list[ScanPlan]) -> LookBack:
    look = LookBack(ScanConfig(look_back=len(plans)))
    for i, plan in enumerate(plans):
        look.remember(PastFrame(Frame("s", i, i, Fraction(1, 25), frames[i]), i / 25, plan,
                                np.zeros((0, 4), np.float32), 0))
    return look


def test_a_new_face_is_found_in_the_frames_before_it_where_nothing_looked(
        group_photo: np.ndarray) -> None:
    frames, boxes = _frames(group_photo, 6, appear=2)
    detector = _yunet()
    now = detector.detect([frames[5]])[0]
    assert len(now) == 1
    look = _past(frames, [ScanPlan(NONE)] * 5)
    chain = look.search(detector, now.xyxy, 0.4)[0]
    # frames 2, 3 and 4 hold the face (oldest first); frames 0 and 1 do not
    assert [f.past.frame.index for f in chain] == [2, 3, 4]
    for found in chain:
        truth = boxes[found.past.frame.index]
        assert iou_matrix(found.det.xyxy, truth[None].astype(np.float32))[0, 0] > 0.5
        # the face the detector finds on the whole frame (seen in a square of its own)
        whole = detector.detect([found.past.frame.image])[0]
        assert iou_matrix(found.det.xyxy, whole.xyxy).max() > 0.8
    # what the frames now hold is not found twice
    assert look.search(detector, now.xyxy, 0.4)[0] == []


def test_looking_back_stops_where_the_spot_was_searched_or_at_a_cut(
        group_photo: np.ndarray) -> None:
    frames, _ = _frames(group_photo, 6, appear=0)
    detector = _yunet()
    now = detector.detect([frames[5]])[0]
    # frame 3 searched the spot at the face's scale: nothing before it is searched again
    covering = Region(200, 100, 300, 1.0)
    plans = [ScanPlan(NONE), ScanPlan(NONE), ScanPlan(NONE), ScanPlan(REGIONS, (covering,)),
             ScanPlan(NONE)]
    chain = _past(frames, plans).search(detector, now.xyxy, 0.4)[0]
    assert [f.past.frame.index for f in chain] == [4]
    # a full pass at native scale searched it too
    plans[3] = ScanPlan(FULL)
    assert [f.past.frame.index for f in _past(frames, plans).search(
        detector, now.xyxy, 0.4)[0]] == [4]
    # a region elsewhere did not
    plans[3] = ScanPlan(REGIONS, (Region(0, 0, 100, 1.0),))
    assert len(_past(frames, plans).search(detector, now.xyxy, 0.4)[0]) == 5
    # a shot cut at frame 2: the frames before it are another scene
    plans[2] = ScanPlan(FULL, cut=True)
    plans[3] = ScanPlan(NONE)
    assert [f.past.frame.index for f in _past(frames, plans).search(
        detector, now.xyxy, 0.4)[0]] == [3, 4]
    # off
    off = LookBack(ScanConfig(look_back=0))
    assert not off.on and off.search(detector, now.xyxy, 0.4) == [[]]


def test_a_track_found_twice_predicts_a_walking_face_within_its_box() -> None:
    """A 24 px face walking 6 px a frame (a quarter of its width): seen in two frames, the
    track carries it two frames on with most of its box on the face."""
    tracker = FaceTracker(TrackerConfig(high_thresh=0.6, new_track_thresh=0.6), min_score=0.3)
    kps = np.zeros((1, 5, 2), np.float32)

    def box(i: int) -> np.ndarray:
        return np.array([[100 + 6 * i, 100, 124 + 6 * i, 128]], np.float32)

    for i in range(2):
        tracker.update(FaceDetections(box(i), np.array([0.9]), kps), i / 25.0)
    tracker.update(FaceDetections.empty(), 2 / 25.0, checked=frozenset())
    tracker.update(FaceDetections.empty(), 3 / 25.0, checked=frozenset())
    carried = tracker.carried(3 / 25.0)
    assert iou_matrix(carried.xyxy, box(3))[0, 0] > 0.7
    # a track found once and then looked back from starts with the speed of those frames
    tracker2 = FaceTracker(TrackerConfig(high_thresh=0.6, new_track_thresh=0.6), min_score=0.3)
    tracked, _ = tracker2.update(FaceDetections(box(2), np.array([0.9]), kps), 2 / 25.0)
    tracker2.extend_back(int(tracked.track_id[0]), [box(0)[0], box(1)[0]], 0.0)
    tracker2.update(FaceDetections.empty(), 3 / 25.0, checked=frozenset())
    assert iou_matrix(tracker2.carried(3 / 25.0).xyxy, box(3))[0, 0] > 0.7


@pytest.mark.parametrize("look_back", [0, 3])
def test_a_face_appearing_inside_moving_pixels_is_written_from_its_first_frames(
        tmp_path: Path, group_photo: np.ndarray, look_back: int) -> None:
    """The face appears inside motion that was there before (no new moving pixels): the next
    detection, up to 0.2 s later, finds it, and looking back writes it from the frame it
    appeared in (detected rows, in frame order)."""
    frames, boxes = _frames(group_photo, 24, appear=7)
    clip = encode_clip(tmp_path / "popin.mp4", frames, fps=25.0)
    out = tmp_path / "o"
    assert main(["run", str(clip), "--out", str(out), "--quiet",
                 "--set", "scan.detect_interval_s=0.2",
                 "--set", f"scan.look_back={look_back}"]) == 0
    faces = [json.loads(x) for x in (out / "faces.jsonl").read_text().splitlines()]
    run = json.loads((out / "run.json").read_text())
    order = [(f["frame"], f["det"]) for f in faces]
    assert order == sorted(order)
    hits = {}
    for f in faces:
        truth = boxes[f["frame"]]
        if truth is not None and f["detected"] and iou_matrix(
                np.asarray([f["box"]], np.float32), truth[None].astype(np.float32))[0, 0] > 0.4:
            hits[f["frame"]] = f
    first = min(hits)
    if look_back == 0:
        assert first > 7 and run["counts"]["looked_back"] == 0
    else:
        assert first == 7, sorted(hits)
        assert run["counts"]["looked_back"] >= 1
        assert len({hits[i]["track_id"] for i in range(first, first + 4) if i in hits}) == 1
    assert set(range(first, 24)) <= set(hits) | {i for i in range(first, 24) if any(
        f["frame"] == i and not f["detected"] for f in faces)}


def test_tracks_in_doubt_are_those_seen_once_or_missed_lately() -> None:
    tracker = FaceTracker(TrackerConfig(high_thresh=0.6, new_track_thresh=0.6), min_score=0.3)
    kps = np.zeros((1, 5, 2), np.float32)
    box = np.array([[100, 100, 124, 128]], np.float32)
    tracked, _ = tracker.update(FaceDetections(box, np.array([0.9]), kps), 0.0)
    tid = int(tracked.track_id[0])
    assert tracker.in_doubt(0.0, 0.24) == {tid}  # seen once: its speed is not known
    tracker.update(FaceDetections(box + 2, np.array([0.9]), kps), 0.04)
    assert tracker.in_doubt(0.04, 0.24) == set()
    tracker.update(FaceDetections.empty(), 0.08)  # searched for and missed
    assert tracker.in_doubt(0.08, 0.24) == {tid}
    tracker.update(FaceDetections.empty(), 0.32, checked=frozenset())
    assert tracker.in_doubt(0.32, 0.24) == set()  # missed too long ago: the usual searches
