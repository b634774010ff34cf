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
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")


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
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    _print("", result)
    if args.versus:
        _print(f"versus {' '.join(args.versus)}: ", other)
        print(f"end-to-end speed-up over the versus settings: {data['speedup']}x")
    return 0
