"""Command line: ``cctv-sr run``, ``bench``, ``gallery``, ``eval``, ``models``.

Errors the user can fix are one line on stderr (``cctv-sr: error: ...``) and exit code 1;
Ctrl-C exits 130 after writing what was in flight (0 for a live stream, where Ctrl-C is the
normal way to stop).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cctv_sr import EVIDENCE_NOTE, __version__
from cctv_sr.cli.eval import add_eval_parser, run_eval
from cctv_sr.cli.gallery import add_gallery_parser, run_gallery
from cctv_sr.config import RunConfig, load_config, with_values
from cctv_sr.errors import CctvSrError

log = logging.getLogger("cctv_sr")


def _add_settings(p: argparse.ArgumentParser) -> None:
    """Options that choose the pipeline's settings (shared by run and bench)."""
    p.add_argument("footage", help="video file (mp4, avi, mkv, ...) or rtsp:// URL")
    p.add_argument("--config", type=Path, help="pipeline TOML (e.g. pipelines/cpu_default.toml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set tracker.max_lost_s=2 (repeatable)")
    p.add_argument("--detector", help="mtcnn (default) | yunet | scrfd")
    p.add_argument("--detector-model", help="detector weights file")
    p.add_argument("--sr", help="bicubic (default) | espcn | fsrcnn | lapsrn | lapsrn_x8")
    p.add_argument("--sr-model", help="SR weights file (e.g. ESPCN_x4.pb)")
    p.add_argument("--stride", type=int, help="analyse every Nth frame")
    p.add_argument("--max-fps", type=float, help="analyse at most F frames per second")
    p.add_argument("--max-frames", type=int, help="stop after analysing N frames")
    p.add_argument("--top-k", type=int, help="best crops kept per track (default 5)")
    p.add_argument("--save-all-crops", action="store_true", help="keep every crop of every track")
    p.add_argument("--device", help="cpu | cuda | cuda:N for the detector and SR")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="find, track, align and enhance the faces in footage",
                       description="Process a video file or an rtsp:// stream into OUTDIR.")
    _add_settings(p)
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--stream-id", default="cam0", help="name of this stream in the outputs")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.add_argument("--gallery", type=Path, help="gallery.db: match every track against it")
    p.add_argument("--match-threshold", type=float,
                   help="cosine threshold (default: the embedder's calibrated FAR 1e-3 one)")


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="decode-only vs end-to-end frames/s on one clip",
                       description="Throughput of the pipeline against decoding alone, measured "
                       "side by side in one run (EVAL.md section 4).")
    _add_settings(p)
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list or fetch model weights")
    msub = p.add_subparsers(dest="models_cmd", required=True)
    ls = msub.add_parser("list", help="every known model, its licence and where its file is")
    ls.add_argument("--json", action="store_true")
    fetch = msub.add_parser("fetch", help="download a model's files into the user cache")
    fetch.add_argument("name")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cctv-sr", description="Turn CCTV footage into identifiable faces.",
        epilog=EVIDENCE_NOTE)
    parser.add_argument("--version", action="version", version=f"cctv-sr {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_bench(sub)
    add_gallery_parser(sub)
    add_eval_parser(sub)
    _add_models(sub)
    return parser


def _run_config(args: argparse.Namespace) -> RunConfig:
    """Defaults, then --config, then --set, then the dedicated flags."""
    cfg = load_config(args.config, args.set)
    device = {"device": args.device} if args.device else {}

    def given(*pairs: tuple[str, object]) -> dict[str, object]:
        return {k: v for k, v in pairs if v}

    return with_values(
        cfg,
        source=given(("stride", args.stride), ("max_fps", args.max_fps),
                     ("max_frames", args.max_frames)),
        detector={**given(("name", args.detector), ("model_path", args.detector_model)),
                  **device},
        sr={**given(("name", args.sr), ("model_path", args.sr_model)), **device},
        output=given(("top_k", args.top_k), ("save_all_crops", args.save_all_crops)),
        match=given(("gallery", str(getattr(args, "gallery", None) or "")),
                    ("threshold", getattr(args, "match_threshold", None))),
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from cctv_sr.engine.run import run_footage

    cfg = _run_config(args)
    result = run_footage(args.footage, args.out, cfg, stream_id=args.stream_id,
                         overwrite=args.overwrite, quiet=args.quiet)
    summary: dict[str, Any] = {**asdict(result), "outdir": str(result.outdir)}
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


def _cmd_bench(args: argparse.Namespace) -> int:
    from cctv_sr.evaluate.bench import bench

    result = bench(args.footage, _run_config(args), quiet=args.quiet)
    data = result.to_json()
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"decode-only {result.decode_fps:.2f} frames/s, end-to-end {result.e2e_fps:.2f} "
          f"frames/s, ratio {result.ratio:.4f} ({result.frames_decoded} frames decoded, "
          f"{result.frames_analysed} analysed, peak RSS {result.peak_rss_mb:.0f} MB)")
    for row in result.rows:
        rate = "-" if row.per_s is None else f"{row.per_s:.2f} {row.unit}s/s"
        print(f"  {row.stage:7} {row.items:7d} {row.unit}s  {row.seconds:9.3f} s  {rate}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from cctv_sr.models.weights import describe_models, fetch_model

    if args.models_cmd == "list":
        rows = describe_models()
        if args.json:
            print(json.dumps([asdict(r) for r in rows], indent=2))
        else:
            for r in rows:
                print(f"{r.name:18} {r.task:6} {r.license[:48]:48} {r.location}")
        return 0
    for path in fetch_model(args.name):
        print(path)
    return 0


def _sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="cctv-sr: %(levelname)s: %(message)s")
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "bench":
            return _cmd_bench(args)
        if args.command == "gallery":
            return run_gallery(args)
        if args.command == "eval":
            return run_eval(args)
        return _cmd_models(args)
    except CctvSrError as exc:
        print(f"cctv-sr: error: {exc}", file=sys.stderr)
        if exc.__cause__ is not None and args.verbose:
            log.exception("details")
        return 1
    except KeyboardInterrupt:
        print("cctv-sr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
