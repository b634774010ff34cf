"""Face embedders behind one batched interface (:class:`FaceEmbedder`).

Backends are imported lazily: ``EMBEDDERS`` maps an embedder name to ``"module:ClassName"``
and :func:`create_embedder` imports only the one asked for.

Example::

    from cctv_sr.config import EmbedderConfig
    from cctv_sr.embed import create_embedder

    embedder = create_embedder(EmbedderConfig(name="dlib"))
    vectors = embedder.embed(crops)            # (N, S, S, 3) BGR canonical crops -> (N, 128)
    sims = embedder.similarity(vectors, gallery)
"""

from __future__ import annotations

from pathlib import Path

from cctv_sr.config import EmbedderConfig
from cctv_sr.embed.base import FaceEmbedder
from cctv_sr.models.lazy import load_backend

EMBEDDERS: dict[str, str] = {
    "dlib": "cctv_sr.embed.dlib_resnet:DlibEmbedder",
    "arcface": "cctv_sr.embed.onnx_arcface:ArcFaceEmbedder",
    "mobilefacenet": "cctv_sr.embed.onnx_arcface:MobileFaceNetEmbedder",
}

# Manifest whose default file each embedder loads when no model_path is given.
EMBEDDER_DEFAULT_MANIFEST: dict[str, str] = {
    "dlib": "dlib",
    "arcface": "arcface_r50",
    "mobilefacenet": "mobilefacenet",
}

__all__ = [
    "EMBEDDERS", "EMBEDDER_DEFAULT_MANIFEST", "FaceEmbedder", "create_embedder",
    "embedder_class",
]


def embedder_class(name: str) -> type[FaceEmbedder]:
    """The embedder class registered as ``name`` (imports its module)."""
    cls: type[FaceEmbedder] = load_backend(EMBEDDERS, name, "embedder", "embedder.name")
    return cls


def create_embedder(cfg: EmbedderConfig, model_path: Path | None = None) -> FaceEmbedder:
    """An embedder for ``cfg.name``; ``model_path`` overrides ``cfg.model_path``, and with
    neither the backend resolves its manifest's default file."""
    return embedder_class(cfg.name)(cfg, model_path)
