"""``cctv-sr bench``: decode-only vs end-to-end frames/s on one clip, side by side."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cctv_sr.cli.settings import add_settings, run_config


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="decode-only vs end-to-end frames/s on one clip",
                       description="Throughput of the pipeline against decoding alone, measured "
                       "side by side in one run (docs/EVAL.md section 4).")
    add_settings(p)
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")


def run_bench(args: argparse.Namespace) -> int:
    from cctv_sr.evaluate.bench import bench

    result = bench(args.footage, run_config(args), quiet=args.quiet)
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
