"""``cctv-sr eval identify``: identification from tiny faces (docs/EVAL.md sections 1 and 2).

1. The set (:mod:`cctv_sr.data.lfw`): gallery = first image of every identity with
   >= 2 images, probes = the others (a whole-identity subsample with ``max_probes``).
2. Oracle alignment on the full-resolution image (:mod:`cctv_sr.evaluate.oracle`): 5
   landmarks of the face nearest the image centre, warped to the ArcFace template at
   128 x 128. That is the ground truth; images without a face are left out (counted), and an
   identity whose gallery image has no face is left out whole.
3. Each probe is degraded (:mod:`cctv_sr.data.degrade`) at every size, restored to 128 by
   each method (:mod:`cctv_sr.evaluate.methods`) and embedded by each embedder; the gallery is
   embedded once per embedder, undegraded. Work is split in chunks of probes over a pool of
   worker processes, each with its own models (:mod:`cctv_sr.evaluate.workers`).
4. Rank-1 and TAR at FAR = 1e-2 per (method, size, embedder) (:mod:`cctv_sr.evaluate.metrics`);
   the text table is :mod:`cctv_sr.evaluate.report`. An embedding method (``lrhead=CKPT``)
   embeds the probes itself, in one embedder's space: it is scored under that embedder only,
   its rows under the others are not applicable (NaN, ``null`` in the JSON).
5. With ``open_set``, the same scores against a watchlist (half the gallery) give FNIR at
   FPIR 1e-2 / 1e-3 and the figures at the shipped threshold (:mod:`cctv_sr.evaluate.openset`).

Example::

    result = run_identify(IdentifyConfig(data=Path("lfw_dev"), methods=("hr", "bicubic"),
                                         max_probes=750))
    json.dumps(result.to_json())
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cctv_sr.data.degrade import HR_SIDE
from cctv_sr.data.lfw import EvalImage, EvalSet, load_dataset
from cctv_sr.errors import ConfigError, ModelError
from cctv_sr.evaluate import metrics
from cctv_sr.evaluate.methods import DEFAULT, EmbeddingMethod, default_sr_name, parse_methods
from cctv_sr.evaluate.openset import (
    FPIR_TARGETS,
    OpenSetResult,
    OpenSetRow,
    finish_open_set,
    open_set_row,
    shipped_threshold,
    split_norm,
    split_watchlist,
)
from cctv_sr.evaluate.oracle import AUTO_DETECTOR, align_all, eval_cache_dir, pick_detector
from cctv_sr.evaluate.workers import (
    EmbedPlan,
    cached_embedder,
    cached_method,
    embed_all,
    reset_models,
)

log = logging.getLogger(__name__)

DEFAULT_METHODS: tuple[str, ...] = ("hr", "bicubic", "default")
DEFAULT_SIZES: tuple[int, ...] = (16, 24, 32)
DEFAULT_EMBEDDERS: tuple[str, ...] = ("mobilefacenet", "dlib")
FAR = 1e-2
TAR_KEY = "tar_at_far_1e-2"


# ------------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class IdentifyConfig:
    """What one benchmark run measures (``workers`` 0 = ``os.cpu_count()``; ``burst`` 0 =
    stills, T > 0 = bursts of T frames; ``cache_dir`` None = the default, ``use_cache`` off =
    align every time; ``open_set``: add the watchlist figures of docs/EVAL.md 1b)."""

    data: Path
    methods: tuple[str, ...] = DEFAULT_METHODS
    sizes: tuple[int, ...] = DEFAULT_SIZES
    embedders: tuple[str, ...] = DEFAULT_EMBEDDERS
    max_probes: int | None = None
    burst: int = 0
    workers: int = 0
    detector: str = AUTO_DETECTOR
    cache_dir: Path | None = None
    use_cache: bool = True
    quiet: bool = False
    open_set: bool = False
    size_thresholds: bool | None = None  # None: as cctv-sr run's default (match.size_thresholds)
    seed: int = 0  # the set of probe degradations; 0 = the benchmark's fixed set


def check_config(cfg: IdentifyConfig) -> IdentifyConfig:
    """``cfg`` with its lists checked (ConfigError one-liners) and de-duplicated."""
    from cctv_sr.embed import EMBEDDERS

    methods = tuple(parse_methods(",".join(cfg.methods)))
    if not cfg.sizes:
        raise ConfigError("--sizes: no size given")
    sizes: list[int] = []
    for s in cfg.sizes:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 4 <= s <= HR_SIDE:
            raise ConfigError(f"--sizes: each size must be an integer in 4..{HR_SIDE}, got {s!r}")
        if int(s) not in sizes:
            sizes.append(int(s))
    if not cfg.embedders:
        raise ConfigError("--embedder: no embedder given")
    embedders: list[str] = []
    for e in cfg.embedders:
        if e not in EMBEDDERS:
            raise ConfigError(f"--embedder: unknown embedder '{e}' (known: "
                              f"{', '.join(EMBEDDERS)})")
        if e not in embedders:
            embedders.append(e)
    if cfg.burst < 0:
        raise ConfigError(f"--burst must be >= 0 frames, got {cfg.burst}")
    if cfg.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {cfg.workers}")
    if cfg.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {cfg.seed}")
    if cfg.max_probes is not None and cfg.max_probes < 0:
        raise ConfigError(f"--max-probes must be >= 0, got {cfg.max_probes}")
    return IdentifyConfig(
        data=Path(cfg.data), methods=methods, sizes=tuple(sizes), embedders=tuple(embedders),
        max_probes=cfg.max_probes, burst=int(cfg.burst), workers=int(cfg.workers),
        detector=cfg.detector, cache_dir=cfg.cache_dir, use_cache=cfg.use_cache, quiet=cfg.quiet,
        open_set=bool(cfg.open_set), size_thresholds=cfg.size_thresholds, seed=int(cfg.seed),
    )


# ----------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class IdentifyRow:
    """One figure pair: ``method`` at probe side ``size`` under ``embedder`` (fractions)."""

    method: str
    size: int
    embedder: str
    rank1: float
    tar_at_far_1e_2: float

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "size": self.size, "embedder": self.embedder,
                "rank1": _num(self.rank1), TAR_KEY: _num(self.tar_at_far_1e_2)}


@dataclass(frozen=True)
class IdentifyResult:
    """The benchmark's figures and what they were measured on.

    ``identities``: gallery identities; ``probes``: probes scored; ``no_face``: images left
    out because the oracle detector found no face (``no_face_files`` relative to the root);
    ``burst``: frames per probe (0 = stills); ``methods``: what each method did per size;
    ``embedder_versions``: provenance of each embedder's weights; ``method_spaces``: the
    embedder space of each embedding method (its rows under other embedders are NaN).
    """

    rows: tuple[IdentifyRow, ...]
    identities: int
    probes: int
    seconds: float
    detector: str
    no_face: int
    burst: int
    probe_identities: int
    total_probes: int
    sizes: tuple[int, ...]
    methods: tuple[str, ...]
    embedders: tuple[str, ...]
    dropped_identities: int = 0
    no_face_files: tuple[str, ...] = ()
    method_info: dict[str, dict[str, str]] = field(default_factory=dict)
    embedder_versions: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    open_set: OpenSetResult | None = None
    method_spaces: dict[str, str] = field(default_factory=dict)
    seed: int = 0  # the set of probe degradations (0: the benchmark's fixed set)

    def applicable(self, method: str, embedder: str) -> bool:
        """Whether ``method`` is scored under ``embedder`` (an embedding method: its space)."""
        return self.method_spaces.get(method, embedder) == embedder

    def row(self, method: str, size: int, embedder: str) -> IdentifyRow:
        for r in self.rows:
            if (r.method, r.size, r.embedder) == (method, size, embedder):
                return r
        raise KeyError((method, size, embedder))

    def to_json(self) -> dict[str, Any]:
        """The docs/EVAL.md section 7 object (``rows``, ``identities``, ``probes``,
        ``seconds``) plus provenance keys; with the open set, each row gains its open-set
        figures and the object the split's counts."""
        rows = [r.to_json() for r in self.rows]
        if self.open_set is not None:
            rows = [{**d, **self.open_set.row(r.method, r.size, r.embedder).to_json()}
                    for d, r in zip(rows, self.rows)]
        out: dict[str, Any] = {
            "rows": rows,
            "identities": self.identities,
            "probes": self.probes,
            "seconds": round(self.seconds, 2),
            "detector": self.detector,
            "no_face": self.no_face,
            "no_face_files": list(self.no_face_files),
            "dropped_identities": self.dropped_identities,
            "burst": self.burst,
            "probe_identities": self.probe_identities,
            "total_probes": self.total_probes,
            "far": FAR,
            "methods": self.method_info,
            "embedders": self.embedder_versions,
            "workers": self.workers,
            "method_spaces": self.method_spaces,
            "seed": self.seed,
        }
        if self.open_set is not None:
            out.update(self.open_set.to_json())
        return out


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 6)


