"""The ``cctv-sr eval`` command line: ``add_eval_parser`` adds the subcommand to the main
parser, ``run_eval`` runs it (errors the user can fix are raised as one-line ConfigError)::

    sub = parser.add_subparsers(dest="command")
    add_eval_parser(sub)
    args = parser.parse_args(["eval", "identify", "--data", "lfw_dev", "--max-probes", "750"])
    run_eval(args)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cctv_sr.config import EmbedderConfig
from cctv_sr.errors import ConfigError, OutputError


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}"
                                         ) from None


def write_json(path: Path, data: object) -> None:
    """``--json PATH``: the figures as indented JSON (parent folders made); one-line
    OutputError when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"--json {path}: cannot write ({exc.strerror})") from None


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, metavar="ROOT",
                   help="LFW-style tree <ROOT>/<Identity>/<image>.jpg")


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``eval`` (with ``eval identify``) to a ``parser.add_subparsers()`` object."""
    p = subparsers.add_parser("eval", help="benchmarks from docs/EVAL.md (identification, ...)",
                              description="Rerunnable measurements (see docs/EVAL.md).")
    esub = p.add_subparsers(dest="eval_command", required=True)
    ident = esub.add_parser(
        "identify", help="rank-1 and TAR@FAR=1e-2 from tiny degraded faces",
        description="Identification from tiny faces (docs/EVAL.md sections 1 and 2): "
        "oracle-aligned 128 crops of an LFW-style tree, degraded to s x s probes, restored by "
        "each method and matched against an undegraded gallery.")
    _add_data(ident)
    ident.add_argument("--methods", default="hr,bicubic,default", metavar="LIST",
                       help="comma-separated: hr, bicubic, espcn, fsrcnn, lapsrn, lapsrn_x8, "
                       "default (the SR of `cctv-sr run`), trained=CKPT (an SR checkpoint of "
                       "cctv-sr train), lrhead=CKPT (an LR identity head checkpoint: embeds the "
                       "LR probe, scored under mobilefacenet only); default: hr,bicubic,default")
    ident.add_argument("--sizes", type=_int_list, default=(16, 24, 32), metavar="LIST",
                       help="probe sides, e.g. 16,24,32 (default)")
    ident.add_argument("--embedder", metavar="NAME",
                       help="one embedder (mobilefacenet | dlib | arcface); default: "
                       "mobilefacenet and dlib")
    ident.add_argument("--max-probes", type=int, metavar="N",
                       help="score whole identities (a fixed subsample) until N probes; the "
                       "gallery keeps every identity")
    ident.add_argument("--seed", type=int, default=0, metavar="N",
                       help="another set of probe degradations (same recipe, other random "
                            "draws) to measure the spread of the figures; 0 (default) = the "
                            "benchmark's fixed set")
    ident.add_argument("--burst", type=int, nargs="?", const=5, default=0, metavar="T",
                       help="bursts of T jittered frames per probe (docs/EVAL.md section 2; "
                       "T=5 when given without a value)")
    ident.add_argument("--workers", type=int, default=0, metavar="N",
                       help="worker processes (default: the number of CPUs)")
    ident.add_argument("--detector", default="auto",
                       help="oracle landmarks: auto (yunet when its weights are found, else "
                       "mtcnn) | yunet | mtcnn | scrfd")
    ident.add_argument("--no-cache", action="store_true",
                       help="align again instead of reading the cached crops")
    ident.add_argument("--open-set", action="store_true",
                       help="also the watchlist figures (docs/EVAL.md 1b): half the identities "
                       "left out of the gallery as strangers; FNIR at FPIR 1e-2 / 1e-3, FPIR and "
                       "FNIR at the shipped threshold, and a DET curve PNG per embedder")
    ident.add_argument("--size-thresholds", choices=("on", "off"),
                       help="with --open-set: the shipped point with or without the thresholds "
                       "calibrated per face size (match.size_thresholds; default: the run's "
                       "default, off)")
    ident.add_argument("--det", type=Path, metavar="PATH",
                       help="with --open-set: write the DET curves to PATH_<embedder>.png "
                       "(default: next to --json, <json stem>_det_<embedder>.png)")
    _add_output(ident)
    cal = esub.add_parser(
        "calibrate", help="an embedder's match thresholds at FAR 1e-2 and 1e-3 (and, with "
        "--sizes/--fars, on degraded probes and in the tail)",
        description="Thresholds from every genuine and impostor pair of oracle-aligned "
        "full-resolution faces of an LFW-style tree (docs/EVAL.md section 1c); prints the lines "
        "for the embedder's manifest ([spec] threshold_far_1e-2 / threshold_far_1e-3).")
    _add_data(cal)
    cal.add_argument("--embedder", default=EmbedderConfig().name, metavar="NAME",
                     help=f"{EmbedderConfig().name} (default) | dlib | arcface | "
                     "mobilefacenet_onnx")
    cal.add_argument("--max-identities", type=int, default=0, metavar="N",
                     help="only the first N eligible identities (by name)")
    cal.add_argument("--sizes", default="hr", metavar="LIST",
                     help="probe sizes: hr (default: HR pairs only, the manifest figures) and/or "
                     "sides such as 16,24,32 (probes degraded to s x s, restored by the SR of "
                     "`cctv-sr run`, against HR images); e.g. hr,16,24,32")
    cal.add_argument("--fars", default="1e-2,1e-3", metavar="LIST",
                     help="per-pair false-accept rates (default 1e-2,1e-3); e.g. "
                     "1e-2,1e-3,1e-4,1e-5,1e-6 (a rate with fewer than 10 impostor pairs above "
                     "its threshold is reported as not resolved, with a bound)")
    cal.add_argument("--workers", type=int, default=0, metavar="N",
                     help="worker processes for the degraded sizes (default: the number of "
                     "CPUs)")
    cal.add_argument("--method", default="", metavar="M",
                     help="what turns the degraded probes into vectors (default: the SR of "
                     "`cctv-sr run`, then the embedder): any eval identify method, e.g. lrnet "
                     "or lrhead=cctv_sr/models/weights/lrmfn.pt (the LR head's own thresholds)")
    _add_output(cal)
    det = esub.add_parser(
        "detect", help="small-face recall, people found and speed on a synthetic scene",
        description="Small-face detection (docs/EVAL.md section 5): a synthetic CCTV scene of "
        "face photos on walking bodies over real footage, H.264 CRF 30, with ground truth; the "
        "pipeline's default settings and --exhaustive (and any --versus) side by side in one "
        "run: frame recall and people found per face width, false detections per frame, "
        "end-to-end frames/s over decode-only. --clips adds real clips (counts only).")
    det.add_argument("--faces", type=Path, metavar="ROOT",
                     help="LFW-style tree of face photos (one person per name)")
    det.add_argument("--background", type=Path, metavar="VIDEO",
                     help="footage the people walk over (looped; default: a synthetic backdrop)")
    det.add_argument("--widths", type=_int_list, default=(12, 16, 20, 24, 32, 40), metavar="LIST",
                     help="face widths in px (default 12,16,20,24,32,40)")
    det.add_argument("--seconds", type=float, default=8.0, help="scene length (default 8)")
    det.add_argument("--size", default="1920x1080", help="scene WxH (default 1920x1080)")
    det.add_argument("--seed", type=int, default=0)
    det.add_argument("--scene-out", type=Path, metavar="DIR",
                     help="keep the scene clip and its ground truth here (default: the cache)")
    det.add_argument("--clips", type=Path, nargs="*", default=[], metavar="VIDEO",
                     help="real clips to count detections and tracks on, side by side")
    det.add_argument("--config", type=Path, help="pipeline TOML")
    det.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a setting for every configuration")
    det.add_argument("--versus", action="append", default=[], metavar="KEY=VALUE",
                     help="one more configuration: these settings on top (repeatable); "
                     "--exhaustive is always compared")
    _add_output(det)
    from cctv_sr.cli.eval_video import add_video_parser

    add_video_parser(esub, _int_list, _add_output)
    return p


def _calibrate(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from cctv_sr.evaluate.calibrate import calibrate, calibrate_sizes
    from cctv_sr.evaluate.calibrate_tail import (
        DEFAULT_FARS,
        HR_SIZE,
        format_tail,
        parse_fars,
        parse_sizes,
    )

    sizes, fars = parse_sizes(args.sizes), parse_fars(args.fars)
    if args.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {args.workers}")
    legacy = sizes == (HR_SIZE,) and fars == DEFAULT_FARS and not args.method
    if legacy:  # today's command: the same text and the same --json object
        c = calibrate(Path(args.data), args.embedder, args.max_identities, quiet=args.quiet)
        payload: dict[str, Any] = asdict(c)
    else:
        tc = calibrate_sizes(Path(args.data), args.embedder, sizes, fars, args.max_identities,
                             workers=args.workers, quiet=args.quiet, method=args.method)
        c, payload = tc.hr, tc.to_json()
    sys.stdout.write(
        f"{c.embedder} ({c.version}), {c.images} images of {c.identities} identities, "
        f"{c.genuine_pairs} genuine / {c.impostor_pairs} impostor pairs, {c.detector} "
        f"alignment, {c.seconds:.0f} s\n")
    if HR_SIZE in sizes:
        sys.stdout.write(
            f"FAR 1e-2: threshold {c.threshold_far_1e2:.4f}, TAR {100 * c.tar_at_far_1e2:.1f}%\n"
            f"FAR 1e-3: threshold {c.threshold_far_1e3:.4f}, TAR {100 * c.tar_at_far_1e3:.1f}%\n"
            f"manifest [spec] lines:\n{c.manifest_snippet()}")
    if not legacy:
        sys.stdout.write(format_tail(tc.rows, tc.watchlist, tc.restore) + "\n"
                         f"({tc.seconds:.0f} s in all, {tc.workers} worker(s))\n")
    if args.json:
        write_json(args.json, payload)
    return 0


def _identify(args: argparse.Namespace) -> int:
    from cctv_sr.evaluate.identify import DEFAULT_EMBEDDERS, IdentifyConfig, run_identify
    from cctv_sr.evaluate.methods import parse_methods
    from cctv_sr.evaluate.report import format_report

    root = Path(args.data)
    if not root.is_dir():
        raise ConfigError(f"--data {root}: not a directory")
    if args.det and not args.open_set:
        raise ConfigError("--det draws the open-set DET curves: add --open-set")
    cfg = IdentifyConfig(
        data=root,
        methods=tuple(parse_methods(args.methods)),
        sizes=tuple(args.sizes),
        embedders=(args.embedder,) if args.embedder else DEFAULT_EMBEDDERS,
        max_probes=args.max_probes,
        burst=args.burst or 0,
        workers=args.workers,
        detector=args.detector,
        use_cache=not args.no_cache,
        quiet=args.quiet,
        open_set=args.open_set,
        size_thresholds=None if args.size_thresholds is None else args.size_thresholds == "on",
        seed=args.seed,
    )
    result = run_identify(cfg)
    sys.stdout.write(format_report(result) + "\n")
    det_base: Path | None = args.det or (
        args.json.with_name(f"{args.json.stem}_det.png") if args.json else None)
    if args.open_set and det_base is None:
        sys.stdout.write("no DET plot written (give --det PATH or --json PATH)\n")
    elif args.open_set and det_base is not None:
        from cctv_sr.evaluate.det_plot import write_det_plots

        for e, path in write_det_plots(result, det_base).items():
            sys.stdout.write(f"DET curve ({e}): {path}\n")
    if args.json:
        write_json(args.json, result.to_json())
    return 0


def _detect(args: argparse.Namespace) -> int:
    from cctv_sr.config import apply_mapping, load_config, parse_override, validate
    from cctv_sr.data.scene import SceneSpec, SceneTruth, make_scene
    from cctv_sr.evaluate.detect_eval import run_config, table
    from cctv_sr.models.resolve import cache_root

    try:
        width, height = (int(v) for v in str(args.size).lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {args.size!r}: expected WxH, e.g. 1920x1080") from None
    spec = SceneSpec(width=width, height=height, seconds=args.seconds, widths=args.widths,
                     seed=args.seed, background=str(args.background or ""),
                     faces=str(args.faces or ""))
    folder = args.scene_out or cache_root() / "eval" / "scenes"
    clip = Path(folder) / f"scene_{spec.key()}.mp4"
    truth_path = clip.with_suffix(".json")
    if clip.is_file() and truth_path.is_file():
        truth = SceneTruth.from_json(json.loads(truth_path.read_text(encoding="utf-8")))
    else:
        if not spec.faces:
            raise ConfigError("eval detect: --faces ROOT (an LFW-style tree) is needed to make "
                              "the scene")
        print(f"making the scene {clip} ...", file=sys.stderr)
        truth = make_scene(spec, clip)
    base = load_config(args.config, args.set)
    configs = {"default": base}
    for name, extra in [("exhaustive", ["scan.mode=exhaustive"]),
                        *([(" ".join(args.versus), args.versus)] if args.versus else [])]:
        cfg = base
        for text in extra:
            cfg = apply_mapping(cfg, parse_override(text), "")
        validate(cfg)
        configs[name] = cfg
    results = [run_config(clip, name, cfg, truth) for name, cfg in configs.items()]
    print(f"scene {clip.name}: {spec.width}x{spec.height}, {len(truth.frames)} frames, "
          f"{len(truth.people)} people")
    for line in table(results):
        print(line)
    real = {str(c): [run_config(c, name, cfg, None) for name, cfg in configs.items()]
            for c in args.clips}
    for path, rows in real.items():
        print(f"\n{path}")
        for line in table(rows):
            print(line)
    if args.json:
        data = {"scene": str(clip), **results[0].to_json(),
                "configs": [r.to_json() for r in results],
                "clips": {k: [r.to_json() for r in v] for k, v in real.items()}}
        write_json(args.json, data)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Run the ``eval`` subcommand parsed by :func:`add_eval_parser`; returns the exit code."""
    if args.eval_command == "identify":
        return _identify(args)
    if args.eval_command == "calibrate":
        return _calibrate(args)
    if args.eval_command == "detect":
        return _detect(args)
    if args.eval_command == "video":
        from cctv_sr.cli.eval_video import run_video

        return run_video(args)
    raise ConfigError(f"eval: unknown command {args.eval_command!r}")  # pragma: no cover
