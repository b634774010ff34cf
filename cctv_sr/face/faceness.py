"""Face / non-face verification of aligned crops: MTCNN's O-Net as a second opinion.

The detectors fire on hands, signs and ornaments with face-like scores; the matching gate
(:mod:`cctv_sr.identity.gate`) needs an independent check on what the pipeline actually
embeds, the aligned crop. MTCNN's O-Net is a 48 x 48 face / non-face classifier: here it sees
a fixed window of the canonical crop (:data:`WINDOW`, the square where a frontal face's
landmarks sit as O-Net was trained to see them), resampled to 48 x 48, and its face
probability is the faceness score. Weights are the MTCNN files the mtcnn detector also
loads (``mtcnn`` package, :mod:`cctv_sr.detect.mtcnn_weights`); nothing is downloaded.

Example::

    verifier = OnetFaceness()
    scores = verifier.score([face.crop for face in faces])   # (N,) float32 in [0, 1]

Measured on samples/measure_gate.py's sets (see :mod:`cctv_sr.identity.gate` for the bars).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np
import torch

from cctv_sr.errors import BackendUnavailableError, ContractError
from cctv_sr.models.ort import onnxruntime_installed

if TYPE_CHECKING:
    from cctv_sr.detect.mtcnn_weights import ONet

log = logging.getLogger(__name__)

ONET_SIDE = 48
# The O-Net input window in canonical-crop coordinates, as fractions of the crop side:
# (left, top, side). The crop itself is (0, 0, 1); a window reaching outside it is filled by
# reflecting the crop (the pipeline keeps no pixels beyond it). It is the square in which
# O-Net's own mean landmarks (100 LFW dev photos, from its 48 px input boxes) land on the
# ArcFace template (least-squares fit, residual < 0.016 of the side). Against the whole crop
# (0, 0, 1) it rejects more non-faces at the same face pass rate (samples/measure_gate.py).
WINDOW: tuple[float, float, float] = (0.02, 0.12, 0.90)
CHUNK = 256  # crops per O-Net call
MIN_SIDE = 8


def _load_onet(weights_dir: Path | None, device: torch.device) -> tuple[ONet, Path]:
    from cctv_sr.detect.mtcnn_weights import ONet, load_arrays, weight_files

    path = weight_files(weights_dir)["onet"]
    net = ONet()
    net.load_keras(load_arrays(path, "onet"))
    net.to(device)
    net.eval()
    log.info("faceness: MTCNN O-Net from %s", path)
    return net, Path(path)


def window_matrix(side: int, window: tuple[float, float, float]) -> np.ndarray:
    """The (2, 3) affine from a ``side`` crop to the 48 x 48 O-Net input for ``window``."""
    left, top, frac = window
    scale = ONET_SIDE / (frac * side)
    return np.array([[scale, 0.0, -left * side * scale + 0.5 * scale - 0.5],
                     [0.0, scale, -top * side * scale + 0.5 * scale - 0.5]], np.float32)


def onet_input(crop: np.ndarray, window: tuple[float, float, float] = WINDOW) -> np.ndarray:
    """The 48 x 48 BGR uint8 window of one canonical crop that O-Net sees."""
    side = int(crop.shape[0])
    want = ONET_SIDE / window[2]  # crop side at which the window is 48 px
    if side > 1.5 * want:  # shrink first (anti-aliased), then take the window
        small = int(round(want))
        crop = cv2.resize(crop, (small, small), interpolation=cv2.INTER_AREA)
        side = small
    m = window_matrix(side, window)
    return cv2.warpAffine(crop, m, (ONET_SIDE, ONET_SIDE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101)


def check_crops(crops: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The crops as a list, each a square (S, S, 3) uint8 array with S >= 8."""
    if isinstance(crops, np.ndarray) and crops.ndim == 3:
        raise ContractError("faceness takes a sequence of crops, not one crop; wrap it in a list")
    out: list[np.ndarray] = []
    for i, crop in enumerate(crops):
        if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 3 \
                or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1] \
                or crop.shape[0] < MIN_SIDE:
            raise ContractError(f"faceness crop {i}: expected a square (S, S, 3) uint8 array "
                                f"with S >= {MIN_SIDE}, got {getattr(crop, 'shape', crop)}")
        out.append(crop)
    return out


class Faceness(Protocol):
    """A face / non-face verifier of aligned crops (what the accelerator calls)."""

    name: str

    def score(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N,) face probabilities in [0, 1] of canonical BGR uint8 crops."""
        ...


class OnetFaceness:
    """Face probability of canonical aligned crops (any side >= 8, BGR uint8) from O-Net.

    ``score(crops)`` is batched; crops of different sides may be mixed (16, 32 and 128 in the
    pipeline). ``device`` is a torch device string; CUDA falls back to the CPU like the
    detector does. ``runtime``: ``auto`` runs the network on onnxruntime when it is installed
    (the graph built from the same weights, :mod:`cctv_sr.face.onet_onnx`; about 2.4x faster
    here, the same probabilities to within 1e-7), else on torch; ``torch`` or
    ``onnxruntime`` force one.
    """

    name = "onet"

    def __init__(self, device: str = "cpu", weights_dir: Path | None = None,
                 window: tuple[float, float, float] = WINDOW, runtime: str = "auto") -> None:
        from cctv_sr.detect.mtcnn import torch_device

        if not 0.2 <= window[2] <= 3.0:
            raise ContractError(f"faceness window side must be in 0.2..3 crop sides, "
                                f"got {window[2]}")
        if runtime not in ("auto", "torch", "onnxruntime"):
            raise ContractError(f"faceness runtime must be auto, torch or onnxruntime, "
                                f"got {runtime!r}")
        self.device = torch_device(device)
        self.window = window
        self.net, path = _load_onet(weights_dir, self.device)
        self.model_files = (path,)
        self._session: Any = None
        if runtime == "onnxruntime" or (runtime == "auto" and onnxruntime_installed()):
            from cctv_sr.face.onet_onnx import onet_model
            from cctv_sr.models.ort import create_session

            try:
                self._session = create_session(onet_model(self.net), device=device,
                                               what="faceness O-Net", spin=False)
            except BackendUnavailableError as exc:  # installed but broken (a package clash)
                if runtime == "onnxruntime":
                    raise
                log.warning("faceness: onnxruntime unusable (%s); O-Net runs on torch", exc)
        self.runtime = "torch" if self._session is None else "onnxruntime"

    def inputs(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 48, 48, 3) BGR uint8: what O-Net sees of each crop."""
        checked = check_crops(crops)
        if not checked:
            return np.zeros((0, ONET_SIDE, ONET_SIDE, 3), np.uint8)
        return np.stack([onet_input(c, self.window) for c in checked])

    def score(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N,) float32 face probabilities in [0, 1]."""
        batch = self.inputs(crops)
        out = np.zeros(len(batch), np.float32)
        # as the detector feeds it: RGB, (x - 127.5) / 128, NCHW
        blob = np.ascontiguousarray(
            (batch[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) - 127.5) / 128.0)
        if self._session is not None and len(batch):
            from cctv_sr.face.onet_onnx import face_probability

            for start in range(0, len(batch), CHUNK):
                logits = self._session.run(None, {"x": blob[start:start + CHUNK]})[0]
                out[start:start + CHUNK] = face_probability(logits)
            return out
        with torch.inference_mode():
            for start in range(0, len(batch), CHUNK):
                x = torch.from_numpy(blob[start:start + CHUNK]).to(self.device)
                _, _, prob = self.net(x)
                out[start:start + len(x)] = prob.float().cpu().numpy()
        return out
