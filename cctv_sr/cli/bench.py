"""``cctv-sr bench``: decode-only vs end-to-end frames/s on one clip, side by side."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from cctv_sr.cli.settings import add_settings, run_config
from cctv_sr.config import apply_mapping, parse_override, validate

if TYPE_CHECKING:
    from cctv_sr.evaluate.bench import BenchResult


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="decode-only vs end-to-end frames/s on one clip",
                       description="Throughput of the pipeline against decoding alone, measured "
                       "side by side in one run (docs/EVAL.md section 4).")
    p.add_argument("footage", help="video file (mp4, avi, mkv, ...) or rtsp:// URL")
    add_settings(p)
    p.add_argument("--versus", action="append", default=[], metavar="KEY=VALUE",
                   help="also bench the same clip, in the same run, with these settings on top "
                        "(repeatable), e.g. --versus scan.mode=exhaustive "
                        "--versus detector.name=mtcnn for the every-frame MTCNN pipeline")
    p.add_argument("--streams", type=_counts, metavar="LIST",
                   help="also: aggregate frames/s of N concurrent copies of the clip in one "
                   "run, e.g. 1,4,16 (docs/BENCH.md)")
    p.add_argument("--faces-per-frame", type=_counts, metavar="LIST",
                   help="also: synthetic clips with N faces on screen in every frame, e.g. "
                   "1,8,32 (face photos from --faces)")
    p.add_argument("--faces", type=Path, metavar="ROOT",
                   help="LFW-style tree of face photos for --faces-per-frame")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")


def _counts(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts like 1,4,16, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected counts >= 1, got {text!r}")
    return values


def _print(label: str, result: BenchResult) -> None:
    print(f"{label}decode-only {result.decode_fps:.2f} frames/s, end-to-end "
          f"{result.e2e_fps:.2f} frames/s, ratio {result.ratio:.4f} ({result.frames_decoded} "
          f"frames decoded, {result.frames_analysed} analysed, peak RSS "
          f"{result.peak_rss_mb:.0f} MB)")
    for row in result.rows:
        rate = "-" if row.per_s is None else f"{row.per_s:.2f} {row.unit}s/s"
        print(f"  {row.stage:7} {row.items:7d} {row.unit}s  {row.seconds:9.3f} s  {rate}")


def run_bench(args: argparse.Namespace) -> int:
    from cctv_sr.evaluate.bench import bench

    cfg = run_config(args)
    result = bench(args.footage, cfg, quiet=args.quiet)
    data = result.to_json()
    if args.versus:
        other_cfg = cfg
        for text in args.versus:
            other_cfg = apply_mapping(other_cfg, parse_override(text), "")
        validate(other_cfg)
        other = bench(args.footage, other_cfg, quiet=args.quiet)
        data["versus"] = {"settings": list(args.versus), **other.to_json()}
        data["speedup"] = round(result.e2e_fps / max(other.e2e_fps, 1e-9), 3)
    scale_rows = _scaling(args, cfg)
    if scale_rows:
        data["rows"] = [*data["rows"], *(r.to_json() for r in scale_rows)]  # type: ignore[misc]
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    _print("", result)
    if args.versus:
        _print(f"versus {' '.join(args.versus)}: ", other)
        print(f"end-to-end speed-up over the versus settings: {data['speedup']}x")
    if scale_rows:
        from cctv_sr.evaluate.bench_scale import table

        for kind in ("streams", "faces"):
            lines = table([r for r in scale_rows if r.kind == kind])
            if lines:
                print()
                print("\n".join(lines))
    return 0


def _scaling(args: argparse.Namespace, cfg: object) -> list:
    """The --streams and --faces-per-frame tables (empty when neither is asked for)."""
    from cctv_sr.errors import ConfigError
    from cctv_sr.evaluate.bench_scale import bench_faces, bench_streams

    rows: list = []
    if args.streams:
        rows += bench_streams(args.footage, cfg, args.streams, quiet=args.quiet)  # type: ignore[arg-type]
    if args.faces_per_frame:
        if args.faces is None:
            raise ConfigError("bench --faces-per-frame needs --faces ROOT (an LFW-style tree "
                              "of face photos)")
        from cctv_sr.data.scene import LFW_FACE_FRAC, lfw_patches

        patches = lfw_patches(args.faces, min(max(args.faces_per_frame), 64), seed=0)
        rows += bench_faces(patches, cfg, args.faces_per_frame, quiet=args.quiet,  # type: ignore[arg-type]
                            face_frac=LFW_FACE_FRAC)
    return rows
