"""``cctv-sr eval video`` (docs/EVAL.md section 3): SR fidelity and flicker along tracks,
single-frame vs temporal, on clean talking-head clips degraded to small faces::

    cctv-sr eval video --clips ../shared/data/videos/talking_heads --sizes 16,24,32 \\
        --methods bicubic,lrnet --json video.json
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cctv_sr.errors import ConfigError

DEFAULT_PATTERNS = "sadtalker_*,video_retalking_*"


def add_video_parser(esub: Any, int_list: Any, add_output: Any) -> None:
    v = esub.add_parser(
        "video", help="SR fidelity and flicker along tracks, single-frame vs temporal",
        description="Video fidelity and flicker (docs/EVAL.md section 3): clean clips shrunk "
        "so the face is about s px wide, H.264 CRF 30, run through the analysis stage once "
        "single-frame (temporal.frames=1, no smoothing) and once temporal (the [temporal] "
        "settings); every tracked face enhanced by each method and compared with the clean "
        "crop at the same alignment: PSNR, SSIM, identity cosine (an embedder the models were "
        "not trained with) and flicker.")
    v.add_argument("--clips", type=Path, nargs="+", metavar="PATH",
                   default=[Path("../shared/data/videos/talking_heads")],
                   help="clips, or folders whose clips match --pattern (default: "
                   "../shared/data/videos/talking_heads)")
    v.add_argument("--pattern", default=DEFAULT_PATTERNS,
                   help=f"clip name patterns in folders (default {DEFAULT_PATTERNS}: the "
                   "clean talking heads nothing was trained on)")
    v.add_argument("--sizes", type=int_list, default=(16, 24, 32), metavar="LIST",
                   help="face widths in px (default 16,24,32)")
    v.add_argument("--methods", default="bicubic,lrnet", metavar="LIST",
                   help="SR backends (sr.name values, or trained=CKPT), default bicubic,lrnet")
    v.add_argument("--heads", default="", metavar="LIST",
                   help="LR identity heads to score too (head.name values, e.g. "
                   "lrmfn,lrmfn_t5): cosine of the head's vector of the face (its window in "
                   "temporal mode, for a T > 1 head) to its teacher's vector of the clean crop")
    v.add_argument("--embedder", default="dlib",
                   help="identity embedder for id_cos (default dlib: not used in training)")
    v.add_argument("--max-frames", type=int, default=0, metavar="N",
                   help="first N frames of each clip (default 0: all)")
    v.add_argument("--workers", type=int, default=1, metavar="N",
                   help="clips measured in N processes at once (default 1)")
    v.add_argument("--config", type=Path, help="pipeline TOML (its [temporal] is the temporal "
                   "mode's)")
    v.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    add_output(v)


def find_clips(paths: list[Path], pattern: str) -> list[Path]:
    """Files as given; folders expanded to their clips matching any of ``pattern``."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted({c for pat in pattern.split(",") if pat.strip()
                            for c in p.glob(pat.strip() + (".mp4" if "." not in pat else ""))})
            if not found:
                raise ConfigError(f"eval video: no clip in {p} matches {pattern}")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise ConfigError(f"eval video: no such clip or folder: {p}")
    return out


def _create_srs(text: str) -> dict[str, Any]:
    from cctv_sr.config import SRConfig
    from cctv_sr.sr import create_super_resolver as create_sr

    srs = {}
    for name in [n.strip() for n in text.split(",") if n.strip()]:
        if name.startswith("trained="):
            path = Path(name.split("=", 1)[1]).expanduser()
            srs[f"trained:{path.stem}"] = create_sr(SRConfig(name="trained",
                                                             model_path=str(path)))
        else:
            srs[name] = create_sr(SRConfig(name=name))
    if not srs:
        raise ConfigError("eval video: --methods names no SR backend")
    return srs


def _create_heads(text: str) -> tuple[dict[str, Any], Any]:
    """The LR heads named in ``text`` and the embedder they embed into (one space for all)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        return {}, None
    from cctv_sr.config import EmbedderConfig, HeadConfig
    from cctv_sr.embed import create_embedder
    from cctv_sr.embed.lrhead import LrHeadEmbedder
    from cctv_sr.models import registry

    heads = {n: registry.build("head", HeadConfig(name=n), LrHeadEmbedder) for n in names}
    spaces = {h.space for h in heads.values()}
    if len(spaces) != 1:
        raise ConfigError(f"eval video --heads: the heads embed into different spaces "
                          f"({', '.join(sorted(spaces))})")
    return heads, create_embedder(EmbedderConfig(name=spaces.pop()))


@dataclass(frozen=True)
class _Job:
    """What one clip's measurement needs (picklable: built again in each worker)."""

    clip: Path
    sizes: tuple[int, ...]
    config: Path | None
    settings: tuple[str, ...]
    methods: str
    heads: str
    embedder: str
    max_frames: int
    quiet: bool
    threads: int  # torch threads in a worker (0: leave torch's default)


