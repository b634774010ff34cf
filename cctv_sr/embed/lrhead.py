"""An LR identity head as a run's third scorer: aligned LR crop -> the gallery embedder's space.

An LR head (:mod:`cctv_sr.archs.lrhead`, :mod:`cctv_sr.archs.lrmfn`) is distilled from the
gallery embedder (MobileFaceNet): it maps a low-resolution crop straight to that embedder's
128-d space, so its vectors are compared with the gallery's own templates. ``space`` names
that embedder; :func:`cctv_sr.identity.setup.open_identity` refuses a gallery built with
another one.

Registry kind ``head`` (``head.name``): ``checkpoint`` runs any ``cctv-sr train`` checkpoint of
``lrhead`` or ``lrmfn`` given as ``head.model_path``. The EMA weights (:func:`cctv_sr.train.
checkpoint.load_checkpoint`) run in batches of ``head.batch_size`` under
:func:`torch.inference_mode` on ``head.device``; crops go in as the training layout
(:func:`cctv_sr.train.sampler.to_input`: ``(N, T*3, s, s)`` BGR in [0, 1], any side), a still
filling every slot of a ``T > 1`` window. Example::

    head = LrHeadEmbedder(HeadConfig(name="checkpoint"), Path("runs/lrhead/last.pt"))
    vectors = head.embed(crops)        # (N, 16, 16, 3) uint8 BGR -> (N, 128), unit length
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from cctv_sr.config import HeadConfig
from cctv_sr.detect.mtcnn import torch_device
from cctv_sr.embed.base import check_crops, model_version
from cctv_sr.errors import ConfigError, ModelError
from cctv_sr.models import registry
from cctv_sr.models.resolve import sha256_file

log = logging.getLogger(__name__)

HEAD_ARCHS = ("lrhead", "lrmfn")  # the architectures whose checkpoints are identity heads
TEACHER = "mobilefacenet"  # the embedder cctv_sr.train distils every head from


class LrHeadEmbedder:
    """A trained LR identity head: N aligned crops in, N unit vectors in ``space`` out.

    ``name`` (``checkpoint:<arch>`` or the registry name), ``space`` (the teacher embedder's
    registry name), ``window`` (frames the net fuses), ``dim``, ``version`` (short and stable:
    the file's sha256 prefix, with the manifest's version when the file is its default) and
    ``model_files`` (for run provenance).
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
            raise ModelError(f"{path}: a checkpoint of '{arch}', which is not an LR identity "
                             f"head ({', '.join(HEAD_ARCHS)}); an SR checkpoint is --sr trained")
        teacher = str(dict(dict(ckpt.get("recipe", {})).get("loss", {})).get("embedder", ""))
        if teacher:
            log.warning("%s was distilled from MobileFaceNet weights %s, not the shipped ones: "
                        "its scores are only as comparable as those weights are", path, teacher)
        self.cfg = cfg
        self.arch = arch
        self.step = int(ckpt.get("step", 0))
        self.space = TEACHER
        self.device = torch_device(cfg.device)
        self.net, spec = load_checkpoint(path, device=self.device)
        self.window = max(1, int(spec.window or 1))
        self.dim = int(getattr(getattr(self.net, "config", None), "embedding_dim", 0))
        self.model_files: tuple[Path, ...] = (path,)
        manifest = registry.default_manifest("head", cfg.name)
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
        ``(N, dim)`` float32, each row L2-normalised, in batches of ``head.batch_size``."""
        from cctv_sr.train.sampler import to_input

        crops = check_crops(crops)
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        step = self.cfg.batch_size
        parts = []
        with torch.inference_mode():
            for start in range(0, len(crops), step):
                window = np.repeat(crops[start:start + step, None], self.window, axis=1)
                y = self.net(to_input(window, self.device)).float()
                parts.append(torch.nn.functional.normalize(y, dim=1).cpu().numpy())
        return np.concatenate(parts).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return (f"LrHeadEmbedder(name={self.name!r}, space={self.space!r}, window={self.window}, "
                f"version={self.version!r})")
