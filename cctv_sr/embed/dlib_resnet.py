"""dlib's 128-d face recognition ResNet (``face_recognition_models``, CC0), the embedded default.

dlib's network was trained on 150x150 chips cut by ``dlib.get_face_chip(img, shape, 150, 0.25)``
around its own 5-point landmarks (eye corners and the base of the nose), a different geometry
from the ArcFace template our crops are aligned to. Every canonical crop is therefore mapped
into dlib's chip geometry with one fixed similarity transform, :data:`DLIB_CHIP_112`, measured
once (see its comment and ``samples/derive_dlib_chip_transform.py``).

Descriptors: dlib compares its raw descriptors with L2 distance (same person below about 0.6).
:meth:`DlibEmbedder.embed` returns them L2-normalised like every embedder, so cosine works, but
raw descriptors share a large common component: on the unit sphere different people still
score high and same-person pairs only a little higher (295 LFW dev pairs: medians 0.83 and
0.955, best threshold 0.91), so calibrate the threshold for this backend (dlib's 0.6 L2 is a
cosine of roughly ``1 - 0.6**2 / (2 * |d|**2)`` for raw norms ``|d|``, about 0.91 at the
typical norm of 1.45).
:meth:`DlibEmbedder.descriptors` gives the raw vectors for L2 matching on dlib's own scale.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cctv_sr.config import EmbedderConfig
from cctv_sr.embed.base import FaceEmbedder, check_crops, chunks, l2_normalise, model_version
from cctv_sr.errors import BackendUnavailableError, ConfigError, ModelError
from cctv_sr.face.align import TEMPLATE_SIDE, affine_scale
from cctv_sr.models.resolve import resolve_file

log = logging.getLogger(__name__)

CHIP_SIZE = 150  # dlib's face chip side
CHIP_PADDING = 0.25  # dlib's default chip padding (what the ResNet was trained with)
PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
INSTALL_HINT = "pip install dlib-bin face_recognition_models"

# Canonical ArcFace crop at side 112 -> dlib 150x150 chip (cv2.warpAffine convention: maps crop
# pixel coordinates to chip pixel coordinates). Measured with
# samples/derive_dlib_chip_transform.py on LFW deep-funneled photos (../shared lfw_dev, the
# first image of each of the first 300 DEV identities in sorted order; 298 usable): each face
# was aligned twice, the project's way (MTCNN landmarks -> similarity_to_template at 112) and
# dlib's way (HOG box -> 5-point shape predictor -> the exact get_face_chip(size=150,
# padding=0.25) geometry, read back from coordinate images). Each face gives one crop -> chip
# similarity [[a, -b, tx], [b, a, ty]]; this is the mean (a, b, tx, ty) of the 286 faces left
# after dropping those more than 3 MADs away (= the least-squares similarity over all of them):
# scale 1.5346, rotation +0.54 deg, per-face sd (0.062, 0.071, 6.0, 5.3). The best map varies
# per face (the two alignments use different landmarks): a face's own map lands a median
# 5.5 chip px from this one. On 80 of these faces, MTCNN and SCRFD landmarks give scale 1.52,
# YuNet's 1.50.
# Check (295 LFW dev pairs): verification accuracy with these chips equals dlib's own
# alignment (99.7 % at the best L2 threshold, 99.3 % at 0.6); descriptors of the same photo
# differ by a median 0.16 L2 (p90 0.22) between the two alignments (different people: 0.83).
DLIB_CHIP_112 = np.array(
    [[1.53448, -0.01457, -10.5305], [0.01457, 1.53448, -35.6365]], dtype=np.float64
)


def chip_transform(side: int) -> np.ndarray:
    """The fixed canonical crop (side ``side``) -> dlib chip affine, (2, 3) float32.

    Template coordinates scale with the side (``template(S) = ARCFACE_112 * S / 112``), so
    only the linear part changes with ``side``.
    """
    m = DLIB_CHIP_112.copy()
    m[:, :2] *= TEMPLATE_SIDE / float(side)
    return m.astype(np.float32)


def chip_transform_id() -> str:
    """Short hash of :data:`DLIB_CHIP_112`, part of ``version``: embeddings made with another
    chip transform are not comparable, so a re-derived transform must change the version."""
    return hashlib.sha256(np.round(DLIB_CHIP_112, 4).tobytes()).hexdigest()[:8]


def dlib_chip_affine(image_shape: tuple[int, ...], shape: Any, size: int = CHIP_SIZE,
                     padding: float = CHIP_PADDING) -> np.ndarray:
    """The image -> chip affine (2, 3) float64 that ``dlib.get_face_chip(img, shape, size,
    padding)`` applies, measured exactly: dlib cuts the chip from two float images holding
    each pixel's own x and y, and a least-squares affine fit maps chip pixels back to them."""
    dlib = import_dlib()
    h, w = int(image_shape[0]), int(image_shape[1])
    xs = np.tile(np.arange(w, dtype=np.float32), (h, 1))
    ys = np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w))
    src_x = np.asarray(dlib.get_face_chip(xs, shape, size=size, padding=padding), np.float64)
    src_y = np.asarray(dlib.get_face_chip(ys, shape, size=size, padding=padding), np.float64)
    rows, cols = np.mgrid[0:size, 0:size]
    design = np.stack([cols.ravel(), rows.ravel(), np.ones(size * size)], axis=1)
    chip_to_image, *_ = np.linalg.lstsq(
        design, np.stack([src_x.ravel(), src_y.ravel()], axis=1), rcond=None
    )
    full = np.vstack([chip_to_image.T, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def shape_predictor() -> Any:
    """dlib's 5-point shape predictor (from the ``dlib`` manifest), the landmarks that dlib's
    own chips are cut from; used to measure and test :data:`DLIB_CHIP_112`."""
    dlib = import_dlib()
    return dlib.shape_predictor(str(resolve_file("dlib", PREDICTOR_FILE)))


def import_dlib() -> Any:
    """The ``dlib`` module, or :class:`BackendUnavailableError` naming what to install."""
    try:
        import dlib
    except ImportError as exc:
        raise BackendUnavailableError(f"the dlib embedder needs dlib: {INSTALL_HINT}") from exc
    return dlib


class DlibEmbedder(FaceEmbedder):
    """dlib_face_recognition_resnet_model_v1, 128-d, CPU (dlib runs its own threads).

    Weights: ``model_path``, which :func:`~cctv_sr.embed.create_embedder` resolves to
    ``embedder.model_path`` or the ``dlib`` manifest's default file (shipped by the
    ``face_recognition_models`` package, found without importing it).
    """

    name = "dlib"
    dim = 128

    @classmethod
    def check_available(cls) -> None:
        """BackendUnavailableError (naming what to install) unless dlib imports."""
        import_dlib()

    def __init__(self, cfg: EmbedderConfig, model_path: Path | None = None) -> None:
        super().__init__(cfg, model_path)
        dlib = import_dlib()
        manifest = self.default_manifest()
        path = self.require_model_path()
        try:
            self._net = dlib.face_recognition_model_v1(str(path))
        except RuntimeError as exc:
            raise ModelError(f"{path}: not a dlib face recognition model ({exc})") from None
        self.model_files = (path,)
        self.version = f"{model_version(manifest, path)} chip:{chip_transform_id()}"
        self._lock = threading.Lock()  # one dlib net object; calls are serialised
        if cfg.device.startswith("cuda") and not getattr(dlib, "DLIB_USE_CUDA", False):
            log.warning("embedder.device %r: this dlib has no CUDA; using the CPU", cfg.device)

    def chips(self, crops: np.ndarray) -> np.ndarray:
        """dlib chips ``(N, 150, 150, 3)`` uint8 **RGB** of canonical BGR crops."""
        crops = check_crops(crops)
        if len(crops) == 0:
            return np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
        side = crops.shape[1]
        m = chip_transform(side)
        if affine_scale(m) < 0.75:  # large crops: area-average first instead of point-sampling
            side = int(TEMPLATE_SIDE)
            crops = np.stack([cv2.resize(c, (side, side), interpolation=cv2.INTER_AREA)
                              for c in crops])
            m = chip_transform(side)
        out = np.empty((len(crops), CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
        for i, crop in enumerate(crops):
            chip = cv2.warpAffine(crop, m, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT101)
            out[i] = cv2.cvtColor(chip, cv2.COLOR_BGR2RGB)
        return out

    def descriptors_of_chips(self, chips: np.ndarray) -> np.ndarray:
        """Raw dlib descriptors ``(N, 128)`` float32 of 150x150 RGB chips, batched."""
        chips = check_crops(chips)
        if len(chips) and chips.shape[1] != CHIP_SIZE:
            raise ConfigError(f"dlib chips must be {CHIP_SIZE}x{CHIP_SIZE}, got {chips.shape}")
        out = np.zeros((len(chips), self.dim), np.float32)
        for part in chunks(len(chips), self.cfg.batch_size):
            batch = [np.ascontiguousarray(c) for c in chips[part]]
            with self._lock:
                vectors = self._net.compute_face_descriptor(batch)
            out[part] = np.asarray([np.asarray(v) for v in vectors], np.float32)
        return out

    def descriptors(self, crops: np.ndarray) -> np.ndarray:
        """Raw (not normalised) dlib descriptors ``(N, 128)`` float32 of canonical BGR crops,
        for L2 matching on dlib's own scale (same person below about 0.6)."""
        crops = check_crops(crops)
        out = np.zeros((len(crops), self.dim), np.float32)
        for part in chunks(len(crops), self.cfg.batch_size):  # memory stays O(batch)
            out[part] = self.descriptors_of_chips(self.chips(crops[part]))
        return out

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """L2-normalised dlib descriptors ``(N, 128)`` float32 (see the module docstring)."""
        return l2_normalise(self.descriptors(crops))
