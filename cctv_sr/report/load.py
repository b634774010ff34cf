"""Reading a run's OUTDIR (finished, interrupted or still running) into a :class:`RunReport`.

Tolerant by design: run.json may say ``running``; the last line of a JSONL file may be cut
short; matches.jsonl or events.jsonl may be missing; a multi-input run that has not finished
has no ``streams`` in run.json yet (its stream folders are named after its inputs' streams).
Whatever cannot be read is skipped and recorded as an :class:`Issue`, never guessed. Only an
OUTDIR without a readable run.json is an error.

Paths in the files are never trusted: :func:`safe_href` keeps a path only when it is relative,
stays inside OUTDIR (symlinks resolved), names an existing image file, and has no ``..``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from cctv_sr.errors import OutputError
from cctv_sr.io.jsonl import read_jsonl as jsonl_objects
from cctv_sr.report.model import (
    Candidate,
    Crop,
    Event,
    GalleryInfo,
    InputInfo,
    Issue,
    Match,
    ModelFile,
    ModelInfo,
    RunInfo,
    RunReport,
    Stat,
    StreamData,
    Track,
)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_EVENT_KEYS = ("event", "utc", "seconds", "stream")


# typed access to parsed JSON ---------------------------------------------------------------
def _str(d: dict[str, Any], key: str) -> str | None:
    v = d.get(key)
    return v if isinstance(v, str) else None


def _float(d: dict[str, Any], key: str) -> float | None:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _int(d: dict[str, Any], key: str) -> int | None:
    v = d.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _obj(d: dict[str, Any], key: str) -> dict[str, Any]:
    v = d.get(key)
    return v if isinstance(v, dict) else {}


def _list(d: dict[str, Any], key: str) -> list[Any]:
    v = d.get(key)
    return v if isinstance(v, list) else []


def _stats(d: dict[str, Any]) -> tuple[Stat, ...]:
    return tuple(Stat(k, float(v)) for k, v in d.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool))


# files ------------------------------------------------------------------------------------
def read_jsonl(path: Path, issues: list[Issue], label: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file; a cut-short last line or a broken line is skipped
    and recorded in ``issues`` (``label``: the path as the report names it)."""
    def bad(number: int, last: bool) -> None:
        if last:  # no newline after it: the writer was stopped mid-line
            issues.append(Issue(label, f"last line ({number}) is cut short and was skipped "
                                       "(the run stopped while writing it)"))
        else:
            issues.append(Issue(label, f"line {number} is not a JSON object and was skipped"))

    try:
        return jsonl_objects(path, bad)
    except OutputError as exc:
        issues.append(Issue(label, str(exc).removeprefix(f"{path}: ")))
        return []


def safe_href(root: Path, folder: str, rel: object) -> str | None:
    """``folder/rel`` as a URL-quoted relative href from ``root`` (OUTDIR), or ``None`` when
    ``rel`` is not a relative path to an existing image file inside ``root``."""
    if not isinstance(rel, str) or not rel or "\\" in rel or ":" in rel or "\x00" in rel:
        return None
    joined = PurePosixPath(folder, rel) if folder else PurePosixPath(rel)
    if joined.is_absolute() or any(p in ("..", "") for p in joined.parts):
        return None
    if joined.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    try:
        target = (root / Path(*joined.parts)).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return None
    except OSError:
        return None
    return quote(joined.as_posix())


def _safe_folder(name: object) -> str | None:
    """A stream folder: one plain path component."""
    if not isinstance(name, str) or not name or name in (".", ".."):
        return None
    if any(c in name for c in "/\\:\x00"):
        return None
    return name


# run.json ---------------------------------------------------------------------------------
def _input(d: dict[str, Any]) -> InputInfo:
    return InputInfo(
        stream=_str(d, "stream") or "cam0", url=_str(d, "url") or "?", sha256=_str(d, "sha256"),
        is_live=d.get("is_live") is True, width=_int(d, "width"), height=_int(d, "height"),
        fps=_float(d, "fps"), codec=_str(d, "codec") or "?", duration_s=_float(d, "duration_s"),
        frame_count=_int(d, "frame_count"))


