"""LR-Head: a small identity network that embeds low-resolution faces directly.

It maps an aligned LR crop, or a window of ``T`` of them fused early by channel
concatenation, ``(N, T*3, s, s)`` BGR in ``[0, 1]`` (:mod:`cctv_sr.archs.common`; the
project's LR crops are 12-40 px), straight to a 128-d embedding, without super-resolving. It is
meant to be distilled from MobileFaceNet's embeddings of the HR crop of the same face (a
cosine or MSE loss between this head's output and the teacher's L2-normalised vector), so
it lives in the teacher's embedding space and can match the same gallery.

The input is resampled to the fixed ``in_side`` (default 32) with bicubic ``F.interpolate``
inside ``forward``. Layout at the defaults (T = 1)::

    stem       3x3 conv (T*3 -> 32) + BN + PReLU                          32x32
    stage 1    depthwise-separable x2, 32 -> 64, first stride 2           16x16
    stage 2    depthwise-separable x3, 64 -> 128, first stride 2           8x8
    stage 3    depthwise-separable x2, 128 -> 256, first stride 2          4x4
    expand     1x1 conv (256 -> 512) + BN + PReLU                          4x4
    embed      global depthwise 4x4 conv + BN, flatten, linear 512 -> 128 (no bias) + BN1d
    output     L2-normalised when ``l2_normalize`` (default), else the raw vector

A depthwise-separable block is a 3x3 depthwise conv + BN + PReLU and a 1x1 conv + BN + PReLU,
plus its input when the stride is 1 and the channel counts match. The global depthwise conv
(MobileFaceNet's GDConv) keeps where on the face a feature is, which global average pooling
would throw away. BatchNorm1d in training mode needs batches of at least 2.

Default size: 366,656 parameters; 9.3 M MACs per face; on one CPU thread at batch 32
(``torch.inference_mode``, a shared 2-core machine, one run) about 1,400 faces/s at 16 px
input and 1,700 at 32 px, 1.3-1.4x the time of bicubic-upscaling the same batch to 128.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cctv_sr.archs.common import bicubic, check_input, check_range
from cctv_sr.errors import ConfigError

__all__ = ["DepthwiseSeparableBlock", "LrHead", "LrHeadConfig"]


@dataclass(frozen=True)
class LrHeadConfig:
    """LR-Head: ``in_frames`` fused frames resampled to ``in_side``; ``stages`` are
    ``(channels, repeats, first stride)``; ``in_side`` must be divisible by the product of the
    strides (its last feature map is ``in_side / prod(strides)``, 4 at the defaults)."""

    in_frames: int = 1
    in_side: int = 32
    stem_channels: int = 32
    stages: tuple[tuple[int, int, int], ...] = ((64, 2, 2), (128, 3, 2), (256, 2, 2))
    head_channels: int = 512
    embedding_dim: int = 128
    l2_normalize: bool = True

    def __post_init__(self) -> None:
        for name in ("in_frames", "in_side", "stem_channels", "head_channels", "embedding_dim"):
            check_range("lrhead", name, getattr(self, name), 1)
        if not self.stages:
            raise ConfigError("lrhead.stages must not be empty")
        reduction = 1
        for channels, repeats, stride in self.stages:
            if channels < 1 or repeats < 1 or stride not in (1, 2):
                raise ConfigError(f"lrhead.stages: each stage is (channels >= 1, repeats >= 1, "
                                  f"stride 1 or 2), got {self.stages}")
            reduction *= stride
        if self.in_side % reduction:
            raise ConfigError(f"lrhead.in_side must be divisible by {reduction} (the stages' "
                              f"strides), got {self.in_side}")

    @property
    def final_side(self) -> int:
        """Side of the last feature map (the global depthwise kernel)."""
        reduction = 1
        for _, _, stride in self.stages:
            reduction *= stride
        return self.in_side // reduction


class DepthwiseSeparableBlock(nn.Module):
    """3x3 depthwise + BN + PReLU, 1x1 pointwise + BN + PReLU (+ input when shapes match)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.use_residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, cin, 3, stride, padding=1, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
            nn.PReLU(cin),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.PReLU(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return x + out if self.use_residual else out


class LrHead(nn.Module):
    """LR-Head: ``(N, T*3, s, s)`` BGR in [0, 1], any ``s`` -> ``(N, embedding_dim)``.

    Default config: 366,656 parameters, 9.3 M MACs per face (module docstring).

    Example::

        head = LrHead(LrHeadConfig()).eval()
        emb = head(lr)          # (N, 3, 16, 16) -> (N, 128), unit length
    """

    config_class = LrHeadConfig

    def __init__(self, config: LrHeadConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else LrHeadConfig()
        self.config = cfg
        self.stem = nn.Sequential(
            nn.Conv2d(3 * cfg.in_frames, cfg.stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(cfg.stem_channels),
            nn.PReLU(cfg.stem_channels),
        )
        blocks: list[nn.Module] = []
        cin = cfg.stem_channels
        for channels, repeats, stride in cfg.stages:
            for i in range(repeats):
                blocks.append(DepthwiseSeparableBlock(cin, channels, stride if i == 0 else 1))
                cin = channels
        self.stages = nn.Sequential(*blocks)
        h = cfg.head_channels
        self.expand = nn.Sequential(nn.Conv2d(cin, h, 1, bias=False), nn.BatchNorm2d(h),
                                    nn.PReLU(h))
        k = cfg.final_side
        self.gdconv = nn.Sequential(nn.Conv2d(h, h, k, groups=h, bias=False), nn.BatchNorm2d(h))
        self.linear = nn.Linear(h, cfg.embedding_dim, bias=False)
        self.bn = nn.BatchNorm1d(cfg.embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, T*3, s, s)``; returns ``(N, embedding_dim)``, unit length when
        ``l2_normalize``."""
        cfg = self.config
        check_input("lrhead", x, 3 * cfg.in_frames)
        h = self.expand(self.stages(self.stem(bicubic(x, cfg.in_side))))
        emb: torch.Tensor = self.bn(self.linear(torch.flatten(self.gdconv(h), 1)))
        return F.normalize(emb, dim=1) if cfg.l2_normalize else emb
