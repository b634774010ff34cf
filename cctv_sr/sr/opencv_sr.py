"""OpenCV ``dnn_superres`` baselines: ESPCN, FSRCNN and LapSRN (generic, not face-trained).

One model file per instance. ``cfg.name`` picks the algorithm (``espcn``, ``fsrcnn``, ``lapsrn``
or ``lapsrn_x8``); the file is the one :func:`cctv_sr.sr.create_super_resolver` resolved
(``sr.model_path``, else the registry's default manifest for the name). The scale comes from
the :class:`~cctv_sr.models.spec.ModelSpec` of the shipped manifest that lists the file (by
name); a user's file that no manifest lists falls back to its name (``my_espcn_x3.pb`` -> 3),
then to the spec of the name's default manifest. Runs on CPU unless ``cfg.device`` asks for
CUDA and this OpenCV build has it.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cctv_sr.config import SRConfig
from cctv_sr.errors import BackendUnavailableError, ConfigError, ModelError
from cctv_sr.models import registry
from cctv_sr.models.manifest import ModelManifest, manifests_with_file
from cctv_sr.sr.base import SuperResolver, check_crops, empty_batch, resize_square

log = logging.getLogger(__name__)

BACKEND = "opencv_sr"  # the manifests' backend field for these models
_FILE_RE = re.compile(r"(espcn|fsrcnn|lapsrn)[_-]?x(\d+)", re.IGNORECASE)


def opencv_names() -> list[str]:
    """The ``sr.name`` values that select an OpenCV model (their default manifest is one)."""
    out = []
    for name in registry.names("sr"):
        manifest = registry.default_manifest("sr", name)
        if manifest is not None and manifest.backend == BACKEND:
            out.append(name)
    return out


def scale_of(path: Path, algo: str, default: ModelManifest) -> int:
    """The upscale factor of model file ``path`` for algorithm ``algo`` (module docstring)."""
    listed = manifests_with_file(path.name, BACKEND)
    if listed:
        spec = listed[0].model_spec()
        if spec.arch != algo:
            raise ModelError(f"{path}: model '{listed[0].name}' is {spec.arch} x{spec.scale}, "
                             f"but sr.name selects {algo}")
        return spec.scale
    match = _FILE_RE.search(path.name)
    if match:
        if match.group(1).lower() != algo:
            raise ModelError(f"{path}: file name says {match.group(1).lower()} but sr.name "
                             f"selects {algo}")
        return int(match.group(2))
    scale = default.model_spec().scale
    if scale < 2:
        raise ModelError(f"{path}: cannot tell the scale (name it like ESPCN_x4.pb)")
    log.info("%s: not a shipped model file and no _xN in its name; assuming scale %d from "
             "manifest '%s'", path, scale, default.name)
    return scale


class OpenCVSR(SuperResolver):
    """``cv2.dnn_superres.DnnSuperResImpl`` over a batch, one crop at a time."""

    @classmethod
    def check_available(cls) -> None:
        """BackendUnavailableError unless this OpenCV has ``cv2.dnn_superres`` (contrib)."""
        if getattr(cv2, "dnn_superres", None) is None:
            raise BackendUnavailableError(
                "cv2.dnn_superres is missing: install opencv-contrib-python-headless "
                "(and uninstall opencv-python, which shadows it)")

    def __init__(self, cfg: SRConfig, model_path: Path | None = None) -> None:
        super().__init__(cfg, model_path)
        self.check_available()
        # present (checked above); a contrib module, so not in cv2's type stubs
        module: Any = getattr(cv2, "dnn_superres", None)
        key = cfg.name.lower()
        known = opencv_names()
        default = registry.default_manifest("sr", key) if key in known else None
        if default is None:
            raise ConfigError(f"sr.name: {cfg.name!r} is not an OpenCV SR model "
                              f"(known: {', '.join(known)})")
        if model_path is None:
            raise ModelError(f"{key}: no model file given (build it with "
                             "cctv_sr.sr.create_super_resolver, which resolves the weights)")
        path = Path(model_path)
        algo = key.split("_")[0]
        self.scale = scale_of(path, algo, default)
        self.algo = algo
        self.name = f"{algo}_x{self.scale}"
        self.model_files = (path,)
        self._lock = threading.Lock()
        self._sr = module.DnnSuperResImpl_create()
        try:
            self._sr.readModel(str(path))
            self._sr.setModel(algo, self.scale)
            self._use_device(cfg.device)
            probe = self._sr.upsample(np.zeros((8, 8, 3), np.uint8))
        except cv2.error as exc:
            raise ModelError(f"{path}: cannot load as {algo} x{self.scale} for "
                             f"cv2.dnn_superres: {str(exc).strip().splitlines()[-1]}") from exc
        if probe.shape[:2] != (8 * self.scale, 8 * self.scale):
            raise ModelError(f"{path}: gives {probe.shape[0] // 8}x output, not the "
                             f"x{self.scale} its spec or name says")
        log.debug("loaded %s from %s", self.name, path)

    def _use_device(self, device: str) -> None:
        if not device.startswith("cuda"):
            return
        if cv2.cuda.getCudaEnabledDeviceCount() > 0:
            self._sr.setPreferableBackend(cv2.dnn.DNN_BACKEND_CUDA)
            self._sr.setPreferableTarget(cv2.dnn.DNN_TARGET_CUDA)
        else:
            log.warning("sr.device=%s but this OpenCV build has no CUDA; %s runs on CPU",
                        device, self.name)

    def upscale(self, crops: np.ndarray, out_size: int) -> np.ndarray:
        """(N, S, S, 3) uint8 BGR -> (N, out_size, out_size, 3) uint8 BGR."""
        crops = check_crops(crops, out_size)
        if crops.shape[0] == 0:
            return empty_batch(out_size)
        if out_size <= crops.shape[1]:
            return np.stack([resize_square(crop, out_size) for crop in crops])
        out = []
        with self._lock:
            for crop in crops:
                out.append(resize_square(self._sr.upsample(crop), out_size))
        return np.stack(out)
