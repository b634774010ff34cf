"""Mine face / non-face detections from the shared clips for the matching gate (issue 7).

    python samples/gate_mine.py ../shared/data/videos WORKDIR

Runs the project's detectors (MTCNN, the pipeline default, and YuNet) at a LOW score threshold
(0.3) over sampled frames of the cctv_like clips and of the talking_heads clips (the latter at
full size and downscaled to 1/4 and 1/8, so their faces are also 15-60 px), aligns every
detection exactly as the pipeline does (engine/analysis.py: native size -> LR side -> template
warp -> face_quality), adds synthetic negatives (random patches of the cctv frames away from
any detection, warped with jittered template landmarks), and writes

* WORKDIR/mined.pkl   every sample: key, source, detector, score, kps, side, crop, quality
* WORKDIR/sheets/*.png numbered contact sheets of the cctv_like detections, for labelling

The crops stay in WORKDIR (outside the project); the labels (keys -> face / nonface) live in
samples/gate_labels.json, read by samples/measure_gate.py.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import cv2
import numpy as np

from cctv_sr.config import AlignConfig, DetectorConfig
from cctv_sr.detect import create_detector
from cctv_sr.face.align import (
    choose_lr_side,
    native_size,
    similarity_to_template,
    template,
    warp_face,
)
from cctv_sr.face.quality import face_quality

CCTV = ("opencv_vtest.avi", "office_lobby_fisheye.mp4", "facenet_pytorch_video.mp4")
FRAMES_PER_CLIP = {"opencv_vtest.avi": 40, "office_lobby_fisheye.mp4": 40,
                   "facenet_pytorch_video.mp4": 20}
TALKING_FRAMES = 4
TALKING_SCALES = (1.0, 0.25, 0.125)
LOW_THRESH = 0.3
SYNTH_PER_FRAME = 6
TILE = 72
COLS = 14
ROWS = 10


def frames_of(path: Path, n: int) -> list[tuple[int, np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    want = set(np.linspace(0, total - 1, n).astype(int).tolist())
    out, i = [], 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        if i in want:
            out.append((i, image))
        i += 1
    cap.release()
    return out


def align(image: np.ndarray, kps: np.ndarray, score: float, acfg: AlignConfig) -> dict:
    """The pipeline's alignment (engine/analysis.py AnalysisStage.align) plus a 128 view."""
    size_px = native_size(kps)
    side = acfg.out_size if size_px >= acfg.skip_sr_px else choose_lr_side(size_px, acfg.lr_sizes)
    m = similarity_to_template(kps, side)
    crop = warp_face(image, m, side)
    quality = face_quality(crop, kps, m, size_px, score)
    view = warp_face(image, similarity_to_template(kps, 128), 128)
    return {"side": side, "crop": crop, "M": m, "quality": quality, "view": view,
            "size_px": size_px}


def synthetic(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, n: int,
              acfg: AlignConfig) -> list[dict]:
    """Random patches away from every detection, warped with jittered template landmarks."""
    h, w = image.shape[:2]
    out: list[dict] = []
    tries = 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        side = float(rng.uniform(14, min(120, h / 3)))
        x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
        box = np.array([x0, y0, x0 + side, y0 + side])
        if len(boxes):
            ix = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
            iy = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
            if np.any((ix > -side) & (iy > -side)):
                continue
        kps = template(112) / 112.0 * side + box[:2]
        kps = kps + rng.normal(0, 0.04 * side, kps.shape)
        rec = align(image, kps.astype(np.float32), float(rng.uniform(0.3, 1.0)), acfg)
        rec.update(kps=kps.astype(np.float32), xyxy=box.astype(np.float32))
        out.append(rec)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("videos", type=Path)
    ap.add_argument("work", type=Path)
    args = ap.parse_args()
    acfg = AlignConfig()
    detectors = {name: create_detector(DetectorConfig(name=name, score_thresh=LOW_THRESH))
                 for name in ("mtcnn", "yunet")}
    rng = np.random.default_rng(7)
    samples: list[dict] = []
    jobs = [("cctv", args.videos / "cctv_like" / c, FRAMES_PER_CLIP[c], (1.0,)) for c in CCTV]
    jobs += [("talking", p, TALKING_FRAMES, TALKING_SCALES)
             for p in sorted((args.videos / "talking_heads").glob("*.mp4"))]
    for source, path, n, scales in jobs:
        for index, frame in frames_of(path, n):
            for scale in scales:
                image = frame if scale == 1.0 else cv2.resize(
                    frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                all_boxes = []
                for name, det in detectors.items():
                    faces = det.detect([image])[0]
                    all_boxes.append(faces.xyxy)
                    for j in range(len(faces)):
                        rec = align(image, faces.kps[j], float(faces.score[j]), acfg)
                        x1, y1 = (int(v) for v in faces.xyxy[j, :2])
                        rec.update(key=f"{path.name}:{name}:{index}:{scale:g}:{x1},{y1}",
                                   source=source, clip=path.name, detector=name,
                                   score=float(faces.score[j]), kps=faces.kps[j],
                                   xyxy=faces.xyxy[j], frame=index, scale=scale)
                        samples.append(rec)
                if source == "cctv":
                    boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 4))
                    for k, rec in enumerate(synthetic(image, boxes, rng, SYNTH_PER_FRAME, acfg)):
                        rec.update(key=f"{path.name}:synthetic:{index}:{k}", source="synthetic",
                                   clip=path.name, detector="synthetic",
                                   score=rec["quality"].det_score, frame=index, scale=1.0)
                        samples.append(rec)
        print(f"{path.name}: {len(samples)} samples so far", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    with open(args.work / "mined.pkl", "wb") as f:
        pickle.dump(samples, f)
    sheets(args.work / "sheets", [s for s in samples if s["source"] == "cctv"], "cctv")
    sheets(args.work / "sheets", [s for s in samples if s["source"] == "talking"], "talking")
    print(f"{len(samples)} samples -> {args.work}")


def sheets(folder: Path, samples: list[dict], prefix: str) -> None:
    """Numbered contact sheets (aligned 128 view shrunk to a tile), index = position in list."""
    folder.mkdir(parents=True, exist_ok=True)
    per = COLS * ROWS
    index_lines = []
    for s0 in range(0, len(samples), per):
        sheet = np.full((ROWS * (TILE + 14), COLS * TILE, 3), 255, np.uint8)
        for k, rec in enumerate(samples[s0:s0 + per]):
            r, c = divmod(k, COLS)
            tile = cv2.resize(rec["view"], (TILE, TILE), interpolation=cv2.INTER_AREA)
            y, x = r * (TILE + 14), c * TILE
            sheet[y:y + TILE, x:x + TILE] = tile
            colour = (0, 0, 200) if rec["detector"] == "mtcnn" else (200, 0, 0)
            cv2.putText(sheet, f"{s0 + k}", (x + 2, y + TILE + 11), cv2.FONT_HERSHEY_SIMPLEX,
                        0.38, colour, 1, cv2.LINE_AA)
        cv2.imwrite(str(folder / f"{prefix}_{s0 // per:02d}.png"), sheet)
    for i, rec in enumerate(samples):
        index_lines.append(f"{i}\t{rec['key']}\t{rec['score']:.3f}\t{rec['size_px']:.1f}")
    (folder / f"{prefix}_index.tsv").write_text("\n".join(index_lines) + "\n")


if __name__ == "__main__":
    main()
