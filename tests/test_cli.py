"""`cctv-sr` as a user runs it: bad input, no faces, a live stream stopped with Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rtsp import free_port, rtsp_server
from videos import encode_clip, pattern_frames

from cctv_sr.cli import main
from cctv_sr.data.synth import Walker, head_patches, render_clip

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run the installed console entry point in a fresh process, as a user would."""
    return subprocess.run([sys.executable, "-m", "cctv_sr.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("cctv-sr: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def no_face_clip(tmp_path_factory) -> Path:
    return encode_clip(tmp_path_factory.mktemp("nf") / "empty.mp4", pattern_frames(20, 160, 120),
                       10.0, "libx264")


def test_no_faces_is_a_valid_result(no_face_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["run", str(no_face_clip), "--out", str(out), "--quiet"]) == 0
    assert (out / "faces.jsonl").read_text() == "" and (out / "tracks.jsonl").read_text() == ""
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "complete" and meta["counts"]["frames_analysed"] == 20


def _bad_inputs(tmp: Path, clip: Path) -> dict[str, tuple[Path, str]]:
    text = tmp / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    empty = tmp / "empty.avi"
    empty.write_bytes(b"")
    cut = tmp / "cut.mp4"  # moov index at the end: cut short, nothing can be read
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    return {
        "missing": (tmp / "nope.mp4", "nope.mp4"),
        "text": (text, "notes.mp4"),
        "empty": (empty, "empty.avi"),
        "truncated": (cut, "cut.mp4"),
        "directory": (tmp, str(tmp.name)),
    }


@pytest.mark.parametrize("case", ["missing", "text", "empty", "truncated", "directory"])
def test_bad_input_is_one_clear_line(case: str, no_face_clip: Path, tmp_path: Path) -> None:
    path, name = _bad_inputs(tmp_path, no_face_clip)[case]
    out = tmp_path / "out"
    proc = cli("run", str(path), "--out", str(out), "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert name in error_line(proc)
    assert "Traceback" not in proc.stderr
    assert not (out / "faces.jsonl").exists()  # failed before writing anything


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--detector", "nosuch"], "unknown detector 'nosuch'"),
        (["--sr", "nosuch"], "unknown super-resolver 'nosuch'"),
        (["--set", "tracker.max_lost=2"], "did you mean 'max_lost_s'"),
        (["--stride", "-2"], "source.stride"),
        (["--detector", "yunet", "--detector-model", "/nonexistent/yunet.onnx"],
         "/nonexistent/yunet.onnx"),
    ],
)
def test_bad_settings(args: list[str], needle: str, no_face_clip: Path, tmp_path: Path) -> None:
    proc = cli("run", str(no_face_clip), "--out", str(tmp_path / "o"), "--quiet", *args)
    assert proc.returncode == 1 and needle in error_line(proc)


def test_stream_that_does_not_answer(tmp_path: Path) -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/cam"
    t0 = time.monotonic()
    proc = cli("run", url, "--out", str(tmp_path / "o"), "--quiet", "--set",
               "source.open_timeout_s=3")
    assert proc.returncode == 1 and "127.0.0.1" in error_line(proc)
    assert time.monotonic() - t0 < 60


def test_live_stream_ctrl_c_flushes(group_photo, tmp_path: Path) -> None:
    """A real RTSP server plays a clip with two people; SIGINT mid-stream keeps their tracks."""
    heads = head_patches(group_photo)
    # 60 s at 10 fps: the stream is still running when we interrupt, even when a loaded
    # machine takes 10-15 s from opening the stream to starting the pipeline (torch import)
    n = 600
    walkers = [Walker(heads[1], (60, 100), (260, 110), 44, 48, 0, n - 1),
               Walker(heads[3], (260, 170), (60, 160), 40, 44, 0, n - 1)]
    frames = [f for f, _ in render_clip(walkers, 320, 240, n, seed=5)]
    served = encode_clip(tmp_path / "people.mkv", frames, 10.0, "mjpeg")
    out = tmp_path / "live"
    with rtsp_server(tmp_path, served, 10) as base:
        # SIGINT back to its default in the child: a test run started in the background of a
        # non-interactive shell inherits SIGINT ignored, and Python then keeps ignoring it
        proc = subprocess.Popen(
            [sys.executable, "-m", "cctv_sr.cli", "run", f"{base}/file", "--out", str(out),
             "--quiet"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 100
        while time.monotonic() < deadline:  # wait until crops are being saved: the pipeline
            # is running (run.json says "running" before the models and threads are up, and a
            # signal in that window is not the Ctrl-C this test is about)
            if any((out / "tracks").glob("*/*_lr.png")):
                time.sleep(1)
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "stopped" and meta["input"]["is_live"] is True
    assert meta["counts"]["frames_analysed"] > 10
    tracks = [json.loads(x) for x in (out / "tracks.jsonl").read_text().splitlines()]
    assert len(tracks) >= 2 and all(t["best_crops"] for t in tracks)
    faces = [json.loads(x) for x in (out / "faces.jsonl").read_text().splitlines()]
    assert len(faces) == meta["counts"]["faces"] > 0
    # RTSP may give the very first frame no pts (it is then null, never invented).
    seconds = [f["seconds"] for f in faces
               if f["track_id"] == tracks[0]["track_id"] and f["seconds"] is not None]
    assert len(seconds) >= 3 and np.all(np.diff(seconds) > 0)


def test_max_frames_ends_the_run_early(no_face_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["run", str(no_face_clip), "--out", str(out), "--quiet", "--max-frames", "7",
                 "--stride", "2"]) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "complete" and meta["counts"]["frames_analysed"] == 7


def test_bench_reports_decode_and_e2e_side_by_side(no_face_clip: Path, tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    assert main(["bench", str(no_face_clip), "--quiet", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["frames_decoded"] == 20 == data["frames_analysed"]
    assert data["decode_fps"] > 0 and data["e2e_fps"] > 0
    assert data["ratio"] == pytest.approx(data["e2e_fps"] / data["decode_fps"], rel=1e-2)
    stages = {r["stage"]: r for r in data["rows"]}
    assert set(stages) == {"decode", "scan", "detect", "track", "align", "sr", "embed", "head",
                           "write", "e2e"}
    assert stages["detect"]["items"] == 20 and stages["detect"]["per_s"] > 0


def test_bench_scales_with_streams_and_faces_per_frame(no_face_clip: Path, group_photo,
                                                       tmp_path: Path) -> None:
    """--streams: N concurrent copies in one run; faces per frame: synthetic grids of heads."""
    from cctv_sr.config import RunConfig
    from cctv_sr.data.synth import head_patches
    from cctv_sr.evaluate.bench_scale import bench_faces, table

    path = tmp_path / "bench.json"
    assert main(["bench", str(no_face_clip), "--quiet", "--streams", "1,2", "--json",
                 str(path)]) == 0
    rows = [r for r in json.loads(path.read_text())["rows"] if r.get("kind") == "streams"]
    assert [r["n"] for r in rows] == [1, 2] and rows[0]["scale"] == 1.0
    assert rows[1]["frames"] == 2 * rows[0]["frames"] == 40  # both copies analysed whole
    assert set(rows[0]["stages"]) >= {"detect", "sr", "write"}
    faces = bench_faces(head_patches(group_photo), RunConfig(), (1, 3), seconds=1.0)
    assert [r.n for r in faces] == [1, 3]
    assert faces[1].faces > faces[0].faces > 0  # the faces are on screen and found
    assert len(table(faces)) == 3
    assert main(["bench", str(no_face_clip), "--quiet", "--faces-per-frame", "1"]) == 1
