"""``cctv-sr train RECIPE.toml``: train one of the project's nets (:mod:`cctv_sr.train`).

    cctv-sr train pipelines/train_lrnet.toml --set run.steps=2000 --out /tmp/runs/lrnet
    cctv-sr train pipelines/train_lrnet.toml --out /tmp/runs/lrnet --resume   # from last.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_train_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "train", help="train an SR net or the LR identity head from a recipe",
        description="Train the net a recipe TOML names (pipelines/train_*.toml). Outputs "
                    "(train.csv, val.csv, val/*.png, ckpt_*.pt, last.pt) go to the run "
                    "directory: --out, run.out_dir, or <cache>/train/runs/<arch> (<arch>_t<T> "
                    "for T > 1).")
    p.add_argument("recipe", type=Path, help="recipe TOML, e.g. pipelines/train_lrnet.toml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set run.steps=500 (repeatable)")
    p.add_argument("--out", type=Path, help="run directory (overrides run.out_dir)")
    p.add_argument("--trainset", type=Path, help="training cache .npz (overrides data.trainset)")
    p.add_argument("--device", help="cpu | cuda | cuda:N (overrides run.device)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in the run directory from its last.pt")
    p.add_argument("--stop-after", type=int, metavar="N",
                   help="stop (with a checkpoint) after N steps of this call")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run_train(args: argparse.Namespace) -> int:
    from cctv_sr.errors import ConfigError
    from cctv_sr.train import load_recipe, train

    overrides = list(args.set)
    if args.out is not None:
        overrides.append(f"run.out_dir={args.out}")
    if args.trainset is not None:
        overrides.append(f"data.trainset={args.trainset}")
    if args.device:
        overrides.append(f"run.device={args.device}")
    if args.stop_after is not None and args.stop_after < 1:
        raise ConfigError(f"--stop-after must be >= 1, got {args.stop_after}")
    recipe = load_recipe(args.recipe, overrides)
    result = train(recipe, resume=args.resume, stop_after=args.stop_after, quiet=args.quiet)
    metrics = {k: round(v, 4) for k, v in result.metrics.items() if "@" not in k}
    summary: dict[str, Any] = {"out_dir": str(result.out_dir), "step": result.step,
               "checkpoint": str(result.checkpoint), "seconds": round(result.seconds, 2),
               "images_per_s": round(result.images_per_s, 2),
               "degrade_share": round(result.degrade_share, 3),
               "wait_share": round(result.wait_share, 3),
               "metrics": metrics}
    if args.json:
        print(json.dumps(summary))
    else:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        print(f"{recipe.arch}: step {result.step} -> {result.checkpoint} "
              f"({result.images_per_s:.1f} images/s); {shown}")
    return 0
