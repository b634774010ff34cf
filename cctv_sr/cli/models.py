"""``cctv-sr models list`` / ``models fetch``: every known model, its licence, its use, its file."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import asdict

from cctv_sr.models.catalog import ModelStatus

# (header, width) of the wrapped columns of `models list`; the location comes last, unwrapped,
# so a path can be copied whole
COLUMNS = (("MODEL", 19), ("TASK", 6), ("USE WITH", 34), ("LICENCE", 40))
LOCATION = "FILE"


def add_models_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list or fetch model weights")
    msub = p.add_subparsers(dest="models_cmd", required=True)
    ls = msub.add_parser("list", help="every known model, how to use it, its licence and "
                                      "where its file is")
    ls.add_argument("--json", action="store_true", help="one JSON array of the same fields")
    fetch = msub.add_parser("fetch", help="download a model's files into the user cache")
    fetch.add_argument("name")


def _wrap(text: str, width: int) -> list[str]:
    # break at spaces only: licence words, flags and file names stay whole even when longer
    # than the column
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def format_table(rows: Sequence[ModelStatus]) -> str:
    """The ``models list`` table: a header row, then each model over as many lines as its
    wrapped cells need."""
    def line(cells: Sequence[str]) -> str:
        padded = [f"{cell:<{width}}" for cell, (_, width) in zip(cells, COLUMNS)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    out = [line([*(h for h, _ in COLUMNS), LOCATION])]
    for r in rows:
        cells = [
            _wrap(r.name, COLUMNS[0][1]),
            [r.task],
            [w for use in r.serves for w in _wrap(use.cli, COLUMNS[2][1])] or ["-"],
            _wrap(r.license, COLUMNS[3][1]),
            [r.location],
        ]
        for parts in itertools.zip_longest(*cells, fillvalue=""):
            out.append(line(parts))
    return "\n".join(out)


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()  # inside the caller's BrokenPipeError guard, not at interpreter exit


def run_models(args: argparse.Namespace) -> int:
    from cctv_sr.models.catalog import describe_models, fetch_model

    try:
        if args.models_cmd == "list":
            rows = describe_models()
            if args.json:
                _write(json.dumps([asdict(r) for r in rows], indent=2))
            else:
                _write(format_table(rows))
            return 0
        for path in fetch_model(args.name):
            _write(str(path))
        return 0
    except BrokenPipeError:
        # The reader went away (`cctv-sr models list | head`): not an error. Point stdout at
        # devnull so Python's final flush does not report the closed pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
