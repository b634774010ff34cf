"""``cctv-sr export CKPT --out FILE``: a training checkpoint as a ship-ready file
(:mod:`cctv_sr.train.export`).

    cctv-sr export runs/lrnet/last.pt --out lrnet.onnx            # ONNX, parity-checked
    cctv-sr export runs/lrnet/last.pt --out lrnet.pt              # slim weights (EMA only)
    cctv-sr export runs/ipunet/last.pt --out ipunet.pt --half     # float16 slim weights
    cctv-sr export runs/lrhead/last.pt --out head.bin --format pt --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

FORMATS = {".onnx": "onnx", ".pt": "pt"}


def add_export_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "export", help="export a training checkpoint as ONNX or slim weights",
        description="Write the EMA network of a cctv-sr train checkpoint as an ONNX file (its "
                    "ModelSpec in the metadata, checked against torch with onnxruntime) or as "
                    "a slim .pt (no optimizer or RNG state; loads wherever a checkpoint does).")
    p.add_argument("checkpoint", type=Path, help="training checkpoint, e.g. RUN_DIR/last.pt")
    p.add_argument("--out", type=Path, required=True, help="output file (.onnx or .pt)")
    p.add_argument("--format", choices=sorted(set(FORMATS.values())),
                   help="onnx | pt (default: from the --out suffix)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--half", action="store_true",
                   help="slim .pt only: store the weights as float16 (half the size; they load "
                        "back into float32)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _format(args: argparse.Namespace) -> str:
    from cctv_sr.errors import ConfigError

    found = FORMATS.get(args.out.suffix.lower())
    if args.format:
        if found is not None and found != args.format:
            raise ConfigError(f"--out {args.out} is a .{found} name but --format is "
                              f"{args.format}; make them agree (or drop --format)")
        return str(args.format)
    if found is None:
        raise ConfigError(f"--out {args.out}: cannot tell the format from the suffix; use .onnx "
                          "or .pt, or --format onnx|pt")
    return found


def run_export(args: argparse.Namespace) -> int:
    from cctv_sr.archs import HEAD_ARCHS
    from cctv_sr.errors import ConfigError
    from cctv_sr.train.export import export_onnx, slim_checkpoint

    fmt = _format(args)
    if args.half and fmt != "pt":
        raise ConfigError("--half is for slim .pt weights; an ONNX export keeps float32")
    src: Path = args.checkpoint
    summary: dict[str, Any] = {"checkpoint": str(src), "out": str(args.out), "format": fmt}
    if fmt == "onnx":
        done = export_onnx(src, args.out, opset=args.opset)
        summary.update(arch=done.arch, opset=args.opset, input_side=done.input_side,
                       window=done.spec.window, max_abs_diff=done.max_abs_diff,
                       n_checked=done.n_checked, bytes=done.path.stat().st_size)
        text = (f"{done.arch}: {src} -> {done.path} (onnx opset {args.opset}, input "
                f"{3 * done.spec.window}x{done.input_side}x{done.input_side}; parity max "
                f"|onnxruntime - torch| {done.max_abs_diff:.2g} over {done.n_checked} inputs)")
        if done.arch in HEAD_ARCHS:
            note = ("an LR head: only SR ONNX files run in cctv-sr run, heads load from .pt "
                    "(export --format pt)")
            summary["note"] = note
            text += f"; {note}"
    else:
        out = slim_checkpoint(src, args.out, half=args.half)
        size, full = out.stat().st_size, src.stat().st_size
        summary.update(bytes=size, checkpoint_bytes=full, half=bool(args.half))
        kind = "float16 slim weights" if args.half else "slim weights"
        text = (f"{src} -> {out} ({kind}, {size / 1e6:.2f} MB from {full / 1e6:.2f} MB; "
                f"loads with load_checkpoint, cannot be resumed)")
    print(json.dumps(summary) if args.json else text)
    return 0
