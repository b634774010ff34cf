"""``cctv-sr eval calibrate``: an embedder's match thresholds at FAR 1e-2 and 1e-3.

On an LFW-style tree (the same eligible identities and images as ``eval identify``), every
image is oracle-aligned at full resolution and embedded; genuine pairs are every two images of
one identity, impostor pairs every two images of different identities. The threshold at a FAR
is the impostor score that a fraction FAR of impostor pairs reach. The figures go into the
embedder's manifest (``[spec] threshold_far_1e-2 / threshold_far_1e-3``), which is where
``cctv-sr run --gallery`` reads its default from (docs/EVAL.md section 1c).

:func:`calibrate_sizes` (``--sizes hr,16,24 --fars 1e-2,...,1e-6``) adds the tail: per probe
size, degraded probes against HR images, the threshold at each FAR and whether the pairs
resolve it, and the thresholds a watchlist of 10, 100, 1000 people needs
(:mod:`cctv_sr.evaluate.calibrate_tail`). It measures; nothing reads its figures.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cctv_sr.config import EmbedderConfig
from cctv_sr.data.lfw import scan_tree
from cctv_sr.embed import create_embedder
from cctv_sr.errors import ConfigError
from cctv_sr.evaluate.calibrate_tail import (
    DEFAULT_FARS,
    HR_SIZE,
    MIN_TAIL,
    WATCHLIST_SIZES,
    Tail,
    TailRow,
    WatchlistRow,
)
from cctv_sr.evaluate.methods import default_sr_name
from cctv_sr.evaluate.metrics import threshold_at_far
from cctv_sr.evaluate.oracle import align_all, eval_cache_dir, pick_detector
from cctv_sr.evaluate.workers import EmbedPlan, cached_method, embed_all, reset_models


@dataclass(frozen=True)
class Calibration:
    embedder: str
    version: str
    detector: str
    images: int
    identities: int
    genuine_pairs: int
    impostor_pairs: int
    threshold_far_1e2: float
    threshold_far_1e3: float
    tar_at_far_1e2: float
    tar_at_far_1e3: float
    seconds: float

    def manifest_snippet(self) -> str:
        return (f"threshold_far_1e-2 = {self.threshold_far_1e2:.4f}\n"
                f"threshold_far_1e-3 = {self.threshold_far_1e3:.4f}\n"
                f'threshold_calibration = "cctv-sr eval calibrate: {self.images} HR images of '
                f"{self.identities} identities, {self.impostor_pairs} impostor pairs, "
                f'{self.detector} oracle alignment"\n')


def pair_scores(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor cosine scores over all unordered pairs of rows."""
    sims = emb @ emb.T
    iu = np.triu_indices(len(emb), k=1)
    same = labels[iu[0]] == labels[iu[1]]
    scores = sims[iu]
    return scores[same], scores[~same]


@dataclass(frozen=True)
class _Embedded:
    """The oracle-aligned HR crops of a tree, their labels, file names and HR embeddings."""

    crops: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    emb: np.ndarray
    embedder: Any
    detector: str


def _embed_tree(root: Path, embedder_name: str, max_identities: int, quiet: bool,
                batch: int) -> _Embedded:
    identities = scan_tree(root)
    if max_identities:
        identities = identities[:max_identities]
    paths = [p for ident in identities for p in ident.images]
    labels = np.array([i for i, ident in enumerate(identities) for _ in ident.images])
    detector = pick_detector()
    crops, found = align_all(Path(root), paths, detector, cache=eval_cache_dir(), quiet=quiet)
    crops, labels = crops[found], labels[found]
    names = tuple(p.name for p, ok in zip(paths, found) if ok)
    if len(np.unique(labels)) < 2:
        raise ConfigError(f"--data {root}: need faces of at least two identities")
    embedder = create_embedder(EmbedderConfig(name=embedder_name))
    emb = np.concatenate([embedder.embed(crops[i:i + batch])
                          for i in range(0, len(crops), batch)])
    return _Embedded(crops, labels, names, emb, embedder, detector.name)


def _hr_calibration(e: _Embedded, root: Path, t0: float) -> Calibration:
    genuine, impostor = pair_scores(e.emb, e.labels)
    if len(genuine) == 0:
        raise ConfigError(f"--data {root}: no identity has two images with a face")
    t2, t3 = threshold_at_far(impostor, 1e-2), threshold_at_far(impostor, 1e-3)
    return Calibration(
        embedder=e.embedder.name, version=e.embedder.version, detector=e.detector,
        images=len(e.crops), identities=len(np.unique(e.labels)), genuine_pairs=len(genuine),
        impostor_pairs=len(impostor), threshold_far_1e2=float(t2), threshold_far_1e3=float(t3),
        tar_at_far_1e2=float((genuine >= t2).mean()), tar_at_far_1e3=float((genuine >= t3).mean()),
        seconds=time.perf_counter() - t0,
    )


