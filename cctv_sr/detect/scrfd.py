"""SCRFD face detector (InsightFace model-pack ONNX files) through onnxruntime.

Works with ``scrfd_500m_bnkps.onnx`` ([N,3,H,W], batched outputs), ``scrfd_2.5g_bnkps.onnx``
(batch 1, unbatched outputs with numeric names) and buffalo_l's ``det_10g.onnx``. Outputs are
taken by position: scores for each stride, then boxes, then landmarks. The InsightFace weights
are for non-commercial research only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from cctv_sr.config import DetectorConfig
from cctv_sr.detect.base import FaceDetector, check_images, chunked, group_by_shape, require_file
from cctv_sr.detect.boxes import finalize, letterbox_scale, round_up
from cctv_sr.errors import ModelError
from cctv_sr.models.ort import choose_providers, import_onnxruntime
from cctv_sr.records import FaceDetections

log = logging.getLogger(__name__)

STRIDES = {3: (8, 16, 32), 5: (8, 16, 32, 64, 128)}  # by number of feature maps


class ScrfdDetector(FaceDetector):
    """SCRFD with 5 landmarks, run by onnxruntime.

    Each image is scaled so that its long side is ``input_size`` (never enlarged unless
    ``allow_upscale``; ``input_size=0`` keeps the native resolution), pasted at the top left
    of a canvas padded to a multiple of 32, and same-size images go through the network in
    one call when the model takes a batch. Not enlarging small images avoids SCRFD's blind
    spot for faces that fill the whole frame. Detections whose box is smaller than
    ``cfg.min_face_px`` are dropped.
    """

    name = "scrfd"
    track_high_thresh = 0.5
    track_new_thresh = 0.6

    @classmethod
    def check_available(cls) -> None:
        """BackendUnavailableError (naming the extra) unless onnxruntime imports."""
        import_onnxruntime("scrfd")

    def __init__(
        self,
        cfg: DetectorConfig,
        model_path: Path | None = None,
        *,
        input_size: int = 640,
        allow_upscale: bool = False,
    ) -> None:
        super().__init__(cfg, model_path)
        path = require_file(self.model_path, "scrfd",
                            " (e.g. shared/models/scrfd_500m/scrfd_500m_bnkps.onnx)")
        ort = import_onnxruntime("scrfd")
        self.input_size = int(input_size)
        self.allow_upscale = bool(allow_upscale)
        try:
            self._session = ort.InferenceSession(
                str(path), providers=choose_providers(ort, cfg.device))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"scrfd: cannot load {path}: {exc}") from exc
        inp = self._session.get_inputs()[0]
        self._input_name = inp.name
        shape = list(inp.shape)
        ranks = {len(o.shape) for o in self._session.get_outputs()}
        # [N,K,C] outputs take a batch; [K,C] outputs (scrfd_2.5g, det_10g) mean one image
        self.batched = not (isinstance(shape[0], int) and shape[0] == 1) and ranks == {3}
        self.fixed_hw = (tuple(shape[2:4]) if all(isinstance(v, int) and v > 0 for v in shape[2:4])
                         else None)
        n_out = len(self._session.get_outputs())
        if n_out % 3 or n_out // 3 not in STRIDES:
            raise ModelError(f"scrfd: {path} has {n_out} outputs; expected 9 or 15 "
                             "(scores, boxes and landmarks per stride)")
        self.strides = STRIDES[n_out // 3]
        self.model_files = (path,)
        self._centres: dict[tuple[int, int, int], np.ndarray] = {}
        log.info("scrfd %s on %s (batched=%s, input %s)", path.name,
                 self._session.get_providers()[0], self.batched, self.fixed_hw or "dynamic")

    # -- public ---------------------------------------------------------------------------

    def detect(self, images: Sequence[np.ndarray]) -> list[FaceDetections]:
        """Faces in each image (see :meth:`FaceDetector.detect`)."""
        images = check_images(images)
        out: list[FaceDetections] = [FaceDetections.empty()] * len(images)
        per_call = self.cfg.batch_size if self.batched else 1
        for (height, width), idxs in group_by_shape(images).items():
            scale, canvas = self._geometry(height, width)
            for chunk in chunked(idxs, per_call):
                blob = self._blob([images[i] for i in chunk], scale, canvas)
                for j, dets in enumerate(self._infer(blob, len(chunk), scale, canvas)):
                    out[chunk[j]] = finalize(
                        *dets, width=width, height=height,
                        score_thresh=self.cfg.score_thresh, nms_thresh=self.cfg.nms_thresh,
                        min_side=float(self.cfg.min_face_px),
                    )
        return out

    # -- internals ------------------------------------------------------------------------

    def _geometry(self, height: int, width: int) -> tuple[float, tuple[int, int]]:
        """Resize factor and (H, W) of the network input for an image of this size."""
        if self.fixed_hw is not None:
            fh, fw = int(self.fixed_hw[0]), int(self.fixed_hw[1])
            scale = min(fh / height, fw / width)
            if not self.allow_upscale:
                scale = min(scale, 1.0)
            return scale, (fh, fw)
        if self.input_size > 0:
            scale = letterbox_scale(height, width, self.input_size, self.allow_upscale)
        else:
            scale = 1.0
        th, tw = max(1, round(height * scale)), max(1, round(width * scale))
        return scale, (round_up(th, 32), round_up(tw, 32))

    @staticmethod
    def _blob(images: list[np.ndarray], scale: float, canvas: tuple[int, int]) -> np.ndarray:
        """(N,3,H,W) float32 RGB in about [-1, 1], images at the top left, zero-padded."""
        ch, cw = canvas
        batch = np.zeros((len(images), ch, cw, 3), np.uint8)
        for k, image in enumerate(images):
            h, w = image.shape[:2]
            th, tw = min(ch, max(1, round(h * scale))), min(cw, max(1, round(w * scale)))
            if (th, tw) != (h, w):
                image = np.ascontiguousarray(image)
                interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
                image = cv2.resize(image, (tw, th), interpolation=interp)
            batch[k, :th, :tw] = image[:th, :tw]
        blob = batch[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)
        return (blob - 127.5) / 128.0

    def _anchor_centres(self, h: int, w: int, stride: int, per_cell: int) -> np.ndarray:
        """(h*w*per_cell, 2) anchor centres (col*stride, row*stride), each repeated."""
        key = (h, w, stride * 16 + per_cell)
        if key not in self._centres:
            ys, xs = np.mgrid[:h, :w]
            centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
            self._centres[key] = np.repeat(centres, per_cell, axis=0)
        return self._centres[key]

    def _infer(
        self, blob: np.ndarray, n: int, scale: float, canvas: tuple[int, int]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Run the network; per image (boxes, scores, kps) in original pixels, unfiltered
        except for a loose score cut."""
        try:
            outs = self._session.run(None, {self._input_name: blob})
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"scrfd: inference failed on input {blob.shape}: {exc}") from exc
        fmc = len(self.strides)
        results = []
        for k in range(n):
            boxes, scores, kps = [], [], []
            for i, stride in enumerate(self.strides):
                score, dist, lmk = (self._rows(outs[i + j * fmc], k, n) for j in range(3))
                h, w = canvas[0] // stride, canvas[1] // stride
                per_cell = max(1, score.shape[0] // (h * w))
                centres = self._anchor_centres(h, w, stride, per_cell)
                keep = np.nonzero(score[:, 0] >= self.cfg.score_thresh)[0]
                c, d, p = centres[keep], dist[keep] * stride, lmk[keep] * stride
                boxes.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1))
                kps.append(p.reshape(-1, 5, 2) + c[:, None, :])
                scores.append(score[keep, 0])
            results.append((np.concatenate(boxes) / scale, np.concatenate(scores),
                            np.concatenate(kps) / scale))
        return results

    @staticmethod
    def _rows(out: np.ndarray, k: int, n: int) -> np.ndarray:
        """Image ``k``'s (K, C) rows of one output, batched [N,K,C] or unbatched [K,C]."""
        out = np.asarray(out)
        if out.ndim == 3 and out.shape[0] == n:
            return out[k]
        if out.ndim == 2 and n == 1:
            return out
        raise ModelError(f"scrfd: unexpected output shape {out.shape} for a batch of {n}")
