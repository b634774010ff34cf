"""Face embedders behind one batched interface (:class:`FaceEmbedder`).

Embedders are rows of the one backend registry (:mod:`cctv_sr.models.registry`): imported only
when chosen, their weights resolved the same way as every backend's (``embedder.model_path``,
else the default manifest's file). ``EMBEDDERS`` is a read-only view ``name -> "module:Class"``
of those rows.

Example::

    from cctv_sr.config import EmbedderConfig
    from cctv_sr.embed import create_embedder

    embedder = create_embedder(EmbedderConfig(name="dlib"))
    vectors = embedder.embed(crops)            # (N, S, S, 3) BGR canonical crops -> (N, 128)
    sims = embedder.similarity(vectors, gallery)
"""

from __future__ import annotations

from cctv_sr.config import EmbedderConfig
from cctv_sr.embed.base import FaceEmbedder
from cctv_sr.models import registry

EMBEDDERS = registry.BackendTable("embedder")

__all__ = ["EMBEDDERS", "FaceEmbedder", "create_embedder"]


def create_embedder(cfg: EmbedderConfig) -> FaceEmbedder:
    """The embedder ``cfg.name`` selects, its weights resolved (``cfg.model_path`` first);
    unknown names raise :class:`~cctv_sr.errors.ConfigError` with a suggestion."""
    # an abstract base is what is checked against; mypy wants concrete classes here (#4717)
    return registry.build("embedder", cfg, FaceEmbedder)  # type: ignore[type-abstract]
