"""Opening what identity matching needs: the gallery, its embedder, calibrated thresholds.

A gallery is matched only with the embedder that built it (name and version): vectors of two
embedders live in different spaces, so a mismatch is an error, never a silent mix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from cctv_sr.config import RunConfig
from cctv_sr.embed import create_embedder
from cctv_sr.embed.base import FaceEmbedder
from cctv_sr.errors import ConfigError, ModelError
from cctv_sr.identity.gallery.store import Gallery
from cctv_sr.identity.match import Thresholds
from cctv_sr.identity.sink import GalleryView, IdentityWriter
from cctv_sr.io.lines import EmbedderRef
from cctv_sr.io.outdir import OutputWriter
from cctv_sr.io.run_record import GalleryRecord
from cctv_sr.models.registry import default_manifest

log = logging.getLogger(__name__)


def calibrated_thresholds(embedder_name: str) -> Thresholds:
    """The embedder's thresholds at FAR 1e-2 / 1e-3, from the ``[spec]`` of its default
    manifest (the registry's); ModelError when it has none."""
    manifest = default_manifest("embedder", embedder_name)
    if manifest is None:
        raise ModelError(f"embedder '{embedder_name}' has no model manifest with calibrated "
                         "thresholds; set match.threshold")
    t2 = manifest.spec_value("threshold_far_1e-2")
    t3 = manifest.spec_value("threshold_far_1e-3")
    if not isinstance(t2, (int, float)) or not isinstance(t3, (int, float)):
        raise ModelError(f"model manifest '{manifest.name}' has no calibrated thresholds; "
                         "set match.threshold")
    return Thresholds(float(t2), float(t3))


@dataclass(frozen=True, eq=False)
class IdentitySetup:
    gallery_path: Path
    view: GalleryView
    embedder: FaceEmbedder
    thresholds: Thresholds
    threshold: float | None
    top_k: int

    def writer_for(self, writer: OutputWriter) -> IdentityWriter:
        info = EmbedderRef(self.embedder.name, self.embedder.version)
        return IdentityWriter(writer, self.view, self.thresholds, self.top_k, self.threshold,
                              info)

    def describe(self) -> GalleryRecord:
        """The gallery as run.json records it."""
        return GalleryRecord(
            path=str(self.gallery_path), people=len(self.view.names),
            embedder=EmbedderRef(self.embedder.name, self.embedder.version),
            threshold=self.threshold if self.threshold is not None else self.thresholds.far_1e3,
            thresholds={"far_1e-2": self.thresholds.far_1e2, "far_1e-3": self.thresholds.far_1e3})


def open_identity(cfg: RunConfig) -> IdentitySetup:
    """Open ``cfg.match.gallery`` and the embedder it was built with."""
    path = Path(cfg.match.gallery)
    with Gallery.open(path) as gallery:
        name, version = gallery.embedder_name, gallery.embedder_version
        names, templates = gallery.templates()
        photos = {}
        for person in names:
            paths = gallery.photo_paths(person)
            if paths:
                photos[person] = Path(paths[0])
    if not names:
        raise ConfigError(f"{path}: the gallery has no people")
    ecfg = cfg.embedder
    if ecfg.name != name:
        if ecfg != type(ecfg)():  # the user chose an embedder explicitly
            raise ConfigError(f"{path}: built with embedder '{name}', but embedder.name is "
                              f"'{ecfg.name}'; rebuild the gallery or drop the setting")
        ecfg = replace(ecfg, name=name)
    embedder = create_embedder(ecfg)
    if embedder.version != version:
        raise ConfigError(f"{path}: built with {name} version {version}, but the installed "
                          f"model is version {embedder.version}; rebuild the gallery")
    threshold = cfg.match.threshold or None
    try:
        thresholds = calibrated_thresholds(name)
    except ModelError:
        if threshold is None:
            raise
        thresholds = Thresholds(threshold, threshold)
    log.info("gallery %s: %d people, embedder %s, threshold %.3f", path, len(names), name,
             threshold if threshold is not None else thresholds.far_1e3)
    return IdentitySetup(path, GalleryView(names, templates, photos), embedder, thresholds,
                         threshold, cfg.match.top_k)
