"""report.html of a real clip (../shared's `facenet_pytorch_video.mp4`: 1920x1080, 25 fps,
105 frames, pedestrians walking toward the camera) run with a gallery, in a real headless
chromium: no console or page errors, nothing fetched but file:// URLs, every image decodes,
the cards and the matched / unmatched / person filters work, the page does not overflow
sideways, the events list stays one short row per event.

../shared/data/gallery/ holds no photos of the people in this clip, so the gallery is built
from the clip itself: a first run of the whole clip (no gallery) finds the faces of its last
frames (from frame 95, 3.8 s in), and a crop around each large face there, with the other
faces of the frame greyed out, is one person's photo (`walker_<n>`, left to right). The run
under test analyses only the first 50 frames (0-2 s), far from the enrolled ones; its
matches are not checked against who is who (the clip has no identity labels), only that
the report shows them. Nothing from ../shared leaves the test's tmp dir."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import shared_path
from test_report import Page, browser, read  # noqa: F401 - browser: the chromium fixture

from cctv_sr import EVIDENCE_NOTE
from cctv_sr.cli import main
from cctv_sr.report import load_report
from cctv_sr.report.model import MATCHED

log = logging.getLogger(__name__)
CLIP = "data/videos/cctv_like/facenet_pytorch_video.mp4"
ENROL_FROM = 95  # gallery photos come from frames at or after this one
ANALYSED = 50  # the run under test stops after this many frames
MIN_FACE_PX = 48  # faces enrolled: at least this wide in the enrolment frame


def frames_from(clip: Path, first: int) -> dict[int, np.ndarray]:
    cap = cv2.VideoCapture(str(clip))
    frames, i = {}, 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i >= first:
            frames[i] = frame
        i += 1
    cap.release()
    return frames


def enrolment_photos(clip: Path, scan: Path, people: Path) -> int:
    """One photo per large face of the latest scanned frame at or after ENROL_FROM with the
    most faces, into people/walker_<n>/; the number of people."""
    faces = [f for f in read(scan / "faces.jsonl")
             if f["frame"] >= ENROL_FROM and f["detected"]]
    by_frame: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for f in faces:
        by_frame[f["frame"]].append(f)
    assert by_frame, "no faces detected near the end of the clip"
    frame_no = max(by_frame, key=lambda k: (len(by_frame[k]), k))
    frame = frames_from(clip, frame_no)[frame_no]
    grey = frame.copy()
    for f in by_frame[frame_no]:
        x0, y0, x1, y1 = (int(v) for v in f["box"])
        grey[max(0, y0 - 10):y1 + 10, max(0, x0 - 10):x1 + 10] = 128
    n = 0
    for f in sorted(by_frame[frame_no], key=lambda f: f["box"][0]):
        x0, y0, x1, y1 = f["box"]
        side = max(x1 - x0, y1 - y0)
        if side < MIN_FACE_PX:
            continue
        photo = grey.copy()  # this face back, every other face grey
        a, b, c, d = (int(v) for v in f["box"])
        photo[max(0, b - 10):d + 10, max(0, a - 10):c + 10] = \
            frame[max(0, b - 10):d + 10, max(0, a - 10):c + 10]
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.8 * side
        crop = photo[max(0, int(cy - half)):int(cy + half), max(0, int(cx - half)):int(cx + half)]
        folder = people / f"walker_{n}"
        folder.mkdir(parents=True)
        assert cv2.imwrite(str(folder / f"frame{frame_no}.png"), crop)
        n += 1
    return n


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory) -> Path:
    clip = shared_path(CLIP)
    tmp = tmp_path_factory.mktemp("report_shared")
    scan = tmp / "scan"
    assert main(["run", str(clip), "--out", str(scan), "--quiet"]) == 0
    people = tmp / "people"
    assert enrolment_photos(clip, scan, people) >= 3
    db = tmp / "gallery.db"
    assert main(["gallery", "build", str(people), "--out", str(db)]) == 0
    out = tmp / "out"
    assert main(["run", str(clip), "--out", str(out), "--quiet", "--gallery", str(db),
                 "--max-frames", str(ANALYSED)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete"
    return out


def test_real_clip_report_in_a_real_browser(shared_run, browser, tmp_path) -> None:  # noqa: F811
    out = shared_run
    report = load_report(out)
    assert report.run.status == "complete" and not report.issues
    assert max(t.last_frame or 0 for t in report.tracks) < ANALYSED
    matched = [t for t in report.tracks if t.state == MATCHED]
    assert matched and len(matched) < len(report.tracks), \
        "want matched and unmatched tracks in the report"

    page = Page(browser, out / "report.html")  # written by the run itself
    text = page.page.inner_text("body")
    assert EVIDENCE_NOTE in text and "STATUS: COMPLETE" in text
    assert report.run.inputs[0].sha256 in text
    assert page.page.locator("svg.timeline").count() == 1
    assert page.page.locator("svg .bar").count() == len(report.tracks)
    assert page.page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth"), "page overflows sideways"

    if report.events:  # alerts' long fields (candidates, crops, notice) are folded away
        tallest = page.page.eval_on_selector_all(
            "#events tr", "rs => Math.max(...rs.map(r => r.getBoundingClientRect().height))")
        assert tallest < 100, f"an event row is {tallest} px tall"

    assert len(page.cards()) == len(report.tracks)
    widths = page.image_widths()
    n_crops = sum(len(t.crops) for t in report.tracks)
    n_pictures = sum(t.match is not None and t.match.side_by_side is not None
                     for t in report.tracks)
    assert len(widths) == 2 * n_crops + n_pictures and n_pictures >= len(matched)
    assert min(widths) > 0  # every crop and match picture decoded

    shot = tmp_path / "report_shared.png"
    page.page.screenshot(path=str(shot), full_page=True)
    log.warning("report screenshot of the real clip: %s", shot)
    assert shot.stat().st_size > 10_000

    page.select("f-state", "matched")
    cards = page.cards()
    assert len(cards) == len(matched) and all(c["state"] == MATCHED for c in cards)
    assert all(c["badge"].startswith("MATCH: ") for c in cards)
    page.select("f-state", "unmatched")
    cards = page.cards()
    assert len(cards) == len(report.tracks) - len(matched)
    assert all(c["state"] != MATCHED for c in cards)

    page.select("f-state", "")
    for person in report.people():
        page.select("f-person", person)
        want = [t for t in matched if t.match and t.match.decision == person]
        cards = page.cards()
        assert len(cards) == len(want) > 0
        assert all(c["badge"] == f"MATCH: {person}" for c in cards)
    page.select("f-person", "")
    assert len(page.cards()) == len(report.tracks)
    page.check_clean()
