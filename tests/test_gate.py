"""The matching gate (identity/gate.py) and the O-Net faceness verifier (face/faceness.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cctv_sr.errors import ConfigError, ContractError
from cctv_sr.identity.gate import (
    FaceEvidence,
    GateConfig,
    evidence_far_factor,
    gate_track,
    judge_face,
)
from cctv_sr.records import Quality

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "lfw_dev"


def q(size_px: float = 40.0, sharp: float = 0.5, frontal: float = 0.8, det: float = 0.99
      ) -> Quality:
    return Quality(size_px, min(size_px / 80, 1.0), sharp, frontal, det, 0.5)


def ev(i: int, faceness: float = 0.99, **kw: float) -> FaceEvidence:
    return FaceEvidence(f"f{i}", q(**kw), faceness)


def test_good_track_is_matchable_with_full_evidence() -> None:
    g = gate_track([ev(i) for i in range(6)])
    assert g.matchable and g.reason is None
    assert (g.n_faces, g.n_usable, g.n_not_face) == (6, 6, 0)
    assert g.far_factor == 1.0 and len(g.usable_ids) == 6


def test_non_face_track_is_reported_with_reason() -> None:
    g = gate_track([ev(i, faceness=0.12) for i in range(3)])
    assert not g.matchable and g.far_factor == 0.0
    assert g.reason is not None and g.reason.startswith("not a face")
    assert "3 of 3" in g.reason


def test_too_small_and_too_few() -> None:
    g = gate_track([ev(0, size_px=9.0), ev(1, size_px=8.0)])
    assert not g.matchable and g.reason == "too small (best 9.0 px < 12 px)"
    g = gate_track([ev(0), ev(1, sharp=0.0)])
    assert not g.matchable and g.reason is not None
    assert g.reason.startswith("too few usable faces (1 < 2")
    assert gate_track([]).reason == "no faces"
    # one usable 40 px face and three too-small ones: "too few", never "too small (best 40 px)"
    g = gate_track([ev(0, size_px=40.0), *(ev(i, size_px=9.0) for i in range(1, 4))])
    assert g.reason is not None and g.reason.startswith("too few usable faces (1 < 2")


def test_unscored_faceness_says_so() -> None:
    g = gate_track([ev(0, faceness=float("nan")), ev(1, faceness=float("nan"))])
    assert not g.matchable and g.n_not_face == 0
    assert g.reason is not None and "faceness not scored on 2 of 2" in g.reason
    assert gate_track([ev(0, faceness=float("nan")), ev(1, faceness=0.9)]).best_faceness == 0.9


def test_face_bars_in_order_and_nan_fails() -> None:
    assert judge_face(ev(0)).usable
    v = judge_face(ev(0, faceness=0.2, size_px=5.0))
    assert v.failed == "not a face" and v.reason == "not a face (faceness 0.2 < 0.5)"
    assert judge_face(ev(0, frontal=0.0)).failed == "bad landmarks"
    assert judge_face(ev(0, det=0.3)).failed == "low detector score"
    assert judge_face(ev(0, faceness=float("nan"))).failed == "faceness not scored"
    assert not judge_face(ev(0, sharp=float("nan"))).usable  # NaN quality terms fail


def test_mostly_non_face_track_fails_even_with_two_usable() -> None:
    faces = [ev(0), ev(1)] + [ev(i, faceness=0.1) for i in range(2, 6)]
    g = gate_track(faces)
    assert not g.matchable and g.n_usable == 2 and g.n_not_face == 4


def test_evidence_factor_is_monotonic() -> None:
    f = [evidence_far_factor(n) for n in range(0, 8)]
    assert f[0] == f[1] == 0.0
    assert f[2] == pytest.approx(0.1) and f[5] == f[7] == 1.0
    assert all(a <= b for a, b in zip(f[2:], f[3:]))
    assert gate_track([ev(0), ev(1)]).far_factor == pytest.approx(0.1)


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError):
        GateConfig(min_faceness=1.5)
    with pytest.raises(ConfigError):
        GateConfig(min_usable=3, full_evidence_faces=2)
    with pytest.raises(ConfigError):
        GateConfig(short_track_far_factor=0.0)


# --------------------------------------------------------------------- the O-Net verifier


@pytest.fixture(scope="module")
def onet():  # type: ignore[no-untyped-def]
    pytest.importorskip("lz4")
    from cctv_sr.errors import BackendUnavailableError, ModelError
    from cctv_sr.face.faceness import OnetFaceness

    try:
        return OnetFaceness()
    except (BackendUnavailableError, ModelError) as exc:
        pytest.skip(f"MTCNN weights unavailable: {exc}")


def test_flat_and_noise_crops_are_not_faces(onet) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    crops = [np.full((32, 32, 3), 128, np.uint8), np.full((128, 128, 3), 30, np.uint8),
             rng.integers(0, 256, (16, 16, 3), dtype=np.uint8),
             rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)]
    s = onet.score(crops)
    assert s.shape == (4,) and s.dtype == np.float32
    assert np.all(s < 0.5), s
    assert onet.score([]).shape == (0,)


def test_bad_crops_raise(onet) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ContractError):
        onet.score(np.zeros((32, 32, 3), np.uint8))  # one crop, not a sequence
    with pytest.raises(ContractError):
        onet.score([np.zeros((32, 16, 3), np.uint8)])


def test_real_lfw_faces_pass_at_every_size(onet) -> None:  # type: ignore[no-untyped-def]
    if not LFW.is_dir():
        pytest.skip("../shared/data/faces/lfw_dev not present")
    from cctv_sr.config import DetectorConfig
    from cctv_sr.data.degrade import degrade, seed_of
    from cctv_sr.detect import create_detector
    from cctv_sr.evaluate.oracle import align_image

    det = create_detector(DetectorConfig(name="mtcnn"))
    paths = sorted(LFW.glob("*/*.jpg"))[:6]
    crops = [align_image(cv2.imread(str(p)), det) for p in paths]
    hr = [c for c in crops if c is not None]
    assert len(hr) >= 5
    names = [p.name for p in paths]
    probes = hr + [degrade(c, s, seed_of(n)) for c, n in zip(hr, names) for s in (32, 24)]
    s = onet.score(probes)
    assert np.mean(s >= GateConfig().min_faceness) >= 0.9, s


def test_onet_on_onnxruntime_gives_the_torch_probabilities(
        onet, group_photo: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """The O-Net graph the project writes for onnxruntime (no onnx package, no exporter)
    scores crops as the torch module does: face crops of the group photo at 16, 32 and 128 px
    and non-faces, to 1e-5; the onnx package, where installed, accepts the graph."""
    pytest.importorskip("onnxruntime")
    from cctv_sr.config import DetectorConfig
    from cctv_sr.detect import create_detector
    from cctv_sr.face.align import similarity_to_template, warp_face
    from cctv_sr.face.faceness import OnetFaceness

    fast = OnetFaceness(runtime="onnxruntime")
    slow = OnetFaceness(runtime="torch")
    assert (fast.runtime, slow.runtime) == ("onnxruntime", "torch")
    dets = create_detector(DetectorConfig(name="yunet")).detect([group_photo])[0]
    crops = [warp_face(group_photo, similarity_to_template(k, side), side)
             for k in dets.kps for side in (16, 32, 128)]
    rng = np.random.default_rng(1)
    crops += [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
              np.full((64, 64, 3), 90, np.uint8)]
    a, b = fast.score(crops), slow.score(crops)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert len(crops) >= 20 and (a[:-2] > 0.5).mean() >= 0.8 and (a[-2:] < 0.5).all()
    onnx = pytest.importorskip("onnx")
    from cctv_sr.face.onet_onnx import onet_model

    onnx.checker.check_model(onnx.load_from_string(onet_model(slow.net)))
    with pytest.raises(ContractError, match="runtime"):
        OnetFaceness(runtime="tensorflow")
