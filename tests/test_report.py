"""report.html (`cctv-sr report OUTDIR`, cctv_sr/report/): built from real runs of the pipeline
(a gallery run of a synthetic clip, one input and two), checked as records, as markup, and in
a real headless browser (Debian's chromium driven by Playwright): no errors, nothing fetched
from outside the machine, the images decode, the filters work."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_identity_e2e import NAMES, _gallery_and_clip

from cctv_sr import EVIDENCE_NOTE
from cctv_sr.cli import main
from cctv_sr.errors import OutputError
from cctv_sr.report import load_report, write_report
from cctv_sr.report.assets import PAGE_SIZE
from cctv_sr.report.load import safe_href
from cctv_sr.report.model import MATCHED

log = logging.getLogger(__name__)
CHROMIUM = Path("/usr/bin/chromium")


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, group_photo) -> tuple[Path, Path]:
    """(a one-input run, a two-input run), both against a gallery of four of the people."""
    tmp = tmp_path_factory.mktemp("report")
    db, clip, _ = _gallery_and_clip(tmp, group_photo, "mobilefacenet")
    second = tmp / "lobby.mp4"
    shutil.copy(clip, second)
    one, two = tmp / "one", tmp / "two"
    assert main(["run", str(clip), "--out", str(one), "--quiet", "--gallery", str(db)]) == 0
    assert main(["run", str(clip), str(second), "--out", str(two), "--quiet",
                 "--gallery", str(db)]) == 0
    return one, two


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / "report.html").unlink(missing_ok=True)
    return dst


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


class Page:
    """A report opened in the browser, with every console message, page error and request."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.errors.append(f"dialog: {d.message}"),
                                          d.dismiss()))
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")

    def select(self, element_id: str, value: str) -> None:
        self.page.select_option(f"#{element_id}", value)

    def cards(self) -> list[dict[str, str]]:
        return self.page.eval_on_selector_all(
            "#grid .card", "cs => cs.map(c => ({state: c.dataset.state, "
            "badge: c.querySelector('.badge').textContent, title: c.querySelector('h3')"
            ".textContent}))")

    def image_widths(self) -> list[int]:
        """naturalWidth of every image on the page, after loading the lazy ones."""
        return self.page.evaluate(
            "async () => { const im = Array.from(document.images);"
            " await Promise.all(im.map(i => { i.loading = 'eager'; return i.decode()"
            ".catch(() => null); })); return im.map(i => i.naturalWidth); }")

    def check_clean(self) -> None:
        assert self.errors == []
        assert self.requests and all(u.startswith("file://") for u in self.requests), \
            [u for u in self.requests if not u.startswith("file://")]


def test_load_reads_every_stream_track_and_match(runs) -> None:
    _, two = runs
    report = load_report(two)
    assert report.run.status == "complete" and not report.issues
    assert [i.stream for i in report.run.inputs] == [s.stream for s in report.streams]
    assert {m.role for m in report.run.models} >= {"detector", "sr", "embedder"}
    assert len(report.streams) == 2
    for stream in report.streams:
        assert stream.folder == stream.stream and stream.scored
        lines = read(two / stream.folder / "tracks.jsonl")
        matches = read(two / stream.folder / "matches.jsonl")
        assert len(stream.tracks) == len(lines) >= 3
        assert sum(t.match is not None for t in stream.tracks) == len(matches)
        for t in stream.tracks:
            assert t.crops and all(c.lr and c.sr for c in t.crops)
            for c in t.crops:
                assert c.lr is not None and c.lr.startswith(stream.folder + "/")
                assert (two / c.lr).is_file()
    matched = [t for t in report.tracks if t.state == MATCHED]
    assert matched and report.people() and set(report.people()) <= set(NAMES)
    assert all(t.match and t.match.side_by_side for t in matched)


