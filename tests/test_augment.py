"""The randomised training degradations (cctv_sr.data.augment): real OpenCV and PyAV H.264."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from cctv_sr.data import degrade as eval_recipe
from cctv_sr.data.augment import (
    DegradeConfig,
    DegradeParams,
    blur,
    degrade_batch,
    degrade_random,
    h264,
    sample_params,
)
from cctv_sr.errors import ConfigError, ContractError


def _crop(seed: int = 0) -> np.ndarray:
    """A smooth synthetic 128 crop with some structure (no face data)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32)
    base = 128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    img = np.stack([base, base * 0.8 + 20, 255 - base], -1) + rng.normal(0, 4, (128, 128, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def test_config_ranges_cover_but_are_not_the_eval_recipe() -> None:
    cfg = DegradeConfig()
    assert cfg.covers_eval_recipe()
    assert cfg.side_range == (12, 40)
    for lo, hi in (cfg.blur_k, cfg.gauss_sigma, cfg.jpeg_quality, cfg.crf_range):
        assert lo < hi  # ranges, not the benchmark's point values
    assert cfg.p_h264 > 0 and cfg.p_poisson > 0 and cfg.p_aniso > 0
    assert set(cfg.interpolations) == {"area", "linear", "cubic", "nearest"}
    # the benchmark's exact numbers never come out of a draw
    rng = np.random.default_rng(1)
    hits = [p for p in (sample_params(rng, cfg) for _ in range(300))
            if p.interpolation == "area" and p.codec == "jpeg"
            and p.quality == eval_recipe.JPEG_QUALITY and p.gauss_sigma == eval_recipe.NOISE_SIGMA]
    assert not hits


@pytest.mark.parametrize("change", [
    {"side_range": (40, 12)}, {"side_range": (0, 20)}, {"side_range": (12, 200)},
    {"p_blur": 1.5}, {"jpeg_quality": (30, 120)}, {"crf_range": (10, 60)},
    {"interpolations": ("lanczos9",)}, {"interpolations": ()}, {"blur_k": (0.0, 1.0)},
])
def test_config_rejects_bad_ranges(change: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        dataclasses.replace(DegradeConfig(), **change)  # type: ignore[arg-type]


def test_reproducible_with_a_seed() -> None:
    crop = _crop()
    a, pa = degrade_random(crop, np.random.default_rng(7), frames=5)
    b, pb = degrade_random(crop, np.random.default_rng(7), frames=5)
    assert pa == pb and np.array_equal(a, b)
    c, pc = degrade_random(crop, np.random.default_rng(8), frames=5)
    assert pc != pa
    h = dataclasses.replace(DegradeConfig(), p_h264=1.0)  # x264 runs single-threaded
    assert np.array_equal(degrade_random(crop, np.random.default_rng(1), h)[0],
                          degrade_random(crop, np.random.default_rng(1), h)[0])


def test_sizes_and_parameters() -> None:
    crop, rng = _crop(), np.random.default_rng(3)
    seen_sides, codecs, interps = set(), set(), set()
    for _ in range(60):
        lr, p = degrade_random(crop, rng)
        assert isinstance(p, DegradeParams) and p.frames == 0
        assert 12 <= p.side <= 40 and lr.shape == (p.side, p.side, 3) and lr.dtype == np.uint8
        assert p.as_vector().shape == (8,)
        seen_sides.add(p.side)
        codecs.add(p.codec)
        interps.add(p.interpolation)
    assert len(seen_sides) > 10
    assert codecs == {"none", "jpeg", "h264"}
    assert len(interps) == 4
    lr, p = degrade_random(crop, rng, side=16)
    assert lr.shape == (16, 16, 3) and p.side == 16


def test_burst_shapes_and_independent_frames() -> None:
    crop = _crop()
    cfg = dataclasses.replace(DegradeConfig(), p_h264=1.0, p_gauss=1.0)
    clip, p = degrade_random(crop, np.random.default_rng(5), cfg, frames=5)
    assert clip.shape == (5, p.side, p.side, 3) and p.frames == 5 and p.codec == "h264"
    assert len(set(p.angles_deg)) == 5 and len(p.shifts_lr) == 5
    assert all(abs(a) <= cfg.jitter_rot_deg for a in p.angles_deg)
    assert not np.array_equal(clip[0], clip[1])  # own jitter and noise per frame
    jp = dataclasses.replace(DegradeConfig(), p_h264=0.0, p_jpeg=1.0)
    clip, p = degrade_random(crop, np.random.default_rng(5), jp, frames=3)
    assert clip.shape == (3, p.side, p.side, 3) and p.codec == "jpeg"


@pytest.mark.parametrize("shape", [(1, 13, 13, 3), (5, 16, 16, 3), (4, 21, 30, 3)])
def test_h264_round_trip(shape: tuple[int, int, int, int]) -> None:
    frames = np.stack([_crop(i)[:shape[1], :shape[2]] for i in range(shape[0])])
    good = h264(frames, crf=12)
    assert good.shape == frames.shape and good.dtype == np.uint8
    bad = h264(frames, crf=45)
    err_good = np.abs(good.astype(int) - frames).mean()
    err_bad = np.abs(bad.astype(int) - frames).mean()
    assert err_good < err_bad  # it really is a codec at that CRF
    assert err_good < 12.0


def test_anisotropic_blur_follows_the_angle() -> None:
    img = np.zeros((65, 65, 3), np.uint8)
    img[32, 32] = 255
    along_x = blur(img, (6.0, 1.0), 0.0)[..., 0].astype(float)
    along_y = blur(img, (6.0, 1.0), 90.0)[..., 0].astype(float)
    assert along_x[32, 32 + 8] > along_x[32 + 8, 32]
    assert along_y[32 + 8, 32] > along_y[32, 32 + 8]
    same = blur(img, (2.0, 2.0), 0.0)
    assert same.shape == img.shape


def test_gray_noise_is_the_same_on_all_channels() -> None:
    cfg = dataclasses.replace(DegradeConfig(), p_blur=0.0, p_poisson=0.0, p_gauss=1.0,
                              p_gray_noise=1.0, p_h264=0.0, p_jpeg=0.0,
                              interpolations=("nearest",))
    flat = np.full((128, 128, 3), 128, np.uint8)
    lr, p = degrade_random(flat, np.random.default_rng(2), cfg)
    assert p.gray_noise and p.gauss_sigma > 0
    assert np.array_equal(lr[..., 0], lr[..., 1]) and np.array_equal(lr[..., 1], lr[..., 2])


def test_batch_path() -> None:
    crops = np.stack([_crop(i) for i in range(6)])
    out, params = degrade_batch(crops, np.random.default_rng(4))
    s = params[0].side
    assert out.shape == (6, s, s, 3) and all(p.side == s for p in params)
    out2, params2 = degrade_batch(crops, np.random.default_rng(4))
    assert np.array_equal(out, out2) and params == params2
    bursts, bp = degrade_batch(crops[:2], np.random.default_rng(4), frames=3, side=20)
    assert bursts.shape == (2, 3, 20, 20, 3) and all(p.frames == 3 for p in bp)


def test_bad_inputs() -> None:
    with pytest.raises(ContractError):
        degrade_random(np.zeros((64, 64, 3), np.uint8), np.random.default_rng(0))
    with pytest.raises(ContractError):
        degrade_batch(np.zeros((2, 128, 128), np.uint8), np.random.default_rng(0))
    with pytest.raises(ConfigError):
        sample_params(np.random.default_rng(0), frames=-1)
    with pytest.raises(ConfigError):
        sample_params(np.random.default_rng(0), side=0)


def test_wide_blur_shortcut_matches_the_full_blur() -> None:
    from cctv_sr.data.augment import INTERPOLATIONS, _blur_fast

    crop, rng = _crop(), np.random.default_rng(9)
    errs = []
    for _ in range(40):
        p = sample_params(rng, DegradeConfig(p_blur=1.0))
        full = blur(crop, p.blur_sigma, p.blur_angle_deg)
        size, interp = (p.side, p.side), INTERPOLATIONS[p.interpolation]
        a = cv2.resize(full, size, interpolation=interp).astype(float)
        b = cv2.resize(_blur_fast(crop, p), size, interpolation=interp).astype(float)
        errs.append(np.abs(a - b).mean())
    assert max(errs) < 3.0 and float(np.mean(errs)) < 1.0
