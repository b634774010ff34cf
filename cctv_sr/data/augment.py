"""Randomised training degradations: a family that covers the EVAL.md probe recipe, never it alone.

One LR sample from a 128x128 HR crop, in this order (every draw from the caller's generator):

1. burst only (``frames`` = T > 1): T copies of the crop, each moved by its own sub-pixel
   jitter on the 128 crop (translation up to +-``jitter_shift_lr`` LR pixels, rotation up to
   +-``jitter_rot_deg`` degrees), as in :func:`cctv_sr.data.degrade.jitter_matrix`;
2. blur with probability ``p_blur``: Gaussian, sigma = k * (128 / side) HR pixels with k drawn
   from ``blur_k``; anisotropic with probability ``p_aniso`` (a second k for the other axis and
   an angle in [0, 180) degrees);
3. resize to ``side`` x ``side``, side uniform in ``side_range`` (12-40 by default), with an
   interpolation drawn from ``interpolations`` (area, linear, cubic, nearest);
4. Poisson (shot) noise with probability ``p_poisson`` (peak photon count log-uniform in
   ``poisson_peak``), then Gaussian noise with probability ``p_gauss`` (sigma in
   ``gauss_sigma`` on 0-255, greyscale with probability ``p_gray_noise``), fresh per frame;
5. compression: real H.264 (libx264 through PyAV, in memory, CRF in ``crf_range``) with
   probability ``p_h264``, else JPEG (quality in ``jpeg_quality``) with probability ``p_jpeg``,
   else none. A burst goes through H.264 as one clip; with JPEG each frame is encoded alone.

The blur, side, interpolation, noise levels and codec settings are drawn once per sample (a
burst is one camera); jitter and noise realisations are per frame. The EVAL.md recipe (blur
k = 0.25 isotropic, area, Gaussian sigma 3, JPEG 60, jitter 0.5 px / 2 degrees) is one point
inside the default ranges and has probability zero: never tune a model on it alone.

Example::

    rng = np.random.default_rng(0)
    lr, p = degrade_random(crop, rng)                  # (p.side, p.side, 3) uint8
    clip, p = degrade_random(crop, rng, frames=5)      # (5, p.side, p.side, 3) uint8
    lrs, ps = degrade_batch(crops, rng, side=16)       # (N, 16, 16, 3), one params per crop
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import av
import cv2
import numpy as np

from cctv_sr.data.degrade import HR_SIDE, jitter_matrix
from cctv_sr.errors import ConfigError, ContractError

INTERPOLATIONS: dict[str, int] = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
}
CODECS = ("none", "jpeg", "h264")
H264_PRESET = "veryfast"


@dataclass(frozen=True)
class DegradeConfig:
    """Ranges of the family; a ``(lo, hi)`` pair is drawn uniformly (integers inclusive)."""

    side_range: tuple[int, int] = (12, 40)  # LR side in pixels
    interpolations: tuple[str, ...] = ("area", "linear", "cubic", "nearest")
    p_blur: float = 0.85
    blur_k: tuple[float, float] = (0.1, 0.8)  # sigma = k * (128 / side) HR pixels, per axis
    p_aniso: float = 0.5  # share of blurs that are anisotropic (own k per axis, random angle)
    p_poisson: float = 0.3
    poisson_peak: tuple[float, float] = (200.0, 5000.0)  # photons at 255; log-uniform
    p_gauss: float = 0.8
    gauss_sigma: tuple[float, float] = (0.5, 10.0)  # 0-255 scale
    p_gray_noise: float = 0.3  # the same noise on all three channels
    p_jpeg: float = 0.5  # of the samples that do not get H.264
    jpeg_quality: tuple[int, int] = (30, 95)
    p_h264: float = 0.35
    crf_range: tuple[int, int] = (18, 40)
    jitter_shift_lr: float = 0.75  # bursts: max translation per frame, LR pixels
    jitter_rot_deg: float = 3.0  # bursts: max rotation per frame, degrees

    def __post_init__(self) -> None:
        pairs = {"side_range": self.side_range, "blur_k": self.blur_k,
                 "poisson_peak": self.poisson_peak, "gauss_sigma": self.gauss_sigma,
                 "jpeg_quality": self.jpeg_quality, "crf_range": self.crf_range}
        for name, (lo, hi) in pairs.items():
            if not lo <= hi:
                raise ConfigError(f"DegradeConfig.{name}: expected lo <= hi, got {(lo, hi)}")
        if self.side_range[1] > HR_SIDE or self.side_range[0] < 1:
            raise ConfigError(f"DegradeConfig.side_range must lie in 1..{HR_SIDE}")
        if self.blur_k[0] <= 0 or self.poisson_peak[0] <= 0 or self.gauss_sigma[0] < 0:
            raise ConfigError("DegradeConfig: blur_k and poisson_peak must be > 0, "
                              "gauss_sigma >= 0")
        if not (1 <= self.jpeg_quality[0] and self.jpeg_quality[1] <= 100):
            raise ConfigError("DegradeConfig.jpeg_quality must lie in 1..100")
        if not (0 <= self.crf_range[0] and self.crf_range[1] <= 51):
            raise ConfigError("DegradeConfig.crf_range must lie in 0..51")
        for name in ("p_blur", "p_aniso", "p_poisson", "p_gauss", "p_gray_noise", "p_jpeg",
                     "p_h264"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"DegradeConfig.{name} must be a probability, "
                                  f"got {getattr(self, name)}")
        unknown = [i for i in self.interpolations if i not in INTERPOLATIONS]
        if not self.interpolations or unknown:
            raise ConfigError(f"DegradeConfig.interpolations: unknown {unknown}; "
                              f"choose from {sorted(INTERPOLATIONS)}")
        if self.jitter_shift_lr < 0 or self.jitter_rot_deg < 0:
            raise ConfigError("DegradeConfig: jitter limits must be >= 0")

    def covers_eval_recipe(self) -> bool:
        """Whether the EVAL.md probe recipe (``cctv_sr.data.degrade``) lies inside these ranges."""
        from cctv_sr.data import degrade as ev

        return (self.p_blur > 0 and self.blur_k[0] <= ev.BLUR_K <= self.blur_k[1]
                and "area" in self.interpolations and self.p_gauss > 0
                and self.gauss_sigma[0] <= ev.NOISE_SIGMA <= self.gauss_sigma[1]
                and self.p_h264 < 1 and self.p_jpeg > 0
                and self.jpeg_quality[0] <= ev.JPEG_QUALITY <= self.jpeg_quality[1]
                and self.jitter_shift_lr >= ev.JITTER_SHIFT_LR
                and self.jitter_rot_deg >= ev.JITTER_ROT_DEG)


@dataclass(frozen=True)
class DegradeParams:
    """What one sample drew; 0 / "none" mean the step was skipped."""

    side: int
    interpolation: str
    blur_sigma: tuple[float, float]  # HR pixels along the two axes (0, 0 = no blur)
    blur_angle_deg: float
    poisson_peak: float
    gauss_sigma: float
    gray_noise: bool
    codec: str  # none | jpeg | h264
    quality: int  # JPEG quality or H.264 CRF (0 for none)
    shifts_lr: tuple[tuple[float, float], ...] = ()  # bursts: per-frame (dx, dy), LR pixels
    angles_deg: tuple[float, ...] = ()  # bursts: per-frame rotation

    @property
    def frames(self) -> int:
        """T of a burst, 0 for a still."""
        return len(self.angles_deg)

    def as_vector(self) -> np.ndarray:
        """Eight numbers for logging or conditioning, (8,) float32: side / 128, the two blur
        sigmas in LR pixels, Poisson level (255 / peak), Gaussian sigma / 255, then one-hot-ish
        codec strength: JPEG (100 - q) / 100, H.264 CRF / 51, and 1 for a burst."""
        scale = self.side / HR_SIDE
        return np.array([
            scale, self.blur_sigma[0] * scale, self.blur_sigma[1] * scale,
            255.0 / self.poisson_peak if self.poisson_peak > 0 else 0.0,
            self.gauss_sigma / 255.0,
            (100 - self.quality) / 100.0 if self.codec == "jpeg" else 0.0,
            self.quality / 51.0 if self.codec == "h264" else 0.0,
            1.0 if self.frames else 0.0,
        ], np.float32)


# ------------------------------------------------------------------------------------ draws


def _uniform_int(rng: np.random.Generator, lo_hi: tuple[int, int]) -> int:
    return int(rng.integers(lo_hi[0], lo_hi[1] + 1))


def sample_params(rng: np.random.Generator, cfg: DegradeConfig | None = None, frames: int = 0,
                  side: int | None = None) -> DegradeParams:
    """Draw one sample's parameters (``side`` fixes the LR side instead of drawing it)."""
    cfg = cfg or DegradeConfig()
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 0:
        raise ConfigError(f"frames must be an integer >= 0 (0 = still), got {frames!r}")
    s = _uniform_int(rng, cfg.side_range) if side is None else int(side)
    if not 1 <= s <= HR_SIDE:
        raise ConfigError(f"LR side must be in 1..{HR_SIDE}, got {side!r}")
    interp = cfg.interpolations[int(rng.integers(len(cfg.interpolations)))]
    sigma, angle = (0.0, 0.0), 0.0
    if rng.random() < cfg.p_blur:
        k1 = float(rng.uniform(*cfg.blur_k))
        k2 = float(rng.uniform(*cfg.blur_k)) if rng.random() < cfg.p_aniso else k1
        sigma = (k1 * HR_SIDE / s, k2 * HR_SIDE / s)
        angle = float(rng.uniform(0.0, 180.0)) if k2 != k1 else 0.0
    peak = 0.0
    if rng.random() < cfg.p_poisson:
        lo, hi = math.log(cfg.poisson_peak[0]), math.log(cfg.poisson_peak[1])
        peak = float(math.exp(rng.uniform(lo, hi)))
    gauss = float(rng.uniform(*cfg.gauss_sigma)) if rng.random() < cfg.p_gauss else 0.0
    gray = bool(rng.random() < cfg.p_gray_noise)
    u = rng.random()
    if u < cfg.p_h264:
        codec, quality = "h264", _uniform_int(rng, cfg.crf_range)
    elif rng.random() < cfg.p_jpeg:
        codec, quality = "jpeg", _uniform_int(rng, cfg.jpeg_quality)
    else:
        codec, quality = "none", 0
    shifts: tuple[tuple[float, float], ...] = ()
    angles: tuple[float, ...] = ()
    if frames:
        sh = rng.uniform(-cfg.jitter_shift_lr, cfg.jitter_shift_lr, (int(frames), 2))
        an = rng.uniform(-cfg.jitter_rot_deg, cfg.jitter_rot_deg, int(frames))
        shifts = tuple((float(a), float(b)) for a, b in sh)
        angles = tuple(float(a) for a in an)
    return DegradeParams(s, interp, sigma, angle, peak, gauss, gray, codec, quality, shifts,
                         angles)


