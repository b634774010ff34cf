"""The project's own trained SR networks (``cctv-sr train`` checkpoints) as a super-resolver.

``--sr trained --sr-model runs/lrnet/last.pt`` runs any checkpoint of an SR architecture
(``srgan``, ``ipunet``, ``lrnet``): the network is rebuilt from the checkpoint's arch name and
config, its EMA weights are loaded (:func:`cctv_sr.train.checkpoint.load_checkpoint`), and its
:class:`~cctv_sr.models.spec.ModelSpec` says the window T it was trained on. A slim ``.pt`` from
``cctv-sr export`` loads the same way; an exported ``.onnx`` runs through onnxruntime
(:mod:`cctv_sr.sr.trained_onnx`: crops resized with bicubic to the file's input side first).
Crops go in as BGR floats in [0, 1], ``(N, T*3, S, S)``: a track window of T aligned frames
(:meth:`TrainedSR.upscale_windows`), or a still repeated T times (the same frame in every
slot of the window); a net whose spec names one input side (srgan) gets the
window resized to it first, as in training (:func:`cctv_sr.archs.common.fit_input`). The
output is clipped to [0, 1], rounded to uint8 and resized to ``out_size`` when the network's
own side (128) differs. Batches of ``sr.batch_size`` under :func:`torch.inference_mode` on
``sr.device``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cctv_sr.archs.common import fit_input
from cctv_sr.config import SRConfig
from cctv_sr.detect.mtcnn import torch_device
from cctv_sr.embed.base import chunks
from cctv_sr.errors import ConfigError, ModelError
from cctv_sr.sr.base import SuperResolver, check_crops, empty_batch, resize_square
from cctv_sr.train.sampler import to_input

log = logging.getLogger(__name__)

SR_ARCHS = ("srgan", "ipunet", "lrnet")  # checkpoints of these run here; lrhead is not SR


class TrainedSR(SuperResolver):
    """A ``cctv-sr train`` checkpoint (full or slim ``.pt``) or ``.onnx`` export of an SR
    architecture."""

    name = "trained"
    scale = 0  # the networks take any input side and always give their native output side

    def __init__(self, cfg: SRConfig, model_path: Path | None = None) -> None:
        super().__init__(cfg, model_path)
        if model_path is None:
            raise ConfigError("sr.name=trained needs a checkpoint: --sr-model RUN_DIR/last.pt "
                              "(from cctv-sr train)")
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"{path}: no such checkpoint")
        self.net: Callable[[torch.Tensor], torch.Tensor]
        if path.suffix.lower() == ".onnx":
            from cctv_sr.sr.trained_onnx import OnnxSRNet

            onnx_net = OnnxSRNet(path, cfg.device)
            self._check_arch(path, onnx_net.arch, "an ONNX export")
            self.device = torch.device("cpu")  # onnxruntime takes and gives host arrays
            self.net, self.spec = onnx_net, onnx_net.spec
        else:
            from cctv_sr.train.checkpoint import load_checkpoint, read_checkpoint

            self._check_arch(path, str(read_checkpoint(path).get("arch", "")), "a checkpoint")
            self.device = torch_device(cfg.device)
            self.net, self.spec = load_checkpoint(path, device=self.device)
            if self.device.type == "cuda":  # the CUDA path; not run on this project's CI
                module = self.net
                if isinstance(module, torch.nn.Module):
                    module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
                    self.net = module.half() if cfg.half else module
        self.arch = self.spec.arch
        self.window = max(1, int(self.spec.window or 1))
        self.model_files = (path,)
        # a shipped model keeps its registry name (sr.name = "lrnet"); a file, its arch's
        self.name = cfg.name if cfg.name != "trained" else f"trained:{self.arch}"
        log.info("trained SR: %s (%s, window %d) on %s", path, self.arch, self.window,
                 self.device)

    @staticmethod
    def _check_arch(path: Path, arch: str, what: str) -> None:
        if arch not in SR_ARCHS:
            raise ModelError(f"{path}: {what} of '{arch}', which is not an SR "
                             f"architecture (SR: {', '.join(SR_ARCHS)})")

    def _run(self, windows: np.ndarray) -> np.ndarray:
        if self.device.type == "cuda":  # pinned host memory, an asynchronous copy
            n, t, s = windows.shape[:3]
            x = torch.from_numpy(windows).pin_memory().to(self.device, non_blocking=True)
            x = x.permute(0, 1, 4, 2, 3).reshape(n, t * 3, s, s)
            x = x.half() if self.cfg.half else x.float()
            x = x.div_(255.0).contiguous(memory_format=torch.channels_last)
        else:
            x = to_input(windows, self.device)  # (N, T*3, S, S)
        x = fit_input(x, self.spec.input_sides)  # srgan: to the side it was trained on
        y = self.net(x).float().clamp_(0.0, 1.0).mul_(255.0).round_()
        return y.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def upscale(self, crops: np.ndarray, out_size: int) -> np.ndarray:
        """(N, S, S, 3) uint8 BGR -> (N, out_size, out_size, 3) uint8 BGR (a still fills
        every slot of a T > 1 net's window)."""
        crops = check_crops(crops, out_size)
        n, s = crops.shape[0], crops.shape[1]
        return self.upscale_windows(np.broadcast_to(crops[:, None], (n, self.window, s, s, 3)),
                                    out_size)

    def upscale_windows(self, windows: np.ndarray, out_size: int) -> np.ndarray:
        """(N, T, S, S, 3) uint8 BGR windows of ``T == window`` aligned frames ->
        (N, out_size, out_size, 3) uint8 BGR."""
        self.check_windows(windows)
        check_crops(windows[:, 0], out_size)
        if windows.shape[0] == 0:
            return empty_batch(out_size)
        parts = []
        with torch.inference_mode():
            for part in chunks(len(windows), self.cfg.batch_size):
                parts.append(self._run(np.require(windows[part], requirements=["C", "W"])))
        out = np.concatenate(parts)
        if out.shape[1] != out_size:
            out = np.stack([resize_square(image, out_size) for image in out])
        return out

    def describe(self, in_size: int, out_size: int) -> str:
        return f"{self.name}_{in_size}to{out_size}"
