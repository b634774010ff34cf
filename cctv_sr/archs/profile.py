"""Size and cost of a module: learnable parameters, multiply-accumulates, CPU time.

:func:`count_macs` runs one forward pass of zeros with forward hooks on every
``Conv2d``, ``ConvTranspose2d`` and ``Linear`` and adds up their multiply-accumulates; it is how
the numbers in the architecture docstrings were measured (and the tests hold them to it).
Not counted: BatchNorm (it folds into the convolution before it at export), activations,
additions, PixelShuffle, pooling, and functional resampling such as the bicubic
``F.interpolate`` some nets do inside ``forward`` (about 16 multiply-adds per output pixel
and channel, small next to any convolution here).

Example::

    count_params(net)                          # 330,428 for the default LrNet
    count_macs(net, (1, 3, 32, 32))            # MACs per face (the batch is divided out)
    time_forward(net, torch.rand(32, 3, 16, 16))   # seconds per batch, median of runs
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from cctv_sr.errors import ConfigError

__all__ = ["count_macs", "count_params", "time_forward"]


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters (only those with ``requires_grad`` unless ``trainable_only`` is
    False); buffers such as BatchNorm running statistics are not parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _layer_macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    """Multiply-accumulates of one call of a conv / transposed conv / linear layer (batch
    included)."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        # every input element meets every weight of its group once
        return inputs[0].numel() * (module.out_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates per sample of one forward pass of zeros of ``input_shape``
    (batch first; the total is divided by the batch size). The model runs in eval mode without
    gradients; its training flag is restored afterwards."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) < 2 or any(v < 1 for v in shape):
        raise ConfigError(f"count_macs: input_shape must be (N, ...) of positive sizes, got "
                          f"{tuple(input_shape)}")
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_macs(module, inputs, output)

    layers = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, layers)]
    was_training = model.training
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        model.eval()
        with torch.no_grad():
            model(torch.zeros(shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total // shape[0]


def time_forward(
    fn: Callable[[torch.Tensor], object] | nn.Module,
    x: torch.Tensor,
    repeats: int = 10,
    warmup: int = 2,
) -> float:
    """Median wall-clock seconds of ``fn(x)`` under ``torch.inference_mode`` (after
    ``warmup`` untimed calls). A module is put in eval mode first."""
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"time_forward: need repeats >= 1 and warmup >= 0, got {repeats}, "
                          f"{warmup}")
    if isinstance(fn, nn.Module):
        fn.eval()
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)
