"""The face embedder interface and helpers shared by the backends."""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from cctv_sr.config import EmbedderConfig
from cctv_sr.errors import ConfigError, ContractError, ModelError
from cctv_sr.models import registry
from cctv_sr.models.manifest import ModelManifest
from cctv_sr.models.resolve import sha256_file

log = logging.getLogger(__name__)

MIN_SIDE = 8  # smallest crop side accepted by embed()


class FaceEmbedder(abc.ABC):
    """A batched face embedder: N canonical-aligned crops in, N unit vectors out.

    Subclasses set ``name`` and ``dim`` and, once the weights are loaded, ``model_files``
    (the files actually read, for run provenance) and ``version`` (manifest version plus the
    weight file's sha256 prefix). ``model_path`` is the weights file, already resolved by
    :func:`cctv_sr.embed.create_embedder` from ``cfg.model_path`` or the default manifest;
    embedders never look for weights themselves.

    Embeddings of different backends live in different spaces: compare vectors of one backend
    only, with :meth:`similarity` (cosine), and calibrate the match threshold per backend.
    """

    name: str = ""
    dim: int = 0
    version: str = ""
    model_files: tuple[Path, ...] = ()

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`~cctv_sr.errors.BackendUnavailableError` (naming what to install) when
        an optional dependency of this backend is missing. The registry calls it before it
        resolves weights, so nothing is downloaded for a backend that cannot run."""
        return None  # no optional dependency unless a backend says so

    def __init__(self, cfg: EmbedderConfig, model_path: Path | None = None) -> None:
        if cfg.batch_size < 1:
            raise ConfigError(f"embedder.batch_size must be >= 1, got {cfg.batch_size}")
        self.cfg = cfg
        self.model_path: Path | None = None if model_path is None else Path(model_path)
        self.model_files = ()

    def require_model_path(self) -> Path:
        """``model_path``, or ModelError when the embedder was built without one."""
        if self.model_path is None:
            raise ModelError(f"{self.name}: no model file given (build embedders with "
                             "cctv_sr.embed.create_embedder, which resolves the weights)")
        return self.model_path

    def default_manifest(self) -> ModelManifest:
        """The manifest this embedder loads by default (registry row ``embedder``/``name``):
        its version and :class:`~cctv_sr.models.spec.ModelSpec` describe the architecture."""
        manifest = registry.default_manifest("embedder", self.name)
        if manifest is None:
            raise ModelError(f"embedder '{self.name}' has no default manifest in the registry")
        return manifest

    @abc.abstractmethod
    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Embeddings of ``crops``.

        ``crops`` is ``(N, S, S, 3)`` uint8 **BGR**, faces aligned to the ArcFace 5-point
        template scaled to side ``S`` (:func:`cctv_sr.face.align.template`); any ``S >= 8``, N may
        be 0. Returns ``(N, dim)`` float32, each row L2-normalised. Work is batched by
        ``cfg.batch_size`` internally.
        """

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine similarity matrix ``(len(a), len(b))`` of two sets of unit vectors (1-D
        inputs are treated as one vector each)."""
        a2 = np.atleast_2d(np.asarray(a, dtype=np.float32))
        b2 = np.atleast_2d(np.asarray(b, dtype=np.float32))
        if a2.shape[1] != b2.shape[1]:
            raise ContractError(f"similarity: vector sizes differ ({a2.shape[1]} vs {b2.shape[1]})")
        return a2 @ b2.T

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        return self.embed(crops)

    def __repr__(self) -> str:
        files = ", ".join(str(p) for p in self.model_files)
        return (f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, "
                f"version={self.version!r}, [{files}])")


def check_crops(crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """``crops`` as one ``(N, S, S, 3)`` uint8 array (a list of equal crops is stacked);
    anything else raises :class:`ConfigError`. An empty list gives ``(0, 0, 0, 3)``."""
    if not isinstance(crops, np.ndarray):
        if isinstance(crops, (list, tuple)):
            if len(crops) == 0:
                return np.zeros((0, 0, 0, 3), np.uint8)
            shapes = {getattr(c, "shape", None) for c in crops}
            if len(shapes) != 1:
                raise ContractError("embed(): crops must all have one shape, got "
                                  f"{sorted(map(str, shapes))}")
            crops = np.stack(crops)
        else:
            raise ContractError(f"embed(): expected a (N, S, S, 3) uint8 array, got "
                              f"{type(crops).__name__}")
    if crops.dtype != np.uint8:
        raise ContractError(f"embed(): crops must be uint8, got {crops.dtype}")
    if crops.ndim == 3:
        raise ContractError("embed(): got one (S, S, 3) crop; pass a batch, e.g. crop[None]")
    if crops.ndim != 4 or crops.shape[3] != 3 or crops.shape[1] != crops.shape[2]:
        raise ContractError(f"embed(): expected shape (N, S, S, 3), got {crops.shape}")
    if len(crops) and crops.shape[1] < MIN_SIDE:
        raise ContractError(f"embed(): crop side must be >= {MIN_SIDE}, got {crops.shape[1]}")
    return crops


def resize_crops(crops: np.ndarray, side: int) -> np.ndarray:
    """Square crops resized to ``side``: area-averaged when shrinking, bicubic when growing.

    The template scales with the side (``template(S) = ARCFACE_112 * S / 112``), so a resized
    canonical crop is the canonical crop at the new side, up to a sub-pixel centre offset.
    """
    if len(crops) == 0 or crops.shape[1] == side:
        return crops
    interp = cv2.INTER_AREA if crops.shape[1] > side else cv2.INTER_CUBIC
    return np.stack([cv2.resize(c, (side, side), interpolation=interp) for c in crops])


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32 (an all-zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


def chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of ``range(n)`` with at most ``size`` items each."""
    size = max(1, int(size))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def shipped_version(manifest: ModelManifest) -> str | None:
    """The :func:`model_version` string of the manifest's own default file (its pinned
    sha256), without reading the file; None when the manifest pins no sha256 for it."""
    entry = manifest.file()
    return f"{manifest.version} sha256:{entry.sha256[:12]}" if entry.sha256 else None


def model_version(manifest: ModelManifest, path: Path) -> str:
    """Provenance string: the manifest version when ``path`` is the manifest's file (same
    sha256; "unverified" when the manifest pins none), else ``"user file for <manifest>"``;
    always followed by the file's sha256 prefix."""
    digest = sha256_file(path)
    pinned = {f.sha256 for f in manifest.files if f.sha256}
    unpinned = {f.name for f in manifest.files if not f.sha256}
    if digest in pinned:
        origin = manifest.version
    elif path.name in unpinned:
        origin = f"{manifest.version}, unverified"
    else:
        origin = f"user file for {manifest.name}"
    return f"{origin} sha256:{digest[:12]}"
