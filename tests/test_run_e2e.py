"""End to end: a real clip (real faces composited and encoded with PyAV) through `cctv-sr run`."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from videos import encode_clip

from cctv_sr import EVIDENCE_NOTE
from cctv_sr.cli import main
from cctv_sr.data.synth import Walker, head_patches, render_clip
from cctv_sr.io.source import file_sha256
from cctv_sr.track.tracker import iou_matrix

FPS = 12
N_FRAMES = 48
W, H = 360, 270


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, group_photo) -> tuple[Path, list[list[tuple[int, np.ndarray]]]]:
    """Three people from the group photo walking across a backdrop, CCTV-sized faces."""
    heads = head_patches(group_photo)
    walkers = [
        Walker(heads[0], (50, 70), (300, 80), 40, 46, 0, 39),
        Walker(heads[2], (320, 190), (60, 180), 34, 38, 6, 47),
        Walker(heads[4], (90, 150), (130, 45), 44, 56, 20, 47),
    ]
    frames, truth = [], []
    for frame, t in render_clip(walkers, W, H, N_FRAMES, seed=3):
        frames.append(frame)
        truth.append(t)
    path = tmp_path_factory.mktemp("clip") / "walkers.mp4"
    encode_clip(path, frames, fps=FPS, codec="libx264")
    return path, truth


@pytest.fixture(scope="module")
def run_out(clip, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    assert main(["run", str(clip[0]), "--out", str(out), "--quiet", "--top-k", "3"]) == 0
    return out


def _walker_of(face: dict, truth: list[list[tuple[int, np.ndarray]]]) -> int | None:
    on_screen = truth[face["frame"]]
    if not on_screen:
        return None
    boxes = np.stack([b for _, b in on_screen])
    iou = iou_matrix(np.array([face["box"]], np.float32), boxes)[0]
    k = int(np.argmax(iou))
    return on_screen[k][0] if iou[k] > 0.3 else None


def test_tracks_follow_each_person_without_splits(run_out: Path, clip) -> None:
    _, truth = clip
    faces = read_jsonl(run_out / "faces.jsonl")
    tracks = read_jsonl(run_out / "tracks.jsonl")
    assert len(tracks) == 3, [(t["track_id"], t["n_faces"]) for t in tracks]
    by_track: dict[int, Counter] = defaultdict(Counter)
    for face in faces:
        if face["track_id"] is not None:
            by_track[face["track_id"]][_walker_of(face, truth)] += 1
    owners = {}
    for tid, votes in by_track.items():
        walker, n = votes.most_common(1)[0]
        assert walker is not None and n >= 0.95 * sum(votes.values()), votes
        owners[tid] = walker
    assert sorted(owners.values()) == [0, 1, 2]  # one track per person: no splits, no merges
    # Nearly every frame where a person is on screen has their face, tracked.
    on_screen = sum(len(t) for t in truth)
    tracked = sum(sum(v.values()) for v in by_track.values())
    assert tracked >= 0.85 * on_screen


def test_face_records_are_exact_and_complete(run_out: Path, clip) -> None:
    faces = read_jsonl(run_out / "faces.jsonl")
    with av.open(str(clip[0])) as container:
        stream = container.streams.video[0]
        pts = [f.pts for f in container.decode(stream)]
        time_base = stream.time_base
    for face in faces:
        assert face["pts"] == pts[face["frame"]]
        assert Fraction(face["time_base"]) == time_base
        assert face["seconds"] == pytest.approx(float(face["pts"] * time_base), abs=1e-6)
        assert face["seconds"] == pytest.approx(face["frame"] / FPS, abs=1e-3)
        kps = np.array(face["landmarks"])
        assert kps.shape == (5, 2)
        assert kps[0, 0] < kps[1, 0] and kps[3, 0] < kps[4, 0]  # canonical order
        assert kps[3, 1] > kps[2, 1] > kps[0, 1]  # mouth below nose below eyes
        x1, y1, x2, y2 = face["box"]
        assert x1 < x2 and y1 < y2
    # Every detection row of a frame is there, det indices unique per frame.
    per_frame = Counter((f["frame"], f["det"]) for f in faces)
    assert max(per_frame.values()) == 1


def test_crops_and_track_folders(run_out: Path) -> None:
    tracks = read_jsonl(run_out / "tracks.jsonl")
    faces = read_jsonl(run_out / "faces.jsonl")
    for track in tracks:
        folder = run_out / track["folder"]
        files = sorted(p.name for p in folder.iterdir())
        assert 1 <= len(track["best_crops"]) <= 3  # --top-k 3
        assert len(files) == 2 * len(track["best_crops"])  # evicted crops were removed
        qualities = []
        for crop in track["best_crops"]:
            lr = cv2.imread(str(run_out / crop["lr"]))
            sr = cv2.imread(str(run_out / crop["sr"]))
            assert lr is not None and sr is not None
            assert lr.shape[0] == lr.shape[1] and lr.shape[0] in (16, 32, 128)
            assert sr.shape == (128, 128, 3)
            face = next(f for f in faces if f["crop"] and f["crop"]["lr"] == crop["lr"])
            assert face["crop"] == crop and face["track_id"] == track["track_id"]
            assert face["face_id"] == crop["face_id"]
            qualities.append(face["quality"]["score"])
        assert qualities == sorted(qualities, reverse=True)
        assert qualities[0] == pytest.approx(track["best_quality"], abs=1e-3)
        assert track["first_seconds"] <= track["last_seconds"]
    # A face row points at crops only when they were kept.
    kept = {c["lr"] for t in tracks for c in t["best_crops"]}
    assert {f["crop"]["lr"] for f in faces if f["crop"]} == kept


def test_run_json_and_notice(run_out: Path, clip) -> None:
    meta = json.loads((run_out / "run.json").read_text())
    assert meta["status"] == "complete" and meta["error"] is None
    assert meta["input"]["sha256"] == file_sha256(clip[0])
    assert meta["input"]["frame_count"] in (N_FRAMES, None)
    counts = meta["counts"]
    assert counts["frames_decoded"] == N_FRAMES == counts["frames_analysed"]
    assert counts["faces"] == len(read_jsonl(run_out / "faces.jsonl"))
    assert counts["tracks"] == len(read_jsonl(run_out / "tracks.jsonl"))
    assert meta["models"]["detector"]["name"] == "yunet"
    assert all(f["sha256"] for f in meta["models"]["detector"]["files"])
    assert meta["settings"]["output"]["top_k"] == 3
    for key in ("detect_s", "track_s", "align_s", "sr_s", "write_s", "wall_s"):
        assert meta["timing"][key] >= 0
    assert meta["notice"] == EVIDENCE_NOTE
    assert (run_out / "NOTICE.txt").read_text().strip() == EVIDENCE_NOTE


def test_stride_and_save_all(clip, tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["run", str(clip[0]), "--out", str(out), "--quiet", "--stride", "2",
                 "--save-all-crops"]) == 0
    faces = read_jsonl(out / "faces.jsonl")
    assert faces and all(f["frame"] % 2 == 0 for f in faces)
    meta = json.loads((out / "run.json").read_text())
    assert meta["counts"]["frames_analysed"] == N_FRAMES // 2
    tracked = [f for f in faces if f["track_id"] is not None and f["detected"]]
    assert all(f["crop"] and (out / f["crop"]["sr"]).is_file() for f in tracked)
    carried = [f for f in faces if not f["detected"]]
    assert all(f["crop"] is None and f["track_id"] is not None for f in carried)
    assert meta["counts"]["crops_written"] == len(tracked)


def test_existing_results_are_not_overwritten(run_out: Path, clip) -> None:
    before = (run_out / "faces.jsonl").read_bytes()
    assert main(["run", str(clip[0]), "--out", str(run_out), "--quiet"]) == 1
    assert (run_out / "faces.jsonl").read_bytes() == before


def test_several_inputs_run_at_once_and_each_gives_what_it_gives_alone(run_out: Path, clip,
                                                                          tmp_path: Path) -> None:
    """Two copies of the clip in a folder, plus the clip itself: one run, three streams, each
    stream's records those of the single-input run (per-stream state in the analysis workers,
    the accelerator shared). Not to the pixel: which frames share a detector batch depends on
    how the decode threads interleave, and a batch's plans use tracks predicted that many
    frames ahead, so a face may be searched in another region square (a box a few pixels
    off, a spurious short track taking an id); the people's tracks and their spans are the
    same."""
    folder = tmp_path / "cams"
    folder.mkdir()
    for name in ("lobby.mp4", "gate.mp4"):
        (folder / name).write_bytes(clip[0].read_bytes())
    (folder / "notes.txt").write_text("not a clip")
    out = tmp_path / "out"
    assert main(["run", str(folder), str(clip[0]), "--out", str(out), "--quiet",
                 "--top-k", "3"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete"
    assert [i["stream"] for i in run["inputs"]] == ["gate", "lobby", "walkers"]
    assert sorted(run["streams"]) == ["gate", "lobby", "walkers"]
    alone = read_jsonl(run_out / "faces.jsonl")
    alone_tracks = read_jsonl(run_out / "tracks.jsonl")

    def spans(rows: list[dict]) -> list[tuple[int, int]]:
        return sorted((t["first_frame"], t["last_frame"]) for t in rows)

    detected_alone = sum(f["detected"] for f in alone)
    for name in ("gate", "lobby", "walkers"):
        faces = read_jsonl(out / name / "faces.jsonl")
        assert {f["stream"] for f in faces} == {name}
        assert abs(sum(f["detected"] for f in faces) - detected_alone) <= 0.05 * detected_alone
        tracks = read_jsonl(out / name / "tracks.jsonl")
        assert len(tracks) == len(alone_tracks)
        for (f0, l0), (f1, l1) in zip(spans(tracks), spans(alone_tracks)):
            assert abs(f0 - f1) <= 2 and abs(l0 - l1) <= 2
        assert run["streams"][name]["counts"]["faces"] == len(faces)
        assert (out / name / "NOTICE.txt").is_file()
        assert any((out / name / "tracks").iterdir())
    # the run's count is its streams' rows, each stream's file counted once
    assert run["counts"]["faces"] == sum(len(read_jsonl(out / n / "faces.jsonl"))
                                         for n in ("gate", "lobby", "walkers"))
    # a second run into the same OUTDIR is refused, --stream-id with several inputs too
    assert main(["run", str(folder), "--out", str(out), "--quiet"]) == 1
    assert main(["run", str(folder), "--out", str(tmp_path / "o2"), "--stream-id", "x",
                 "--quiet"]) == 1
