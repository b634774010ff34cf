"""Face detectors behind one interface (:class:`FaceDetector`).

Backends are imported lazily: ``DETECTORS`` maps a detector name to ``"module:ClassName"``
and :func:`create_detector` imports only the one asked for.

Example::

    from cctv_sr.config import DetectorConfig
    from cctv_sr.detect import create_detector

    detector = create_detector(DetectorConfig(name="mtcnn"))
    faces = detector.detect([frame_bgr])[0]   # FaceDetections
"""

from __future__ import annotations

from pathlib import Path

from cctv_sr.config import DetectorConfig
from cctv_sr.detect.base import FaceDetector
from cctv_sr.models.lazy import load_backend

DETECTORS: dict[str, str] = {
    "mtcnn": "cctv_sr.detect.mtcnn:MtcnnDetector",
    "yunet": "cctv_sr.detect.yunet:YunetDetector",
    "scrfd": "cctv_sr.detect.scrfd:ScrfdDetector",
}

__all__ = ["DETECTORS", "FaceDetector", "create_detector", "detector_class"]


def detector_class(name: str) -> type[FaceDetector]:
    """The detector class registered as ``name`` (imports its module)."""
    cls: type[FaceDetector] = load_backend(DETECTORS, name, "detector", "detector.name")
    return cls


def create_detector(cfg: DetectorConfig, model_path: Path | None = None) -> FaceDetector:
    """A detector for ``cfg.name``; ``model_path`` overrides ``cfg.model_path``."""
    return detector_class(cfg.name)(cfg, model_path)
