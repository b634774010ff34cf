"""OpenCV ``dnn_superres`` baselines: ESPCN, FSRCNN and LapSRN (generic, not face-trained).

One model file per instance. ``cfg.name`` picks the algorithm (``espcn``, ``fsrcnn``, ``lapsrn``
or ``lapsrn_x8``); the weights come from ``model_path``/``cfg.model_path`` or are resolved from
the default manifest (:data:`cctv_sr.sr.SR_DEFAULT_MANIFEST`). The scale is read from the file
name (``ESPCN_x4.pb`` -> 4), falling back to the manifest's ``spec.scale``. Runs on CPU unless
``cfg.device`` asks for CUDA and this OpenCV build has it.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

import cv2
import numpy as np

from cctv_sr.config import SRConfig
from cctv_sr.errors import BackendUnavailableError, ConfigError, ModelError
from cctv_sr.models.lazy import given_model_path
from cctv_sr.models.weights import ModelManifest, get_manifest, load_manifests, resolve_file
from cctv_sr.sr import SR_DEFAULT_MANIFEST
from cctv_sr.sr.base import SuperResolver, check_crops, empty_batch, resize_square

log = logging.getLogger(__name__)

_FILE_RE = re.compile(r"(espcn|fsrcnn|lapsrn)[_-]?x(\d+)", re.IGNORECASE)


def _manifest_for(key: str, explicit: Path | None) -> ModelManifest:
    """The default manifest for ``key``, or the shipped one whose file ``explicit`` is named."""
    if explicit is not None:
        for manifest in load_manifests().values():
            if manifest.backend == "opencv_sr" and manifest.default_file == explicit.name:
                return manifest
    return get_manifest(SR_DEFAULT_MANIFEST[key])


def _scale_of(path: Path, algo: str, manifest: ModelManifest) -> int:
    match = _FILE_RE.search(path.name)
    if match:
        if match.group(1).lower() != algo:
            raise ModelError(f"{path}: file name says {match.group(1).lower()} but sr.name "
                             f"selects {algo}")
        return int(match.group(2))
    scale = manifest.spec_value("scale")
    if not isinstance(scale, int) or scale < 2:
        raise ModelError(f"{path}: cannot tell the scale (name it like ESPCN_x4.pb)")
    log.info("%s: no _xN in the file name; assuming scale %d from manifest '%s'",
             path, scale, manifest.name)
    return scale


class OpenCVSR(SuperResolver):
    """``cv2.dnn_superres.DnnSuperResImpl`` over a batch, one crop at a time."""

    def __init__(self, cfg: SRConfig, model_path: Path | None = None) -> None:
        super().__init__(cfg, model_path)
        module = getattr(cv2, "dnn_superres", None)
        if module is None:
            raise BackendUnavailableError(
                "cv2.dnn_superres is missing: install opencv-contrib-python-headless "
                "(and uninstall opencv-python, which shadows it)")
        key = cfg.name.lower()
        if key not in SR_DEFAULT_MANIFEST:
            raise ConfigError(f"sr.name: {cfg.name!r} is not an OpenCV SR model "
                              f"(known: {', '.join(SR_DEFAULT_MANIFEST)})")
        algo = key.split("_")[0]
        given = given_model_path(model_path, cfg.model_path)
        explicit = given.expanduser() if given is not None else None
        manifest = _manifest_for(key, explicit)
        path = resolve_file(manifest, explicit=explicit)
        self.scale = _scale_of(path, algo, manifest)
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
                             f"x{self.scale} its name or manifest says")
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
