"""Backend registry: names -> lazily imported classes, plus weight resolution per backend.

A backend module is imported only when it is chosen, so a missing optional dependency only
matters to the user who asked for that backend (and the error names the pip extra).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from cctv_sr.config import DetectorConfig, SRConfig
from cctv_sr.detect import DETECTORS
from cctv_sr.detect.base import FaceDetector
from cctv_sr.errors import ConfigError
from cctv_sr.sr import SR_BACKENDS, SR_DEFAULT_MANIFEST
from cctv_sr.sr.base import SuperResolver
from cctv_sr.weights import resolve_file, sha256_file

log = logging.getLogger(__name__)

# Manifest whose default file a detector loads when no model_path is given. MTCNN's weights
# ship inside the `mtcnn` PyPI package and are found by the detector itself.
DETECTOR_DEFAULT_MANIFEST: dict[str, str | None] = {
    "mtcnn": None,
    "yunet": "yunet_2023mar",
    "scrfd": "scrfd_500m",
}


def load_class(spec: str) -> type:
    """``"package.module:Name"`` -> the class, importing the module now."""
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def _pick(kind: str, name: str, table: dict[str, str]) -> str:
    if name not in table:
        raise ConfigError(f"unknown {kind} '{name}' (choose one of: {', '.join(sorted(table))})")
    return table[name]


def create_detector(cfg: DetectorConfig) -> FaceDetector:
    """Build the configured detector, resolving its weights (explicit path first)."""
    cls = load_class(_pick("detector", cfg.name, DETECTORS))
    manifest = DETECTOR_DEFAULT_MANIFEST.get(cfg.name)
    path: Path | None = None
    if cfg.model_path:
        path = resolve_file(manifest, explicit=cfg.model_path) if manifest else Path(
            cfg.model_path)
    elif manifest is not None:
        path = resolve_file(manifest)
    detector = cls(cfg, path)
    log.info("detector: %s (%s)", cfg.name, ", ".join(str(p) for p in detector.model_files))
    return detector


def create_sr(cfg: SRConfig) -> SuperResolver:
    """Build the configured super-resolution backend."""
    cls = load_class(_pick("sr backend", cfg.name, SR_BACKENDS))
    manifest = SR_DEFAULT_MANIFEST.get(cfg.name)
    path: Path | None = None
    if cfg.model_path:
        path = resolve_file(manifest, explicit=cfg.model_path) if manifest else Path(
            cfg.model_path)
    elif manifest is not None:
        path = resolve_file(manifest)
    sr = cls(cfg, path)
    log.info("sr: %s", sr.name)
    return sr


def model_provenance(model: Any) -> dict[str, Any]:
    """Name, class and weight files (with sha256) of a loaded backend, for run.json."""
    files = []
    for p in getattr(model, "model_files", ()):
        path = Path(p)
        files.append({"path": str(path), "sha256": sha256_file(path) if path.is_file() else None})
    return {"name": getattr(model, "name", type(model).__name__),
            "class": f"{type(model).__module__}:{type(model).__name__}", "files": files}
