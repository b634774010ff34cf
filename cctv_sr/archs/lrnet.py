"""LR-Net: the project's production face SR net, built to be fast on a CPU.

Every convolution but the last runs at the model's low input resolution; only the final
sub-pixel stage sees 64x64, and nothing runs at the 128x128 output. Input: a window of ``T``
aligned LR crops of one track fused early by channel concatenation, ``(N, T*3, s, s)``, BGR in
``[0, 1]`` (:mod:`cctv_sr.archs.common`), any side (the project's LR crops are 12-40 px). The
window is resampled to the fixed ``in_side`` (default 32) with bicubic ``F.interpolate`` inside
``forward`` (a no-op at 32), and the output is ``4 * in_side`` (128) through two PixelShuffle x2
stages. Layout at the defaults (``channels`` C = 48, ``blocks`` 6, ``up_channels`` 32, T = 1)::

    head       3x3 conv (T*3 -> C)                                    32x32
    body       6 residual blocks: 3x3 conv, ReLU, 3x3 conv, times res_scale (0.2), + input
    body end   3x3 conv, + head output (long skip)
    up1        3x3 conv (C -> 4*32), PixelShuffle(2), ReLU             32 -> 64
    up2        3x3 conv (32 -> 4*3), PixelShuffle(2)                   64 -> 128
    skip       + bicubic upsampling of the centre frame (from its own side s) to 128

No BatchNorm (EDSR's finding for SR: BN hurts and costs time); the residual scaling keeps the
un-normalised body stable at the start of training. The global skip takes the centre frame at
its native side, so the net only learns the detail bicubic misses. The output is not clamped.

Default size: 330,428 parameters; 348.1 M MACs per face (the bicubic resizes not counted).
CPU forward time at batch 32 (one thread, ``torch.inference_mode``, one run timing each net
and bicubic in turn on the same batch, on a shared 2-core machine, so rough): about 20x the
time of bicubic ``F.interpolate`` of the batch to 128 (20.3x at 16 px input, 21.1x at 32 px;
9-12 ms per face), against 63x for IPU-Net and 177x for the SRGAN generator in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cctv_sr.archs.common import (
    bicubic,
    centre_frame,
    check_input,
    check_range,
    spread_first_layer,
)
from cctv_sr.errors import ModelError

__all__ = ["LrNet", "LrNetConfig", "ResidualBlock"]

SCALE = 4


@dataclass(frozen=True)
class LrNetConfig:
    """LR-Net: ``in_frames`` fused frames resampled to ``in_side``, ``blocks`` residual blocks
    of ``channels`` (outputs scaled by ``res_scale``), ``up_channels`` after the first x2
    stage. Output side ``4 * in_side``."""

    in_frames: int = 1
    in_side: int = 32
    channels: int = 48
    blocks: int = 6
    res_scale: float = 0.2
    up_channels: int = 32

    def __post_init__(self) -> None:
        for name in ("in_frames", "in_side", "channels", "blocks", "up_channels"):
            check_range("lrnet", name, getattr(self, name), 1)
        check_range("lrnet", "res_scale", self.res_scale, 0.0, 1.0)

    @property
    def out_side(self) -> int:
        """The output side, ``4 * in_side``."""
        return SCALE * self.in_side


class ResidualBlock(nn.Module):
    """3x3 conv, ReLU, 3x3 conv, scaled by ``res_scale``, plus the block input (no BN)."""

    def __init__(self, channels: int, res_scale: float) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return x + out * self.res_scale


class LrNet(nn.Module):
    """LR-Net: ``(N, T*3, s, s)`` BGR in [0, 1], any ``s`` -> ``(N, 3, 4*in_side, 4*in_side)``.

    Default config: 330,428 parameters, 348.1 M MACs per face (module docstring).

    Example::

        net = LrNet(LrNetConfig(in_frames=3))
        sr = net(window)        # (N, 9, 20, 20) -> (N, 3, 128, 128)
    """

    config_class = LrNetConfig

    def __init__(self, config: LrNetConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else LrNetConfig()
        self.config = cfg
        c, u = cfg.channels, cfg.up_channels
        self.head = nn.Conv2d(3 * cfg.in_frames, c, 3, padding=1)
        self.body = nn.Sequential(*(ResidualBlock(c, cfg.res_scale) for _ in range(cfg.blocks)))
        self.body_end = nn.Conv2d(c, c, 3, padding=1)
        self.up1 = nn.Sequential(nn.Conv2d(c, 4 * u, 3, padding=1), nn.PixelShuffle(2),
                                 nn.ReLU(inplace=True))
        self.up2 = nn.Sequential(nn.Conv2d(u, 4 * 3, 3, padding=1), nn.PixelShuffle(2))

    def init_from(self, state: dict[str, torch.Tensor]) -> None:
        """Load another ``LrNet``'s state dict of the same config but any ``in_frames``: its
        head convolution is summed over its frames and spread evenly over this net's T, so T
        copies of one crop give the source's output (the skip takes the centre frame). A
        T = 5 temporal net starts from the trained single-frame one this way. ModelError
        when it does not fit."""
        state = spread_first_layer(state, "head.weight", self.config.in_frames,
                                   "lrnet: the initial weights are not an LrNet state dict")
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"lrnet: the initial weights are not an LrNet state dict of this "
                             f"config ({str(exc).splitlines()[0]})") from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, T*3, s, s)``; returns ``(N, 3, 4*in_side, 4*in_side)``, not clamped."""
        cfg = self.config
        check_input("lrnet", x, 3 * cfg.in_frames)
        head = self.head(bicubic(x, cfg.in_side))
        feat = head + self.body_end(self.body(head))
        skip = bicubic(centre_frame(x, cfg.in_frames), cfg.out_side)
        out: torch.Tensor = self.up2(self.up1(feat)) + skip
        return out
