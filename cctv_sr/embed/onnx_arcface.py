"""Face recognition ONNX models through onnxruntime: InsightFace ArcFace and MobileFaceNet.

:class:`OnnxEmbedder` is generic over recognition models with one NCHW image input (square,
read from the model, else from the manifest's spec: 112 for both) and one ``(N, D)`` output.
A dynamic batch dimension is used in chunks of ``cfg.batch_size``; a fixed one (MobileFaceNet's
export takes batch 1 only) is fed that many crops per run, the last run padded. The channel
order and, when the model leaves H and W dynamic, the input side come from the default
manifest's :class:`~cctv_sr.models.spec.ModelSpec` (``colour``, ``input_sides``); subclasses
set the normalisation:

* ``arcface`` (InsightFace recognition models such as ``w600k_r50.onnx`` of ``buffalo_l``,
  manifest ``arcface_r50``): RGB, ``(x - 127.5) / 127.5``.
* ``mobilefacenet_onnx`` (foamliu's export, manifest ``mobilefacenet_onnx``): RGB, ``x / 255``
  then ImageNet mean/std, the transform it was trained with.

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

log = logging.getLogger(__name__)

DEFAULT_SIDE = 112  # input side when neither the model nor its spec gives one
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class OnnxEmbedder(FaceEmbedder):
    """A recognition ONNX model: ``(N, 3, S, S)`` input in the spec's colour order, ``(N, D)``
    output.

    ``mean`` and ``std`` are per input channel (in the model's colour order) on the 0-255
    scale: the model sees ``(x - mean) / std``.
    """

    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)

    @classmethod
    def check_available(cls) -> None:
        """BackendUnavailableError (naming the extra) unless onnxruntime imports."""
        import_onnxruntime(f"the {cls.name} embedder")

    def __init__(self, cfg: EmbedderConfig, model_path: Path | None = None) -> None:
        super().__init__(cfg, model_path)
        ort = import_onnxruntime(f"the {self.name} embedder")
        manifest = self.default_manifest()
        self.spec = manifest.model_spec()
        path = self.require_model_path()
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
        # The file's own fixed side is what it accepts; the spec decides only when it is dynamic.
        spec_side = self.spec.input_sides[0] if self.spec.input_sides else DEFAULT_SIDE
        self.input_side = height if isinstance(height, int) else spec_side
        if self.spec.input_sides and self.input_side not in self.spec.input_sides:
            log.warning("%s: input side %d, but the %s spec says %s", path, self.input_side,
                        self.name, self.spec.input_sides)
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
        """Model input ``(N, 3, S, S)`` of canonical BGR crops: resized, in the spec's colour
        order, normalised."""
        crops = resize_crops(check_crops(crops), self.input_side)
        ordered = crops[..., ::-1] if self.spec.colour == "rgb" else crops
        x = ordered.astype(np.float32)
        x -= np.asarray(self.mean, np.float32)
        x /= np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(self._dtype, copy=False)

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


class MobileFaceNetOnnxEmbedder(OnnxEmbedder):
    """foamliu's MobileFaceNet ONNX export (128-d, batch 1 only: crops are run one by one);
    the default ``mobilefacenet`` embedder runs the same weights in PyTorch, batched."""

    name = "mobilefacenet_onnx"
    dim = 128
    mean = (255.0 * IMAGENET_MEAN[0], 255.0 * IMAGENET_MEAN[1], 255.0 * IMAGENET_MEAN[2])
    std = (255.0 * IMAGENET_STD[0], 255.0 * IMAGENET_STD[1], 255.0 * IMAGENET_STD[2])

