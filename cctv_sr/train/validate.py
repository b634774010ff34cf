"""Validation on the run's fixed val faces (:class:`cctv_sr.train.sampler.ValSet`).

SR nets (EMA weights, eval mode): ``psnr`` and ``ssim`` of the clamped SR output against the
HR crop, ``id_cos`` (cosine of MobileFaceNet embeddings of SR and HR) and ``rank1`` (each SR
face's nearest HR embedding among the val faces is of its own group), each also per LR side
(``psnr@16``, ``id_cos@16``, ...). The bicubic baseline of the same faces
(``psnr_bicubic``, ``ssim_bicubic``, ``id_cos_bicubic``, ``rank1_bicubic``) is measured once
per run with :func:`bicubic_baseline`.

LR head: ``cos_teacher`` (cosine of the head's embedding of the LR face to the teacher's of
the HR crop), ``rank1`` (nearest teacher embedding among the val faces is of the same group),
per side too.

The measures themselves: PSNR, SSIM (Wang et al. 2004: an 11x11 Gaussian window of sigma 1.5,
constants ``(0.01 L)^2`` and ``(0.03 L)^2`` with L = 1, valid windows only, per channel,
averaged over channels and pixels: one number per image), rank-1 and the LR | SR | HR picture.
Image inputs are ``(N, 3, H, W)`` float tensors in ``[0, 1]`` (SR outputs clamped first).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cctv_sr.archs.common import bicubic, fit_input
from cctv_sr.errors import OutputError
from cctv_sr.train.checkpoint import spec_for
from cctv_sr.train.sampler import ValSet, to_image, to_input

__all__ = ["GRID_FACES", "bicubic_baseline", "model_input", "psnr", "rank1", "save_grid",
           "ssim", "validate"]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
C1 = 0.01**2
C2 = 0.03**2


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [0, 1], ``(N,)``; identical images give 100 dB."""
    mse = ((x.float() - y.float()) ** 2).flatten(1).mean(1)
    return torch.where(mse > 0, -10.0 * torch.log10(mse.clamp_min(1e-10)),
                       torch.full_like(mse, 100.0))


