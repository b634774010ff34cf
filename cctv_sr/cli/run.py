"""``cctv-sr run``: footage (files, rtsp:// URLs, folders of clips) through the pipeline
into OUTDIR."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cctv_sr import EVIDENCE_NOTE
from cctv_sr.cli.settings import add_settings, run_config
from cctv_sr.identity.sink import MatchedTrack

#: exit status of a run whose file ended before its container said it would
EXIT_TRUNCATED = 3


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="find, track, align and enhance the faces in footage",
                       description="Process video files, rtsp:// streams or folders of "
                       "clips into OUTDIR. Several inputs run at once (one decode thread each, "
                       "one analysis and one accelerator stage for all): each stream writes "
                       "OUTDIR/<name>/ (named after its file), with one OUTDIR/run.json.")
    p.add_argument("footage", nargs="+",
                   help="video file (mp4, avi, mkv, ...), rtsp:// URL or a folder of clips")
    add_settings(p)
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--stream-id", help="name of the stream in the outputs (one input only; "
                   "default cam0)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.add_argument("--gallery", type=Path, help="gallery.db: match every track against it")
    p.add_argument("--alert-webhook", metavar="URL",
                   help="POST each watchlist alert (the events.jsonl line, as JSON) to URL as it "
                   "happens; retried with backoff, never blocking the run")
    p.add_argument("--match-fpir", type=float,
                   help="share of strangers a run may name (default 0.01); sets the threshold "
                   "from the gallery's size and the embedder's calibration")
    p.add_argument("--match-threshold", type=float,
                   help="fixed cosine threshold, overriding --match-fpir (default: chosen from "
                   "the gallery's size)")
    p.add_argument("--annotate", action="store_true",
                   help="after the run, write OUTDIR/annotated.mp4 (OUTDIR/<stream>/ for several "
                   "inputs): the footage with each face's box, track id and matched name. A "
                   "post-pass that decodes each file again: rtsp:// inputs are skipped with a "
                   "warning")


def run_run(args: argparse.Namespace) -> int:
    from cctv_sr.engine.run import run_inputs
    from cctv_sr.errors import ConfigError
    from cctv_sr.io.container import is_live_url
    from cctv_sr.io.sources import expand_inputs
    from cctv_sr.memory import tune_malloc

    cfg = run_config(args)
    inputs = expand_inputs(args.footage)
    if any(is_live_url(i) for i in inputs):
        tune_malloc()  # hours of live footage with a flat RSS (cctv_sr/memory.py)
    if len(inputs) > 1 and args.stream_id:
        raise ConfigError("--stream-id names the one input of a run; with several inputs each "
                          "stream is named after its file")
    result = run_inputs(inputs, args.out, cfg,
                        stream_ids=[args.stream_id or "cam0"] if len(inputs) == 1 else None,
                        overwrite=args.overwrite, quiet=args.quiet)
    if args.annotate and result.status != "interrupted":
        from cctv_sr.io.annotate import annotate_inputs

        ids = [args.stream_id] if args.stream_id else None
        for video in annotate_inputs(inputs, args.out, ids, quiet=args.quiet):
            if not args.quiet and not args.json:
                print(f"annotated: {video.path}")
    summary: dict[str, Any] = {
        "outdir": str(result.outdir), "status": result.status,
        "frames_decoded": result.frames_decoded, "frames_analysed": result.frames_analysed,
        "faces": result.faces, "tracks": result.tracks, "wall_s": round(result.wall_s, 3),
        "matched": [asdict(m) for m in result.matched],
        "report": None if result.report is None else str(result.report)}
    # --quiet silences progress, never the result: who was matched, where and when
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{result.status}: {result.frames_analysed} frames analysed "
              f"({result.frames_decoded} decoded), {result.faces} faces, {result.tracks} tracks "
              f"-> {result.outdir}")
        if cfg.match.gallery:
            for line in matched_lines(result.matched) or ["matched: no one on the watchlist"]:
                print(line)
        if result.report is not None:
            print(f"report: {result.report}")
        print(f"note: {EVIDENCE_NOTE}")
    if result.status == "interrupted":
        return 130
    if result.status == "truncated":
        return EXIT_TRUNCATED
    return 0


def matched_lines(matched: tuple[MatchedTrack, ...]) -> list[str]:
    """One line per person named: the tracks and times they were seen in."""
    by_person: dict[str, list[MatchedTrack]] = {}
    for m in matched:
        by_person.setdefault(m.person, []).append(m)
    lines = []
    for person, tracks in sorted(by_person.items()):
        seen = ", ".join(
            f"{m.stream} t{m.track_id} {_clock(m.first_seconds)}-{_clock(m.last_seconds)}"
            + (f" ({m.first_utc})" if m.first_utc else "") for m in tracks)
        lines.append(f"matched {person}: {seen}")
    return lines


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, rest = divmod(max(seconds, 0.0), 60.0)
    return f"{int(minutes)}:{rest:04.1f}"
