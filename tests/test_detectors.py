"""Golden tests of the face detectors: counts, canonical landmark order, batching, errors.

mtcnn needs no files; yunet and scrfd read their weights from ../shared and skip without it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import shared_path

from cctv_sr.config import DetectorConfig
from cctv_sr.detect import DETECTORS, FaceDetector, create_detector
from cctv_sr.detect.boxes import batched_nms, nms
from cctv_sr.errors import BackendUnavailableError, ConfigError, ContractError, ModelError
from cctv_sr.models import registry
from cctv_sr.records import FaceDetections

TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
SWAP_LR = [1, 0, 2, 4, 3]  # canonical order of a mirrored face
MODELS = {
    "yunet": "models/yunet_2023mar/face_detection_yunet_2023mar.onnx",
    "scrfd_500m": "models/scrfd_500m/scrfd_500m_bnkps.onnx",
    "scrfd_2.5g": "models/scrfd_2.5g/scrfd_2.5g_bnkps.onnx",
}
# Score cuts for the golden counts: mtcnn reports a 0.6 false positive on the table in t1.
GOLDEN_SCORE = {"mtcnn": 0.9, "yunet": 0.6, "scrfd_500m": 0.5, "scrfd_2.5g": 0.5}
KINDS = ["mtcnn", "yunet", "scrfd_500m", "scrfd_2.5g"]

_CACHE: dict[tuple[str, float], FaceDetector] = {}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the user's model dirs or cache, and none downloads from the internet."""
    monkeypatch.delenv("CCTV_SR_MODELS", raising=False)
    monkeypatch.setenv("CCTV_SR_OFFLINE", "1")
    monkeypatch.setenv("CCTV_SR_CACHE", str(tmp_path / "cache"))


def build(name: str, model_path: Path | None = None, **settings: float | str) -> FaceDetector:
    """``create_detector`` with ``detector.model_path`` (and other settings) given."""
    cfg = DetectorConfig(name=name, model_path=str(model_path) if model_path else "")
    return create_detector(replace(cfg, **settings))


def make(kind: str, score: float | None = None) -> FaceDetector:
    """A detector of ``kind`` (cached); yunet/scrfd skip when ../shared is absent."""
    score = GOLDEN_SCORE[kind] if score is None else score
    key = (kind, score)
    if key not in _CACHE:
        name = kind.split("_")[0]
        path = None if kind == "mtcnn" else shared_path(MODELS[kind])
        if name == "scrfd":
            pytest.importorskip("onnxruntime")
        _CACHE[key] = build(name, path, score_thresh=score)
    return _CACHE[key]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)

    def area(z: np.ndarray) -> np.ndarray:
        return (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])

    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def match(a: FaceDetections, b: FaceDetections, min_iou: float = 0.4) -> list[tuple[int, int]]:
    """Pairs (row in a, row in b) of the same face, by best box IoU."""
    if len(a) == 0 or len(b) == 0:
        return []
    m = iou(a.xyxy, b.xyxy)
    return [(i, int(m[i].argmax())) for i in range(len(a)) if m[i].max() >= min_iou]


def assert_canonical(dets: FaceDetections) -> None:
    """Image-left eye/mouth first; nose between the eyes and below them; mouth below nose."""
    for k in dets.kps:
        assert k[0, 0] < k[1, 0], f"eyes not image-left first: {k.tolist()}"
        assert k[3, 0] < k[4, 0], f"mouth corners not image-left first: {k.tolist()}"
        slack = 0.1 * (k[1, 0] - k[0, 0])  # a 3/4 view puts the nose near one eye
        assert k[0, 0] - slack < k[2, 0] < k[1, 0] + slack, f"nose not between eyes: {k.tolist()}"
        assert k[2, 1] > max(k[0, 1], k[1, 1]), f"nose not below the eyes: {k.tolist()}"
        assert k[3, 1] > k[2, 1] and k[4, 1] > k[2, 1], f"mouth not below nose: {k.tolist()}"


def assert_well_formed(dets: FaceDetections, image: np.ndarray, score: float) -> None:
    assert dets.xyxy.shape == (len(dets), 4) and dets.xyxy.dtype == np.float32
    assert dets.kps.shape == (len(dets), 5, 2) and dets.score.shape == (len(dets),)
    assert dets.track_id is None
    assert np.all(dets.score >= score) and np.all(dets.score <= 1.0)
    h, w = image.shape[:2]
    assert np.all(dets.xyxy[:, [0, 2]] >= 0) and np.all(dets.xyxy[:, [0, 2]] <= w)
    assert np.all(dets.xyxy[:, [1, 3]] >= 0) and np.all(dets.xyxy[:, [1, 3]] <= h)
    assert np.all(dets.xyxy[:, 2] > dets.xyxy[:, 0]) and np.all(dets.xyxy[:, 3] > dets.xyxy[:, 1])


