"""Options shared by ``run`` and ``bench`` that choose the pipeline settings."""

from __future__ import annotations

import argparse
from pathlib import Path

from cctv_sr.config import RunConfig, load_config, with_values


def add_settings(p: argparse.ArgumentParser) -> None:
    """Options that choose the pipeline's settings (shared by run and bench; each adds its
    own ``footage`` positional)."""
    p.add_argument("--config", type=Path, help="pipeline TOML (e.g. pipelines/cpu_default.toml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set tracker.max_lost_s=2 (repeatable)")
    p.add_argument("--detector", help="yunet (default, shipped) | mtcnn | scrfd")
    p.add_argument("--exhaustive", action="store_true",
                   help="run the detector on every full frame (no motion gating, no regions, "
                        "no carried rows): slower, for those who want every frame searched")
    p.add_argument("--detector-model", help="detector weights file")
    p.add_argument("--sr", help="bicubic (default) | ipunet | lrnet | srgan (the project's own, "
                                "shipped; docs/MODELS.md) | espcn | fsrcnn | lapsrn | lapsrn_x8 "
                                "| trained (with --sr-model)")
    p.add_argument("--sr-model", help="SR weights file (e.g. ESPCN_x4.pb, or a cctv-sr train "
                                      "checkpoint / .onnx export for --sr trained)")
    p.add_argument("--stride", type=int, help="analyse every Nth frame")
    p.add_argument("--max-fps", type=float, help="analyse at most F frames per second")
    p.add_argument("--max-frames", type=int, help="stop after analysing N frames")
    p.add_argument("--max-reconnects", type=int,
                   help="live streams: reopen attempts in a row before a stream that dropped "
                   "is given up (default -1: keep trying forever; 0: never reconnect)")
    p.add_argument("--top-k", type=int, help="best crops kept per track (default 5)")
    p.add_argument("--save-all-crops", action="store_true", help="keep every crop of every track")
    p.add_argument("--device", help="cpu | cuda | cuda:N for the detector, SR, embedder and "
                                    "LR head")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def run_config(args: argparse.Namespace) -> RunConfig:
    """Defaults, then --config, then --set, then the dedicated flags."""
    cfg = load_config(args.config, args.set)
    device = {"device": args.device} if args.device else {}

    def given(*pairs: tuple[str, object]) -> dict[str, object]:
        # None / "" / False = the flag was not given; any other value (0 included) is applied
        # and range-checked, so `--stride 0` is an error, never silently the default.
        return {k: v for k, v in pairs if v is not None and v != "" and v is not False}

    return with_values(
        cfg,
        source=given(("stride", args.stride), ("max_fps", args.max_fps),
                     ("max_frames", args.max_frames),
                     ("max_reconnects", getattr(args, "max_reconnects", None))),
        detector={**given(("name", args.detector), ("model_path", args.detector_model)),
                  **device},
        sr={**given(("name", args.sr), ("model_path", args.sr_model)), **device},
        scan=given(("mode", "exhaustive" if getattr(args, "exhaustive", False) else None)),
        embedder=device,
        head=device,
        output=given(("top_k", args.top_k), ("save_all_crops", args.save_all_crops)),
        alerts=given(("webhook", getattr(args, "alert_webhook", None))),
        match=given(("gallery", str(getattr(args, "gallery", None) or "")),
                    ("threshold", getattr(args, "match_threshold", None)),
                    ("fpir", getattr(args, "match_fpir", None))),
    )