# ---------------------------------------------------------------------------------- steps


def blur(crop: np.ndarray, sigma: tuple[float, float], angle_deg: float) -> np.ndarray:
    """Gaussian blur; anisotropic (``sigma`` along the axis at ``angle_deg`` and across it)
    when the two sigmas differ."""
    sx, sy = sigma
    if sx <= 0 and sy <= 0:
        return crop
    if sx == sy:
        return cv2.GaussianBlur(crop, (0, 0), sigmaX=sx, sigmaY=sx,
                                borderType=cv2.BORDER_REFLECT101)
    half = int(math.ceil(3.0 * max(sx, sy)))
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    t = math.radians(angle_deg)
    u = xx * math.cos(t) + yy * math.sin(t)
    v = -xx * math.sin(t) + yy * math.cos(t)
    kernel = np.exp(-0.5 * ((u / max(sx, 1e-3)) ** 2 + (v / max(sy, 1e-3)) ** 2))
    kernel = (kernel / kernel.sum()).astype(np.float32)
    return cv2.filter2D(crop, -1, kernel, borderType=cv2.BORDER_REFLECT101)


def add_noise(frames: np.ndarray, p: DegradeParams, rng: np.random.Generator) -> np.ndarray:
    """Poisson then Gaussian noise on uint8 ``(..., s, s, 3)``, fresh draws per pixel."""
    if p.poisson_peak <= 0 and p.gauss_sigma <= 0:
        return frames
    x = frames.astype(np.float32)
    if p.poisson_peak > 0:
        x = rng.poisson(x * np.float32(p.poisson_peak / 255.0)).astype(np.float32)
        x *= np.float32(255.0 / p.poisson_peak)
    if p.gauss_sigma > 0:
        shape = frames.shape[:-1] + (1,) if p.gray_noise else frames.shape
        x += rng.normal(0.0, p.gauss_sigma, shape).astype(np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG round trip through OpenCV at ``quality``."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    if out is None:  # pragma: no cover - OpenCV encodes any uint8 image
        raise ContractError(f"JPEG round trip failed on a {image.shape} image")
    return np.asarray(out)


def h264(frames: np.ndarray, crf: int, fps: int = 25) -> np.ndarray:
    """A real H.264 round trip of ``(T, h, w, 3)`` BGR frames as one clip (libx264 through
    PyAV, in memory, yuv420p, no B-frames): odd sides are padded by reflection and cropped."""
    t, h, w = frames.shape[:3]
    ph, pw = h + h % 2, w + w % 2
    if (ph, pw) != (h, w):
        frames = np.stack([cv2.copyMakeBorder(f, 0, ph - h, 0, pw - w, cv2.BORDER_REFLECT101)
                           for f in frames])
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": H264_PRESET, "tune": "zerolatency",
                          "threads": "1"}
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f),
                                                             format="bgr24")))
        out.mux(stream.encode(None))
    buf.seek(0)
    with av.open(buf, "r", format="h264") as inp:
        decoded = [fr.to_ndarray(format="bgr24") for fr in inp.decode(video=0)]
    if len(decoded) != t:
        raise ContractError(f"H.264 round trip returned {len(decoded)} frames for {t}")
    return np.stack(decoded)[:, :h, :w]


