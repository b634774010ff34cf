"""Face detectors behind one interface (:class:`FaceDetector`).

Detectors are rows of the one backend registry (:mod:`cctv_sr.models.registry`): imported only
when chosen, their weights resolved the same way as every backend's (``detector.model_path``,
else the default manifest's file through ``$CCTV_SR_MODELS``, an installed package, the cache
or a download). ``DETECTORS`` is a read-only view ``name -> "module:Class"`` of those rows.

Example::

    from cctv_sr.config import DetectorConfig
    from cctv_sr.detect import create_detector

    detector = create_detector(DetectorConfig(name="mtcnn"))
    faces = detector.detect([frame_bgr])[0]   # FaceDetections
"""

from __future__ import annotations

from cctv_sr.config import DetectorConfig
from cctv_sr.detect.base import FaceDetector
from cctv_sr.models import registry

DETECTORS = registry.BackendTable("detector")

__all__ = ["DETECTORS", "FaceDetector", "create_detector"]


def create_detector(cfg: DetectorConfig) -> FaceDetector:
    """The detector ``cfg.name`` selects, its weights resolved (``cfg.model_path`` first).

    Unknown names raise :class:`~cctv_sr.errors.ConfigError` with a suggestion; missing weights
    raise :class:`~cctv_sr.errors.ModelError` naming the file and where to get it.
    """
    # an abstract base is what is checked against; mypy wants concrete classes here (#4717)
    return registry.build("detector", cfg, FaceDetector)  # type: ignore[type-abstract]