def test_page_in_a_real_browser(runs, browser, tmp_path) -> None:
    _, two = runs
    report = load_report(two)
    path = write_report(two)
    assert path == two / "report.html" and not (two / ".report.html.tmp").exists()
    page = Page(browser, path)
    text = page.page.inner_text("body")
    assert EVIDENCE_NOTE in text and "STATUS: COMPLETE" in text
    for i in report.run.inputs:
        assert i.sha256 and i.sha256 in text and i.url in text
    assert "mobilefacenet" in text and "yunet" in text
    assert page.page.locator("svg.timeline").count() == 2
    assert page.page.locator("svg .bar").count() == len(report.tracks)

    cards = page.cards()
    assert len(cards) == len(report.tracks)
    widths = page.image_widths()
    n_crops = sum(len(t.crops) for t in report.tracks)
    assert len(widths) == 2 * n_crops + sum(t.match is not None and t.match.side_by_side
                                            is not None for t in report.tracks)
    assert min(widths) > 0  # every crop and match picture decoded

    shot = tmp_path / "report.png"
    page.page.screenshot(path=str(shot), full_page=True)
    log.warning("report screenshot: %s", shot)
    assert shot.stat().st_size > 10_000

    matched = [t for t in report.tracks if t.state == MATCHED]
    page.select("f-state", "matched")
    cards = page.cards()
    assert len(cards) == len(matched) > 0 and all(c["state"] == MATCHED for c in cards)
    page.select("f-state", "unmatched")
    cards = page.cards()
    assert len(cards) == len(report.tracks) - len(matched)
    assert all(c["state"] != MATCHED for c in cards)

    page.select("f-state", "")
    person = report.people()[0]
    page.select("f-person", person)
    cards = page.cards()
    want = [t for t in matched if t.match and t.match.decision == person]
    assert len(cards) == len(want) > 0 and all(c["badge"] == f"MATCH: {person}" for c in cards)
    dimmed = page.page.locator("svg .bar.off").count()
    assert dimmed == len(report.tracks) - len(want)

    page.select("f-person", "")
    cam = report.streams[1].stream
    page.select("f-cam", cam)
    cards = page.cards()
    assert len(cards) == len(report.streams[1].tracks)
    assert all(c["title"].startswith(f"{cam} ") for c in cards)
    page.check_clean()


def test_thousands_of_tracks_render_one_page_of_cards(runs, browser, tmp_path) -> None:
    one, _ = runs
    out = copy_run(one, tmp_path / "big")
    lines = read(out / "tracks.jsonl")
    (out / "matches.jsonl").unlink()  # its tracks would come back from their match lines
    with open(out / "tracks.jsonl", "w") as f:
        for i in range(3000):
            line = dict(lines[i % len(lines)], track_id=10_000 + i)
            line["first_seconds"] = line["first_seconds"] + i * 0.5
            line["last_seconds"] = line["last_seconds"] + i * 0.5
            f.write(json.dumps(line) + "\n")
    path = write_report(out)
    assert path.stat().st_size < 6_000_000
    page = Page(browser, path)
    assert len(page.cards()) == PAGE_SIZE
    assert page.page.inner_text("#count") == "3000 of 3000 tracks"
    page.page.locator(".pager .next").first.click()
    second = load_report(out).tracks[PAGE_SIZE]  # cards are in time order
    assert page.cards()[0]["title"] == f"cam0 \u00b7 track {second.track_id}"
    page.page.locator("svg .bar").nth(2000).click()  # a bar jumps to its card's page
    assert page.page.locator("#card-2000").is_visible()
    page.check_clean()