def _check_crop(crop: np.ndarray) -> None:
    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 \
            or crop.shape != (HR_SIDE, HR_SIDE, 3):
        raise ContractError(f"augment: expected a ({HR_SIDE}, {HR_SIDE}, 3) uint8 crop, got "
                            f"{getattr(crop, 'shape', type(crop).__name__)}")


def _blur_fast(crop: np.ndarray, p: DegradeParams) -> np.ndarray:
    """:func:`blur` of the HR crop; a wide blur runs on a copy area-shrunk by an integer factor
    of at most sigma / 2 (and never below twice the LR side), the same picture at a fraction
    of the cost (the box adds about 0.1 of a shrunk pixel of blur, under 0.05 LR pixel)."""
    factor = min(int(min(p.blur_sigma) / 2.0), HR_SIDE // (2 * p.side))
    if factor < 2:
        return blur(crop, p.blur_sigma, p.blur_angle_deg)
    m = HR_SIDE // factor
    small = cv2.resize(crop, (m, m), interpolation=cv2.INTER_AREA)
    k = m / HR_SIDE
    return blur(small, (p.blur_sigma[0] * k, p.blur_sigma[1] * k), p.blur_angle_deg)


def _lr_clean(crop: np.ndarray, p: DegradeParams) -> np.ndarray:
    """Jitter (bursts), blur and resize, before noise: ``(s, s, 3)`` or ``(T, s, s, 3)``."""
    interp = INTERPOLATIONS[p.interpolation]
    if not p.frames:
        return cv2.resize(_blur_fast(crop, p), (p.side, p.side), interpolation=interp)
    out = np.empty((p.frames, p.side, p.side, 3), np.uint8)
    for t, ((dx, dy), ang) in enumerate(zip(p.shifts_lr, p.angles_deg)):
        m = jitter_matrix(HR_SIDE, p.side, dx, dy, ang)
        moved = cv2.warpAffine(crop, m, (HR_SIDE, HR_SIDE), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT101)
        out[t] = cv2.resize(_blur_fast(moved, p), (p.side, p.side), interpolation=interp)
    return out


def _compress(x: np.ndarray, p: DegradeParams) -> np.ndarray:
    if p.codec == "jpeg":
        return np.stack([jpeg(f, p.quality) for f in x]) if p.frames else jpeg(x, p.quality)
    if p.codec == "h264":
        return h264(x, p.quality) if p.frames else h264(x[None], p.quality)[0]
    return x


def apply_params(crop: np.ndarray, p: DegradeParams, rng: np.random.Generator) -> np.ndarray:
    """Degrade one 128 crop with drawn parameters (the noise comes from ``rng``)."""
    _check_crop(crop)
    return _compress(add_noise(_lr_clean(crop, p), p, rng), p)


def degrade_random(crop: np.ndarray, rng: np.random.Generator,
                   cfg: DegradeConfig | None = None, frames: int = 0, side: int | None = None
                   ) -> tuple[np.ndarray, DegradeParams]:
    """One random LR sample of a 128 crop: ``(s, s, 3)`` for a still (``frames`` 0 or 1 gives a
    still; use ``frames`` >= 2 for a burst ``(T, s, s, 3)``) and the parameters drawn."""
    _check_crop(crop)
    p = sample_params(rng, cfg, frames if frames > 1 else 0, side)
    return apply_params(crop, p, rng), p


def degrade_batch(crops: np.ndarray | Sequence[np.ndarray], rng: np.random.Generator,
                  cfg: DegradeConfig | None = None, frames: int = 0, side: int | None = None
                  ) -> tuple[np.ndarray, tuple[DegradeParams, ...]]:
    """A batch with ONE LR side (drawn once when ``side`` is None) and everything else per
    sample: ``(N, s, s, 3)`` or ``(N, T, s, s, 3)``, plus the N parameter sets. Noise is drawn
    for all samples that share its settings in one call."""
    cfg = cfg or DegradeConfig()
    arr = np.asarray(crops)
    if arr.ndim != 4 or arr.shape[1:] != (HR_SIDE, HR_SIDE, 3) or arr.dtype != np.uint8:
        raise ContractError(f"degrade_batch: expected (N, {HR_SIDE}, {HR_SIDE}, 3) uint8, got "
                            f"{arr.shape} {arr.dtype}")
    s = _uniform_int(rng, cfg.side_range) if side is None else int(side)
    t = frames if frames > 1 else 0
    params = tuple(sample_params(rng, cfg, t, s) for _ in range(len(arr)))
    clean = np.stack([_lr_clean(c, p) for c, p in zip(arr, params)]) if len(arr) else \
        np.zeros((0, t, s, s, 3) if t else (0, s, s, 3), np.uint8)
    x = clean.astype(np.float32)
    pois = [i for i, p in enumerate(params) if p.poisson_peak > 0]
    if pois:
        peak = np.array([params[i].poisson_peak for i in pois], np.float32)
        peak = peak.reshape((-1,) + (1,) * (x.ndim - 1))
        x[pois] = rng.poisson(x[pois] * (peak / 255.0)).astype(np.float32) * (255.0 / peak)
    gauss = np.array([p.gauss_sigma for p in params], np.float32).reshape((-1,) + (1,) *
                                                                          (x.ndim - 1))
    if len(arr) and gauss.max() > 0:
        gray = np.array([p.gray_noise for p in params]).reshape(gauss.shape)
        colour = rng.standard_normal(x.shape, np.float32)
        mono = rng.standard_normal(x.shape[:-1] + (1,), np.float32)
        x += gauss * np.where(gray, mono, colour)
    noisy = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    out = np.stack([_compress(f, p) for f, p in zip(noisy, params)]) if len(arr) else noisy
    return out, params