# ---------------------------------------------------------------------------------- benchmark


@dataclass(frozen=True)
class _AlignedSet:
    """Gallery and probes with their oracle crops, after the no-face exclusions."""

    gallery: tuple[tuple[EvalImage, np.ndarray], ...]
    probes: tuple[tuple[EvalImage, np.ndarray], ...]
    no_face_files: tuple[str, ...]
    dropped_identities: int


def compute_name(method: str) -> str:
    """The computation a method name stands for (``default`` shares its SR backend's)."""
    return default_sr_name() if method == DEFAULT else method


def run_identify(cfg: IdentifyConfig) -> IdentifyResult:
    """Run the benchmark (see the module docstring)."""
    t0 = time.perf_counter()
    cfg = check_config(cfg)
    ds = load_dataset(cfg.data, cfg.max_probes)
    workers = cfg.workers or os.cpu_count() or 1
    cpus = os.cpu_count() or 1
    threads = max(1, cpus // workers)

    # Build every model here first: bad names or missing weights fail before the slow part,
    # and the descriptions/versions go into the output.
    reset_models()  # settings (e.g. $CCTV_SR_MODELS) may differ from a previous run
    computes = tuple(dict.fromkeys(compute_name(m) for m in cfg.methods))
    built = {m: cached_method(m) for m in computes}
    method_info = {m: {str(s): built[compute_name(m)].describe(s) for s in cfg.sizes}
                   for m in cfg.methods}
    embedder_versions = {e: str(getattr(cached_embedder(e), "version", ""))
                         for e in cfg.embedders}
    spaces = {m: b.space for m, b in built.items() if isinstance(b, EmbeddingMethod)}
    for m, space in spaces.items():
        if space not in cfg.embedders:
            log.warning("%s embeds in the space of %s, which this run does not use (add it to "
                        "--embedder): its rows are not applicable", m, space)

    detector = pick_detector(cfg.detector)
    aligned = _aligned_set(ds, detector, cfg)
    gallery, probes = aligned.gallery, aligned.probes
    gal_crops = np.stack([c for _, c in gallery]) if gallery else np.zeros(
        (0, HR_SIDE, HR_SIDE, 3), np.uint8)
    gal_index = {img.identity: j for j, (img, _) in enumerate(gallery)}
    labels = np.array([gal_index[img.identity] for img, _ in probes], np.int64)
    probe_crops = np.stack([c for _, c in probes]) if probes else np.zeros(
        (0, HR_SIDE, HR_SIDE, 3), np.uint8)
    names = tuple(img.file_name for img, _ in probes)
    if len(probes) == 0:
        raise ConfigError(f"--data {cfg.data}: no probe left to score (every probe image "
                          f"lacks a face, or no identity has a usable gallery image)")

    workers = min(workers, max(1, math.ceil(len(probes) / 4)))
    plan = EmbedPlan(sizes=cfg.sizes, burst=cfg.burst, computes=computes,
                     embedders=cfg.embedders, seed=cfg.seed)
    emb = embed_all(gal_crops, probe_crops, names, plan, workers=workers, threads=threads,
                    quiet=cfg.quiet)

    gal_names = [img.name for img, _ in gallery]
    split = split_watchlist(gal_names, labels) if cfg.open_set else None
    norm_split = split_norm(gal_names, labels) if cfg.open_set else None
    shipped = {e: shipped_threshold(e, split.watchlist_identities)
               for e in cfg.embedders} if split is not None else {}
    rows: list[IdentifyRow] = []
    open_rows: list[OpenSetRow] = []
    for m in cfg.methods:
        comp = compute_name(m)
        for s in cfg.sizes:
            for e in cfg.embedders:
                if spaces.get(comp, e) != e:  # an embedding method under another embedder
                    rows.append(IdentifyRow(m, s, e, math.nan, math.nan))
                    if split is not None:
                        open_rows.append(_not_applicable(m, s, e))
                    continue
                size = 0 if built[comp].size_independent else s
                scores = _scores(emb.probe(comp, size, e), emb.gallery(e), m, e)
                rows.append(IdentifyRow(m, s, e, metrics.rank1(scores, labels),
                                        metrics.tar_at_far(scores, labels, FAR)))
                if split is not None:  # the run's threshold for faces of this size
                    t = shipped_threshold(e, split.watchlist_identities, size or None,
                                          cfg.size_thresholds)
                    open_rows.append(open_set_row(m, s, e, scores, split, t, norm_split))
    open_set = None if split is None else finish_open_set(split, shipped, open_rows, norm_split)
    return IdentifyResult(
        rows=tuple(rows), identities=len(gallery), probes=len(probes),
        seconds=time.perf_counter() - t0, detector=detector.name,
        no_face=len(aligned.no_face_files), burst=cfg.burst, seed=cfg.seed,
        probe_identities=len({img.identity for img, _ in probes}),
        total_probes=ds.total_probes, sizes=cfg.sizes, methods=cfg.methods,
        embedders=cfg.embedders, dropped_identities=aligned.dropped_identities,
        no_face_files=aligned.no_face_files, method_info=method_info,
        embedder_versions=embedder_versions, workers=workers, open_set=open_set,
        method_spaces=spaces,
    )


def _scores(probe: np.ndarray, gallery: np.ndarray, method: str, embedder: str) -> np.ndarray:
    """Cosine scores (P, G); ModelError when the probe vectors are not in the gallery's
    space (another dimension)."""
    if probe.shape[1:] != gallery.shape[1:]:
        raise ModelError(f"{method}: probe embeddings {probe.shape[1:]} do not match the "
                         f"{embedder} gallery embeddings {gallery.shape[1:]}")
    return metrics.similarity(probe, gallery)


def _not_applicable(method: str, size: int, embedder: str) -> OpenSetRow:
    """The open-set row of a method that has no embeddings under ``embedder``: all NaN."""
    nan, empty = math.nan, np.zeros(0)
    return OpenSetRow(method=method, size=size, embedder=embedder,
                      fnir_at_fpir=(nan,) * len(FPIR_TARGETS),
                      thresholds_at_fpir=(nan,) * len(FPIR_TARGETS), threshold_shipped=nan,
                      fpir_shipped=nan, fnir_shipped=nan,
                      det=metrics.DetCurve(empty, empty, empty))


def _aligned_set(ds: EvalSet, detector: Any, cfg: IdentifyConfig) -> _AlignedSet:
    """Gallery and probes with their crops; no-face images left out, and identities whose
    gallery image has no face left out whole (their probes too)."""
    images = list(ds.gallery) + list(ds.probes)
    paths = [img.path for img in images]
    cache = (cfg.cache_dir or eval_cache_dir()) if cfg.use_cache else None
    crops, found = align_all(ds.root, paths, detector, cache=cache, quiet=cfg.quiet)
    no_face = [p.relative_to(ds.root).as_posix() for p, ok in zip(paths, found) if not ok]
    n_gal = len(ds.gallery)
    gallery = [(img, crops[i]) for i, img in enumerate(ds.gallery) if found[i]]
    kept = {img.identity for img, _ in gallery}
    probes = [(img, crops[n_gal + i]) for i, img in enumerate(ds.probes)
              if found[n_gal + i] and img.identity in kept]
    dropped = len(ds.gallery) - len(gallery)
    if no_face:
        log.info("%d images without a face (excluded): %s", len(no_face), ", ".join(no_face[:10]))
    return _AlignedSet(gallery=tuple(gallery), probes=tuple(probes),
                       no_face_files=tuple(no_face), dropped_identities=dropped)
