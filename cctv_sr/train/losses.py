"""Training losses: pixel (L1 / Charbonnier), identity, perceptual, adversarial, distillation.

Every image tensor here is the project's convention: ``(N, 3, 128, 128)`` BGR in ``[0, 1]``
(:mod:`cctv_sr.archs.common`). The identity network is MobileFaceNet, frozen (eval mode, no
gradients into its weights); :class:`FaceIdentity` feeds it the way the embedder does (RGB,
112 px, ImageNet mean / std) but in torch, so gradients flow back into the SR output.

Perceptual loss: L1 between the features of SR and HR, averaged over layers. With a VGG19
state dict (``loss.vgg19``) the features are VGG19's (:mod:`cctv_sr.archs.vgg`, layers
``loss.perceptual_layers``); without one they are MobileFaceNet's intermediate maps at 56, 28
and 14 px (one warning says so).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cctv_sr.archs.vgg import Vgg19Features
from cctv_sr.embed.mobilefacenet_net import INPUT_SIZE, MobileFaceNet
from cctv_sr.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

__all__ = ["FaceIdentity", "Perceptual", "charbonnier", "discriminator_loss",
           "generator_adversarial", "identity_loss", "pixel_loss", "relation_loss",
           "resolve_embedder_path"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_embedder_path(explicit: str) -> Path:
    """The MobileFaceNet state dict: ``explicit`` or the shipped file (its manifest)."""
    from cctv_sr.config import EmbedderConfig
    from cctv_sr.models import registry

    path = registry.resolve_weights("embedder", EmbedderConfig(name="mobilefacenet",
                                                               model_path=explicit))
    if path is None:  # pragma: no cover - the mobilefacenet row has a manifest
        raise ModelError("mobilefacenet: no weights file found")
    return path


class FaceIdentity(nn.Module):
    """Frozen MobileFaceNet on BGR ``[0, 1]`` faces: :meth:`embed` (unit vectors, gradients
    flow to the input) and :meth:`features` (intermediate maps for a perceptual loss)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: MobileFaceNet) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    @classmethod
    def from_file(cls, path: Path, device: torch.device) -> FaceIdentity:
        try:
            net = MobileFaceNet.from_state_dict_file(path, device="cpu")
        except (RuntimeError, OSError) as exc:
            raise ModelError(f"{path}: not a MobileFaceNet state dict "
                             f"({str(exc).splitlines()[0]})") from None
        return cls(net).to(device)

    def train(self, mode: bool = True) -> FaceIdentity:
        """Always eval: the BatchNorm statistics of a frozen network must not move."""
        super().train(False)
        return self

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """BGR [0, 1] at any side -> RGB 112, normalised."""
        x = x.flip(1)
        if x.shape[-1] != INPUT_SIZE:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                              align_corners=False, antialias=x.shape[-1] > INPUT_SIZE)
        return (x - self.mean) / self.std

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 128)`` L2-normalised embeddings."""
        return F.normalize(self.net(self.prepare(x)).float(), dim=1)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps after ``dw_conv`` (56 px), ``features.4`` (28) and ``features.11`` (14)."""
        net = self.net
        h = net.dw_conv(net.conv1(self.prepare(x)))
        out = [h]
        for i, block in enumerate(net.features):
            h = block(h)
            if i in (4, 11):
                out.append(h)
            if i == 11:
                break
        return out


class Perceptual(nn.Module):
    """Feature-space L1 between SR and HR on VGG19 (a state dict path) or MobileFaceNet."""

    def __init__(self, vgg19_path: str, layers: tuple[str, ...], identity: FaceIdentity,
                 device: torch.device) -> None:
        super().__init__()
        self.layers = layers
        self.vgg: Vgg19Features | None = None
        self.identity = identity
        if vgg19_path:
            vgg = Vgg19Features()
            try:
                state = torch.load(vgg19_path, map_location="cpu", weights_only=True)
                vgg.load_torchvision_state_dict(state)
            except (RuntimeError, OSError, KeyError) as exc:
                raise ConfigError(f"loss.vgg19: {vgg19_path}: not a torchvision vgg19 state "
                                  f"dict ({str(exc).splitlines()[0]})") from None
            self.vgg = vgg.requires_grad_(False).eval().to(device)
            self.backbone = "vgg19"
            log.info("perceptual loss on VGG19 features %s (%s)", ", ".join(layers), vgg19_path)
        else:
            self.backbone = "mobilefacenet"
            log.warning("perceptual loss on MobileFaceNet intermediate features (no loss.vgg19 "
                        "state dict given; set it to use VGG19 features)")

    def train(self, mode: bool = True) -> Perceptual:
        super().train(False)
        return self

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.vgg is not None:
            return list(self.vgg.activations(x, self.layers).values())
        return self.identity.features(x)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self._features(hr)
        got = self._features(sr)
        terms = [F.l1_loss(a.float(), b.float()) for a, b in zip(got, target)]
        return torch.stack(terms).mean()


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Mean of ``sqrt((x - y)^2 + eps^2)``: L1 with a smooth minimum."""
    return torch.sqrt((x.float() - y.float()) ** 2 + eps * eps).mean()


def pixel_loss(kind: str, sr: torch.Tensor, hr: torch.Tensor, eps: float) -> torch.Tensor:
    """``l1`` or ``charbonnier`` between SR and HR."""
    if kind == "l1":
        return F.l1_loss(sr.float(), hr.float())
    return charbonnier(sr, hr, eps)


def identity_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cosine`` of two batches of embeddings (normalised here)."""
    return (1.0 - F.cosine_similarity(a.float(), b.float(), dim=1)).mean()


def relation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE between the batch's pairwise cosine matrices of student and teacher embeddings."""
    s = F.normalize(student.float(), dim=1)
    t = F.normalize(teacher.float(), dim=1)
    return F.mse_loss(s @ s.T, t @ t.T)


def generator_adversarial(disc: nn.Module, sr: torch.Tensor) -> torch.Tensor:
    """Non-saturating GAN loss of the generator: BCE of ``srgan_d(sr)`` against "real"."""
    logits = disc(sr).float()
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def discriminator_loss(disc: nn.Module, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """BCE of ``srgan_d``: HR is "real", the (detached) SR output "fake"."""
    real = disc(hr).float()
    fake = disc(sr.detach()).float()
    bce = F.binary_cross_entropy_with_logits
    return bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
