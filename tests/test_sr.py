"""Super-resolution baselines: shapes, bicubic parity, OpenCV models vs bicubic on a real face."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import shared_path

from cctv_sr.config import SRConfig
from cctv_sr.errors import ConfigError, ContractError, ModelError
from cctv_sr.models import registry
from cctv_sr.sr import SR_BACKENDS, SuperResolver, create_super_resolver
from cctv_sr.sr.bicubic import BicubicSR

SR_DIR = "models/opencv_dnn_superres"
OPENCV_FILES = {"espcn": "ESPCN_x4.pb", "fsrcnn": "FSRCNN_x4.pb", "lapsrn": "LapSRN_x4.pb",
                "lapsrn_x8": "LapSRN_x8.pb"}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CCTV_SR_MODELS", raising=False)
    monkeypatch.setenv("CCTV_SR_OFFLINE", "1")
    monkeypatch.setenv("CCTV_SR_CACHE", str(tmp_path / "cache"))


def _opencv_sr(name: str) -> SuperResolver:
    path = shared_path(f"{SR_DIR}/{OPENCV_FILES[name]}")
    return create_super_resolver(SRConfig(name=name, model_path=str(path)))


def _crops(n: int, side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


# ------------------------------------------------------------------------------ registry


def test_registry_is_lazy() -> None:
    code = ("import sys, cctv_sr.sr as s; "
            "print(any(m.startswith('cctv_sr.sr.') and m != 'cctv_sr.sr.base' "
            "for m in sys.modules), sorted(s.SR_BACKENDS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("False")
    defaults = {name: registry.default_manifest("sr", name) for name in SR_BACKENDS}
    # bicubic needs no weights; trained takes a checkpoint path (sr.model_path)
    assert {name for name, m in defaults.items() if m is None} == {"bicubic", "trained"}
    for name, manifest in defaults.items():
        if manifest is not None:
            spec = manifest.model_spec()
            if manifest.backend == "opencv_sr":
                assert spec.arch == name.split("_")[0]
            else:  # the project's own trained nets, shipped in the package
                assert manifest.backend == spec.arch and name in (spec.arch, manifest.name)
                assert name in ("lrnet", "lrnet_t5", "ipunet", "srgan")
                assert spec.window == (5 if name == "lrnet_t5" else 1)


def test_unknown_name_suggests() -> None:
    with pytest.raises(ConfigError, match="did you mean 'espcn'"):
        create_super_resolver(SRConfig(name="espnc"))


# ------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("name", ["bicubic", "espcn", "fsrcnn", "lapsrn", "lapsrn_x8"])
@pytest.mark.parametrize("n", [0, 1, 5])
@pytest.mark.parametrize("side", [16, 32])
def test_shapes_and_dtype(name: str, n: int, side: int) -> None:
    sr = BicubicSR(SRConfig()) if name == "bicubic" else _opencv_sr(name)
    out = sr.upscale(_crops(n, side), 128)
    assert out.shape == (n, 128, 128, 3) and out.dtype == np.uint8


def test_bicubic_matches_cv2_resize() -> None:
    crops = _crops(3, 16, seed=1)
    out = BicubicSR(SRConfig()).upscale(crops, 128)
    for crop, got in zip(crops, out):
        want = cv2.resize(crop, (128, 128), interpolation=cv2.INTER_CUBIC)
        np.testing.assert_array_equal(got, want)


def test_no_upscale_needed_only_resizes() -> None:
    sr = BicubicSR(SRConfig())
    crops = _crops(2, 128)
    np.testing.assert_array_equal(sr.upscale(crops, 128), crops)
    assert sr.upscale(crops, 64).shape == (2, 64, 64, 3)
    assert sr.describe(128, 128) == "none" and sr.describe(128, 64) == "area_x0.5"


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 16, 16, 3), np.float32), np.zeros((16, 16, 3), np.uint8),
     np.zeros((2, 16, 12, 3), np.uint8)],
)
def test_bad_input_raises(bad: np.ndarray) -> None:
    with pytest.raises(ContractError):
        BicubicSR(SRConfig()).upscale(bad, 128)


# ------------------------------------------------------------------------------ describe


def test_describe() -> None:
    assert BicubicSR(SRConfig()).describe(16, 128) == "bicubic_x8"
    assert BicubicSR(SRConfig()).describe(32, 128) == "bicubic_x4"
    espcn = _opencv_sr("espcn")
    assert (espcn.name, espcn.scale) == ("espcn_x4", 4)
    assert espcn.describe(32, 128) == "espcn_x4"
    assert espcn.describe(16, 128) == "espcn_x4+bicubic_x2"
    x8 = _opencv_sr("lapsrn_x8")
    assert x8.describe(16, 128) == "lapsrn_x8"
    assert x8.describe(32, 128) == "lapsrn_x8+area_x0.5"
    assert x8.model_files[0].name == "LapSRN_x8.pb"


def test_models_env_resolves_default_file(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = shared_path(SR_DIR)
    monkeypatch.setenv("CCTV_SR_MODELS", str(folder))
    sr = create_super_resolver(SRConfig(name="fsrcnn"))
    assert sr.model_files == (folder / "FSRCNN_x4.pb",) and sr.name == "fsrcnn_x4"


# ------------------------------------------------------------------------------ errors


def test_missing_model_path_names_file(tmp_path: Path) -> None:
    missing = tmp_path / "ESPCN_x4.pb"
    with pytest.raises(ModelError, match=str(missing)):
        create_super_resolver(SRConfig(name="espcn", model_path=str(missing)))


def test_unresolvable_default_names_file() -> None:
    with pytest.raises(ModelError, match="ESPCN_x4.pb.*CCTV_SR_MODELS"):
        create_super_resolver(SRConfig(name="espcn"))


def test_corrupt_model_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "FSRCNN_x4.pb"
    bad.write_bytes(b"this is not a TensorFlow graph")
    with pytest.raises(ModelError, match=str(bad)):
        create_super_resolver(SRConfig(name="fsrcnn", model_path=str(bad)))


def test_algorithm_and_file_disagree() -> None:
    path = shared_path(f"{SR_DIR}/ESPCN_x4.pb")
    with pytest.raises(ModelError, match="ESPCN_x4.pb: model 'espcn_x4' is espcn x4, but "
                                         "sr.name selects lapsrn"):
        create_super_resolver(SRConfig(name="lapsrn", model_path=str(path)))


@pytest.mark.parametrize(
    ("file_name", "algo", "expected"),
    [
        ("LapSRN_x8.pb", "lapsrn", 8),  # a shipped file: its manifest's spec says x8
        ("ESPCN_x4.pb", "espcn", 4),
        ("my_espcn_x3.pb", "espcn", 3),  # no manifest lists it: the file name
        ("weights.pb", "fsrcnn", 4),  # neither: the default manifest's spec
    ],
)
def test_scale_comes_from_the_spec(file_name: str, algo: str, expected: int) -> None:
    from cctv_sr.sr.opencv_sr import scale_of

    default = registry.default_manifest("sr", algo)
    assert default is not None
    assert scale_of(Path(file_name), algo, default) == expected


def test_unlisted_file_name_must_match_the_algorithm() -> None:
    from cctv_sr.sr.opencv_sr import scale_of

    x8 = registry.default_manifest("sr", "lapsrn_x8")
    assert x8 is not None and x8.model_spec().scale == 8
    with pytest.raises(ModelError, match="file name says espcn"):
        scale_of(Path("ESPCN_x2.pb"), "lapsrn", x8)


# ------------------------------------------------------------------------------ quality


# Measured with OpenCV 5.0 on the Tom Hanks crop (112 -> 128 bicubic, the reference), PSNR:
#   bicubic-degraded LR (the degradation these models were trained on): x4 bicubic 28.11 dB,
#   ESPCN 29.10, FSRCNN 29.04, LapSRN 29.12; x8 bicubic 23.43, LapSRN_x8 24.08.
#   area-degraded LR (box filter, closer to a camera sensor): x4 bicubic 29.23 dB, ESPCN 29.13
#   (-0.10), FSRCNN 29.32, LapSRN 29.43; x8 bicubic 25.15, LapSRN_x8 24.77 (-0.38).
# Generic SR models lose most of their edge once the degradation is not the one they were
# trained on, which is why the project trains its own; the area bounds below allow for that.
_DEGRADATIONS = {
    # name: (cv2 interpolation for the downscale, least margin over bicubic per factor in dB)
    "bicubic": (cv2.INTER_CUBIC, {4: 0.3, 8: 0.3}),
    "area": (cv2.INTER_AREA, {4: -0.25, 8: -0.75}),
}


@pytest.mark.shared
@pytest.mark.parametrize("degradation", sorted(_DEGRADATIONS))
def test_models_vs_bicubic_on_a_real_face(
    degradation: str, portrait_photo: np.ndarray, record_property: pytest.RecordProperty
) -> None:
    interp, margins = _DEGRADATIONS[degradation]
    face = cv2.resize(portrait_photo, (128, 128), interpolation=cv2.INTER_CUBIC)
    bicubic = BicubicSR(SRConfig())
    lines, failures = [], []
    for factor, names in ((4, ("espcn", "fsrcnn", "lapsrn")), (8, ("lapsrn_x8",))):
        lr = cv2.resize(face, (128 // factor, 128 // factor), interpolation=interp)
        base = psnr(bicubic.upscale(lr[None], 128)[0], face)
        lines.append(f"x{factor} bicubic: {base:.2f} dB")
        for name in names:
            sr = _opencv_sr(name)
            score = psnr(sr.upscale(lr[None], 128)[0], face)
            lines.append(f"x{factor} {sr.describe(lr.shape[0], 128)}: {score:.2f} dB "
                         f"({score - base:+.2f})")
            record_property(f"psnr_{degradation}_{sr.name}", round(score, 2))
            if score < base + margins[factor]:
                failures.append(f"{lines[-1]} < bicubic {margins[factor]:+.2f}")
    print(f"\nPSNR vs the 128 px face, {degradation}-degraded LR:\n  " + "\n  ".join(lines))
    assert not failures, failures


@pytest.mark.parametrize("name", ["lrnet", "ipunet", "srgan"])
def test_shipped_sr_runs_by_name_offline(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """`--sr lrnet|ipunet|srgan`: the project's own trained weights (ipunet and srgan stored as
    float16) resolve from the installed package (no model dir, no download), and a face-like
    crop comes back at 128 close to bicubic's picture (the net adds detail, it does not paint
    another image)."""
    monkeypatch.delenv("CCTV_SR_MODELS", raising=False)
    monkeypatch.setenv("CCTV_SR_OFFLINE", "1")
    sr = create_super_resolver(SRConfig(name=name, batch_size=4))
    assert sr.name == name and sr.model_files[0].name == f"{name}.pt"
    yy, xx = np.mgrid[0:24, 0:24]
    crop = np.stack([(yy * 9) % 256, (xx * 7) % 256, ((yy + xx) * 5) % 256], -1)
    crop = cv2.GaussianBlur(crop.astype(np.uint8), (5, 5), 1.5)
    out = sr.upscale(np.stack([crop] * 3), 128)
    assert out.shape == (3, 128, 128, 3) and out.dtype == np.uint8
    ref = cv2.resize(crop, (128, 128), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    assert np.abs(out[0].astype(np.float32) - ref).mean() < 20
    assert np.array_equal(out[0], out[2])


def test_srgan_sees_the_side_it_was_trained_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """srgan is fully convolutional and trained on 32 px windows: `--sr srgan` resizes a 16 or
    24 px crop to 32 (the training path, ``train.validate.model_input``) before the net, instead
    of running it at 16 and stretching a 64 px output."""
    from cctv_sr.archs.common import bicubic
    from cctv_sr.train.validate import model_input

    monkeypatch.setenv("CCTV_SR_OFFLINE", "1")
    sr = create_super_resolver(SRConfig(name="srgan", batch_size=4))
    crops = _crops(2, 16, seed=3)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    assert torch.equal(model_input("srgan", sr.net.config, x), bicubic(x, 32))
    with torch.inference_mode():
        want = sr.net(bicubic(x, 32)).clamp(0, 1).mul(255).round().to(torch.uint8)
    got = sr.upscale(crops, 128)
    assert np.array_equal(got, want.permute(0, 2, 3, 1).numpy())
