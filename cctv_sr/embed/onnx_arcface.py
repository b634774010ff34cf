"""Face recognition ONNX models through onnxruntime: InsightFace ArcFace and MobileFaceNet.

:class:`OnnxEmbedder` is generic over recognition models with one NCHW image input (square,
read from the model, 112 for both) and one ``(N, D)`` output. A dynamic batch dimension is
used in chunks of ``cfg.batch_size``; a fixed one (MobileFaceNet's export takes batch 1 only)
is fed that many crops per run, the last run padded. Subclasses set the normalisation:

* ``arcface`` (InsightFace recognition models such as ``w600k_r50.onnx`` of ``buffalo_l``,
  manifest ``arcface_r50``): RGB, ``(x - 127.5) / 127.5``.
* ``mobilefacenet`` (foamliu, manifest ``mobilefacenet``): RGB, ``x / 255`` then ImageNet
  mean/std, the transform it was trained with.

Crops of any side are resized to the model's input side (area when shrinking, bicubic when
growing); outputs are L2-normalised.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cctv_sr.config import EmbedderConfig
from cctv_sr.embed.base import (
    FaceEmbedder,
    check_crops,
    chunks,
    l2_normalise,
    model_version,
    resize_crops,
)
from cctv_sr.errors import ModelError
from cctv_sr.models.ort import choose_providers, import_onnxruntime
from cctv_sr.models.weights import get_manifest, resolve_file

log = logging.getLogger(__name__)

DEFAULT_SIDE = 112  # input side when the model leaves H and W dynamic
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class OnnxEmbedder(FaceEmbedder):
    """A recognition ONNX model: ``(N, 3, S, S)`` RGB input, ``(N, D)`` output.

    ``mean`` and ``std`` are per RGB channel on the 0-255 scale: the model sees
    ``(rgb - mean) / std``.
    """

    manifest_name: str = ""
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)

    def __init__(self, cfg: EmbedderConfig, model_path: Path | None = None) -> None:
        super().__init__(cfg, model_path)
        ort = import_onnxruntime(f"the {self.name} embedder")
        manifest = get_manifest(self.manifest_name)
        path = resolve_file(manifest, explicit=self.model_path)
        options = ort.SessionOptions()
        if cfg.num_threads > 0:
            options.intra_op_num_threads = cfg.num_threads
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=choose_providers(ort, cfg.device)
            )
        except Exception as exc:  # onnxruntime raises its own (pybind) exception types
            raise ModelError(f"{path}: cannot load ONNX model for {self.name}: {exc}") from None
        self.model_files = (path,)
        self.version = model_version(manifest, path)
        self._read_io(path)
        log.info("%s embedder: %s, input %dx%d, batch %s, dim %d", self.name, path,
                 self.input_side, self.input_side, self.fixed_batch or "dynamic", self.dim)

    def _read_io(self, path: Path) -> None:
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise ModelError(f"{path}: expected one image input and an output, got "
                             f"{len(inputs)} inputs, {len(outputs)} outputs")
        inp = inputs[0]
        shape = list(inp.shape)
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise ModelError(f"{path}: expected an NCHW input with 3 channels, got {shape}")
        height, width = shape[2], shape[3]
        if isinstance(height, int) and isinstance(width, int) and height != width:
            raise ModelError(f"{path}: expected a square input, got {height}x{width}")
        self.input_side = height if isinstance(height, int) else DEFAULT_SIDE
        self.fixed_batch: int | None = shape[0] if isinstance(shape[0], int) else None
        self._input_name = inp.name
        self._output_name = outputs[0].name
        self._dtype = np.float16 if "float16" in inp.type else np.float32
        out_dim = outputs[0].shape[-1] if outputs[0].shape else None
        if not isinstance(out_dim, int):  # dynamic output size: ask the model
            out_dim = int(self._run(np.zeros((self.fixed_batch or 1, 3, self.input_side,
                                              self.input_side), self._dtype)).shape[-1])
        self.dim = int(out_dim)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = self._session.run([self._output_name], {self._input_name: batch})[0]
        return np.asarray(out, np.float32).reshape(len(batch), -1)

    def preprocess(self, crops: np.ndarray) -> np.ndarray:
        """Model input ``(N, 3, S, S)`` of canonical BGR crops: resized, RGB, normalised."""
        crops = resize_crops(check_crops(crops), self.input_side)
        rgb = crops[..., ::-1].astype(np.float32)
        rgb -= np.asarray(self.mean, np.float32)
        rgb /= np.asarray(self.std, np.float32)
        return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)).astype(self._dtype, copy=False)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings ``(N, dim)`` float32 of canonical BGR crops."""
        crops = check_crops(crops)
        n = len(crops)
        out = np.zeros((n, self.dim), np.float32)
        step = self.fixed_batch or self.cfg.batch_size
        for part in chunks(n, step):  # preprocess per chunk: memory stays O(batch)
            batch = self.preprocess(crops[part])
            if self.fixed_batch and len(batch) < self.fixed_batch:  # pad the last fixed batch
                pad = np.zeros((self.fixed_batch - len(batch), *batch.shape[1:]), batch.dtype)
                batch = np.concatenate([batch, pad])
            out[part] = self._run(batch)[: part.stop - part.start]
        return l2_normalise(out)


class ArcFaceEmbedder(OnnxEmbedder):
    """InsightFace recognition ONNX (e.g. ``w600k_r50.onnx``, 512-d): RGB, (x-127.5)/127.5.

    Not shipped: give ``model_path`` or put the file where the ``arcface_r50`` manifest is
    resolved from (``$CCTV_SR_MODELS``). ``dim`` is read from the model.
    """

    name = "arcface"
    dim = 512
    manifest_name = "arcface_r50"


class MobileFaceNetEmbedder(OnnxEmbedder):
    """foamliu's MobileFaceNet ONNX (128-d, batch 1 only: crops are run one by one)."""

    name = "mobilefacenet"
    dim = 128
    manifest_name = "mobilefacenet"
    mean = (255.0 * IMAGENET_MEAN[0], 255.0 * IMAGENET_MEAN[1], 255.0 * IMAGENET_MEAN[2])
    std = (255.0 * IMAGENET_STD[0], 255.0 * IMAGENET_STD[1], 255.0 * IMAGENET_STD[2])

