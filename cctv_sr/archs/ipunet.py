"""An IPU-Net-style U-Net for face super-resolution: bicubic first, then an encoder-decoder.

The LR window ``(N, T*3, s, s)`` (any ``s``; see :mod:`cctv_sr.archs.common` for the BGR
convention) is resized to ``out_side`` (default 128) with bicubic ``F.interpolate`` inside
``forward``; the U-Net then refines that picture, and its output is added to the bicubic centre
frame (a global residual: the net learns the missing detail, not the face). Layout at the
defaults (``base_channels`` 32, ``max_channels`` 256, ``depth`` 5, ``T`` = 1)::

    block    layer                                            channels      side
    down1    4x4 conv stride 2 + LeakyReLU(0.2) (no BN)       3 -> 32       128 -> 64
    down2-5  4x4 conv stride 2 + BN + LeakyReLU(0.2)          32 -> 64 -> 128 -> 256 -> 256
                                                                            -> 4 (bottleneck)
    up1-5    4x4 transposed conv stride 2 + BN (+ Dropout) + ReLU, then the output is
             concatenated with the encoder map of the same side (the bicubic input at 128)
             up1: 256 -> 256 (cat 256), up2: 512 -> 128 (cat 128), up3: 256 -> 64 (cat 64),
             up4: 128 -> 32 (cat 32), up5: 64 -> 32 (cat the 3 input channels)
    out      3x3 conv (35 -> 3), + bicubic centre frame                    128

Dropout(``dropout``, default 0.5) is on the first ``dropout_blocks`` (default 2) up blocks;
it is active in training mode only, as in pix2pix-style U-Nets. Convolutions followed by
BatchNorm carry no bias. The output is not clamped.

Default size: 4,199,252 parameters; 491.5 M MACs per face (bicubic input, 128 output; the
bicubic resize itself is not counted), so a CPU can train it on small sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cctv_sr.archs.common import bicubic, centre_frame, check_input, check_range
from cctv_sr.errors import ConfigError

__all__ = ["DownBlock", "IpuNet", "IpuNetConfig", "UpBlock"]


@dataclass(frozen=True)
class IpuNetConfig:
    """IPU-Net-style U-Net: ``depth`` down and up blocks (``out_side`` must be divisible by
    ``2**depth``; the bottleneck side is ``out_side / 2**depth``), channels ``base_channels``
    doubled per level up to ``max_channels``, dropout on the first ``dropout_blocks`` up
    blocks."""

    in_frames: int = 1
    out_side: int = 128
    base_channels: int = 32
    max_channels: int = 256
    depth: int = 5
    dropout: float = 0.5
    dropout_blocks: int = 2

    def __post_init__(self) -> None:
        for name in ("in_frames", "base_channels", "depth"):
            check_range("ipunet", name, getattr(self, name), 1)
        check_range("ipunet", "max_channels", self.max_channels, self.base_channels)
        check_range("ipunet", "dropout", self.dropout, 0.0, 1.0)
        check_range("ipunet", "dropout_blocks", self.dropout_blocks, 0, self.depth)
        if self.out_side < 2**self.depth or self.out_side % 2**self.depth:
            raise ConfigError(f"ipunet.out_side must be a positive multiple of 2**depth = "
                              f"{2**self.depth}, got {self.out_side}")

    def level_channels(self) -> list[int]:
        """Output channels of down blocks 1..depth."""
        return [min(self.base_channels * 2**i, self.max_channels) for i in range(self.depth)]


class DownBlock(nn.Sequential):
    """4x4 conv stride 2 (halves the side), BN unless ``norm`` is False, LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, norm: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, padding=1, bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        super().__init__(*layers)


class UpBlock(nn.Sequential):
    """4x4 transposed conv stride 2 (doubles the side), BN, Dropout when ``dropout`` > 0,
    ReLU."""

    def __init__(self, cin: int, cout: int, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, 4, 2, padding=1, bias=False),
                                   nn.BatchNorm2d(cout)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class IpuNet(nn.Module):
    """U-Net SR: ``(N, T*3, s, s)`` BGR in [0, 1], any ``s`` -> ``(N, 3, out_side, out_side)``.

    Default config: 4,199,252 parameters, 491.5 M MACs per face (module docstring).

    Example::

        net = IpuNet(IpuNetConfig())
        sr = net(lr)            # (N, 3, 16, 16) -> (N, 3, 128, 128)
    """

    config_class = IpuNetConfig

    def __init__(self, config: IpuNetConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else IpuNetConfig()
        self.config = cfg
        cin = 3 * cfg.in_frames
        levels = cfg.level_channels()
        downs: list[nn.Module] = []
        prev = cin
        for i, cout in enumerate(levels):
            downs.append(DownBlock(prev, cout, norm=i > 0))
            prev = cout
        self.downs = nn.ModuleList(downs)
        # up block j (0-based) restores the side of down block depth-2-j; the last one the input
        skips = levels[-2::-1] + [cin]
        outs = levels[-2::-1] + [levels[0]]
        ups: list[nn.Module] = []
        prev = levels[-1]
        for j, (cout, skip) in enumerate(zip(outs, skips)):
            ups.append(UpBlock(prev, cout, cfg.dropout if j < cfg.dropout_blocks else 0.0))
            prev = cout + skip
        self.ups = nn.ModuleList(ups)
        self.out = nn.Conv2d(prev, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, T*3, s, s)``; returns ``(N, 3, out_side, out_side)``, not clamped."""
        cfg = self.config
        check_input("ipunet", x, 3 * cfg.in_frames)
        up = bicubic(x, cfg.out_side)
        feats = [up]
        h = up
        for down in self.downs:
            h = down(h)
            feats.append(h)
        feats.pop()  # the bottleneck is the decoder's input, not a skip
        for block in self.ups:
            h = torch.cat([block(h), feats.pop()], dim=1)
        out: torch.Tensor = self.out(h) + centre_frame(up, cfg.in_frames)
        return out
