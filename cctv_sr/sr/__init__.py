"""Super-resolution backends behind one interface (:class:`SuperResolver`).

SR backends are rows of the one backend registry (:mod:`cctv_sr.models.registry`): imported
only when chosen, their weights resolved the same way as every backend's (``sr.model_path``,
else the default manifest's file). ``SR_BACKENDS`` is a read-only view ``name ->
"module:Class"`` of those rows. The OpenCV baselines load one model file per instance and take
its scale from the file's :class:`~cctv_sr.models.spec.ModelSpec` (``lapsrn`` is LapSRN x4;
choose ``lapsrn_x8``, or set ``sr.model_path`` to a ``LapSRN_x8.pb``, for x8).

Example::

    sr = create_super_resolver(SRConfig(name="espcn"))
    out = sr.upscale(crops, 128)              # (N, 32, 32, 3) -> (N, 128, 128, 3) uint8 BGR
"""

from __future__ import annotations

from cctv_sr.config import SRConfig
from cctv_sr.models import registry
from cctv_sr.sr.base import SuperResolver

SR_BACKENDS = registry.BackendTable("sr")

__all__ = ["SR_BACKENDS", "SuperResolver", "create_super_resolver"]


def create_super_resolver(cfg: SRConfig) -> SuperResolver:
    """The super-resolver ``cfg.name`` selects, its weights resolved (``cfg.model_path``
    first); unknown names raise :class:`~cctv_sr.errors.ConfigError` with a suggestion."""
    # an abstract base is what is checked against; mypy wants concrete classes here (#4717)
    return registry.build("sr", cfg, SuperResolver)  # type: ignore[type-abstract]
