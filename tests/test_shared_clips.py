"""The real CCTV-like clips in ../shared/data/videos (skipped cleanly when absent).

Short slices keep the suite to minutes on a CPU; the closing notes of the issues report the
full-length runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path

from cctv_sr.cli import main

CLIPS = "data/videos/cctv_like"


def run(clip: str, out: Path, *args: str) -> tuple[dict, list[dict], list[dict]]:
    path = shared_path(f"{CLIPS}/{clip}")
    assert main(["run", str(path), "--out", str(out), "--quiet", *args]) == 0
    meta = json.loads((out / "run.json").read_text())
    faces = [json.loads(x) for x in (out / "faces.jsonl").read_text().splitlines()]
    tracks = [json.loads(x) for x in (out / "tracks.jsonl").read_text().splitlines()]
    assert meta["status"] == "complete" and meta["counts"]["faces"] == len(faces)
    return meta, faces, tracks


def test_pedestrians_walking_toward_the_camera(tmp_path: Path) -> None:
    """facenet_pytorch_video.mp4: at least five people are in view from the first frames."""
    meta, faces, tracks = run("facenet_pytorch_video.mp4", tmp_path / "o", "--max-frames", "10")
    assert meta["counts"]["frames_analysed"] == 10
    # Detected on every third frame (scan.detect_interval_s), carried by the track between.
    long_tracks = [t for t in tracks if t["n_faces"] >= 3 and t["n_faces"] + t["n_carried"] >= 8]
    assert len(long_tracks) >= 5, [(t["track_id"], t["n_faces"], t["n_carried"]) for t in tracks]
    assert faces, "no face found"
    for face in faces:  # landmarks never mirrored (a profile's two mouth corners may meet)
        kps = np.array(face["landmarks"])
        slack = 0.05 * (face["box"][2] - face["box"][0])
        assert kps[0, 0] < kps[1, 0] + slack and kps[3, 0] < kps[4, 0] + slack
    # the same person keeps one id: a long track's boxes move smoothly, frame to frame
    for t in long_tracks:
        rows = [f for f in faces if f["track_id"] == t["track_id"]]
        boxes = np.array([f["box"] for f in rows])
        gaps = np.diff([f["frame"] for f in rows])  # a track missed while it was searched
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        side = boxes[:, 2] - boxes[:, 0]
        assert np.all(np.linalg.norm(np.diff(centres, axis=0), axis=1) < side[1:] * gaps)


@pytest.mark.parametrize(
    ("clip", "args", "min_tracks"),
    [
        ("office_lobby_fisheye.mp4", ["--max-frames", "40", "--stride", "4"], 1),
        # faces of 10-20 px seen every 5th frame: MTCNN finds some (about 15 in these 40
        # frames) but too sparsely to track; small-face recall is the detection issue's job
        ("opencv_vtest.avi", ["--max-frames", "40", "--stride", "5"], 0),
    ],
)
def test_small_face_clips_run_through(clip: str, args: list[str], min_tracks: int,
                                      tmp_path: Path) -> None:
    meta, faces, tracks = run(clip, tmp_path / "o", *args)
    assert meta["counts"]["frames_analysed"] == 40
    assert faces, "no face found"
    assert len(tracks) >= min_tracks, tracks
    for t in tracks:
        assert (tmp_path / "o" / t["folder"]).is_dir()
    scored = [f for f in faces if f["quality"] is not None]
    assert len(scored) >= min_tracks, "no tracked face was scored"
    for face in scored:  # tiny faces are scored as such
        assert face["quality"]["size_px"] > 0
    assert all(f["crop"] is None for f in faces if f["track_id"] is None)
