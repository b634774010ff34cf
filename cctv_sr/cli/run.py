"""``cctv-sr run``: footage (a file or an rtsp:// URL) through the pipeline into OUTDIR."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cctv_sr import EVIDENCE_NOTE
from cctv_sr.cli.settings import add_settings, run_config


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="find, track, align and enhance the faces in footage",
                       description="Process a video file or an rtsp:// stream into OUTDIR.")
    add_settings(p)
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--stream-id", default="cam0", help="name of this stream in the outputs")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.add_argument("--gallery", type=Path, help="gallery.db: match every track against it")
    p.add_argument("--match-fpir", type=float,
                   help="share of strangers a run may name (default 0.01); sets the threshold "
                   "from the gallery's size and the embedder's calibration")
    p.add_argument("--match-threshold", type=float,
                   help="fixed cosine threshold, overriding --match-fpir (default: chosen from "
                   "the gallery's size)")


def run_run(args: argparse.Namespace) -> int:
    from cctv_sr.engine.run import run_footage

    cfg = run_config(args)
    result = run_footage(args.footage, args.out, cfg, stream_id=args.stream_id,
                         overwrite=args.overwrite, quiet=args.quiet)
    summary: dict[str, Any] = {
        "outdir": str(result.outdir), "status": result.status,
        "frames_decoded": result.frames_decoded, "frames_analysed": result.frames_analysed,
        "faces": result.faces, "tracks": result.tracks, "wall_s": round(result.wall_s, 3)}
    if args.json:
        print(json.dumps(summary))
    elif not args.quiet:
        print(f"{result.status}: {result.frames_analysed} frames analysed "
              f"({result.frames_decoded} decoded), {result.faces} faces, {result.tracks} tracks "
              f"-> {result.outdir}")
        print(f"note: {EVIDENCE_NOTE}")
    if result.status == "interrupted":
        return 130
    return 0
