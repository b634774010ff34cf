"""The identity sink's gate and records: a track of non-faces is reported as not matchable
(never named, never silently dropped), a short track is held to a stricter threshold, and
matches.jsonl / match.png say so.

Real parts: the shipped MobileFaceNet embedder, MTCNN's O-Net as the faceness check, the six
faces of the group photo aligned from MTCNN landmarks, a real OutputWriter in a tmp dir. The
track messages are built by hand here (no video) so each case is exact.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from cctv_sr.config import DetectorConfig, EmbedderConfig, GateConfig, OutputConfig
from cctv_sr.data.synth import T1_FACE_BOXES
from cctv_sr.detect import create_detector
from cctv_sr.embed import create_embedder
from cctv_sr.face.align import similarity_to_template, warp_face
from cctv_sr.face.faceness import OnetFaceness
from cctv_sr.identity.match import DecisionRule, Thresholds
from cctv_sr.identity.sink import GalleryView, IdentityWriter
from cctv_sr.io.lines import EmbedderRef
from cctv_sr.io.outdir import OutputWriter
from cctv_sr.records import (
    AlignedFace,
    Embedded,
    EnhancedFace,
    FaceVectors,
    Quality,
    Saved,
    TrackEnd,
    TrackSummary,
)

# MobileFaceNet's calibrated points (manifest): far 1e-2 .. 1e-5
THRESHOLDS = Thresholds(0.2533, 0.3357, ((1e-4, 0.4039), (1e-5, 0.4631)))


@pytest.fixture(scope="module")
def parts(group_photo: np.ndarray):
    found = create_detector(DetectorConfig(name="mtcnn", score_thresh=0.9)).detect([group_photo])[0]
    centres = found.xyxy.reshape(-1, 2, 2).mean(1)
    crops = []
    for x, y, w, h in T1_FACE_BOXES:
        i = int(np.linalg.norm(centres - [x + w / 2, y + h / 2], axis=1).argmin())
        crops.append(warp_face(group_photo, similarity_to_template(found.kps[i], 32), 32))
    embedder = create_embedder(EmbedderConfig(name="mobilefacenet"))
    return np.stack(crops), embedder, OnetFaceness()


def _face(track: int, frame: int, crop: np.ndarray) -> AlignedFace:
    q = Quality(size_px=40.0, size=0.5, sharpness=0.6, frontal=0.8, det_score=0.99, score=0.5)
    return AlignedFace("s0", track, frame, frame, Fraction(1, 10), 0,
                       np.array([0, 0, 40, 40], np.float32), np.zeros((5, 2), np.float32),
                       crop, np.eye(2, 3, dtype=np.float32), q)


def _run_track(sink: IdentityWriter, track: int, crops: np.ndarray, parts) -> None:
    _, embedder, faceness = parts
    scores = faceness.score(list(crops))
    vectors = embedder.embed(crops)
    faces = [_face(track, i, c) for i, c in enumerate(crops)]
    sr = np.stack([cv2.resize(c, (128, 128), interpolation=cv2.INTER_CUBIC) for c in crops])
    sr_vectors = embedder.embed(sr)
    saved = Saved(EnhancedFace(faces[0], sr[0], "bicubic"), (),
                  FaceVectors(vectors[0], sr_vectors[0], float(scores[0])))
    sink.writer.handle(saved)  # as the pipeline does: the output writer saves the crops first
    sink.handle(saved)
    for f, v, s, score in zip(faces[1:], vectors[1:], sr_vectors[1:], scores[1:], strict=True):
        sink.handle(Embedded(f, FaceVectors(v, s, float(score))))
    summary = TrackSummary("s0", track, 0, len(crops) - 1, 0.0, (len(crops) - 1) / 10,
                           len(crops), 0, 0.5)
    sink.handle(TrackEnd(summary, (), (faces[0].face_id,)))


@pytest.fixture()
def sink(tmp_path: Path, parts):
    crops, embedder, _ = parts
    names = ["ana", "bo", "cy"]
    gallery = GalleryView(names, embedder.embed(crops[:3]), {})
    writer = OutputWriter(tmp_path / "out", OutputConfig())
    rule = DecisionRule(THRESHOLDS, fpir=0.01, people=len(names))
    out = IdentityWriter(writer, gallery, rule, top_k=3, embedder=EmbedderRef("mfn", "v"),
                         gate=GateConfig())
    yield out, tmp_path / "out"
    out.close()


def _lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "matches.jsonl").read_text().splitlines()]


def test_a_real_face_track_is_matched_with_full_evidence(sink, parts) -> None:
    writer, out = sink
    crops = parts[0]
    _run_track(writer, 1, np.stack([crops[1]] * 6), parts)  # bo, six faces
    (m,) = _lines(out)
    assert m["gate"]["matchable"] and m["gate"]["n_usable"] == 6
    assert m["gate"]["far_factor"] == 1.0 and m["decision"] == "bo" and m["reason"] is None
    assert m["threshold"] == pytest.approx(THRESHOLDS.far_1e3, abs=1e-4)  # 3 people: the floor
    assert m["margin"] > 0.3


def test_non_faces_are_reported_not_matchable_and_never_named(sink, parts) -> None:
    writer, out = sink
    rng = np.random.default_rng(0)
    # textures a detector may fire on: noise, a flat wall, stripes
    noise = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    flat = np.full((32, 32, 3), 128, np.uint8)
    stripes = np.zeros((32, 32, 3), np.uint8)
    stripes[:, ::4] = 255
    _run_track(writer, 2, np.stack([noise, flat, stripes, noise]), parts)
    (m,) = _lines(out)
    assert m["gate"]["matchable"] is False and m["decision"] is None
    assert m["decision_lr_only"] is None and m["decision_sr_only"] is None
    assert m["gate"]["n_not_face"] >= 3 and "not a face" in m["gate"]["reason"]
    assert m["reason"].startswith("not matchable: not a face")
    assert len(m["candidates"]) == 3  # scored for the record all the same
    image = cv2.imread(str(out / m["side_by_side"]))
    b, g, r = image[:20].reshape(-1, 3).mean(axis=0)
    assert r > g + 40  # red banner: not a match


def test_a_short_track_needs_a_higher_score(sink, parts) -> None:
    writer, out = sink
    crops = parts[0]
    _run_track(writer, 3, np.stack([crops[2]] * 2), parts)  # cy, two faces
    (m,) = _lines(out)
    assert m["gate"]["matchable"] and m["gate"]["n_usable"] == 2
    assert m["gate"]["far_factor"] == pytest.approx(0.1)
    assert m["gate"]["pair_far"] == pytest.approx(1e-4, rel=1e-3)  # 1e-3 floor x 0.1
    assert m["gate"]["beyond_calibration"] is False
    strict = THRESHOLDS.for_watchlist(0.01, 3, far_factor=0.1).threshold
    assert m["threshold"] == pytest.approx(strict, abs=1e-4) and strict > THRESHOLDS.far_1e3
    assert m["decision"] == "cy"  # the same photo: it clears even the stricter bar


def test_one_face_is_not_enough(sink, parts) -> None:
    writer, out = sink
    _run_track(writer, 4, parts[0][:1], parts)
    (m,) = _lines(out)
    assert not m["gate"]["matchable"] and "too few usable faces" in m["gate"]["reason"]
    assert m["decision"] is None
    assert writer.counts.not_matchable == 1
