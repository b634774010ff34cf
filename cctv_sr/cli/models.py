"""``cctv-sr models list`` / ``models fetch``: every known model, its licence and its file."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_models_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list or fetch model weights")
    msub = p.add_subparsers(dest="models_cmd", required=True)
    ls = msub.add_parser("list", help="every known model, its licence and where its file is")
    ls.add_argument("--json", action="store_true")
    fetch = msub.add_parser("fetch", help="download a model's files into the user cache")
    fetch.add_argument("name")


def run_models(args: argparse.Namespace) -> int:
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