def calibrate(root: Path, embedder_name: str, max_identities: int = 0, quiet: bool = False,
              batch: int = 64) -> Calibration:
    """Thresholds of ``embedder_name`` on the tree at ``root`` (see the module docstring)."""
    t0 = time.perf_counter()
    return _hr_calibration(_embed_tree(root, embedder_name, max_identities, quiet, batch),
                           root, t0)


# ------------------------------------------------------------- --sizes / --fars (the tail)


@dataclass(frozen=True)
class TailCalibration:
    """``eval calibrate --sizes/--fars``: the HR figures of :func:`calibrate` (``hr``, always
    measured: the HR embeddings are the gallery side of every size) and, per requested size and
    FAR, a :class:`TailRow`; per size and gallery size a :class:`WatchlistRow`."""

    hr: Calibration
    sizes: tuple[str, ...]
    fars: tuple[float, ...]
    restore: str
    rows: tuple[TailRow, ...]
    watchlist: tuple[WatchlistRow, ...]
    workers: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "embedder": self.hr.embedder, "version": self.hr.version,
            "detector": self.hr.detector, "images": self.hr.images,
            "identities": self.hr.identities, "sizes": list(self.sizes),
            "fars": list(self.fars), "restore": self.restore, "min_tail": MIN_TAIL,
            "workers": self.workers, "seconds": round(self.seconds, 2),
            "rows": [r.to_json() for r in self.rows],
            "watchlist": [w.to_json() for w in self.watchlist],
            "hr": asdict(self.hr),
        }


def degraded_pair_scores(probe_emb: np.ndarray, hr_emb: np.ndarray, labels: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor scores of every degraded probe (row ``i`` of ``probe_emb``, the
    degraded copy of HR image ``i``) against every HR image: genuine = same identity, not
    image ``i`` itself; impostor = another identity (ordered pairs)."""
    sims = probe_emb @ hr_emb.T
    same = labels[:, None] == labels[None, :]
    own = np.eye(len(labels), dtype=bool)
    return sims[same & ~own], sims[~same]


def calibrate_sizes(root: Path, embedder_name: str, sizes: Sequence[str] = (HR_SIZE,),
                    fars: Sequence[float] = DEFAULT_FARS, max_identities: int = 0,
                    workers: int = 0, quiet: bool = False, batch: int = 64,
                    method: str = "") -> TailCalibration:
    """Tail thresholds per probe size (docs/EVAL.md 1c): HR pairs as :func:`calibrate`; for a
    size s every image is degraded to s x s (:func:`cctv_sr.data.degrade.degrade`, seeded by
    its file name as in ``eval identify``), restored to 128 by the SR of ``cctv-sr run``
    (bicubic by default) or ``method`` (any ``eval identify`` method: an SR backend, or an
    embedding method such as ``lrhead=CKPT``, whose LR-probe vectors are then scored against
    ``embedder_name``'s HR vectors) on the eval worker pool and scored against every HR
    image."""
    t0 = time.perf_counter()
    sizes = tuple(sizes)
    fars = tuple(sorted(dict.fromkeys(float(f) for f in fars), reverse=True))
    restore = method or default_sr_name()
    reset_models()  # settings (e.g. $CCTV_SR_MODELS) may differ from a previous run
    built = cached_method(restore)  # a bad method fails before the slow part
    space = getattr(built, "space", embedder_name)
    if space != embedder_name:
        raise ConfigError(f"--method {restore} embeds into the {space} space: calibrate it "
                          f"with --embedder {space}")
    e = _embed_tree(root, embedder_name, max_identities, quiet, batch)
    hr = _hr_calibration(e, root, t0)
    tails: dict[str, Tail] = {}
    if HR_SIZE in sizes:
        tails[HR_SIZE] = Tail.of(*pair_scores(e.emb, e.labels))
    lr = tuple(int(s) for s in sizes if s != HR_SIZE)
    n_workers = workers or os.cpu_count() or 1
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    n_workers = min(n_workers, max(1, math.ceil(len(e.crops) / 4)))
    if lr:
        # embed_all always embeds a gallery; one face keeps that cost nil (the HR side is e.emb)
        plan = EmbedPlan(sizes=lr, burst=0, computes=(restore,), embedders=(embedder_name,))
        got = embed_all(e.crops[:1], e.crops, e.names, plan, workers=n_workers,
                        threads=threads, quiet=quiet)
        for s in lr:
            tails[str(s)] = Tail.of(*degraded_pair_scores(
                got.probe(restore, s, embedder_name), e.emb, e.labels))
    rows = tuple(tails[s].row(s, f) for s in sizes for f in fars)
    watch = tuple(tails[s].watchlist_row(s, g) for s in sizes for g in WATCHLIST_SIZES)
    return TailCalibration(hr=hr, sizes=sizes, fars=fars, restore=restore, rows=rows,
                           watchlist=watch, workers=n_workers,
                           seconds=time.perf_counter() - t0)
