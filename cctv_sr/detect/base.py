"""The face detector interface and helpers shared by the backends."""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from cctv_sr.config import DetectorConfig
from cctv_sr.errors import ContractError, ModelError
from cctv_sr.records import FaceDetections

log = logging.getLogger(__name__)


class FaceDetector(abc.ABC):
    """A batched face detector with 5-point landmarks.

    Subclasses set ``name`` and fill ``model_files`` with the weight files they actually
    loaded (for run provenance). ``model_path`` is the weights file, already resolved by
    :func:`cctv_sr.detect.create_detector` from ``cfg.model_path`` or the default manifest;
    backends never look for weights themselves (None: the backend's built-in default, e.g.
    MTCNN's packaged weights, or an error for backends that need a file).
    """

    name: str = ""
    model_files: tuple[Path, ...] = ()
    # Scores mean different things per detector (MTCNN's saturate near 1, SCRFD's sit around
    # 0.5-0.7 on 15 px faces): the tracker's thresholds default to these per-detector values.
    track_high_thresh: float = 0.7  # continue and match tracks in the first tier
    track_new_thresh: float = 0.8  # start a new track

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`~cctv_sr.errors.BackendUnavailableError` (naming what to install) when
        an optional dependency of this backend is missing. The registry calls it before it
        resolves weights, so nothing is downloaded for a backend that cannot run."""
        return None  # no optional dependency unless a backend says so

    def __init__(self, cfg: DetectorConfig, model_path: Path | None = None) -> None:
        self.cfg = cfg
        self.model_path: Path | None = None if model_path is None else Path(model_path)
        self.model_files = ()

    @abc.abstractmethod
    def detect(self, images: Sequence[np.ndarray]) -> list[FaceDetections]:
        """Faces in each image.

        ``images`` are BGR uint8 ``(H, W, 3)`` arrays, possibly of different sizes. Returns one
        :class:`FaceDetections` per image, in that image's pixel coordinates, landmarks in the
        canonical order (eye on the image left, eye on the image right, nose, mouth corner on
        the image left, mouth corner on the image right), every score ``>= cfg.score_thresh``,
        after NMS at ``cfg.nms_thresh``, sorted by score; ``track_id`` is None.
        """

    def __call__(self, images: Sequence[np.ndarray]) -> list[FaceDetections]:
        return self.detect(images)

    def __repr__(self) -> str:
        files = ", ".join(str(p) for p in self.model_files)
        return f"{type(self).__name__}(name={self.name!r}, device={self.cfg.device!r}, [{files}])"


def check_images(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The images as a list, each checked to be a non-empty ``(H, W, 3)`` uint8 array."""
    if isinstance(images, np.ndarray):
        raise ContractError("detect() takes a sequence of images, not one array; wrap it in a list")
    out: list[np.ndarray] = []
    for i, image in enumerate(images):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise ContractError(f"image {i}: expected a uint8 numpy array, got "
                                f"{type(image).__name__} {getattr(image, 'dtype', '')}")
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            raise ContractError(f"image {i}: expected shape (H, W, 3), got {image.shape}")
        out.append(image)
    return out


def group_by_shape(images: Sequence[np.ndarray]) -> dict[tuple[int, int], list[int]]:
    """Indices of the images grouped by ``(H, W)``, in first-seen order."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault((int(image.shape[0]), int(image.shape[1])), []).append(i)
    return groups


def chunked(items: Sequence[int], size: int) -> Iterator[list[int]]:
    """Consecutive slices of at most ``size`` items."""
    size = max(1, int(size))
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def require_file(path: Path | None, what: str, hint: str = "") -> Path:
    """``path`` if it is an existing file, else :class:`ModelError` naming it."""
    if path is None:
        raise ModelError(f"{what}: no model file given{hint}")
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what}: model file not found: {path}{hint}")
    return path
