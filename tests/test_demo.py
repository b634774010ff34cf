"""`cctv-sr demo OUTDIR`, end to end with the real models: the clip and gallery it makes, the
enrolled person matched on her own track, the stranger on his left unmatched, the report."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import av
import numpy as np
import pytest

from cctv_sr.cli import main
from cctv_sr.cli.demo import read_verdicts
from cctv_sr.data.demo import PHOTOS, make_demo_footage
from cctv_sr.identity.gallery.store import Gallery
from cctv_sr.track.tracker import iou_matrix

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo"
    assert main(["demo", str(out), "--quiet"]) == 0
    return out


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_clip_and_gallery(demo: Path) -> None:
    with av.open(str(demo / "clip.mp4")) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == 96  # 8 s at 12 fps
    assert frames[0].shape == (360, 640, 3)
    assert (demo / "people" / "eileen_collins.png").is_file()
    with Gallery.open(demo / "gallery.db") as gallery:
        names, templates = gallery.templates()
    assert names == ["eileen_collins"]
    assert templates.shape[0] == 1


def test_enrolled_person_matched_and_stranger_not(demo: Path, tmp_path: Path) -> None:
    truth = make_demo_footage(tmp_path).truth  # the same plan: the ground truth per frame
    owner: dict[int, Counter] = defaultdict(Counter)
    for f in _rows(demo / "results" / "faces.jsonl"):
        if f["track_id"] is None or not truth[f["frame"]]:
            continue
        boxes = np.array([b for _, b in truth[f["frame"]]], np.float32)
        iou = iou_matrix(np.array([f["box"]], np.float32), boxes)[0]
        if iou.max() > 0.3:
            owner[f["track_id"]][truth[f["frame"]][int(iou.argmax())][0]] += 1
    decisions = {m["track_id"]: m["decision"] for m in _rows(demo / "results" / "matches.jsonl")}
    seen: set[str] = set()
    for tid, votes in owner.items():
        person = PHOTOS[votes.most_common(1)[0][0]]
        want = person.name if person.enrolled else None
        assert decisions[tid] == want, (tid, person.name, decisions)
        seen.add(person.name)
    assert seen == {p.name for p in PHOTOS}  # both people were tracked and scored
    verdicts = read_verdicts(demo / "results" / "matches.jsonl")
    assert [v.decision for v in verdicts].count("eileen_collins") >= 1


def test_annotated_video_written(demo: Path) -> None:
    with av.open(str(demo / "results" / "annotated.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 96


def test_report_written(demo: Path) -> None:
    page = (demo / "results" / "report.html").read_text(encoding="utf-8")
    assert "eileen_collins" in page and "cameraman" not in page.split("<script", 1)[0]
    assert "not evidence" in page


def test_a_second_demo_needs_overwrite(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", str(demo), "--quiet"]) == 1
    assert "--overwrite" in capsys.readouterr().err
