"""`cctv-sr run --annotate`: annotated.mp4 is the input with the run's boxes drawn on it, the
same frames and size; the matched track's boxes in the match colour, the others in the track
colour; frames without faces untouched (up to codec noise); live streams skipped."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import av
import numpy as np
import pytest

from cctv_sr.cli import main
from cctv_sr.data.demo import make_demo_footage
from cctv_sr.face.draw import MATCH_BGR, TRACK_BGR, face_box
from cctv_sr.io.annotate import annotate_inputs

pytestmark = pytest.mark.slow


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("annotate")
    footage = make_demo_footage(tmp, seconds=4.0)
    db = tmp / "gallery.db"
    assert main(["gallery", "build", str(footage.people_dir), "--out", str(db)]) == 0
    out = tmp / "out"
    assert main(["run", str(footage.clip), "--out", str(out), "--quiet", "--gallery", str(db),
                 "--annotate"]) == 0
    return footage.clip, out


def _distance(pixels: np.ndarray, colour: tuple[int, int, int]) -> float:
    """Distance of the median pixel of ``pixels`` to ``colour``."""
    median = np.median(pixels.reshape(-1, 3).astype(np.float64), axis=0)
    return float(np.linalg.norm(median - np.array(colour, np.float64)))


def test_same_frames_and_size(annotated: tuple[Path, Path]) -> None:
    clip, out = annotated
    source, drawn = _frames(clip), _frames(out / "annotated.mp4")
    assert len(drawn) == len(source) == 48
    assert drawn[0].shape == source[0].shape


def test_boxes_drawn_in_their_colours_and_empty_frames_untouched(
        annotated: tuple[Path, Path]) -> None:
    clip, out = annotated
    source, drawn = _frames(clip), _frames(out / "annotated.mp4")
    faces = _rows(out / "faces.jsonl")
    matched = {m["track_id"] for m in _rows(out / "matches.jsonl") if m["decision"]}
    assert matched and {f["track_id"] for f in faces} - matched  # a named and an unnamed track
    checked = {True: 0, False: 0}
    for f in faces:
        if not f["detected"] or f["track_id"] is None:
            continue
        x0, y0, x1, y1 = (int(round(v)) for v in f["box"])
        if x0 < 2 or y0 < 2 or x1 > source[0].shape[1] - 3:
            continue
        colour = MATCH_BGR if f["track_id"] in matched else TRACK_BGR
        top_edge = np.s_[y0:y0 + 2, x0 + 3:x1 - 2]  # the 2 px line of the box's top side
        after = _distance(drawn[f["frame"]][top_edge], colour)
        before = _distance(source[f["frame"]][top_edge], colour)
        # 4:2:0 chroma spreads a 2 px line's colour into its neighbours: near, not exact
        assert after < 80 and after < before / 2, (f["frame"], f["track_id"], after, before)
        checked[f["track_id"] in matched] += 1
    assert checked[True] >= 5 and checked[False] >= 5
    spans = {}
    for f in faces:
        lo, hi = spans.get(f["track_id"], (f["frame"], f["frame"]))
        spans[f["track_id"]] = (min(lo, f["frame"]), max(hi, f["frame"]))
    empty = [i for i in range(len(source)) if not any(lo <= i <= hi for lo, hi in spans.values())]
    assert empty, "the clip starts before anyone walks in"
    for i in empty:
        diff = np.abs(drawn[i].astype(np.int16) - source[i].astype(np.int16))
        assert diff.mean() < 3.0 and np.percentile(diff, 99.9) < 24, (i, diff.mean())


def test_carried_rows_are_dashed_and_thinner() -> None:
    solid = np.zeros((100, 100, 3), np.uint8)
    dashed = solid.copy()
    face_box(solid, (20, 30, 80, 90), TRACK_BGR, "t1")
    face_box(dashed, (20, 30, 80, 90), TRACK_BGR, "t1", carried=True)
    left_solid = (solid[40:85, 19:23] == TRACK_BGR).all(axis=2)
    left_dashed = (dashed[40:85, 19:23] == TRACK_BGR).all(axis=2)
    assert left_solid.sum(axis=1).min() >= 2  # a solid line, at least 2 px, on every row
    assert left_dashed.sum(axis=1).max() == 1  # 1 px where drawn
    assert 0 < left_dashed.any(axis=1).sum() < 0.75 * left_dashed.shape[0]  # with gaps


def test_live_streams_are_skipped_with_a_warning(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert annotate_inputs(["rtsp://camera.invalid/live"], tmp_path) == []
    assert "live stream" in caplog.text
    assert not (tmp_path / "annotated.mp4").exists()
