"""``cctv-sr eval video`` (evaluate/video.py): the clean crop at the same place as each SR
crop, and the whole measurement on a real encoded clip of a real face."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from cctv_sr.cli import main
from cctv_sr.config import EmbedderConfig, RunConfig, SRConfig
from cctv_sr.detect import create_detector
from cctv_sr.embed import create_embedder
from cctv_sr.evaluate.video import clean_frames, degrade, eval_clip, gt_affine, summarise
from cctv_sr.face.align import ARCFACE_112, similarity_to_template, warp_face
from cctv_sr.sr import create_super_resolver


def _talking_head(path: Path, portrait: np.ndarray, frames: int = 24) -> Path:
    """A 320x320 clip of one face (~150 px) drifting and nodding slightly."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width = stream.height = 320
        stream.pix_fmt = "yuv420p"
        big = cv2.resize(portrait, (224, 224), interpolation=cv2.INTER_CUBIC)
        for i in range(frames):
            canvas = np.full((320, 320, 3), 90, np.uint8)
            m = cv2.getRotationMatrix2D((112, 112), 3 * np.sin(i / 3), 1.0)
            m[:, 2] += (48 + 4 * np.sin(i / 4), 48 + 2 * np.cos(i / 5))
            cv2.warpAffine(big, m, (320, 320), canvas, borderMode=cv2.BORDER_TRANSPARENT)
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_the_clean_crop_lands_where_the_degraded_one_is(tmp_path: Path) -> None:
    """A smooth test image shrunk and padded as eval video does: the clean frame warped with
    gt_affine matches the degraded frame warped with M (the alignment found there)."""
    rng = np.random.default_rng(0)
    clean = cv2.GaussianBlur(rng.integers(0, 255, (400, 360, 3)).astype(np.uint8), (0, 0), 6)
    clean = cv2.normalize(clean, None, 0, 255, cv2.NORM_MINMAX)
    path = tmp_path / "d.mp4"
    offset, f = degrade([clean] * 3, 12.0, 0.2, path)
    assert f == (72 / 360, 80 / 400)
    small = clean_frames(path)[0][1]
    kps = ARCFACE_112 * 0.5 + np.array([offset[0] + 10, offset[1] + 10])  # a ~20 px "face"
    M = similarity_to_template(kps.astype(np.float32), 16)
    lr = warp_face(small, M, 16).astype(np.float32)

    def err(dx: float, dy: float = 0.0) -> float:
        gt = warp_face(clean, gt_affine(M, f, (offset[0] + dx, offset[1] + dy), 16, 16), 16)
        return float(np.abs(gt.astype(np.float32) - lr).mean())

    here = err(0)  # what is left is H.264's error at this size
    assert here < 8.0
    assert here < min(err(0.5), err(-0.5), err(0, 0.5), err(0, -0.5))
    assert here < 0.8 * min(err(1), err(-1))  # one degraded pixel off is clearly worse
    big = gt_affine(M, f, offset, 16, 128)
    assert np.allclose(big[:, :2], gt_affine(M, f, offset, 16, 16)[:, :2] * 8, rtol=1e-5)
    # a shrink that rounds differently per axis: each axis its own scale
    clean2 = cv2.resize(clean, (357, 401))
    offset2, f2 = degrade([clean2] * 2, 12.0, 0.2, tmp_path / "d2.mp4")
    assert f2 == (71 / 357, 80 / 401) and f2[0] != f2[1]


@pytest.mark.usefixtures("one_torch_thread")
def test_eval_video_scores_single_and_temporal_side_by_side(portrait_photo, tmp_path: Path,
                                                            monkeypatch) -> None:
    clip = _talking_head(tmp_path / "head.mp4", portrait_photo)
    cfg = RunConfig()
    scores = list(eval_clip(clip, (24,), cfg, create_detector(cfg.detector),
                            {"bicubic": create_super_resolver(SRConfig())},
                            create_embedder(EmbedderConfig(name="dlib"))))
    rows = {r.method: r for r in summarise(scores)}
    assert set(rows) == {"bicubic single", "bicubic temporal"}
    for r in rows.values():
        assert r.faces >= 6 and r.clips == 1 and r.size == 24
        assert 15 < r.psnr < 40 and 0.3 < r.ssim <= 1  # type: ignore[operator]
        assert 0.5 < r.id_cos <= 1.0 and r.flicker is not None and r.flicker > 0
    # the CLI: a folder with the clip, --json rows with the fields EVAL.md names
    out = tmp_path / "video.json"
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "video", "--clips", str(tmp_path), "--pattern", "head",
                 "--sizes", "24", "--methods", "bicubic", "--quiet", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {r["method"] for r in data["rows"]} == {"bicubic single", "bicubic temporal"}
    assert {"psnr", "ssim", "id_cos", "flicker", "size"} <= set(data["rows"][0])
    [margin] = data["margins"]  # paired face by face: the same faces in both modes
    assert margin["method"] == "bicubic" and margin["pairs"] == rows["bicubic single"].faces
    assert main(["eval", "video", "--clips", str(tmp_path / "none"), "--quiet"]) == 1


def test_heads_score_faces_of_mixed_crop_sides(portrait_photo) -> None:
    """A clip's faces come at several LR sides (16 and 32): each side is its own batch."""
    from fractions import Fraction

    from cctv_sr.config import HeadConfig
    from cctv_sr.embed.lrhead import LrHeadEmbedder
    from cctv_sr.evaluate.video import score_head
    from cctv_sr.models import registry
    from cctv_sr.records import AlignedFace, Quality, TrackWindow

    q = Quality(size_px=20.0, size=0.3, sharpness=0.5, frontal=0.8, det_score=0.9, score=0.5)
    wins = []
    for i, side in enumerate([16, 32, 16, 32, 32]):
        crop = cv2.resize(portrait_photo, (side, side), interpolation=cv2.INTER_AREA)
        face = AlignedFace("s", 1, i, i, Fraction(1, 25), 0, np.zeros(4, np.float32),
                           np.zeros((5, 2), np.float32), crop, np.eye(2, 3, dtype=np.float32), q)
        wins.append(TrackWindow(face, np.stack([crop] * 5), np.ones(5, bool)))
    teacher = create_embedder(EmbedderConfig())
    gt = teacher.embed(np.stack([cv2.resize(portrait_photo, (128, 128))] * 5))
    for name in ("lrmfn", "lrmfn_t5"):
        head = registry.build("head", HeadConfig(name=name), LrHeadEmbedder)
        for mode in ("single", "temporal"):
            scores = score_head(name, 24, "c", head, wins, mode, gt)
            assert [s.frame for s in scores] == [0, 1, 2, 3, 4]
            assert all(0.3 < s.id_cos <= 1.0 for s in scores)  # the same face, scored in order
