"""An LR identity head as a run's third scorer: aligned LR crop -> the gallery embedder's space.

An LR head (:mod:`cctv_sr.archs.lrhead`, :mod:`cctv_sr.archs.lrmfn`) is distilled from the
gallery embedder (MobileFaceNet): it maps a low-resolution crop straight to that embedder's
128-d space, so its vectors are compared with the gallery's own templates. ``space`` names
that embedder (a shipped head's manifest says it, ``[spec] teacher``);
:func:`cctv_sr.identity.setup.open_head` refuses (or, for a shipped head, skips) a gallery
built with another one.

Registry kind ``head`` (``head.name``): ``lrmfn`` is the shipped head (its manifest's file);
``checkpoint`` runs any ``cctv-sr train`` checkpoint of ``lrhead`` or ``lrmfn`` given as
``head.model_path``. The EMA weights (:func:`cctv_sr.train.checkpoint.load_checkpoint`) run in
batches of ``head.batch_size`` under :func:`torch.inference_mode` on ``head.device``; an
``lrmfn`` runs with its batch norms folded into the convolutions and channels-last (as the
mobilefacenet embedder does; outputs agree with the plain net within 1e-4). Crops go in as the
training layout (:func:`cctv_sr.train.sampler.to_input`: ``(N, T*3, s, s)`` BGR in [0, 1], any
side): :meth:`LrHeadEmbedder.embed` fills every slot of a ``T > 1`` window with the still,
:meth:`LrHeadEmbedder.embed_windows` takes the ``T`` frames themselves. Example::

    head = LrHeadEmbedder(HeadConfig(name="checkpoint"), Path("runs/lrhead/last.pt"))
    vectors = head.embed(crops)        # (N, 16, 16, 3) uint8 BGR -> (N, 128), unit length
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cctv_sr.archs import HEAD_ARCHS
from cctv_sr.config import HeadConfig
from cctv_sr.detect.mtcnn import torch_device
from cctv_sr.embed.base import MIN_SIDE, check_crops, chunks, model_version
from cctv_sr.embed.mobilefacenet_net import inference_form as mobilefacenet_inference_form
from cctv_sr.errors import ConfigError, ContractError, ModelError
from cctv_sr.models import registry
from cctv_sr.models.resolve import sha256_file

log = logging.getLogger(__name__)

TEACHER = "mobilefacenet"  # the embedder cctv_sr.train distils every head from


class _ChannelsLast(nn.Module):
    """Runs ``net`` (its weights already channels-last) on channels-last input."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=torch.channels_last))


def inference_form(net: nn.Module) -> nn.Module:
    """``net`` for inference (eval only): an ``lrmfn``'s MobileFaceNet with its batch norms
    folded into the convolutions (:func:`torch.fx.experimental.optimization.fuse`) and run
    channels-last; any other head as it is."""
    from cctv_sr.archs.lrmfn import LrMfn

    if isinstance(net, LrMfn):
        net.net = _ChannelsLast(mobilefacenet_inference_form(net.net))  # type: ignore[assignment]
    return net


