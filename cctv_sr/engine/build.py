"""Builds the configured backends: weight resolution per backend, provenance for run.json.

The name -> lazy ``"module:Class"`` tables live beside the backends (``cctv_sr.detect.DETECTORS``,
``cctv_sr.sr.SR_BACKENDS``); a backend module is imported only when it is chosen, so a missing
optional dependency only matters to the user who asked for that backend.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cctv_sr.config import DetectorConfig, SRConfig
from cctv_sr.detect import FaceDetector, detector_class
from cctv_sr.models.weights import resolve_file, sha256_file
from cctv_sr.sr import SuperResolver, create_super_resolver

log = logging.getLogger(__name__)

# Manifest whose default file a detector loads when no model_path is given. MTCNN's weights
# ship inside the `mtcnn` PyPI package and are found by the detector itself.
DETECTOR_DEFAULT_MANIFEST: dict[str, str | None] = {
    "mtcnn": None,
    "yunet": "yunet_2023mar",
    "scrfd": "scrfd_500m",
}


def create_detector(cfg: DetectorConfig) -> FaceDetector:
    """Build the configured detector, resolving its weights (explicit path first)."""
    cls = detector_class(cfg.name)  # unknown names fail here, before any weight lookup
    manifest = DETECTOR_DEFAULT_MANIFEST.get(cfg.name)
    path = resolve_file(manifest, explicit=cfg.model_path or None) if manifest else None
    detector = cls(cfg, path)
    log.info("detector: %s (%s)", cfg.name, ", ".join(str(p) for p in detector.model_files))
    return detector


def create_sr(cfg: SRConfig) -> SuperResolver:
    """Build the configured super-resolution backend (it resolves its own weights)."""
    sr = create_super_resolver(cfg)
    log.info("sr: %s (%s)", sr.name, ", ".join(str(p) for p in sr.model_files) or "no weights")
    return sr


def model_provenance(model: Any) -> dict[str, Any]:
    """Name, class and weight files (with sha256) of a loaded backend, for run.json."""
    files = []
    for p in getattr(model, "model_files", ()):
        path = Path(p)
        files.append({"path": str(path), "sha256": sha256_file(path) if path.is_file() else None})
    return {"name": getattr(model, "name", type(model).__name__),
            "class": f"{type(model).__module__}:{type(model).__name__}", "files": files}
