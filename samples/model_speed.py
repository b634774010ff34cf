"""Faces/s of each trained model at batch 32 on this machine, as a ratio to bicubic (issue 8).

Every method runs on the same (32, s, s, 3) uint8 crops, through the backend `cctv-sr run` and
`eval identify` use (SR: ``SuperResolver.upscale`` to 128; LR heads: their embedding), in
interleaved rounds so that load on a shared machine hits every method alike; the figure is
the median over rounds, and the ratio is to bicubic's median in the same run.

    python samples/model_speed.py --sr lrnet=RUN/lrnet.pt --head lrmfn=RUN/lrmfn.pt \
        [--sizes 16,24,32] [--rounds 7] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cctv_sr.config import SRConfig
from cctv_sr.sr.bicubic import BicubicSR
from cctv_sr.sr.trained import TrainedSR

BATCH = 32


def named(items: list[str]) -> list[tuple[str, Path]]:
    out = []
    for item in items:
        name, _, path = item.partition("=")
        out.append((name, Path(path)))
    return out


def head_runner(path: Path) -> Callable[[np.ndarray], object]:
    """The LR head as `cctv-sr run` runs it (batch norms folded for lrmfn, channels-last)."""
    from cctv_sr.config import HeadConfig
    from cctv_sr.embed.lrhead import LrHeadEmbedder

    head = LrHeadEmbedder(HeadConfig(name="checkpoint", model_path=str(path),
                                     batch_size=BATCH), path)
    return head.embed  # a T-frame head gets each crop in every slot of its window


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sr", action="append", default=[], metavar="NAME=CKPT")
    ap.add_argument("--head", action="append", default=[], metavar="NAME=CKPT")
    ap.add_argument("--sizes", default="16,24,32")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = SRConfig(batch_size=BATCH)
    runners: dict[str, Callable[[np.ndarray], object]] = {}
    bicubic = BicubicSR(cfg)
    runners["bicubic"] = lambda c: bicubic.upscale(c, 128)
    for name, path in named(args.sr):
        sr = TrainedSR(cfg, path)
        runners[name] = lambda c, sr=sr: sr.upscale(c, 128)  # type: ignore[misc]
    for name, path in named(args.head):
        runners[name] = head_runner(path)
    rng = np.random.default_rng(0)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        crops = rng.integers(0, 256, (BATCH, size, size, 3), dtype=np.uint8)
        times: dict[str, list[float]] = {n: [] for n in runners}
        for fn in runners.values():  # warm-up
            fn(crops)
        for _ in range(args.rounds):
            for name, fn in runners.items():
                t0 = time.perf_counter()
                fn(crops)
                times[name].append(time.perf_counter() - t0)
        base = statistics.median(times["bicubic"])
        for name, ts in times.items():
            med = statistics.median(ts)
            rows.append({"method": name, "size": size, "faces_per_s": round(BATCH / med, 1),
                         "time_vs_bicubic": round(med / base, 2)})
            print(f"{size:>3} px  {name:<10} {BATCH / med:9.1f} faces/s  "
                  f"{med / base:7.2f}x bicubic's time")
    if args.json:
        args.json.write_text(json.dumps({"batch": BATCH, "threads": args.threads,
                                         "rounds": args.rounds, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
