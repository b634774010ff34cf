"""Re-derive the fixed ArcFace-crop -> dlib-chip transform hard-coded in cctv_sr.embed.dlib_resnet.

    python samples/derive_dlib_chip_transform.py [--lfw ../shared/data/faces/lfw_dev] [--max 300]
        [--check]

dlib's face ResNet was trained on 150x150 chips cut by ``dlib.get_face_chip(img, shape, 150,
0.25)`` from its own 5-point shape predictor (eye corners and the base of the nose), which is
not the ArcFace template geometry. For each photo (the first image of each LFW DEV identity,
in sorted order), this script

1. aligns the face the project's way: MTCNN landmarks -> ``similarity_to_template(kps, 112)``
   gives ``M_arc`` (image -> canonical 112 crop);
2. lets dlib align it its own way: HOG detector -> ``shape_predictor_5_face_landmarks`` ->
   the chip geometry of ``get_face_chip`` (measured exactly with coordinate images, see
   :func:`cctv_sr.embed.dlib_resnet.dlib_chip_affine`) gives ``A_dlib`` (image -> chip);
3. records ``T = A_dlib o inverse(M_arc)``, the canonical crop -> chip map of that face.

Each ``T`` is a similarity ``[[a, -b, tx], [b, a, ty]]``; the printed transform is the mean of
``(a, b, tx, ty)`` over the faces (which is also the least-squares similarity over any fixed
set of crop points), after dropping faces whose own map lands more than 3 MADs away. Only these
four aggregate numbers go into the code; no face data does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import dlib
import numpy as np

from cctv_sr.config import DetectorConfig, EmbedderConfig
from cctv_sr.detect import create_detector
from cctv_sr.embed import create_embedder
from cctv_sr.embed.dlib_resnet import (
    CHIP_PADDING,
    CHIP_SIZE,
    DLIB_CHIP_112,
    DlibEmbedder,
    dlib_chip_affine,
    shape_predictor,
)
from cctv_sr.face.align import similarity_to_template, warp_face

REPO = Path(__file__).resolve().parents[1]
GRID = np.array([[x, y] for x in (0.0, 56.0, 112.0) for y in (0.0, 56.0, 112.0)])


def to3(m: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])


def nearest_centre(boxes: np.ndarray, width: int, height: int) -> int:
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    return int(np.argmin(np.linalg.norm(centres - [width / 2.0, height / 2.0], axis=1)))


def measure(paths: list[Path]) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """(n, 4) similarity parameters (a, b, tx, ty) of crop -> chip, one row per usable face,
    and per face: our canonical 112 crop (BGR) and dlib's own chip (RGB)."""
    detector = create_detector(DetectorConfig(name="mtcnn", score_thresh=0.9))
    hog = dlib.get_frontal_face_detector()
    predictor = shape_predictor()
    rows, pairs = [], []
    for path in paths:
        image = cv2.imread(str(path))
        if image is None:
            continue
        h, w = image.shape[:2]
        found = detector.detect([image])[0]
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        rects = hog(rgb, 0)
        if len(found) == 0 or len(rects) == 0:
            continue
        kps = found.kps[nearest_centre(found.xyxy, w, h)]
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], float)
        rect = rects[nearest_centre(boxes, w, h)]
        mtcnn_centre = found.xyxy[nearest_centre(found.xyxy, w, h)].reshape(2, 2).mean(0)
        if np.linalg.norm(boxes[nearest_centre(boxes, w, h)].reshape(2, 2).mean(0)
                          - mtcnn_centre) > 0.25 * rect.width():
            continue  # the two detectors found different faces
        shape = predictor(rgb, rect)
        m_arc = similarity_to_template(kps, 112)
        t = to3(dlib_chip_affine(rgb.shape, shape)) @ np.linalg.inv(to3(m_arc))
        rows.append([t[0, 0], t[1, 0], t[0, 2], t[1, 2]])
        pairs.append((warp_face(image, m_arc, 112),
                      dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)))
    return np.array(rows), pairs


def check(pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Descriptor distance (dlib's raw L2) between the chip the fixed transform makes from our
    canonical crop and dlib's own chip of the same photo, against different-person distances."""
    embedder = create_embedder(EmbedderConfig(name="dlib"))
    if not isinstance(embedder, DlibEmbedder):
        raise SystemExit("the dlib embedder did not load")
    ours = embedder.descriptors(np.stack([crop for crop, _ in pairs]))
    theirs = embedder.descriptors_of_chips(np.stack([chip for _, chip in pairs]))
    same = np.linalg.norm(ours - theirs, axis=1)
    cross = np.linalg.norm(theirs[:, None] - theirs[None], axis=2)[np.triu_indices(len(pairs), 1)]
    print(f"L2(fixed-transform chip, dlib's own chip), same photo: median {np.median(same):.3f}, "
          f"p90 {np.percentile(same, 90):.3f}, max {same.max():.3f} (dlib's threshold: 0.6)")
    print(f"L2 between different identities (dlib's own chips): median {np.median(cross):.3f}, "
          f"p1 {np.percentile(cross, 1):.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared/data/faces/lfw_dev")
    parser.add_argument("--max", type=int, default=300, help="identities (one image each)")
    parser.add_argument("--check", action="store_true",
                        help="also embed with the hard-coded transform and with dlib's own chips")
    args = parser.parse_args()
    if not args.lfw.is_dir():
        sys.exit(f"{args.lfw}: LFW dev folder not found")
    paths = []
    for folder in sorted(p for p in args.lfw.iterdir() if p.is_dir()):
        images = sorted(folder.glob("*.jpg"))
        if images:
            paths.append(images[0])
        if len(paths) >= args.max:
            break
    params, pairs = measure(paths)
    # chip position of a 3x3 grid of crop points, per face: the distance to the mean is the
    # face's disagreement in chip pixels
    def chip_points(p: np.ndarray) -> np.ndarray:
        a, b, tx, ty = p
        return GRID @ np.array([[a, b], [-b, a]]) + [tx, ty]

    mean = params.mean(0)
    dev = np.array([np.sqrt(((chip_points(p) - chip_points(mean)) ** 2).sum(1).mean())
                    for p in params])
    mad = np.median(np.abs(dev - np.median(dev)))
    keep = dev <= np.median(dev) + 3 * 1.4826 * mad
    final = params[keep].mean(0)
    spread = np.array([np.sqrt(((chip_points(p) - chip_points(final)) ** 2).sum(1).mean())
                       for p in params[keep]])
    a, b, tx, ty = final
    scale, angle = float(np.hypot(a, b)), float(np.degrees(np.arctan2(b, a)))
    print(f"faces: {len(paths)} tried, {len(params)} usable, {int(keep.sum())} kept")
    print(f"crop112 -> chip{CHIP_SIZE}: scale {scale:.4f}, rotation {angle:+.3f} deg, "
          f"t = ({tx:.3f}, {ty:.3f})")
    print(f"per-face deviation from it: median {np.median(spread):.2f}, "
          f"p90 {np.percentile(spread, 90):.2f} chip px (RMS over a 3x3 grid of the crop)")
    std = params[keep].std(0)
    print(f"std of (a, b, tx, ty): {std.round(4).tolist()}")
    print(f"DLIB_CHIP_112 = np.array([[{a:.5f}, {-b:.5f}, {tx:.4f}], "
          f"[{b:.5f}, {a:.5f}, {ty:.4f}]])")
    print("currently hard-coded:\n", np.array2string(DLIB_CHIP_112, precision=5))
    if args.check:
        check(pairs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
