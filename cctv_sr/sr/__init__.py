"""Super-resolution backends, looked up by name and imported only when chosen.

``SR_BACKENDS`` maps an ``sr.name`` setting to a lazy ``"module:ClassName"`` string;
``SR_DEFAULT_MANIFEST`` maps the names that need weights to the manifest of their default file
(see :mod:`cctv_sr.models.weights`). The OpenCV baselines use one model file per instance and
take the
scale from the file (``lapsrn`` is LapSRN x4; choose ``lapsrn_x8`` or set ``sr.model_path`` to a
``LapSRN_x8.pb`` for x8).
"""

from __future__ import annotations

from pathlib import Path

from cctv_sr.config import SRConfig
from cctv_sr.models.lazy import load_backend
from cctv_sr.sr.base import SuperResolver

_OPENCV = "cctv_sr.sr.opencv_sr:OpenCVSR"

SR_BACKENDS: dict[str, str] = {
    "bicubic": "cctv_sr.sr.bicubic:BicubicSR",
    "espcn": _OPENCV,
    "fsrcnn": _OPENCV,
    "lapsrn": _OPENCV,
    "lapsrn_x8": _OPENCV,
}

SR_DEFAULT_MANIFEST: dict[str, str] = {
    "espcn": "espcn_x4",
    "fsrcnn": "fsrcnn_x4",
    "lapsrn": "lapsrn_x4",
    "lapsrn_x8": "lapsrn_x8",
}


def backend_class(name: str) -> type[SuperResolver]:
    """Import and return the class registered for ``name``; unknown names raise ConfigError."""
    cls: type[SuperResolver] = load_backend(SR_BACKENDS, name, "super-resolver", "sr.name")
    return cls


def create_super_resolver(cfg: SRConfig, model_path: Path | None = None) -> SuperResolver:
    """Build the super-resolver that ``cfg.name`` selects (weights resolved as documented)."""
    return backend_class(cfg.name)(cfg, model_path)


__all__ = [
    "SR_BACKENDS",
    "SR_DEFAULT_MANIFEST",
    "SuperResolver",
    "backend_class",
    "create_super_resolver",
]
