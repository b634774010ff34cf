"""VGG19's convolutional ``features`` stack, laid out to load torchvision's weights strictly.

Only the conv / ReLU / max-pool layers (no classifier): ``self.features`` is an
``nn.Sequential`` with torchvision's ``vgg19().features`` indices, so its parameters are named
``features.0.weight``, ``features.0.bias``, ``features.2.weight``, ... exactly as there, and a
torchvision ``vgg19`` state dict filtered to the ``features.*`` keys loads with
``strict=True``. No weights ship with the project; a user who has torchvision's ImageNet
weights loads them with :meth:`Vgg19Features.load_torchvision_state_dict`. Layout (VGG19
configuration ``64, 64, M, 128, 128, M, 256 x4, M, 512 x4, M, 512 x4, M``; every conv 3x3,
padding 1, with bias; every pool 2x2 stride 2)::

    index   0        1        2        3        4      5        6        7        8        9
    layer   conv1_1  relu1_1  conv1_2  relu1_2  pool1  conv2_1  relu2_1  conv2_2  relu2_2  pool2
    10-17   conv3_1, relu3_1, ..., conv3_4, relu3_4     18  pool3
    19-26   conv4_1, relu4_1, ..., conv4_4, relu4_4     27  pool4
    28-35   conv5_1, relu5_1, ..., conv5_4, relu5_4     36  pool5

e.g. ``relu2_2`` is index 8, ``relu5_4`` index 35 (:data:`LAYER_INDEX` has every name). The
ReLUs are not in-place, so a returned conv activation is never overwritten by the next layer.

Input: torchvision's ImageNet convention is RGB in ``[0, 1]`` normalised with mean
``(0.485, 0.456, 0.406)`` and std ``(0.229, 0.224, 0.225)``. With the default config the
module does that itself: it takes the project's BGR ``[0, 1]`` images (SR outputs, HR crops),
flips them to RGB and normalises (``bgr_input`` and ``normalize`` turn either step off; with
both off the caller passes torchvision-ready tensors). The mean/std are non-persistent buffers,
so they are not in the state dict.

Size: 20,024,384 parameters (32 state-dict tensors); 6,370.1 M MACs per 128x128 face for the
whole stack (the same to relu5_4, as pools have no MACs; 1,538.3 M to relu2_2; 19,508.4 M per
224x224 image). Freeze it for a perceptual loss: ``net.requires_grad_(False).eval()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from cctv_sr.archs.common import check_input
from cctv_sr.errors import ConfigError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "LAYER_INDEX", "VGG19_CFG", "Vgg19Features",
           "Vgg19FeaturesConfig"]

# channels of each conv, "M" a max-pool (VGG19, configuration E of Simonyan & Zisserman)
VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                    512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_names() -> dict[str, int]:
    names: dict[str, int] = {}
    index, block, conv = 0, 1, 1
    for item in VGG19_CFG:
        if item == "M":
            names[f"pool{block}"] = index
            index, block, conv = index + 1, block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = index
            names[f"relu{block}_{conv}"] = index + 1
            index, conv = index + 2, conv + 1
    return names


LAYER_INDEX: dict[str, int] = _layer_names()


@dataclass(frozen=True)
class Vgg19FeaturesConfig:
    """Input handling: ``bgr_input`` flips BGR to RGB first, ``normalize`` applies the
    ImageNet mean/std (module docstring)."""

    bgr_input: bool = True
    normalize: bool = True


class Vgg19Features(nn.Module):
    """VGG19 ``features``: ``(N, 3, H, W)`` -> ``(N, 512, H/32, W/32)``; :meth:`activations`
    returns named intermediate layers.

    20,024,384 parameters; 6,370.1 M MACs per 128x128 face (module docstring).

    Example::

        vgg = Vgg19Features().requires_grad_(False).eval()
        vgg.load_torchvision_state_dict(torchvision.models.vgg19(weights=...).state_dict())
        acts = vgg.activations(sr, ["relu2_2", "relu5_4"])   # dict name -> tensor
    """

    config_class = Vgg19FeaturesConfig
    mean: torch.Tensor  # (1, 3, 1, 1) ImageNet RGB mean, a non-persistent buffer
    std: torch.Tensor

    def __init__(self, config: Vgg19FeaturesConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else Vgg19FeaturesConfig()
        layers: list[nn.Module] = []
        cin = 3
        for item in VGG19_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                cout = int(item)
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=False)]
                cin = cout
        self.features = nn.Sequential(*layers)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The input as the convolutions expect it (BGR flip and normalisation per config)."""
        check_input("vgg19_features", x, 3)
        if self.config.bgr_input:
            x = x.flip(1)
        if self.config.normalize:
            x = (x - self.mean) / self.std
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The output of the whole stack (after pool5)."""
        out: torch.Tensor = self.features(self.prepare(x))
        return out

    def activations(self, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """The activations at the named ``layers`` (e.g. ``relu2_2``, ``relu5_4``; see
        :data:`LAYER_INDEX`), in the order given; runs only as deep as the deepest one."""
        wanted = list(layers)
        unknown = [name for name in wanted if name not in LAYER_INDEX]
        if unknown or not wanted:
            raise ConfigError(f"vgg19_features: unknown layer(s) {unknown or wanted} (known: "
                              f"{', '.join(LAYER_INDEX)})")
        by_index = {LAYER_INDEX[name]: name for name in wanted}
        found: dict[str, torch.Tensor] = {}
        h = self.prepare(x)
        for index, layer in enumerate(self.features):
            if index > max(by_index):
                break
            h = layer(h)
            if index in by_index:
                found[by_index[index]] = h
        return {name: found[name] for name in wanted}

    def load_torchvision_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load a torchvision ``vgg19`` state dict (the ``features.*`` keys; the classifier's are
        dropped) strictly."""
        features = {k: v for k, v in state.items() if k.startswith("features.")}
        self.load_state_dict(features, strict=True)
