"""What the project's architectures share: the input convention, its checks, resampling.

Input convention of every SR net and of the LR identity head: ``(N, T*3, s, s)`` float, a
window of ``T`` aligned crops of one track stacked on the channel axis (early fusion; frame
``t`` is channels ``3t .. 3t+2``; ``T = 1`` for stills), each crop in **BGR** order scaled to
``[0, 1]`` (``uint8 / 255``). The project's crops are BGR ``uint8`` arrays (OpenCV), so BGR
avoids a channel flip per batch; a net trained on BGR must be fed BGR. The *centre* frame of a
window is frame ``T // 2``; the nets' global skips take it.

SR outputs are ``(N, 3, 128, 128)`` BGR in ``[0, 1]``-ish: nothing inside a module clamps (a
clamp kills the gradient at the bounds); clamp to ``[0, 1]`` and scale by 255 to get a crop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cctv_sr.errors import ConfigError, ContractError, ModelError

__all__ = [
    "bicubic",
    "centre_frame",
    "check_input",
    "check_range",
    "fit_input",
]


def check_range(owner: str, name: str, value: float, low: float, high: float | None = None
                ) -> None:
    """ConfigError unless ``low <= value`` (and ``value <= high`` when given)."""
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{owner}.{name} must be {bound}, got {value}")


def check_input(owner: str, x: torch.Tensor, channels: int) -> None:
    """ContractError unless ``x`` is floating point ``(N, channels, H, W)`` with N, H, W > 0."""
    if x.ndim != 4 or x.shape[1] != channels or not x.is_floating_point() or \
            x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ContractError(f"{owner}: input must be float (N, {channels}, H, W), got "
                            f"{x.dtype} {tuple(x.shape)}")


def bicubic(x: torch.Tensor, side: int) -> torch.Tensor:
    """``x`` resized to ``side x side`` with bicubic interpolation (``align_corners=False``,
    anti-aliased when shrinking); returned unchanged when it already has that size."""
    if x.shape[-2] == side and x.shape[-1] == side:
        return x
    shrink = x.shape[-2] > side or x.shape[-1] > side
    return F.interpolate(x, size=(side, side), mode="bicubic", align_corners=False,
                         antialias=shrink)


def fit_input(x: torch.Tensor, input_sides: tuple[int, ...] | list[int]) -> torch.Tensor:
    """The LR window as a net with a fixed input side takes it: resized (:func:`bicubic`) to
    ``input_sides[0]`` when its ModelSpec names exactly one side (srgan: ``128 / scale``, a
    fully convolutional net trained on that side); unchanged for nets that take any side (they
    resample inside ``forward``). Training, validation and inference all go through here."""
    if len(input_sides) == 1:
        return bicubic(x, int(input_sides[0]))
    return x


def centre_frame(x: torch.Tensor, frames: int) -> torch.Tensor:
    """The centre frame ``T // 2`` of a ``(N, T*3, H, W)`` window: ``(N, 3, H, W)``."""
    start = 3 * (frames // 2)
    return x[:, start:start + 3]


def spread_first_layer(state: dict[str, torch.Tensor], key: str, frames: int,
                       not_ours: str) -> dict[str, torch.Tensor]:
    """A copy of ``state`` whose first convolution ``key``, made for another number of
    frames, is summed over its frames and spread evenly over ``frames``, so ``frames`` copies
    of one crop give the source net's output (how a T = 5 net starts from a T = 1 one).
    ModelError starting with ``not_ours`` when ``key`` is not a conv over RGB frames."""
    out = dict(state)
    w = out.get(key)
    if w is None or w.shape[1] == 3 * frames:
        return out
    if w.ndim != 4 or w.shape[1] % 3:
        raise ModelError(f"{not_ours} ({key} has shape {tuple(w.shape)})")
    per_frame = w.reshape(w.shape[0], -1, 3, *w.shape[2:]).sum(1)
    out[key] = per_frame.repeat(1, frames, 1, 1) / frames
    return out
