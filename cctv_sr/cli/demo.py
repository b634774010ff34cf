"""``cctv-sr demo OUTDIR``: a first run that needs nothing but the installed packages.

Makes a short CCTV-like clip from two public-domain / CC0 face photos shipped in the
scikit-image wheel (:mod:`cctv_sr.data.demo`), enrols one of the two people in a gallery (as
``cctv-sr gallery build`` does), runs the whole pipeline on the clip with that gallery (as
``cctv-sr run --gallery --annotate`` does), writes the HTML report and says who was matched.

OUTDIR afterwards::

    clip.mp4            the demo footage (two people walking; one enrolled, one a stranger)
    people/             the gallery photo(s)
    gallery.db          the gallery built from people/
    results/            the run's outputs (faces.jsonl, matches.jsonl, annotated.mp4, ...)
    results/report.html the report to open
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from cctv_sr import EVIDENCE_NOTE
from cctv_sr.errors import ConfigError, OutputError
from cctv_sr.io.jsonl import read_jsonl


@dataclass(frozen=True)
class TrackVerdict:
    """One line of the demo's matches.jsonl, as the demo prints it."""

    track_id: int
    decision: str | None
    score: float | None  # the decision's (or the best candidate's) combined score
    nearest: str | None  # the best candidate
    reason: str | None


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="make a short demo clip and run everything on it (offline, seconds)",
        description="A first run that needs nothing: makes OUTDIR/clip.mp4 from face photos "
        "shipped in the scikit-image package (NASA's public-domain photo of astronaut Eileen "
        "Collins, enrolled in OUTDIR/gallery.db, and a CC0 photo of a stranger), runs the "
        "pipeline on it with that gallery into OUTDIR/results/ (with annotated.mp4) and writes "
        "OUTDIR/results/report.html. Nothing is downloaded.")
    p.add_argument("outdir", type=Path, metavar="OUTDIR")
    p.add_argument("--overwrite", action="store_true", help="replace a demo already in OUTDIR")
    p.add_argument("--seconds", type=float, default=8.0, help="clip length (default 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bars; only the result")


def read_verdicts(matches_jsonl: Path) -> list[TrackVerdict]:
    """The tracks of a run's matches.jsonl (empty when there is none)."""
    if not matches_jsonl.is_file():
        return []
    out = []
    for row in read_jsonl(matches_jsonl):
        best = row["candidates"][0] if row.get("candidates") else None
        out.append(TrackVerdict(int(row["track_id"]), row.get("decision"),
                                None if best is None else float(best["score"]),
                                None if best is None else str(best["name"]), row.get("reason")))
    return out


def _prepare(outdir: Path, overwrite: bool) -> None:
    """OUTDIR must be new or empty; with --overwrite, whatever is in it stays and the
    demo's own files are replaced."""
    if not outdir.exists():
        return
    if not outdir.is_dir():
        raise ConfigError(f"{outdir}: not a folder")
    if any(outdir.iterdir()) and not overwrite:
        raise OutputError(f"{outdir}: not empty; choose another OUTDIR or pass --overwrite")


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


def run_demo(args: argparse.Namespace) -> int:
    from cctv_sr.config import load_config, with_values
    from cctv_sr.data.demo import make_demo_footage
    from cctv_sr.engine.run import run_footage
    from cctv_sr.identity.gallery import build_gallery
    from cctv_sr.io.annotate import annotate_stream

    outdir: Path = args.outdir
    quiet: bool = args.quiet
    t0 = time.perf_counter()
    _prepare(outdir, args.overwrite)
    footage = make_demo_footage(outdir, seconds=args.seconds)
    who = ", ".join(f"{p.name} ({'enrolled' if p.enrolled else 'not enrolled'})"
                    for p in footage.people)
    _say(quiet, f"1/4 clip: {footage.clip} ({footage.frames} frames at {footage.fps:g} fps, "
                f"{footage.width}x{footage.height}); in it: {who}")
    db = outdir / "gallery.db"
    enrolled = build_gallery(footage.people_dir, db, overwrite=args.overwrite)
    if not enrolled.ok:
        raise ConfigError(f"demo gallery: {enrolled.nothing_enrolled}")
    names = sorted({r.person for r in enrolled.rows if r.in_gallery})
    _say(quiet, f"2/4 gallery: {db} ({', '.join(names)})")
    cfg = with_values(load_config(None, []), match={"gallery": str(db)})
    results = outdir / "results"
    result = run_footage(str(footage.clip), results, cfg, overwrite=True, quiet=quiet)
    _say(quiet, f"3/4 run: {result.faces} faces, {result.tracks} tracks -> {results}")
    video = annotate_stream(str(footage.clip), results, "cam0", quiet=quiet)
    _say(quiet, f"4/4 annotated video: {video.path}")
    verdicts = read_verdicts(results / "matches.jsonl")
    for v in verdicts:
        if v.decision:
            print(f"matched: track {v.track_id} is {v.decision} (score {v.score:.2f})")
        else:
            near = f"; nearest {v.nearest} {v.score:.2f}" if v.nearest is not None else ""
            print(f"no match: track {v.track_id} ({v.reason or 'below the threshold'}{near})")
    if not verdicts:
        print("no tracks were scored")
    print(f"took {time.perf_counter() - t0:.0f} s")
    if result.report is not None:  # the run wrote it (a failure there was a warning)
        print(f"open {result.report}")
    _say(quiet, f"note: {EVIDENCE_NOTE}")
    return 0
