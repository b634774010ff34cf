"""Measure face / non-face checks for the matching gate (issue 7); prints a table, --json.

    python samples/gate_mine.py ../shared/data/videos /tmp/gate      # once: mined.pkl
    python samples/measure_gate.py --work /tmp/gate --lfw ../shared/data/faces/lfw_dev \\
        [--labels samples/gate_labels.json] [--n-lfw 400] [--json out.json]

Positives: LFW dev photos aligned by the eval oracle (evaluate/oracle.py, cached) at 128 and
degraded to 32/24/16 px by the probe recipe (data/degrade.py); talking-head detections; cctv
detections labelled "face". Negatives: cctv detections labelled "nonface" (the labels are our
own annotations of the contact sheets gate_mine.py makes) and synthetic warped patches.
Checks: O-Net on the aligned crop (two windows), YuNet on the crop in a padded canvas,
MobileFaceNet and dlib raw feature norms, and the quality terms. For each check: the pass rate
of every positive group and the reject rate of every negative group at the bars that pass 99%,
98% and 95% of the pooled LFW faces (all sizes), the AUC, and the cost per face.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from cctv_sr.config import DetectorConfig, EmbedderConfig
from cctv_sr.data.degrade import make_probes
from cctv_sr.data.lfw import load_dataset
from cctv_sr.evaluate.oracle import align_all, eval_cache_dir, pick_detector
from cctv_sr.face.faceness import WINDOW, OnetFaceness
from cctv_sr.face.quality import sharpness

Scorer = Callable[[list[np.ndarray]], np.ndarray]
LFW_SIZES = (16, 24, 32)


def lfw_sets(root: Path, n: int) -> dict[str, list[np.ndarray]]:
    ds = load_dataset(root, max_probes=n)
    paths = [p.path for p in ds.probes][:n]
    crops, found = align_all(root, paths, pick_detector(), cache=eval_cache_dir(), quiet=True)
    crops = crops[found]
    names = [p.name for p, f in zip(paths, found) if f]
    out = {"lfw_hr": list(crops)}
    for s in LFW_SIZES:
        out[f"lfw_{s}"] = list(make_probes(crops, names, s))
    return out


def mined_sets(work: Path, labels: dict[str, str]) -> tuple[dict[str, list[dict]], list[dict]]:
    with open(work / "mined.pkl", "rb") as f:
        samples: list[dict] = pickle.load(f)
    groups: dict[str, list[dict]] = {}
    for s in samples:
        side = "hr" if s["side"] >= 64 else str(s["side"])
        if s["source"] == "talking":  # faces unless labelled otherwise
            lab = labels.get(s["key"], "face")
            groups.setdefault(f"talking_{side}" if lab == "face" else "talking_nonface",
                              []).append(s)
        elif s["source"] == "synthetic":
            groups.setdefault("synthetic", []).append(s)
        else:
            lab = labels.get(s["key"])
            if lab in ("face", "nonface", "head"):
                groups.setdefault(f"cctv_{lab}_{s['detector']}", []).append(s)
    return groups, samples


def yunet_canvas() -> Scorer:
    """YuNet on the crop resized to 96 px in the middle of a 192 px grey canvas."""
    from cctv_sr.detect import create_detector

    det = create_detector(DetectorConfig(name="yunet", score_thresh=0.05, min_face_px=8))

    def score(crops: list[np.ndarray]) -> np.ndarray:
        out = np.zeros(len(crops), np.float32)
        for i, c in enumerate(crops):
            interp = cv2.INTER_AREA if c.shape[0] > 96 else cv2.INTER_CUBIC
            canvas = np.full((192, 192, 3), 127, np.uint8)
            canvas[48:144, 48:144] = cv2.resize(c, (96, 96), interpolation=interp)
            faces = det.detect([canvas])[0]
            if len(faces):
                centre = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2.0
                near = np.linalg.norm(centre - 96.0, axis=1) < 30.0
                out[i] = float(faces.score[near].max()) if near.any() else 0.0
        return out
    return score


def mfn_norm() -> Scorer:
    from cctv_sr.embed import create_embedder

    emb = create_embedder(EmbedderConfig(name="mobilefacenet"))

    def score(crops: list[np.ndarray]) -> np.ndarray:
        import torch

        net, pre = emb._net, emb.preprocess  # type: ignore[attr-defined]  # raw, pre-L2 output
        with torch.inference_mode():
            return np.array([float(net(pre(c[None])).norm()) for c in crops], np.float32)
    return score


def onet_yunet() -> Scorer:
    """Both verifiers: the mean of the O-Net (window) and the YuNet-canvas scores."""
    onet, yunet = OnetFaceness(window=WINDOW).score, yunet_canvas()
    return lambda crops: (onet(crops) + yunet(crops)) / 2.0


def dlib_norm() -> Scorer:
    from cctv_sr.embed import create_embedder

    emb = create_embedder(EmbedderConfig(name="dlib"))

    def score(crops: list[np.ndarray]) -> np.ndarray:
        out = np.zeros(len(crops), np.float32)
        by_side: dict[int, list[int]] = {}
        for i, c in enumerate(crops):
            by_side.setdefault(c.shape[0], []).append(i)
        for idx in by_side.values():
            d = emb.descriptors(np.stack([crops[i] for i in idx]))  # type: ignore[attr-defined]
            out[idx] = np.linalg.norm(d, axis=1)
        return out
    return score


def checks(names: list[str]) -> dict[str, Scorer]:
    table: dict[str, Callable[[], Scorer]] = {
        "onet_window": lambda: OnetFaceness(window=WINDOW).score,
        "onet_full": lambda: OnetFaceness(window=(0.0, 0.0, 1.0)).score,
        "yunet_canvas": yunet_canvas,
        "mfn_norm": mfn_norm,
        "dlib_norm": dlib_norm,
        "onet_yunet": onet_yunet,
        "sharpness": lambda: (lambda cs: np.array([sharpness(c) for c in cs], np.float32)),
    }
    return {n: table[n]() for n in names}


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    if not len(pos) or not len(neg):
        return float("nan")
    allv = np.concatenate([pos, neg])
    ranks = np.argsort(np.argsort(allv, kind="stable"), kind="stable") + 1.0
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def gate_table(groups: dict[str, list[dict]], lfw: dict[str, list[np.ndarray]]) -> dict:
    """The quality terms and the whole per-face gate (GateConfig defaults, O-Net faceness)
    per group: median of each term and the share of faces each bar rejects."""
    from cctv_sr.face.quality import face_quality
    from cctv_sr.identity.gate import FaceEvidence, GateConfig, judge_face

    cfg, onet = GateConfig(), OnetFaceness()
    out: dict[str, dict] = {}
    print(f"\n== per-face gate at GateConfig() ({cfg})")
    print(f"{'group':24s} {'n':>5s} {'det':>6s} {'frontal':>7s} {'sharp':>6s} {'px':>6s} "
          f"{'onet':>6s} | rejected by: faceness  size  sharp  frontal  det | usable")
    rows: dict[str, tuple[list, np.ndarray]] = {}
    for g, recs in groups.items():
        rows[g] = ([r["quality"] for r in recs], onet.score([r["crop"] for r in recs]))
    for g, crops in lfw.items():  # LFW: the oracle landmarks are not kept; size and det ideal
        m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
        from cctv_sr.face.align import template
        qs = [face_quality(c, template(c.shape[0]), m, float(c.shape[0]), 1.0) for c in crops]
        rows[g] = (qs, onet.score(crops))
    for g, (qs, fs) in rows.items():
        verdicts = [judge_face(FaceEvidence(str(i), q, float(f)), cfg)
                    for i, (q, f) in enumerate(zip(qs, fs))]
        fail = {k: float(np.mean([v.failed == k for v in verdicts])) for k in (
            "not a face", "too small", "too blurred", "bad landmarks", "low detector score")}
        med = {k: float(np.median([getattr(q, k) for q in qs]))
               for k in ("det_score", "frontal", "sharpness", "size_px")}
        usable = float(np.mean([v.usable for v in verdicts]))
        out[g] = {"n": len(qs), "median": {**med, "faceness": float(np.median(fs))},
                  "rejected_by": fail, "usable": usable}
        print(f"{g:24s} {len(qs):5d} {med['det_score']:6.3f} {med['frontal']:7.3f} "
              f"{med['sharpness']:6.3f} {med['size_px']:6.1f} {np.median(fs):6.3f} |"
              + "".join(f"{fail[k]:9.3f}" for k in fail) + f" | {usable:.3f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--labels", type=Path, default=Path(__file__).with_name("gate_labels.json"))
    ap.add_argument("--n-lfw", type=int, default=400)
    ap.add_argument("--checks", default="onet_window,onet_full,yunet_canvas,mfn_norm,dlib_norm,"
                    "sharpness")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--gate-only", action="store_true", help="only the per-face gate table")
    args = ap.parse_args()
    labels = json.loads(args.labels.read_text())["labels"] if args.labels.is_file() else {}
    crops = lfw_sets(args.lfw, args.n_lfw)
    groups, _ = mined_sets(args.work, labels)
    if args.gate_only:
        gate_table(groups, crops)
        return
    for g, recs in groups.items():
        crops[g] = [r["crop"] for r in recs]
    pos_groups = [g for g in crops if g.startswith(("lfw", "talking_hr", "talking_3", "talking_1",
                                                    "cctv_face"))]
    neg_groups = [g for g in crops if g.startswith(("cctv_nonface", "cctv_head", "talking_non",
                                                    "synthetic"))]
    print("groups:", {g: len(crops[g]) for g in crops})
    result: dict[str, dict] = {"groups": {g: len(crops[g]) for g in crops}, "checks": {}}
    bench = [c for c in crops["lfw_32"][:200]]
    for name, fn in checks(args.checks.split(",")).items():
        fn(bench[:4])  # warm-up
        t0 = time.perf_counter()
        fn(bench)
        ms = 1e3 * (time.perf_counter() - t0) / len(bench)
        scores = {g: fn(crops[g]) for g in pos_groups + neg_groups}
        lfw = np.concatenate([scores[g] for g in pos_groups if g.startswith("lfw")])
        neg = np.concatenate([scores[g] for g in neg_groups])
        rows = {}
        for keep in (0.99, 0.98, 0.95):
            bar = float(np.quantile(lfw, 1.0 - keep))
            rows[f"lfw_pass_{keep:g}"] = {
                "bar": bar,
                **{g: float((scores[g] >= bar).mean()) for g in pos_groups},
                **{g: float((scores[g] < bar).mean()) for g in neg_groups}}
        real = np.concatenate([scores[g] for g in pos_groups])
        result["checks"][name] = {"ms_per_face": ms, "auc_lfw": auc(lfw, neg),
                                  "auc_all": auc(real, neg), "points": rows,
                                  "median": {g: float(np.median(scores[g]))
                                             for g in pos_groups + neg_groups}}
        report(name, result["checks"][name], pos_groups, neg_groups)
    result["gate"] = gate_table(groups, {g: crops[g] for g in crops if g.startswith("lfw")})
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


def report(name: str, r: dict, pos: list[str], neg: list[str]) -> None:
    print(f"\n== {name}: {r['ms_per_face']:.2f} ms/face, AUC lfw-vs-neg {r['auc_lfw']:.3f}, "
          f"all-real-vs-neg {r['auc_all']:.3f}")
    cols = list(r["points"])
    print(f"{'group':28s} {'median':>8s} " + " ".join(f"{c[-4:]:>10s}" for c in cols)
          + "   (pass rate for faces, reject rate for non-faces)")
    print(f"{'bar':28s} {'':8s} " + " ".join(f"{r['points'][c]['bar']:10.4g}" for c in cols))
    for g in pos + neg:
        kind = "+" if g in pos else "-"
        print(f"{kind} {g:26s} {r['median'][g]:8.4g} "
              + " ".join(f"{r['points'][c][g]:10.3f}" for c in cols))


if __name__ == "__main__":
    main()