_MODELS: dict[tuple, Any] = {}  # one set of models per process


def _clip_scores(job: _Job) -> list[Any]:
    """Every score of one clip (run in this process or a worker)."""
    from cctv_sr.config import EmbedderConfig, load_config
    from cctv_sr.detect import create_detector
    from cctv_sr.embed import create_embedder
    from cctv_sr.evaluate.video import eval_clip

    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    key = (job.config, job.settings, job.methods, job.heads, job.embedder)
    if key not in _MODELS:
        cfg = load_config(job.config, list(job.settings))
        _MODELS[key] = (cfg, create_detector(cfg.detector), _create_srs(job.methods),
                        create_embedder(EmbedderConfig(name=job.embedder)),
                        *_create_heads(job.heads))
    cfg, detector, srs, embedder, heads, teacher = _MODELS[key]

    def step(text: str) -> None:
        if not job.quiet:
            print(text, file=sys.stderr, flush=True)

    return list(eval_clip(job.clip, job.sizes, cfg, detector, srs, embedder, job.max_frames,
                          step, heads, teacher))


def run_video(args: argparse.Namespace) -> int:
    from cctv_sr.cli.eval import write_json
    from cctv_sr.evaluate.video import paired_margins, summarise

    clips = find_clips(list(args.clips), args.pattern)
    workers = max(1, min(args.workers or 1, len(clips)))
    jobs = [_Job(c, tuple(args.sizes), args.config, tuple(args.set), args.methods, args.heads,
                 args.embedder, args.max_frames, args.quiet, 1 if workers > 1 else 0)
            for c in clips]
    if workers == 1:
        scores = [s for job in jobs for s in _clip_scores(job)]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            scores = [s for part in ex.map(_clip_scores, jobs) for s in part]
    embedder_name = args.embedder
    rows = summarise(scores)
    print(f"eval video: {len(clips)} clips, id_cos by {embedder_name}, H.264 CRF 30")
    print(f"{'method':<24} {'size':>4} {'PSNR':>7} {'SSIM':>6} {'id_cos':>7} {'flicker':>8} "
          f"{'faces':>6}")
    def num(x: float | None, width: int, digits: int) -> str:
        return f"{'-':>{width}}" if x is None else f"{x:>{width}.{digits}f}"

    for r in rows:
        print(f"{r.method:<24} {r.size:>4} {num(r.psnr, 7, 2)} {num(r.ssim, 6, 3)} "
              f"{r.id_cos:>7.4f} {num(r.flicker, 8, 3)} {r.faces:>6}")
    by = {(r.method, r.size): r for r in rows}
    lines = []
    for (method, size), r in by.items():
        if method.endswith(" temporal"):
            single = by.get((method[:-len(" temporal")] + " single", size))
            if single is not None:
                line = (f"{method[:-len(' temporal')]:<16} {size:>4}  id_cos "
                        f"{r.id_cos - single.id_cos:+.4f}")
                if r.flicker is not None and single.flicker is not None:
                    line += f"  flicker {r.flicker - single.flicker:+.3f}"
                if r.psnr is not None and single.psnr is not None:
                    line += f"  PSNR {r.psnr - single.psnr:+.2f}"
                lines.append(line)
    if lines:
        print("\ntemporal minus single (id_cos higher and flicker lower are better):")
        for line in lines:
            print(line)
    margins = paired_margins(scores)
    if margins:
        print("\nid_cos temporal minus single, paired face by face (mean +- standard error):")
        for m in margins:
            print(f"{m.method:<16} {m.size:>4}  {m.id_cos:+.4f} +- {m.id_cos_se:.4f}  "
                  f"({m.pairs} faces)")
    if args.json:
        from dataclasses import asdict

        data = {"rows": [asdict(r) for r in rows], "margins": [asdict(m) for m in margins],
                "clips": [str(c) for c in clips],
                "embedder": embedder_name, "crf": 30}
        write_json(args.json, data)
    return 0
