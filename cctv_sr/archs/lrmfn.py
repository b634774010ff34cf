"""LR-MobileFaceNet: MobileFaceNet itself, fine-tuned to embed low-resolution faces.

The second LR identity head (beside the small :mod:`cctv_sr.archs.lrhead`). Instead of a
small network learnt from scratch, it is the gallery embedder's own architecture
(:class:`cctv_sr.embed.mobilefacenet_net.MobileFaceNet`), started from the gallery embedder's
weights and fine-tuned on degraded LR crops to reproduce that embedder's embedding of the
matching HR crop (distillation: 1 - cosine plus the relational loss, as for ``lrhead``). It
therefore starts exactly where "bicubic, then MobileFaceNet" stands and only has to learn
what low resolution, blur, noise and compression take away; the gallery stays embedded by the
unchanged teacher, so the head's vectors match the same gallery.

Input: ``(N, T*3, s, s)`` BGR in ``[0, 1]`` (:mod:`cctv_sr.archs.common`), any side ``s``
(12-40 px in the project). Inside ``forward``: bicubic resampling to ``in_side`` (112),
BGR -> RGB, the ImageNet normalisation MobileFaceNet was trained with, the network, L2
normalisation. For ``T > 1`` the first convolution takes ``3T`` channels; :meth:`LrMfn.init_from`
spreads the teacher's first-layer weights evenly over the ``T`` frames, so a window of ``T``
copies of one crop gives exactly the teacher's output before any training.

Size: 999,936 parameters at ``T = 1`` (+1,728 per extra frame); 233.8 M MACs per face at
112 px (the resampling adds little). About 25x the MACs of ``lrhead``, 0.1x those of srgan.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cctv_sr.archs.common import bicubic, check_input, check_range, spread_first_layer
from cctv_sr.embed.mobilefacenet_net import MobileFaceNet
from cctv_sr.errors import ModelError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "LrMfn", "LrMfnConfig"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, 0-1 scale: MobileFaceNet's input normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LrMfnConfig:
    """``in_frames`` fused frames, resampled to ``in_side`` (MobileFaceNet's 112; its global
    depthwise kernel is 7 = 112 / 16, so the side is fixed)."""

    in_frames: int = 1
    in_side: int = 112
    embedding_dim: int = 128

    def __post_init__(self) -> None:
        check_range("lrmfn", "in_frames", self.in_frames, 1, 16)
        check_range("lrmfn", "in_side", self.in_side, 112, 112)
        check_range("lrmfn", "embedding_dim", self.embedding_dim, 1)


class LrMfn(nn.Module):
    """LR-MobileFaceNet: ``(N, T*3, s, s)`` BGR in [0, 1] -> ``(N, 128)`` unit vectors.

    Default config: 999,936 parameters, 233.8 M MACs per face (module docstring).

    Example::

        head = LrMfn(LrMfnConfig())
        head.init_from(torch.load("mobilefacenet.pt", weights_only=True))  # the teacher
        emb = head.eval()(lr)       # (N, 3, 16, 16) -> (N, 128)
    """

    config_class = LrMfnConfig
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, config: LrMfnConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else LrMfnConfig()
        self.config = cfg
        self.net = MobileFaceNet(cfg.embedding_dim)
        if cfg.in_frames > 1:
            # MobileFaceNet's first conv: 3 -> 64, 3x3, stride 2, padding 1, no bias
            self.net.conv1[0] = nn.Conv2d(3 * cfg.in_frames, 64, 3, 2, 1, bias=False)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).repeat(1, cfg.in_frames, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1).repeat(1, cfg.in_frames, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def init_from(self, teacher_state: dict[str, torch.Tensor]) -> None:
        """Load a MobileFaceNet state dict (the teacher's) or another ``LrMfn``'s (keys
        ``net.*``, any ``in_frames``); a first conv made for another number of frames is summed
        over its frames and spread evenly over this head's T, so T copies of one crop give
        the source's output. ModelError when it does not fit."""
        state = spread_first_layer(
            {k.removeprefix("net."): v for k, v in teacher_state.items()}, "conv1.0.weight",
            self.config.in_frames, "lrmfn: the initial weights are not a MobileFaceNet state dict")
        try:
            self.net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"lrmfn: the initial weights are not a MobileFaceNet state dict "
                             f"({str(exc).splitlines()[0]})") from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, T*3, s, s)``; returns ``(N, embedding_dim)``, unit length."""
        cfg = self.config
        check_input("lrmfn", x, 3 * cfg.in_frames)
        x = bicubic(x, cfg.in_side)
        n = x.shape[0]
        # BGR -> RGB inside every frame of the window, then MobileFaceNet's normalisation
        x = x.reshape(n, cfg.in_frames, 3, cfg.in_side, cfg.in_side).flip(2).reshape(
            n, 3 * cfg.in_frames, cfg.in_side, cfg.in_side)
        emb = self.net((x - self.mean) / self.std)
        return F.normalize(emb.float(), dim=1)
