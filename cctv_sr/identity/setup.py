"""Opening what identity matching needs: the gallery, its embedder, calibrated thresholds, and
the LR identity head when ``head.name`` is not ``none``.

A gallery is matched only with the embedder that built it (name and version): vectors of two
embedders live in different spaces, so a mismatch is an error, never a silent mix. The same
holds for the head: its vectors live in the space of the embedder weights it was distilled
from (``space``, the shipped ones), so a gallery built with another embedder or other weights
is refused for an explicit checkpoint, and skips the shipped head (:func:`open_head`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cctv_sr.config import GateConfig, HeadConfig, RunConfig
from cctv_sr.embed import create_embedder
from cctv_sr.embed.base import FaceEmbedder, shipped_version
from cctv_sr.errors import ConfigError, ModelError
from cctv_sr.face.faceness import OnetFaceness
from cctv_sr.identity.gallery.store import Gallery
from cctv_sr.identity.match import DecisionRule, Thresholds
from cctv_sr.identity.sink import GalleryView, IdentityWriter
from cctv_sr.io.lines import EmbedderRef, HeadRef
from cctv_sr.io.outdir import OutputWriter
from cctv_sr.io.run_record import GalleryRecord
from cctv_sr.models import registry
from cctv_sr.models.registry import default_manifest

if TYPE_CHECKING:
    from cctv_sr.embed.lrhead import LrHeadEmbedder

log = logging.getLogger(__name__)

# finer calibrated points a manifest may carry (measured with `eval calibrate --fars`)
TAIL_KEYS = ((1e-4, "threshold_far_1e-4"), (1e-5, "threshold_far_1e-5"),
             (1e-6, "threshold_far_1e-6"))
# per face size: threshold_px<side>_far_1e-<k>, from `eval calibrate --sizes`
_SIZE_KEY = re.compile(r"threshold_px(\d+)_far_1e-([2-6])")


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def calibrated_thresholds(embedder_name: str) -> Thresholds:
    """The embedder's thresholds at FAR 1e-2 / 1e-3 (and finer), from the ``[spec]`` of its
    default manifest (the registry's); ModelError when it has none."""
    manifest = default_manifest("embedder", embedder_name)
    if manifest is None:
        raise ModelError(f"embedder '{embedder_name}' has no model manifest with calibrated "
                         "thresholds; set match.threshold")
    t2 = _number(manifest.spec_value("threshold_far_1e-2"))
    t3 = _number(manifest.spec_value("threshold_far_1e-3"))
    if t2 is None or t3 is None:
        raise ModelError(f"model manifest '{manifest.name}' has no calibrated thresholds; "
                         "set match.threshold")
    tail = []
    for far, key in TAIL_KEYS:
        value = _number(manifest.spec_value(key))
        if value is not None:
            tail.append((far, value))
    return Thresholds(t2, t3, tuple(tail))


def calibrated_size_thresholds(embedder_name: str) -> tuple[tuple[int, Thresholds], ...]:
    """Thresholds calibrated on probes degraded to a crop side, smallest side first: the
    ``[spec]`` keys ``threshold_px<side>_far_1e-<k>`` (k = 2..6; 1e-2 and 1e-3 required per
    side), measured with ``eval calibrate --sizes``. Empty when the manifest has none."""
    manifest = default_manifest("embedder", embedder_name)
    if manifest is None:
        return ()
    points: dict[int, dict[float, float]] = {}
    for key, value in manifest.spec:
        match = _SIZE_KEY.fullmatch(key)
        number = _number(value)
        if match and number is not None:
            points.setdefault(int(match[1]), {})[10.0 ** -int(match[2])] = number
    out = []
    for side in sorted(points):
        pts = points[side]
        if 1e-2 not in pts or 1e-3 not in pts:
            raise ModelError(f"model manifest '{manifest.name}': size {side} px needs "
                             f"threshold_px{side}_far_1e-2 and _far_1e-3")
        tail = tuple((f, t) for f, t in sorted(pts.items(), reverse=True) if f < 1e-3)
        out.append((side, Thresholds(pts[1e-2], pts[1e-3], tail)))
    return tuple(out)


@dataclass(frozen=True, eq=False)
class IdentitySetup:
    gallery_path: Path
    view: GalleryView
    embedder: FaceEmbedder
    thresholds: Thresholds
    threshold: float  # the decision threshold of this run (of a track with full evidence)
    threshold_rule: str  # how it was chosen
    top_k: int
    rule: DecisionRule
    gate: GateConfig
    faceness: OnetFaceness  # the gate's face / non-face check, run with the embedder
    head: LrHeadEmbedder | None = None  # the LR identity head (None: head.name = "none")

    def writer_for(self, writer: OutputWriter) -> IdentityWriter:
        info = EmbedderRef(self.embedder.name, self.embedder.version)
        head = None if self.head is None else HeadRef(self.head.name, self.head.version)
        return IdentityWriter(writer, self.view, self.rule, self.top_k, info, self.gate, head)

    def describe(self) -> GalleryRecord:
        """The gallery as run.json records it."""
        return GalleryRecord(
            path=str(self.gallery_path), people=len(self.view.names),
            embedder=EmbedderRef(self.embedder.name, self.embedder.version),
            threshold=self.threshold, threshold_rule=self.threshold_rule,
            thresholds_by_size={str(side): round(self.rule.threshold(size_px=side), 4)
                                for side, _ in self.rule.by_size},
            thresholds={f"far_{far:.0e}".replace("e-0", "e-"): t
                        for far, t in self.thresholds.points()})


def open_head(cfg: HeadConfig, gallery: Path, embedder_name: str, dim: int,
              embedder_version: str) -> LrHeadEmbedder | None:
    """The LR identity head ``cfg`` names (None for ``none``), checked against a gallery
    built with ``embedder_name`` (version ``embedder_version``) of ``dim``-d templates.

    A head's vectors live in the space of the weights it was distilled from. A shipped head
    (``head.name`` with a default manifest, no ``model_path``) is skipped (None) for a gallery
    of another embedder (its manifest's ``[spec] teacher``), decided before anything is
    loaded, and with a warning for a gallery of that embedder but other weights than the
    shipped ones; an explicit checkpoint in such a case is a ConfigError."""
    if cfg.name == "none":
        return None
    from cctv_sr.embed.lrhead import LrHeadEmbedder

    manifest = registry.default_manifest("head", cfg.name)
    if manifest is not None and not cfg.model_path:  # the shipped head
        teacher = str(manifest.spec_value("teacher") or "")
        if teacher != embedder_name:
            log.info("gallery %s was built with %s; the LR head %s embeds into the %s space, "
                     "so tracks get no head score", gallery, embedder_name, cfg.name,
                     teacher or "unknown")
            return None
        if embedder_version != _shipped_embedder_version(teacher):
            log.warning("gallery %s was built with %s weights %s, not the shipped ones; the LR "
                        "head %s was distilled from the shipped weights, so tracks get no head "
                        "score", gallery, embedder_name, embedder_version, cfg.name)
            return None
    head = registry.build("head", cfg, LrHeadEmbedder)
    what = f"{head.name} ({cfg.model_path or 'default weights'})"
    if head.space != embedder_name:
        raise ConfigError(f"{gallery}: built with embedder '{embedder_name}', but the LR head "
                          f"{what} embeds into the '{head.space}' space; use a gallery built "
                          f"with '{head.space}' or set head.name=none")
    if not head.teacher_file and embedder_version != _shipped_embedder_version(head.space):
        raise ConfigError(f"{gallery}: built with {embedder_name} weights {embedder_version}, "
                          f"but the LR head {what} was distilled from the shipped "
                          f"{head.space} weights; use a gallery built with them or set "
                          f"head.name=none")
    if head.dim != dim:
        raise ConfigError(f"{gallery}: holds {dim}-d templates, the LR head {head.name} gives "
                          f"{head.dim}-d vectors")
    return head


def _shipped_embedder_version(name: str) -> str | None:
    """The version string the shipped weights of embedder ``name`` give (None: unknown)."""
    manifest = default_manifest("embedder", name)
    return None if manifest is None else shipped_version(manifest)


def open_identity(cfg: RunConfig) -> IdentitySetup:
    """Open ``cfg.match.gallery``, the embedder it was built with and the LR head, if any."""
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
    head = open_head(cfg.head, path, name, int(templates.shape[1]), version)
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
    try:
        thresholds = calibrated_thresholds(name)
    except ModelError:
        if not cfg.match.threshold:
            raise
        thresholds = Thresholds(cfg.match.threshold, cfg.match.threshold)
    fixed = float(cfg.match.threshold) if cfg.match.threshold else None
    by_size = (calibrated_size_thresholds(name)
               if fixed is None and cfg.match.size_thresholds else ())
    if fixed is not None:
        threshold, rule = fixed, "match.threshold (set by the user)"
    else:  # a threshold for this gallery's size: at most match.fpir of strangers named
        chosen = thresholds.for_watchlist(cfg.match.fpir, len(names))
        threshold, rule = chosen.threshold, chosen.describe()
        if chosen.beyond_calibration:
            log.warning("gallery %s: %d people need a finer calibration than %s has; "
                        "strangers may be named more often than match.fpir=%g", path,
                        len(names), name, cfg.match.fpir)
        if by_size:
            rule += ("; faces up to " + ", ".join(f"{side}" for side, _ in by_size) +
                     " px use the thresholds calibrated at that size")
        rule += (f"; tracks resting on fewer than {cfg.gate.full_evidence_faces} usable faces "
                 f"get a stricter per-pair FAR (x{cfg.gate.short_track_far_factor:g} at "
                 f"{cfg.gate.min_usable})")
    log.info("gallery %s: %d people, embedder %s, threshold %.4f (%s)", path, len(names), name,
             threshold, rule)
    decision = DecisionRule(thresholds, cfg.match.fpir, len(names), fixed, by_size)
    faceness = OnetFaceness(device=cfg.embedder.device)
    return IdentitySetup(path, GalleryView(names, templates, photos), embedder, thresholds,
                         threshold, rule, cfg.match.top_k, decision, cfg.gate, faceness, head)