# -- golden landmark order ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_group_photo_six_faces_canonical(kind: str, group_photo: np.ndarray) -> None:
    det = make(kind)
    dets = det.detect([group_photo])[0]
    assert_well_formed(dets, group_photo, det.cfg.score_thresh)
    assert len(dets) == 6
    assert_canonical(dets)


@pytest.mark.parametrize("pad", [0, 64])
@pytest.mark.parametrize("kind", KINDS)
def test_portrait_matches_arcface_template(
    kind: str, pad: int, portrait_photo: np.ndarray
) -> None:
    image = cv2.copyMakeBorder(portrait_photo, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                               value=(128, 128, 128))
    dets = make(kind, score=0.5).detect([image])[0]
    assert len(dets) == 1
    assert_canonical(dets)
    err = np.linalg.norm(dets.kps[0] - (TEMPLATE + pad), axis=1)
    # every detector puts this nose tip ~5-8 px right of and below the template's (a mean
    # face); the other points are within ~6 px
    assert err.mean() < 5.0 and err.max() < 9.0, err


@pytest.mark.parametrize("kind", KINDS)
def test_flipped_image_keeps_canonical_order(kind: str, group_photo: np.ndarray) -> None:
    det = make(kind)
    flipped = np.ascontiguousarray(group_photo[:, ::-1])
    orig, flip = det.detect([group_photo, flipped])
    assert len(flip) == 6
    assert_canonical(flip)
    # mirror the flipped detections back: with image-based order, left/right swap roles
    width = group_photo.shape[1]
    back_kps = flip.kps.copy()
    back_kps[..., 0] = width - back_kps[..., 0]
    back_box = flip.xyxy.copy()
    back_box[:, [0, 2]] = width - flip.xyxy[:, [2, 0]]
    back = FaceDetections(back_box, flip.score, back_kps[:, SWAP_LR])
    pairs = match(orig, back)
    assert len(pairs) == 6
    for i, j in pairs:
        same = np.linalg.norm(orig.kps[i] - back.kps[j], axis=1).mean()
        swapped = np.linalg.norm(orig.kps[i] - back.kps[j][SWAP_LR], axis=1).mean()
        assert same < 0.5 * swapped, (same, swapped)


def test_mtcnn_and_yunet_landmarks_agree(group_photo: np.ndarray) -> None:
    a = make("mtcnn").detect([group_photo])[0]
    b = make("yunet").detect([group_photo])[0]
    pairs = match(a, b)
    assert len(pairs) == 6
    errors = []
    for i, j in pairs:
        eye = np.linalg.norm(a.kps[i, 0] - a.kps[i, 1])
        err = np.linalg.norm(a.kps[i] - b.kps[j], axis=1)
        swapped = np.linalg.norm(a.kps[i] - b.kps[j][SWAP_LR], axis=1)
        assert err.mean() < 0.25 * eye, (err, eye)
        assert err.mean() < 0.4 * swapped.mean(), (err, swapped)
        errors.append(err)
    assert np.median(np.concatenate(errors)) < 8.0  # pixels, on faces ~100 px wide


# -- batching and edge cases ----------------------------------------------------------------


