"""report.html: one static, offline page about a run (:func:`write_report`).

Top to bottom: the evidence notice, the run's status (and every problem met reading its
files), the summary (inputs with sha256, models, gallery, counts, timing, events), a timeline
per camera, then one card per track. The summary and timelines are rendered here, every
string escaped; the cards are rendered in the browser by the page's own script from an inline
JSON array (:mod:`cctv_sr.report.assets`), a page of cards at a time, so thousands of tracks
stay light. Images are the crops already in OUTDIR, by relative path, loaded lazily. The page
loads nothing from anywhere else.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from cctv_sr import EVIDENCE_NOTE, __version__
from cctv_sr.errors import OutputError
from cctv_sr.report.assets import CSS, script
from cctv_sr.report.load import load_report
from cctv_sr.report.model import (
    MATCHED,
    NO_MATCH,
    NOT_MATCHABLE,
    NOT_SCORED,
    Event,
    RunReport,
    Stat,
    Track,
)
from cctv_sr.report.timeline import (
    legend_html,
    person_colours,
    timeline_svg,
    track_colour,
    track_span,
)

log = logging.getLogger(__name__)

MAX_EVENTS = 500  # events listed in the table (all of them are ticks on the timelines)
SHORT_FIELD = 60  # event fields longer than this are folded under their names
_STATUS_TEXT = {
    "complete": "The run finished; these are all its results.",
    "running": "run.json still says running: the run is in progress, or it was killed before "
               "it could finish. What is shown is what was written so far.",
    "interrupted": "The run was interrupted (Ctrl-C / stop) before the end of its input; the "
                   "results cover the part that was processed.",
    "stopped": "The live run was stopped; the results cover the time it ran.",
    "failed": "The run FAILED; the results cover what was written before the failure.",
}


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _fmt(v: float | None, unit: str = "", nd: int = 1) -> str:
    if v is None:
        return "\u2013"
    return f"{v:.{nd}f}{unit}"


def _stat(stats: Sequence[Stat], key: str) -> float | None:
    return next((s.value for s in stats if s.key == key), None)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()
           ) -> str:
    """A table of already-escaped cells."""
    th = "".join(f'<th{" class=n" if i in numeric else ""}>{h}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{c}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _status(r: RunReport) -> str:
    status = r.run.status
    cls = "complete" if status == "complete" else "failed" if status == "failed" else "partial"
    text = _STATUS_TEXT.get(status, "Unknown status: the results may be incomplete.")
    parts = [f'<div class="status {cls}" id="status"><b>STATUS: {_e(status.upper())}</b> '
             f"\u2014 {_e(text)}"]
    if r.run.error:
        parts.append(f'<div class="mono">error: {_e(r.run.error)}</div>')
    if r.issues:
        parts.append('<ul class="issues">' + "".join(
            f"<li><span class=mono>{_e(i.path)}</span>: {_e(i.problem)}</li>"
            for i in r.issues) + "</ul>")
    return "".join(parts) + "</div>"


def _tiles(r: RunReport) -> str:
    run = r.run
    tracks = r.tracks
    matched = sum(t.state == MATCHED for t in tracks)
    wall = _stat(run.timing, "wall_s")
    tiles = [("tracks", str(len(tracks))), ("matched tracks", str(matched) if any(
        t.match for t in tracks) else "\u2013"), ("people named", str(len(r.people()))),
        ("faces", _fmt(_stat(run.counts, "faces"), nd=0)),
        ("frames analysed", _fmt(_stat(run.counts, "frames_analysed"), nd=0)),
        ("wall time", _fmt(wall, " s")),
        ("analysed fps", _fmt(_stat(run.timing, "analysed_fps")))]
    return '<div class="tiles">' + "".join(
        f'<div class="tile"><div class="v">{_e(v)}</div><div class="k">{_e(k)}</div></div>'
        for k, v in tiles) + "</div>"


def _inputs(r: RunReport) -> str:
    rows = []
    for i in r.run.inputs:
        size = f"{i.width}x{i.height}" if i.width and i.height else "?"
        sha = i.sha256 or ("live stream: no hash" if i.is_live else "not hashed (run cut short)")
        rows.append([_e(i.stream), f'<span class="mono">{_e(i.url)}</span>',
                     f'<span class="mono">{_e(sha)}</span>',
                     _e(f"{size}, {i.codec}, {_fmt(i.fps, ' fps', 2)}, "
                        f"{_fmt(i.duration_s, ' s')}, {i.frame_count or '?'} frames")])
    return _table(["stream", "url", "sha256", "video"], rows)


def _models(r: RunReport) -> str:
    rows = []
    for m in r.run.models:
        files = "<br>".join(
            f'<span class="mono" title="{_e(f.path)}">{_e(Path(f.path).name)}</span> '
            f'<span class="mono sub" title="{_e(f.sha256 or "")}">sha256 '
            f"{_e((f.sha256 or 'none')[:16])}</span>" for f in m.files) or "\u2013"
        rows.append([_e(m.role), f"<b>{_e(m.name)}</b>", files])
    out = _table(["role", "model", "weights"], rows)
    g = r.run.gallery
    if g is not None:
        out += "<h2 style='margin-top:12px'>Gallery</h2>" + _table(["", ""], [
            ["file", f'<span class="mono">{_e(g.path)}</span>'],
            ["people", _e(g.people if g.people is not None else "?")],
            ["embedder", _e(g.embedder)], ["threshold", _e(_fmt(g.threshold, nd=4))],
            ["rule", _e(g.threshold_rule)]])
    return out


def _numbers(r: RunReport) -> str:
    def rows(stats: Sequence[Stat]) -> list[list[str]]:
        return [[_e(s.key), _e(f"{s.value:g}")] for s in stats]

    run = r.run
    out = _table(["", ""], [["started", _e(run.started_at or "?")],
                            ["finished", _e(run.finished_at or "not yet")],
                            ["cctv-sr", _e(run.version or "?")]])
    for title, stats in (("counts", run.counts), ("matching", run.matching),
                         ("timing (s)", run.timing)):
        if stats:
            out += f"<details><summary>{_e(title)}</summary>" + _table(
                ["", ""], rows(stats), numeric=[1]) + "</details>"
    return out


def _event_details(e: Event) -> str:
    """The short fields inline; long ones (an alert's candidates, best crops, the notice)
    folded under their names, so a run with many alerts keeps one line per event."""
    short = [(k, v) for k, v in e.fields if len(v) <= SHORT_FIELD]
    long = [(k, v) for k, v in e.fields if len(v) > SHORT_FIELD]
    out = _e(", ".join(f"{k}={v}" for k, v in short))
    if long:
        out += (f"<details><summary>{_e(', '.join(k for k, _ in long))}</summary>"
                + "<br>".join(f"{_e(k)}={_e(v)}" for k, v in long) + "</details>")
    return out


def _events(events: Sequence[Event]) -> str:
    rows = [[_e(e.event), _e(e.stream or ""), _e(e.utc or ""),
             _e(_fmt(e.seconds, " s", 2) if e.seconds is not None else ""),
             _event_details(e)] for e in events[:MAX_EVENTS]]
    more = (f'<div class="sub">{len(events) - MAX_EVENTS} more not listed</div>'
            if len(events) > MAX_EVENTS else "")
    return (f'<div class="panel wide" id="events"><h2>Events ({len(events)})</h2>'
            + _table(["event", "stream", "utc", "stream time", "details"], rows) + more
            + "</div>")


def _card_json(k: int, t: Track, fps: float | None, colours: dict[str, str]) -> dict[str, Any]:
    span = track_span(t, fps)
    card: dict[str, Any] = {
        "k": k, "s": t.stream, "id": t.track_id, "st": t.state, "n": t.n_faces,
        "t0": None if span is None else round(span[0], 2),
        "t1": None if span is None else round(span[1], 2), "q": t.best_quality,
        "c": [[c.face_id, c.lr, c.sr] for c in t.crops], "col": track_colour(t, colours),
        "m": None}
    m = t.match
    if m is not None:
        card["m"] = {
            "d": m.decision, "r": m.reason, "ok": m.matchable, "th": m.threshold,
            "mg": m.margin, "ne": m.n_embedded, "lo": m.decision_lr_only,
            "so": m.decision_sr_only, "ho": m.decision_head_only, "sbs": m.side_by_side,
            "cs": [[c.name, c.score, c.score_lr, c.score_sr, c.score_head]
                   for c in m.candidates]}
    return card


def _json_script(element_id: str, value: object) -> str:
    """JSON inside a <script> element: ``<``, ``>`` and ``&`` escaped so no string can end
    the element or start markup."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def _controls(people: Sequence[str], streams: Sequence[str]) -> str:
    states = [("", "all tracks"), ("matched", "matched"), ("unmatched", "unmatched (all)"),
              ("no_match", "no match"), ("not_matchable", "not matchable")]
    opt = "".join(f'<option value="{v}">{_e(t)}</option>' for v, t in states)
    person = '<option value="">any person</option>' + "".join(
        f'<option value="{_e(p)}">{_e(p)}</option>' for p in people)
    cam = ""
    if len(streams) > 1:
        cam = ('<label>camera <select id="f-cam"><option value="">all</option>' + "".join(
            f'<option value="{_e(s)}">{_e(s)}</option>' for s in streams) + "</select></label>")
    return (f'<div class="controls"><label>show <select id="f-state">{opt}</select></label>'
            f'<label>person <select id="f-person">{person}</select></label>{cam}'
            '<label>sort <select id="f-sort"><option value="time">by time</option>'
            '<option value="score">by best score</option><option value="faces">by faces'
            '</option></select></label><span class="count" id="count"></span></div>')


def _pager() -> str:
    return ('<div class="pager"><button class="prev" type="button">\u2039 previous</button>'
            '<span class="pinfo"></span><button class="next" type="button">next \u203a'
            "</button></div>")


def render_html(r: RunReport, title: str) -> str:
    """The whole page for a loaded run (``title``: the OUTDIR's name)."""
    people = r.people()
    colours = person_colours(people)
    index = {(t.stream, t.track_id): k for k, t in enumerate(r.tracks)}
    fps = {s.stream: s.fps for s in r.streams}
    cards = [_card_json(k, t, fps.get(t.stream), colours) for k, t in enumerate(r.tracks)]
    states = [s for s in (NO_MATCH, NOT_MATCHABLE, NOT_SCORED)
              if any(t.state == s for t in r.tracks)]
    cams = []
    for s in r.streams:
        evs = [e for e in r.events if e.stream == s.stream or (e.stream is None
                                                                and len(r.streams) == 1)]
        cams.append(f'<div class="cam" data-stream="{_e(s.stream)}"><h3>{_e(s.stream)} '
                    f'<span class="sub">{len(s.tracks)} tracks'
                    f'{"" if s.scored or r.run.gallery is None else ", not scored"}</span></h3>'
                    f"{timeline_svg(s, index, colours, evs)}</div>")
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return "".join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "img-src 'self' file: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">",
        f"<title>cctv-sr report: {_e(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>cctv-sr run report</h1><div class=sub>{_e(title)} \u00b7 generated {generated} "
        f"by cctv-sr {_e(__version__)}</div>",
        f'<div class="notice" id="notice"><b>Notice.</b> {_e(EVIDENCE_NOTE)}</div>',
        _status(r), _tiles(r),
        '<div class="panels">',
        f'<div class="panel wide"><h2>Inputs</h2>{_inputs(r)}</div>',
        f'<div class="panel"><h2>Models</h2>{_models(r)}</div>',
        f'<div class="panel"><h2>Run</h2>{_numbers(r)}</div>',
        _events(r.events) if r.events else "", "</div>",
        "<h2>Timeline</h2>", legend_html(colours, states), *cams,
        "<h2>Tracks</h2>", _controls(people, [s.stream for s in r.streams]), _pager(),
        '<noscript><div class="empty">The track cards need JavaScript.</div></noscript>',
        '<div class="cards" id="grid"></div>', _pager(),
        _json_script("cards", cards), f"<script>{script()}</script></main></body></html>\n",
    ])


def write_report(outdir: Path) -> Path:
    """Write ``outdir/report.html`` (atomically: a temporary file, then a rename; none is
    left behind on failure) and return its path. Works on finished, interrupted and running
    runs; a missing OUTDIR or run.json is an :class:`~cctv_sr.errors.OutputError`."""
    outdir = Path(outdir)
    report = load_report(outdir)
    page = render_html(report, outdir.resolve().name)
    path = outdir / "report.html"
    tmp = outdir / ".report.html.tmp"
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the report: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    log.info("report: %d tracks, %d problems -> %s", len(report.tracks), len(report.issues),
             path)
    return path