def test_strings_and_paths_from_the_files_are_not_trusted(runs, tmp_path) -> None:
    one, _ = runs
    out = copy_run(one, tmp_path / "hostile")
    evil = '<img src=x onerror="alert(1)"></script><b>'
    tracks = read(out / "tracks.jsonl")
    tracks[0]["best_crops"][0]["lr"] = "../../../etc/passwd.png"
    tracks[0]["best_crops"][0]["sr"] = "/etc/hosts"
    tracks[0]["stream"] = evil
    matches = read(out / "matches.jsonl")
    matches[-1]["candidates"][0]["name"] = evil
    matches[-1]["side_by_side"] = "tracks/../../outside.png"
    (out / "tracks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tracks))
    (out / "matches.jsonl").write_text("".join(json.dumps(m) + "\n" for m in matches))
    run = json.loads((out / "run.json").read_text())
    run["input"]["url"] = run["inputs"][0]["url"] = evil
    (out / "run.json").write_text(json.dumps(run))
    (tmp_path / "outside.png").write_bytes((one / tracks[1]["best_crops"][0]["lr"]).read_bytes())

    report = load_report(out)
    first = next(t for t in report.tracks if t.stream == evil)
    assert first.crops[0].lr is None and first.crops[0].sr is None
    assert all(t.match is None or t.match.side_by_side is None or ".." not in
               t.match.side_by_side for t in report.tracks)
    html = write_report(out).read_text()
    assert "<img src=x" not in html and "</script><b>" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html  # the url, escaped
    assert safe_href(out.resolve(), "", "tracks") is None  # a folder, not an image
    assert safe_href(out.resolve(), "", "run.json") is None
    assert safe_href(out.resolve(), "", tracks[1]["best_crops"][0]["lr"]) is not None


def test_report_of_an_interrupted_run(runs, tmp_path, capsys) -> None:
    """run.json still `running`, tracks.jsonl cut mid-line, matches.jsonl never written."""
    one, _ = runs
    out = copy_run(one, tmp_path / "cut")
    run = json.loads((out / "run.json").read_text())
    run.update(status="running", finished_at=None)
    (out / "run.json").write_text(json.dumps(run))
    text = (out / "tracks.jsonl").read_text()
    n_lines = text.count("\n")
    (out / "tracks.jsonl").write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])
    (out / "matches.jsonl").unlink()

    assert main(["report", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.html")
    report = load_report(out)
    assert report.run.status == "running" and report.run.partial
    assert len(report.tracks) == n_lines - 1
    problems = " ".join(i.problem for i in report.issues)
    assert "cut short" in problems and "matches.jsonl" in " ".join(i.path for i in report.issues)
    html = (out / "report.html").read_text()
    assert "STATUS: RUNNING" in html and "cut short" in html
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_running_multi_input_run_and_its_events(runs, tmp_path) -> None:
    """A multi-input run that has not finished has no `streams` in run.json yet; events.jsonl
    lines of any kind are listed and ticked on their camera's timeline."""
    _, two = runs
    out = copy_run(two, tmp_path / "live")
    run = json.loads((out / "run.json").read_text())
    run.update(status="running", streams=None)
    (out / "run.json").write_text(json.dumps(run))
    stream = run["inputs"][1]["stream"]
    events = [{"event": "reconnect", "utc": "2025-01-01T00:00:01+00:00", "seconds": 1.5,
               "stream": stream, "attempt": 2},
              {"event": "some_future_kind", "utc": "2025-01-01T00:00:02+00:00",
               "payload": {"a": [1, 2]}}]
    (out / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    report = load_report(out)
    assert [s.stream for s in report.streams] == [i["stream"] for i in run["inputs"]]
    assert all(s.tracks for s in report.streams)
    assert [e.event for e in report.events] == ["reconnect", "some_future_kind"]
    assert report.events[0].fields == (("attempt", "2"),)
    html = write_report(out).read_text()
    assert "some_future_kind" in html and 'class="event"' in html and "Events (2)" in html


def test_write_report_leaves_no_temporary_file_on_failure(runs, tmp_path, monkeypatch) -> None:
    one, _ = runs
    out = copy_run(one, tmp_path / "ro")

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OutputError, match="No space left"):
        write_report(out)
    assert not (out / "report.html").exists() and not (out / ".report.html.tmp").exists()


def test_report_cli_errors(tmp_path, capsys) -> None:
    assert main(["report", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such output directory" in err[0]
    assert err[0].startswith("cctv-sr: error: ")
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no run.json" in err[0]
    assert not (tmp_path / "report.html").exists()