def _models(d: dict[str, Any]) -> tuple[ModelInfo, ...]:
    out = []
    for role, m in d.items():
        if not isinstance(m, dict):
            continue
        files = tuple(ModelFile(_str(f, "path") or "?", _str(f, "sha256"))
                      for f in _list(m, "files") if isinstance(f, dict))
        out.append(ModelInfo(str(role), _str(m, "name") or "?", _str(m, "target") or "", files))
    return tuple(out)


def _gallery(d: dict[str, Any]) -> GalleryInfo | None:
    if not d:
        return None
    emb = _obj(d, "embedder")
    return GalleryInfo(path=_str(d, "path") or "?", people=_int(d, "people"),
                       embedder=_str(emb, "name") or "?", threshold=_float(d, "threshold"),
                       threshold_rule=_str(d, "threshold_rule") or "")


def read_run_json(outdir: Path) -> dict[str, Any]:
    """run.json's object; a missing OUTDIR or run.json is an :class:`OutputError`."""
    if not outdir.is_dir():
        raise OutputError(f"{outdir}: no such output directory")
    path = outdir / "run.json"
    if not path.is_file():
        raise OutputError(f"{outdir}: no run.json here (not the output directory of a "
                          "cctv-sr run)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OutputError(f"{path}: not a JSON object")
    return data


def run_info(data: dict[str, Any]) -> RunInfo:
    inputs = [_input(i) for i in _list(data, "inputs") if isinstance(i, dict)]
    if not inputs and _obj(data, "input"):
        inputs = [_input(_obj(data, "input"))]
    return RunInfo(
        status=_str(data, "status") or "unknown", error=_str(data, "error"),
        started_at=_str(data, "started_at"), finished_at=_str(data, "finished_at"),
        version=_str(_obj(data, "versions"), "cctv-sr"), inputs=tuple(inputs),
        models=_models(_obj(data, "models")), gallery=_gallery(_obj(data, "gallery")),
        counts=_stats(_obj(data, "counts")), matching=_stats(_obj(data, "matching")),
        timing=_stats(_obj(data, "timing")))


# tracks and matches -----------------------------------------------------------------------
def _crops(root: Path, folder: str, refs: list[Any]) -> tuple[Crop, ...]:
    return tuple(Crop(str(r.get("face_id", "?")), safe_href(root, folder, r.get("lr")),
                      safe_href(root, folder, r.get("sr")))
                 for r in refs if isinstance(r, dict))


def _match(root: Path, folder: str, m: dict[str, Any]) -> Match:
    gate = _obj(m, "gate")
    cands = tuple(Candidate(_str(c, "name") or "?", _float(c, "score"), _float(c, "score_lr"),
                            _float(c, "score_sr"), _float(c, "score_head"))
                  for c in _list(m, "candidates") if isinstance(c, dict))
    return Match(
        decision=_str(m, "decision"), reason=_str(m, "reason"),
        matchable=gate.get("matchable") is not False, threshold=_float(m, "threshold"),
        margin=_float(m, "margin"), n_embedded=_int(m, "n_embedded"),
        n_usable=_int(gate, "n_usable"), decision_lr_only=_str(m, "decision_lr_only"),
        decision_sr_only=_str(m, "decision_sr_only"),
        decision_head_only=_str(m, "decision_head_only"), candidates=cands,
        side_by_side=safe_href(root, folder, m.get("side_by_side")))


def _track(root: Path, folder: str, t: dict[str, Any], match: Match | None) -> Track | None:
    stream, tid = _str(t, "stream"), _int(t, "track_id")
    if stream is None or tid is None:
        return None
    return Track(
        stream=stream, track_id=tid, first_frame=_int(t, "first_frame"),
        last_frame=_int(t, "last_frame"), first_seconds=_float(t, "first_seconds"),
        last_seconds=_float(t, "last_seconds"), n_faces=_int(t, "n_faces") or 0,
        best_quality=_float(t, "best_quality"),
        crops=_crops(root, folder, _list(t, "best_crops")), match=match)


def _sort_key(t: Track) -> tuple[float, int]:
    start = t.first_seconds if t.first_seconds is not None else float(t.first_frame or 0)
    return start, t.track_id


def read_stream(root: Path, folder: str, stream: str, fps: float | None, gallery: bool,
                issues: list[Issue]) -> StreamData:
    """One stream's tracks.jsonl and matches.jsonl (``folder``: relative to OUTDIR)."""
    base = root / folder if folder else root
    prefix = f"{folder}/" if folder else ""
    tracks_path, matches_path = base / "tracks.jsonl", base / "matches.jsonl"
    track_lines: list[dict[str, Any]] = []
    if tracks_path.is_file():
        track_lines = read_jsonl(tracks_path, issues, prefix + "tracks.jsonl")
    else:
        issues.append(Issue(prefix + "tracks.jsonl", "missing: no tracks were written"))
    scored = matches_path.is_file()
    matches: dict[tuple[str, int], dict[str, Any]] = {}
    if scored:
        for m in read_jsonl(matches_path, issues, prefix + "matches.jsonl"):
            key = (_str(m, "stream"), _int(m, "track_id"))
            if key[0] is not None and key[1] is not None:
                matches[(key[0], key[1])] = m
    elif gallery:
        issues.append(Issue(prefix + "matches.jsonl", "missing although the run had a "
                                                      "gallery: no decisions to show"))
    tracks: list[Track] = []
    seen: set[tuple[str, int]] = set()
    for t in track_lines:
        key = (_str(t, "stream") or "", _int(t, "track_id") or -1)
        found = matches.get(key)
        track = _track(root, folder, t, None if found is None else _match(root, folder, found))
        if track is None:
            issues.append(Issue(prefix + "tracks.jsonl", "a line without stream / track_id "
                                                         "was skipped"))
        elif key not in seen:
            seen.add(key)
            tracks.append(track)
    for key, m in matches.items():  # scored, but its tracks.jsonl line was never written
        if key not in seen:
            track = _track(root, folder, m, _match(root, folder, m))
            if track is not None:
                tracks.append(track)
    tracks.sort(key=_sort_key)
    return StreamData(stream, folder, fps, tuple(tracks), scored)


# events -----------------------------------------------------------------------------------
def _event(d: dict[str, Any]) -> Event:
    fields = []
    for k, v in d.items():
        if k in _EVENT_KEYS:
            continue
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        fields.append((str(k), text if len(text) <= 200 else text[:199] + "\u2026"))
    name = d.get("event")
    return Event(event=name if isinstance(name, str) else json.dumps(name),
                 utc=_str(d, "utc"), seconds=_float(d, "seconds"), stream=_str(d, "stream"),
                 fields=tuple(fields))


def read_events(root: Path, folders: list[str], issues: list[Issue]) -> tuple[Event, ...]:
    """events.jsonl of OUTDIR and of each stream folder, where present, in file order."""
    out: list[Event] = []
    for folder in dict.fromkeys(["", *folders]):
        path = (root / folder if folder else root) / "events.jsonl"
        if path.is_file():
            label = f"{folder}/events.jsonl" if folder else "events.jsonl"
            out.extend(_event(d) for d in read_jsonl(path, issues, label))
    return tuple(out)


# the whole OUTDIR -------------------------------------------------------------------------
def load_report(outdir: Path) -> RunReport:
    """Everything the report shows about the run in ``outdir``."""
    data = read_run_json(Path(outdir))
    root = Path(outdir).resolve()
    run = run_info(data)
    issues: list[Issue] = []
    fps = {i.stream: i.fps for i in run.inputs}
    streams_obj = _obj(data, "streams")
    pairs: list[tuple[str, str]] = []  # (stream, folder)
    if streams_obj:
        for name, rec in streams_obj.items():
            folder = _safe_folder(rec.get("folder") if isinstance(rec, dict) else None)
            if folder is None:
                issues.append(Issue("run.json", f"stream {name!r}: unsafe or missing folder, "
                                                "skipped"))
            else:
                pairs.append((str(name), folder))
    elif len(run.inputs) > 1:  # not finished yet: folders are the stream ids
        for i in run.inputs:
            folder = _safe_folder(i.stream)
            if folder is not None:
                pairs.append((i.stream, folder))
    else:
        pairs.append((run.inputs[0].stream if run.inputs else "cam0", ""))
    streams = []
    for name, folder in pairs:
        if folder and not (root / folder).is_dir():
            issues.append(Issue(folder + "/", f"stream {name}: folder missing"))
            continue
        streams.append(read_stream(root, folder, name, fps.get(name), run.gallery is not None,
                                   issues))
    events = read_events(root, [f for _, f in pairs], issues)
    for issue in issues:
        log.info("report: %s: %s", issue.path, issue.problem)
    return RunReport(run, tuple(streams), events, tuple(issues))
