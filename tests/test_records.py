"""The central records validate what they are given and slice like one column-oriented table."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from cctv_sr.errors import ConfigError, ContractError
from cctv_sr.records import AlignedFace, FaceDetections, Frame, Quality, TrackWindow

IMG = np.zeros((4, 6, 3), np.uint8)
Q = Quality(20.0, 0.5, 0.5, 0.5, 0.9, 0.5)


def dets(n: int) -> FaceDetections:
    return FaceDetections(np.arange(n * 4).reshape(n, 4), np.linspace(0.5, 0.9, n),
                          np.arange(n * 10).reshape(n, 5, 2), np.arange(n) - 1)


def frame(**kw: Any) -> Frame:
    args: dict[str, Any] = {"stream_id": "cam0", "index": 0, "pts": 0,
                            "time_base": Fraction(1, 25), "image": IMG}
    return Frame(**{**args, **kw})


def face(**kw: Any) -> AlignedFace:
    args: dict[str, Any] = {
        "stream_id": "cam0", "track_id": 1, "frame_index": 0, "pts": 0,
        "time_base": Fraction(1, 25), "det_index": 0, "xyxy": np.zeros(4), "kps": np.zeros((5, 2)),
        "crop": np.zeros((16, 16, 3), np.uint8), "M": np.zeros((2, 3)), "quality": Q}
    return AlignedFace(**{**args, **kw})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: frame(image=IMG.astype(np.float32)), "uint8"),
        (lambda: frame(image=IMG[:, :, 0]), "(H, W, 3)"),
        (lambda: frame(image=np.zeros((4, 6, 4), np.uint8)), "(H, W, 3)"),
        (lambda: frame(index=-1), "index"),
        (lambda: frame(time_base=Fraction(0, 1)), "time_base"),
        (lambda: frame(time_base=0.04), "time_base"),
        (lambda: FaceDetections(np.zeros((2, 4)), np.zeros(3), np.zeros((2, 5, 2))), "disagree"),
        (lambda: FaceDetections(np.zeros((2, 4)), np.zeros(2), np.zeros((3, 5, 2))), "disagree"),
        (lambda: FaceDetections(np.zeros((2, 4)), np.zeros(2), np.zeros((2, 5, 2)),
                                np.zeros(3)), "track_id"),
        (lambda: face(crop=np.zeros((16, 8, 3), np.uint8)), "square"),
        (lambda: face(M=np.zeros((3, 3))), "(2, 3)"),
        (lambda: TrackWindow(face(), np.zeros((3, 16, 16, 3), np.uint8), np.ones(2, bool)),
         "disagree"),
        (lambda: TrackWindow(face(), np.zeros((3, 16, 16, 3), np.uint8),
                             np.array([True, False, True])), "centre"),
    ],
    ids=["frame-dtype", "frame-2d", "frame-4ch", "frame-index", "frame-tb-zero",
         "frame-tb-float", "dets-score-rows", "dets-kps-rows", "dets-track-rows", "face-square",
         "face-M", "window-valid-len", "window-centre"],
)
def test_invalid_records_raise_contract_errors(make: Any, message: str) -> None:
    with pytest.raises(ContractError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_contract_errors_are_not_config_errors() -> None:
    """A backend's wrong array is a bug, not a setting: the CLI must not say "fix your config"."""
    with pytest.raises(ContractError) as info:
        frame(index=-1)
    assert not isinstance(info.value, ConfigError)
    assert isinstance(info.value, ValueError)  # callers catching ValueError keep working


@pytest.mark.parametrize(
    ("index", "want_rows"),
    [
        (np.array([True, False, True, False]), [0, 2]),
        (np.array([False] * 4), []),
        (np.array([3, 0]), [3, 0]),
        (slice(1, 3), [1, 2]),
        ([2], [2]),
        (np.array([], dtype=np.int64), []),
    ],
    ids=["mask", "empty-mask", "index-order", "slice", "list", "empty-index"],
)
def test_face_detections_slice_to_the_same_type(index: Any, want_rows: list[int]) -> None:
    d = dets(4)
    part = d[index]
    assert isinstance(part, FaceDetections) and len(part) == len(want_rows)
    np.testing.assert_array_equal(part.xyxy, d.xyxy[want_rows].reshape(-1, 4))
    np.testing.assert_array_equal(part.score, d.score[want_rows])
    np.testing.assert_array_equal(part.kps, d.kps[want_rows].reshape(-1, 5, 2))
    assert part.track_id is not None
    np.testing.assert_array_equal(part.track_id, d.track_id[want_rows])  # type: ignore[index]
    assert part.xyxy.dtype == np.float32 and part.kps.shape[1:] == (5, 2)


@pytest.mark.parametrize("n", [0, 1, 3])
def test_face_detections_normalise_shapes_and_dtypes(n: int) -> None:
    d = FaceDetections(np.zeros(n * 4).tolist(), [0.5] * n, np.zeros(n * 10).tolist())
    assert d.xyxy.shape == (n, 4) and d.score.shape == (n,) and d.kps.shape == (n, 5, 2)
    assert d.xyxy.dtype == d.score.dtype == d.kps.dtype == np.float32
    assert d.track_id is None and len(d[np.ones(n, bool)]) == n
    assert len(FaceDetections.empty()) == 0


def test_scaled_maps_boxes_and_landmarks_back() -> None:
    d = dets(2).scaled(0.5)
    np.testing.assert_allclose(d.xyxy, dets(2).xyxy * 0.5)
    np.testing.assert_allclose(d.kps, dets(2).kps * 0.5)
    np.testing.assert_array_equal(d.score, dets(2).score)