def _gaussian_window(channels: int, device: torch.device) -> torch.Tensor:
    r = torch.arange(SSIM_WINDOW, dtype=torch.float32, device=device) - SSIM_WINDOW // 2
    g = torch.exp(-(r**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW)
    return w.contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of images in [0, 1], ``(N,)``."""
    x, y = x.float(), y.float()
    c = x.shape[1]
    w = _gaussian_window(c, x.device)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cov = blur(x * y) - mx * my
    num = (2 * mx * my + C1) * (2 * cov + C2)
    den = (mx * mx + my * my + C1) * (vx + vy + C2)
    return (num / den).flatten(1).mean(1)


def rank1(queries: np.ndarray, gallery: np.ndarray, query_group: np.ndarray,
          gallery_group: np.ndarray) -> float:
    """Share of queries whose most similar gallery vector (cosine, unit vectors) has the
    query's group."""
    if len(queries) == 0:
        return float("nan")
    best = np.argmax(queries @ gallery.T, axis=1)
    return float(np.mean(gallery_group[best] == query_group))


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) [0, 1] -> (N, H, W, 3) uint8."""
    arr = x.detach().float().clamp(0, 1).mul(255).round().byte().cpu().numpy()
    return np.ascontiguousarray(arr.transpose(0, 2, 3, 1))


def save_grid(path: Path, lr: list[np.ndarray], sr: torch.Tensor, hr: torch.Tensor) -> Path:
    """A PNG of rows LR | SR | HR (LR centre frames upscaled with nearest neighbour so their
    pixels stay visible) for each face given; returns ``path``."""
    sr_img, hr_img = _to_uint8(sr), _to_uint8(hr)
    side = hr_img.shape[1]
    rows = []
    for low, s, h in zip(lr, sr_img, hr_img):
        up = cv2.resize(low, (side, side), interpolation=cv2.INTER_NEAREST)
        rows.append(np.concatenate([up, s, h], axis=1))
    picture = np.concatenate(rows, axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), picture):
        raise OutputError(f"{path}: cannot write the validation picture")
    return path


GRID_FACES = 8
HR = 128


def model_input(arch: str, arch_config: object, x: torch.Tensor) -> torch.Tensor:
    """The LR window as ``arch`` takes it (:func:`cctv_sr.archs.common.fit_input` with the
    input sides of its ModelSpec): srgan is fully convolutional, so its input is resized
    (bicubic) to ``128 / scale``; the other nets resample inside ``forward``."""
    return fit_input(x, spec_for(arch, arch_config).input_sides)


def _centre(x: torch.Tensor) -> torch.Tensor:
    t = x.shape[1] // 3
    return x[:, 3 * (t // 2):3 * (t // 2) + 3]


def _sr_measures(produce: Callable[[torch.Tensor], torch.Tensor], val: ValSet,
                 embed: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
                 batch: int) -> tuple[dict[str, float], torch.Tensor]:
    n = len(val.index)
    p, s = np.zeros(n), np.zeros(n)
    e_sr, e_hr = np.zeros((n, 128), np.float32), np.zeros((n, 128), np.float32)
    grid = torch.zeros((min(GRID_FACES, n), 3, HR, HR))
    out: dict[str, float] = {}
    for side, pos, lr in val.by_side:
        for start in range(0, len(pos), batch):
            at = pos[start:start + batch]
            x = to_input(lr[start:start + batch], device)
            hr = to_image(val.hr[at], device)
            sr = produce(x).float().clamp(0, 1)
            p[at], s[at] = psnr(sr, hr).cpu().numpy(), ssim(sr, hr).cpu().numpy()
            e_sr[at], e_hr[at] = embed(sr).cpu().numpy(), embed(hr).cpu().numpy()
            for j, k in enumerate(at):
                if k < len(grid):
                    grid[k] = sr[j].cpu()
        cos = np.sum(e_sr[pos] * e_hr[pos], axis=1)
        out[f"psnr@{side}"] = float(p[pos].mean())
        out[f"id_cos@{side}"] = float(cos.mean())
    out = {"psnr": float(p.mean()), "ssim": float(s.mean()),
           "id_cos": float(np.sum(e_sr * e_hr, axis=1).mean()),
           "rank1": rank1(e_sr, e_hr, val.group, val.group), **out}
    return out, grid


@torch.no_grad()
def bicubic_baseline(val: ValSet, embed: Callable[[torch.Tensor], torch.Tensor],
                     device: torch.device, batch: int) -> dict[str, float]:
    """The SR measures of plain bicubic upscaling of the centre frame, keys ``*_bicubic``."""
    def up(x: torch.Tensor) -> torch.Tensor:
        return bicubic(_centre(x), HR)

    measures, _ = _sr_measures(up, val, embed, device, batch)
    return {f"{k}_bicubic": v for k, v in measures.items() if "@" not in k}


@torch.no_grad()
def validate(net: nn.Module, arch: str, arch_config: object, val: ValSet,
             embed: Callable[[torch.Tensor], torch.Tensor], teacher: np.ndarray | None,
             device: torch.device, batch: int) -> tuple[dict[str, float], torch.Tensor | None]:
    """Measures of ``net`` (put in eval mode here) on the val faces, and for SR nets the SR
    output of the first :data:`GRID_FACES` faces ``(k, 3, 128, 128)`` for the picture."""
    net.eval()
    if teacher is None:
        def produce(x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = net(model_input(arch, arch_config, x))
            return out

        return _sr_measures(produce, val, embed, device, batch)
    target = teacher[val.index]
    emb = np.zeros_like(target)
    out: dict[str, float] = {}
    for side, pos, lr in val.by_side:
        for start in range(0, len(pos), batch):
            at = pos[start:start + batch]
            e = net(to_input(lr[start:start + batch], device)).float()
            emb[at] = F.normalize(e, dim=1).cpu().numpy()
        out[f"cos_teacher@{side}"] = float(np.sum(emb[pos] * target[pos], axis=1).mean())
        out[f"rank1@{side}"] = rank1(emb[pos], target, val.group[pos], val.group)
    return {"cos_teacher": float(np.sum(emb * target, axis=1).mean()),
            "rank1": rank1(emb, target, val.group, val.group), **out}, None
