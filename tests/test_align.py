"""Alignment: template maths, warps, LR side choice, quality terms."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cctv_sr.errors import ContractError
from cctv_sr.face.align import (
    ARCFACE_112,
    affine_scale,
    choose_lr_side,
    native_size,
    similarity_to_template,
    template,
    warp_face,
)
from cctv_sr.face.quality import face_quality, frontalness, sharpness


@pytest.mark.parametrize("side", [16, 32, 112, 128])
def test_template_points_map_to_themselves(side: int) -> None:
    M = similarity_to_template(template(side), side)
    np.testing.assert_allclose(M, [[1, 0, 0], [0, 1, 0]], atol=1e-4)


@pytest.mark.parametrize(
    ("scale", "angle_deg", "shift"),
    [(0.25, 0.0, (10.0, 20.0)), (2.0, 15.0, (-5.0, 3.0)), (0.5, -30.0, (100.0, 50.0))],
)
def test_similarity_recovers_known_transform(scale, angle_deg, shift) -> None:
    a = np.deg2rad(angle_deg)
    R = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    kps = ARCFACE_112 @ R.T + np.array(shift)  # the template placed in a "frame"
    M = similarity_to_template(kps, 112)
    back = kps @ M[:, :2].T + M[:, 2]
    np.testing.assert_allclose(back, ARCFACE_112, atol=1e-3)
    assert affine_scale(M) == pytest.approx(1 / scale, rel=1e-4)
    assert native_size(kps) == pytest.approx(112 * scale, rel=1e-4)


def test_degenerate_landmarks_raise() -> None:
    with pytest.raises(ContractError):
        similarity_to_template(np.ones((5, 2)), 32)


@pytest.mark.parametrize(("size_px", "want"), [(10, 16), (16, 16), (24, 16), (32, 32), (60, 32)])
def test_choose_lr_side(size_px: float, want: int) -> None:
    assert choose_lr_side(size_px, (16, 32)) == want


def test_warp_downscale_is_antialiased() -> None:
    # A fine checkerboard averages to grey when shrunk 8x; point sampling would alias it.
    board = (np.indices((256, 256)).sum(0) % 2 * 255).astype(np.uint8)
    image = cv2.merge([board] * 3)
    M = np.array([[0.125, 0, 0], [0, 0.125, 0]], np.float32)
    crop = warp_face(image, M, 32)
    assert crop.shape == (32, 32, 3)
    assert abs(float(crop.mean()) - 127.5) < 10
    assert float(crop.std()) < 20


def test_warp_of_portrait_is_near_identity(portrait_photo) -> None:
    M = similarity_to_template(ARCFACE_112, 112)
    crop = warp_face(portrait_photo, M, 112)
    assert np.abs(crop.astype(int) - portrait_photo.astype(int)).mean() < 2


def test_quality_terms(portrait_photo) -> None:
    M = similarity_to_template(ARCFACE_112, 112)
    q = face_quality(portrait_photo, ARCFACE_112, M, 112.0, 0.99)
    blurred = cv2.GaussianBlur(portrait_photo, (0, 0), 3)
    qb = face_quality(blurred, ARCFACE_112, M, 112.0, 0.99)
    small = face_quality(portrait_photo, ARCFACE_112, M, 20.0, 0.99)
    assert 0 <= q.score <= 1 and q.frontal == pytest.approx(1.0, abs=1e-3)
    assert sharpness(portrait_photo) > sharpness(blurred)
    assert qb.score < q.score and small.score < q.score
    turned = ARCFACE_112.copy()
    turned[2, 0] += 25  # nose far to one side: a head turned away
    assert frontalness(turned, similarity_to_template(turned, 112), 112) < 0.6
