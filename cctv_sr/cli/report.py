"""``cctv-sr report OUTDIR``: write OUTDIR/report.html, one static offline page about a run
(:mod:`cctv_sr.report`), and print its path.

    cctv-sr report results/            # finished, interrupted or still running: all work

A missing OUTDIR, or one without run.json, is an error line and exit code 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_report_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "report", help="write OUTDIR/report.html about a run's results",
        description="Write OUTDIR/report.html: the run's summary (inputs with sha256, status, "
                    "models, counts, timing), a timeline per camera and one card per track "
                    "(best LR crops, their enhanced versions, the match decision and its "
                    "candidates). Static and offline: open it in any browser. Works on "
                    "interrupted and still-running runs too.")
    p.add_argument("outdir", type=Path, help="the --out folder of a cctv-sr run")
    return p


def run_report(args: argparse.Namespace) -> int:
    from cctv_sr.report import write_report

    path = write_report(args.outdir)
    print(path)
    return 0