def _same(a: FaceDetections, b: FaceDetections, tol: float = 0.5) -> None:
    assert len(a) == len(b)
    order_a, order_b = np.argsort(a.xyxy[:, 0]), np.argsort(b.xyxy[:, 0])
    np.testing.assert_allclose(a.xyxy[order_a], b.xyxy[order_b], atol=tol)
    np.testing.assert_allclose(a.kps[order_a], b.kps[order_b], atol=tol)
    np.testing.assert_allclose(a.score[order_a], b.score[order_b], atol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_equals_one_by_one_with_mixed_sizes(
    kind: str, group_photo: np.ndarray, portrait_photo: np.ndarray
) -> None:
    det = make(kind, score=0.5)
    crop = np.ascontiguousarray(group_photo[100:600, 200:900])
    portrait = cv2.copyMakeBorder(portrait_photo, 48, 48, 48, 48, cv2.BORDER_CONSTANT)
    flipped = np.ascontiguousarray(group_photo[:, ::-1])
    images = [group_photo, crop, portrait, flipped]
    batched = det.detect(images)
    assert len(batched) == len(images)
    for image, got in zip(images, batched):
        _same(got, det.detect([image])[0])
    assert len(batched[2]) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_black_image_gives_no_faces(kind: str) -> None:
    out = make(kind, score=0.5).detect([np.zeros((480, 640, 3), np.uint8)])
    assert len(out) == 1 and len(out[0]) == 0
    assert out[0].xyxy.shape == (0, 4) and out[0].score.shape == (0,)
    assert out[0].kps.shape == (0, 5, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_call_tiny_images_and_views(kind: str, group_photo: np.ndarray) -> None:
    det = make(kind)
    assert det.detect([]) == []
    tiny = [np.zeros((1, 1, 3), np.uint8), np.full((8, 8, 3), 200, np.uint8),
            np.zeros((11, 40, 3), np.uint8)]
    assert [len(d) for d in det.detect(tiny)] == [0, 0, 0]
    view = group_photo[:, ::-1]  # not contiguous
    _same(det.detect([view])[0], det.detect([np.ascontiguousarray(view)])[0], tol=1e-3)


def test_mtcnn_finds_small_faces(group_photo: np.ndarray) -> None:
    det = make("mtcnn", score=0.5)
    reference = make("mtcnn").detect([group_photo])[0]
    factor = 0.2  # faces ~100-120 px become ~20-25 px
    small = cv2.resize(group_photo, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 640, 3), 90, np.uint8)  # a CCTV-sized frame around it
    y0, x0 = 100, 150
    canvas[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    found = det.detect([canvas])[0]
    expected = FaceDetections(reference.xyxy * factor + [x0, y0, x0, y0], reference.score,
                              reference.kps * factor + [x0, y0])
    sides = expected.xyxy[:, 2] - expected.xyxy[:, 0]
    assert sides.max() < 30
    assert len(match(expected, found, min_iou=0.3)) >= 5


def test_mtcnn_min_face_px_limits_search(group_photo: np.ndarray) -> None:
    small = cv2.resize(group_photo, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)
    big_only = build("mtcnn", min_face_px=60)
    assert len(big_only.detect([small])[0]) == 0


# -- errors, registry, provenance -----------------------------------------------------------


def test_registry_is_lazy_and_complete() -> None:
    assert set(DETECTORS) == {"mtcnn", "yunet", "scrfd"}
    for name in DETECTORS:
        cls = registry.load_class("detector", name, FaceDetector)
        assert issubclass(cls, FaceDetector) and cls.name == name
    with pytest.raises(ConfigError, match="known"):
        build("retinaface")
    with pytest.raises(ConfigError, match=r"^detector\.name: unknown detector 'yunett' "
                                          r"\(did you mean 'yunet'\?"):
        build("yunett")


@pytest.mark.shared
def test_yunet_default_weights_found_through_models_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no model_path, create_detector resolves the default manifest's file like every
    backend (it used to fail with "no model file given")."""
    root = shared_path("models")
    if not (root / "yunet_2023mar" / "face_detection_yunet_2023mar.onnx").is_file():
        pytest.skip("yunet_2023mar not in ../shared/models")
    monkeypatch.setenv("CCTV_SR_MODELS", str(root))
    det = create_detector(DetectorConfig(name="yunet"))
    assert det.model_files == (root / "yunet_2023mar" / "face_detection_yunet_2023mar.onnx",)


def test_mtcnn_works_offline_and_records_weights() -> None:
    det = make("mtcnn")
    assert det.name == "mtcnn"
    assert [p.name for p in det.model_files] == ["pnet.lz4", "rnet.lz4", "onet.lz4"]
    assert all(p.is_file() for p in det.model_files)
    threads = torch.get_num_threads()
    det.detect([np.zeros((64, 64, 3), np.uint8)])
    assert torch.get_num_threads() == threads  # global torch setting untouched


def test_bad_images_raise_contract_error() -> None:
    det = make("mtcnn")
    with pytest.raises(ContractError):
        det.detect([np.zeros((10, 10), np.uint8)])
    with pytest.raises(ContractError):
        det.detect([np.zeros((10, 10, 3), np.float32)])
    with pytest.raises(ContractError):
        det.detect(np.zeros((10, 10, 3), np.uint8))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["yunet", "scrfd"])
def test_missing_model_file_raises_model_error(name: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / f"{name}.onnx"
    with pytest.raises(ModelError, match=re.escape(str(missing))):
        build(name, missing)
    if name == "yunet":  # the default detector ships in the package: offline it still loads
        assert build(name).model_files[0].parent.name == "weights"
        return
    with pytest.raises(ModelError, match="CCTV_SR_OFFLINE|cannot be downloaded"):
        build(name)  # offline, nothing local


def test_mtcnn_missing_weights_dir_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=re.escape(str(tmp_path / "pnet.lz4"))):
        build("mtcnn", tmp_path)
    with pytest.raises(ModelError, match="not found"):
        build("mtcnn", tmp_path / "absent")


def test_mtcnn_corrupt_weights_raise_model_error(tmp_path: Path) -> None:
    for net in ("pnet", "rnet", "onet"):
        (tmp_path / f"{net}.lz4").write_bytes(b"not lz4")
    with pytest.raises(ModelError, match="pnet.lz4"):
        build("mtcnn", tmp_path)


def test_corrupt_onnx_raises_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="bad.onnx"):
        build("yunet", bad)
    pytest.importorskip("onnxruntime")
    with pytest.raises(ModelError, match="bad.onnx"):
        build("scrfd", bad)


def test_scrfd_without_onnxruntime_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "det.onnx"
    model.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(BackendUnavailableError, match=r"cctv-sr\[onnx\]"):
        build("scrfd", model)


def test_scrfd_layouts(group_photo: np.ndarray) -> None:
    batched = make("scrfd_500m")
    single = make("scrfd_2.5g")
    assert batched.batched is True  # type: ignore[attr-defined]
    assert single.batched is False  # type: ignore[attr-defined]


# -- box helpers ----------------------------------------------------------------------------


def test_nms_union_and_min() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [2, 2, 6, 6]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.5, mode="min").tolist() == [0, 2]
    groups = np.array([0, 1, 0, 1])
    assert sorted(batched_nms(boxes, scores, groups, 0.5).tolist()) == [0, 1, 2, 3]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


def test_yunet_keeps_one_network_per_input_size(group_photo: np.ndarray,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Images of several sizes, interleaved: the same faces as one fresh detector per image,
    and no more networks kept than MAX_NETS (the shipped YuNet file)."""
    from cctv_sr.detect import yunet

    monkeypatch.setattr(yunet, "MAX_NETS", 2)
    detector = build("yunet", runtime="opencv")
    images = [group_photo, cv2.resize(group_photo, None, fx=0.75, fy=0.75),
              np.ascontiguousarray(group_photo[:320, :320])]
    order = [0, 1, 2, 0, 2, 1, 0]
    found = [detector.detect([images[k]])[0] for k in order]
    assert len(detector._nets) == 2  # type: ignore[attr-defined]
    for k, dets in zip(order, found):
        fresh = build("yunet", runtime="opencv").detect([images[k]])[0]
        assert len(dets) == len(fresh) >= 1
        np.testing.assert_allclose(dets.xyxy, fresh.xyxy, atol=1e-3)


def test_yunet_onnxruntime_matches_opencv(group_photo: np.ndarray,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The onnxruntime path (the shipped fixed-size file made dynamic in memory, outputs
    decoded by the project) finds what cv2.FaceDetectorYN finds: same faces, boxes and
    landmarks within 0.01 px, scores within 1e-4. Same-size images batched (two per call
    here, so a batch boundary is crossed) give what one call per image gives, each its own
    faces. Sizes that are not multiples of 32 are padded like OpenCV's."""
    pytest.importorskip("onnxruntime")
    from cctv_sr.detect import yunet_ort

    monkeypatch.setattr(yunet_ort, "MAX_BATCH", 2)
    ort_det = build("yunet", runtime="onnxruntime")
    cv_det = build("yunet", runtime="opencv")
    assert (ort_det.runtime, cv_det.runtime) == ("onnxruntime", "opencv")  # type: ignore[attr-defined]
    small = cv2.resize(group_photo, None, fx=0.6, fy=0.6)
    crop = np.ascontiguousarray(group_photo[:250, 100:350])
    images = [group_photo, small, crop, cv2.resize(group_photo[:200, :200], (288, 288)),
              np.ascontiguousarray(crop[:, ::-1]), np.ascontiguousarray(group_photo[:250, :250])]
    batch = ort_det.detect(images)
    total = 0
    for k, image in enumerate(images):
        want = cv_det.detect([image])[0]
        got = ort_det.detect([image])[0]
        assert len(got) == len(want)
        total += len(want)
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-2)
        np.testing.assert_allclose(got.kps, want.kps, atol=1e-2)
        np.testing.assert_allclose(got.score, want.score, atol=1e-4)
        assert len(batch[k]) == len(got)
        np.testing.assert_allclose(batch[k].xyxy, got.xyxy, atol=1e-3)
    assert total >= 10
    # the three 250 x 250 images hold different faces: rows never went to the wrong image
    assert not np.allclose(batch[2].xyxy[:1], batch[4].xyxy[:1])


def test_yunet_auto_runtime_falls_back_to_opencv(monkeypatch: pytest.MonkeyPatch,
                                                 group_photo: np.ndarray) -> None:
    """Without onnxruntime ``runtime = "auto"`` runs OpenCV's YuNet; an unknown runtime is
    refused by name."""
    from cctv_sr.detect import yunet

    monkeypatch.setattr(yunet, "onnxruntime_installed", lambda: False)
    detector = build("yunet")
    assert detector.runtime == "opencv"  # type: ignore[attr-defined]
    assert len(detector.detect([group_photo])[0]) >= 4
    with pytest.raises(ConfigError, match="detector.runtime"):
        build("yunet", runtime="tensorrt")
