"""The SRGAN generator (SRResNet) and discriminator, after Ledig et al., CVPR 2017.

Generator (:class:`SrganGenerator`, registry name ``srgan``), for ``channels = C``::

    head        9x9 conv (T*3 -> C) + PReLU                         at s x s
    body        B residual blocks: 3x3 conv, BN, PReLU, 3x3 conv, BN, + block input
    body end    3x3 conv + BN, + head output (the long skip)
    upsample    log2(scale) stages: 3x3 conv (C -> 4C), PixelShuffle(2), PReLU
    tail        9x9 conv (C -> 3)                                    at (scale*s)^2

Every PReLU has one slope per channel. Convolutions followed by BatchNorm carry no bias (the
BN shift replaces it). The paper's output ``tanh`` is left out: the output is ``[0, 1]``-ish
BGR, not clamped (see :mod:`cctv_sr.archs.common` for the input / output convention). The net is
fully convolutional: an ``s x s`` input gives ``scale*s``; the project feeds 32 -> 128.

Default (B=16, C=64, scale 4, T=1): 1,548,547 parameters; 2,271.4 M MACs per face at 32x32
input (measured with :func:`cctv_sr.archs.profile.count_macs`: 1,208 M in the residual body,
604 M in the second upsampling conv at 64x64, 255 M in the 9x9 tail at 128x128).

Discriminator (:class:`SrganDiscriminator`, registry name ``srgan_d``): eight 3x3 conv +
LeakyReLU(0.2) blocks with filters 64, 64, 128, 128, 256, 256, 512, 512, stride 2 on every
second block, BatchNorm on every block but the first; then adaptive average pooling to
``pool_side x pool_side`` (any input side works), dense 1024 + LeakyReLU(0.2), dense 1: the
logit of "real" for each image, shape ``(N,)`` (use ``BCEWithLogitsLoss``). Input: an SR or
HR face, ``(N, 3, H, W)`` BGR in ``[0, 1]``. Default (pool 4): 13,077,889 parameters (8.4 M of
them in the first dense layer); 1,546.7 M MACs per 128x128 face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cctv_sr.archs.common import check_input, check_range
from cctv_sr.errors import ConfigError

__all__ = [
    "ResidualBlockBN",
    "SrganConfig",
    "SrganDiscriminator",
    "SrganDiscriminatorConfig",
    "SrganGenerator",
]


@dataclass(frozen=True)
class SrganConfig:
    """SRGAN generator: ``blocks`` residual blocks of ``channels``, upscale ``scale`` (2, 4 or
    8), ``in_frames`` stacked input frames."""

    blocks: int = 16
    channels: int = 64
    scale: int = 4
    in_frames: int = 1

    def __post_init__(self) -> None:
        check_range("srgan", "blocks", self.blocks, 1)
        check_range("srgan", "channels", self.channels, 1)
        check_range("srgan", "in_frames", self.in_frames, 1)
        if self.scale not in (2, 4, 8):
            raise ConfigError(f"srgan.scale must be 2, 4 or 8, got {self.scale}")


@dataclass(frozen=True)
class SrganDiscriminatorConfig:
    """SRGAN discriminator: ``blocks`` conv blocks starting at ``channels`` filters, doubled every
    second block up to ``max_channels``; head: pool to ``pool_side``, dense ``dense``, dense 1."""

    in_channels: int = 3
    channels: int = 64
    max_channels: int = 512
    blocks: int = 8
    dense: int = 1024
    pool_side: int = 4

    def __post_init__(self) -> None:
        for name in ("in_channels", "channels", "blocks", "dense", "pool_side"):
            check_range("srgan_d", name, getattr(self, name), 1)
        check_range("srgan_d", "max_channels", self.max_channels, self.channels)


class ResidualBlockBN(nn.Module):
    """3x3 conv, BN, PReLU, 3x3 conv, BN, plus the block input (SRResNet's block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return x + out


class SrganGenerator(nn.Module):
    """SRGAN generator: ``(N, T*3, s, s)`` BGR in [0, 1] -> ``(N, 3, scale*s, scale*s)``.

    Default config: 1,548,547 parameters, 2,271.4 M MACs per 32x32 face (module docstring).

    Example::

        net = SrganGenerator(SrganConfig())
        sr = net(lr)            # (N, 3, 32, 32) -> (N, 3, 128, 128)
    """

    config_class = SrganConfig

    def __init__(self, config: SrganConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else SrganConfig()
        self.config = cfg
        c = cfg.channels
        self.head = nn.Sequential(nn.Conv2d(3 * cfg.in_frames, c, 9, padding=4), nn.PReLU(c))
        self.body = nn.Sequential(*(ResidualBlockBN(c) for _ in range(cfg.blocks)))
        self.body_end = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(c))
        stages: list[nn.Module] = []
        for _ in range(int(math.log2(cfg.scale))):
            stages += [nn.Conv2d(c, 4 * c, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(c)]
        self.upsample = nn.Sequential(*stages)
        self.tail = nn.Conv2d(c, 3, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, T*3, s, s)``; returns ``(N, 3, scale*s, scale*s)``, not clamped."""
        check_input("srgan", x, 3 * self.config.in_frames)
        head = self.head(x)
        feat = head + self.body_end(self.body(head))
        out: torch.Tensor = self.tail(self.upsample(feat))
        return out


class SrganDiscriminator(nn.Module):
    """SRGAN discriminator: ``(N, 3, H, W)`` BGR in [0, 1] -> ``(N,)`` logits of "real".

    Default config: 13,077,889 parameters, 1,546.7 M MACs per 128x128 face (module docstring).
    """

    config_class = SrganDiscriminatorConfig

    def __init__(self, config: SrganDiscriminatorConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else SrganDiscriminatorConfig()
        self.config = cfg
        layers: list[nn.Module] = []
        cin = cfg.in_channels
        for i in range(cfg.blocks):
            cout = min(cfg.channels * 2 ** (i // 2), cfg.max_channels)
            stride = 2 if i % 2 == 1 else 1
            layers.append(nn.Conv2d(cin, cout, 3, stride, padding=1, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(cfg.pool_side)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cin * cfg.pool_side**2, cfg.dense),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(cfg.dense, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, in_channels, H, W)``; returns ``(N,)`` raw logits."""
        check_input("srgan_d", x, self.config.in_channels)
        out: torch.Tensor = self.head(self.pool(self.features(x)))
        return out.squeeze(1)
