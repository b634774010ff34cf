"""YuNet's network run by onnxruntime, batched, and its raw outputs decoded to faces.

The shipped ``face_detection_yunet_2023mar.onnx`` declares a fixed ``[1, 3, 640, 640]`` input,
but the graph is fully convolutional: its only shape-bearing constants are the output
reshapes to ``[1, -1, C]`` and two 2x resizes given as scales. :func:`dynamic_model` makes
batch, height and width free in memory (:mod:`cctv_sr.models.onnx_dims`; the file on disk is
not touched), so onnxruntime runs any size, and several same-size regions in one call. With a
batch of N the ``[1, -1, C]`` outputs hold the N images one after the other.

Measured here (2 cores), onnxruntime against ``cv2.FaceDetectorYN`` on the same inputs: a
1920 x 1088 frame 65 ms against 118, a 288 px region 1.8 ms against 4.3, eight 128 px
regions in one call 2.9 ms against 9.5.

Decoding (what ``cv2.FaceDetectorYN`` does; the golden test checks they agree): the input is
BGR float 0-255, zero-padded at the bottom and right to a multiple of 32. For stride s and the
cell at row r, column c: score ``sqrt(clip(cls, 0, 1) * clip(obj, 0, 1))``; box centre
``((c + dx) s, (r + dy) s)``, size ``(exp(dw) s, exp(dh) s)``; landmark i at
``((c + kx_i) s, (r + ky_i) s)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cctv_sr.detect.base import chunked, group_by_shape
from cctv_sr.errors import ModelError
from cctv_sr.models.onnx_dims import free_dims
from cctv_sr.models.ort import create_session

STRIDES = (8, 16, 32)
PAD = 32  # the network's input sides are multiples of this
# Images per network call: same-size inputs are batched up to this many pixels (a larger batch
# gains nothing once the convolutions are big enough to keep both cores busy).
MAX_BATCH_PIXELS = 1 << 20
MAX_BATCH = 32

Raw = tuple[np.ndarray, np.ndarray, np.ndarray]  # xyxy (N, 4), score (N,), kps (N, 5, 2)


def dynamic_model(path: Path) -> bytes:
    """The serialised ONNX model of ``path`` with batch, height and width made free."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"yunet: cannot read {path}: {exc}") from exc
    try:
        return free_dims(data, {0: "batch", 2: "height", 3: "width"}, {1: "{name}_rows"})
    except ModelError as exc:
        raise ModelError(f"yunet: cannot load {path}: {exc}") from None


class YunetRuntime:
    """YuNet on onnxruntime: :meth:`run` takes BGR uint8 images (any sizes) and returns each
    one's candidate faces above ``score_thresh``, in its own pixels, before NMS."""

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0) -> None:
        # Its worker threads sleep between calls instead of spinning: they share two cores
        # with the decoder and the other stages (measured: 0.275x decode-only on the facenet
        # clip with spinning off, 0.22-0.26x with it on).
        self._session = create_session(dynamic_model(path), device=device, threads=threads,
                                       what=f"yunet ({path})", spin=False)
        self._input = self._session.get_inputs()[0].name
        names = [o.name for o in self._session.get_outputs()]
        wanted = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES]
        if sorted(names) != sorted(wanted):
            raise ModelError(f"yunet: {path} has outputs {names}; expected {wanted}")
        self._outputs = wanted
        self._grids: dict[tuple[int, int, int], np.ndarray] = {}

    def run(self, images: Sequence[np.ndarray], score_thresh: float) -> list[Raw]:
        """Candidates of each image (same order), grouped into batched calls by size."""
        out: list[Raw] = [_concat([])] * len(images)
        for (height, width), idxs in group_by_shape(images).items():
            ph, pw = -(-height // PAD) * PAD, -(-width // PAD) * PAD
            per_call = max(1, min(MAX_BATCH, MAX_BATCH_PIXELS // (ph * pw)))
            for chunk in chunked(idxs, per_call):
                results = self._infer([images[i] for i in chunk], ph, pw, score_thresh)
                for i, raw in zip(chunk, results):
                    out[i] = raw
        return out

    def _infer(self, images: list[np.ndarray], ph: int, pw: int,
               score_thresh: float) -> list[Raw]:
        height, width = images[0].shape[:2]
        batch = np.zeros((len(images), 3, ph, pw), np.float32)
        for k, image in enumerate(images):
            batch[k, :, :height, :width] = image.transpose(2, 0, 1)
        try:
            outs = self._session.run(self._outputs, {self._input: batch})
        except Exception as exc:  # onnxruntime raises its own (pybind) exception types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"yunet: inference failed on input {batch.shape}: {first}") from exc
        named = dict(zip(self._outputs, outs))
        n = len(images)
        parts: list[list[Raw]] = [[] for _ in range(n)]
        for s in STRIDES:
            grid = self._grid(ph // s, pw // s, s)
            cells = len(grid)
            cls, obj, bbox, kps = (_rows(named, f"{kind}_{s}", n, cells, width)
                                   for kind, width in (("cls", 1), ("obj", 1), ("bbox", 4),
                                                       ("kps", 10)))
            score = np.sqrt(np.clip(cls[..., 0], 0, 1) * np.clip(obj[..., 0], 0, 1))
            for k in range(n):
                keep = np.nonzero(score[k] >= score_thresh)[0]
                if not len(keep):
                    continue
                parts[k].append(_decode(grid[keep], bbox[k, keep], kps[k, keep], score[k, keep], s))
        return [_concat(p) for p in parts]

    def _grid(self, rows: int, cols: int, stride: int) -> np.ndarray:
        """(rows * cols, 2) cell (column, row), row-major: the order of the outputs' rows."""
        key = (rows, cols, stride)
        grid = self._grids.get(key)
        if grid is None:
            ys, xs = np.mgrid[:rows, :cols]
            grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
            self._grids[key] = grid
        return grid


def _rows(named: dict[str, np.ndarray], name: str, n: int, cells: int, width: int
          ) -> np.ndarray:
    """Output ``name`` as (n, cells, width): the n images' rows one after the other."""
    out = np.asarray(named[name])
    if out.size != n * cells * width:
        raise ModelError(f"yunet: output {name} has shape {out.shape}; expected {n * cells} "
                         f"rows of {width} for {n} image(s)")
    return out.reshape(n, cells, width)


def _decode(cells: np.ndarray, bbox: np.ndarray, kps: np.ndarray, score: np.ndarray,
            stride: int) -> Raw:
    centre = (cells + bbox[:, :2]) * stride
    size = np.exp(bbox[:, 2:4]) * stride
    xyxy = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    points = (kps.reshape(-1, 5, 2) + cells[:, None, :]) * stride
    return xyxy.astype(np.float32), score.astype(np.float32), points.astype(np.float32)


def _concat(parts: list[Raw]) -> Raw:
    if not parts:
        return (np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                np.zeros((0, 5, 2), np.float32))
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))