class LrHeadEmbedder:
    """A trained LR identity head: N aligned crops in, N unit vectors in ``space`` out.

    ``name`` (``checkpoint:<arch>`` or the registry name), ``space`` (the teacher embedder's
    registry name), ``teacher_file`` (the MobileFaceNet weights it was distilled from when
    they were not the shipped ones, else ""), ``window`` (frames the net fuses), ``dim``,
    ``version`` (short and stable: the file's sha256 prefix, with the manifest's version when
    the file is its default) and ``model_files`` (for run provenance).
    """

    def __init__(self, cfg: HeadConfig, model_path: Path | None = None) -> None:
        from cctv_sr.train.checkpoint import load_checkpoint, read_checkpoint

        if cfg.batch_size < 1:
            raise ConfigError(f"head.batch_size must be >= 1, got {cfg.batch_size}")
        if model_path is None:
            raise ConfigError(f"head.name={cfg.name} needs a checkpoint: --set "
                              "head.model_path=RUN_DIR/last.pt (from cctv-sr train)")
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"{path}: no such head checkpoint")
        ckpt = read_checkpoint(path)
        arch = str(ckpt.get("arch", ""))
        if arch not in HEAD_ARCHS:
            raise ModelError(f"{path}: a checkpoint of '{arch}', not of an LR identity head "
                             f"({', '.join(HEAD_ARCHS)}); an SR checkpoint runs as --sr "
                             f"trained (in eval identify: trained=CKPT)")
        teacher = str(dict(dict(ckpt.get("recipe", {})).get("loss", {})).get("embedder", ""))
        if teacher:
            log.warning("%s was distilled from MobileFaceNet weights %s, not the shipped ones: "
                        "its scores are only as comparable as those weights are", path, teacher)
        manifest = registry.default_manifest("head", cfg.name)
        self.cfg = cfg
        self.arch = arch
        self.step = int(ckpt.get("step", 0))
        self.teacher_file = teacher
        space = manifest.spec_value("teacher") if manifest is not None else None
        self.space = str(space) if space else TEACHER
        self.device = torch_device(cfg.device)
        net, spec = load_checkpoint(path, device="cpu")
        self.net = inference_form(net).to(self.device)
        self.window = max(1, int(spec.window or 1))
        self.dim = int(getattr(getattr(net, "config", None), "embedding_dim", 0))
        self.model_files: tuple[Path, ...] = (path,)
        if manifest is not None:
            self.name = cfg.name
            self.version = model_version(manifest, path)
        else:
            self.name = f"{cfg.name}:{arch}"
            self.version = f"{arch} step {self.step} sha256:{sha256_file(path)[:12]}"
        log.info("LR head: %s (%s, window %d, step %d) on %s", path, arch, self.window,
                 self.step, self.device)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 BGR aligned crops (any ``S >= 8``, N may be 0) ->
        ``(N, dim)`` float32, each row L2-normalised, in batches of ``head.batch_size``; a
        still fills every slot of the net's window."""
        crops = check_crops(crops)
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        n, s = crops.shape[0], crops.shape[1]
        return self.embed_windows(np.broadcast_to(crops[:, None], (n, self.window, s, s, 3)))

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """``(N, T, S, S, 3)`` uint8 BGR windows of ``T == window`` aligned frames (N may be
        0) -> ``(N, dim)`` float32, each row L2-normalised, in batches of ``head.batch_size``."""
        from cctv_sr.train.sampler import to_input

        if not isinstance(windows, np.ndarray) or windows.dtype != np.uint8:
            raise ContractError(f"{self.name}: windows must be a uint8 array, got "
                                f"{getattr(windows, 'dtype', type(windows).__name__)}")
        shape = windows.shape
        if (len(shape) != 5 or shape[1] != self.window or shape[4] != 3
                or shape[2] != shape[3]):
            raise ContractError(f"{self.name}: expected windows (N, {self.window}, S, S, 3), "
                                f"got {shape}")
        if len(windows) == 0:
            return np.zeros((0, self.dim), np.float32)
        if shape[2] < MIN_SIDE:
            raise ContractError(f"{self.name}: crop side must be >= {MIN_SIDE}, got {shape[2]}")
        parts = []
        with torch.inference_mode():
            for part_slice in chunks(len(windows), self.cfg.batch_size):
                # C-contiguous and writable (a broadcast still is read-only): torch takes it
                part = np.require(windows[part_slice], requirements=["C", "W"])
                y = self.net(to_input(part, self.device)).float()
                parts.append(torch.nn.functional.normalize(y, dim=1).cpu().numpy())
        return np.concatenate(parts).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return (f"LrHeadEmbedder(name={self.name!r}, space={self.space!r}, window={self.window}, "
                f"version={self.version!r})")
