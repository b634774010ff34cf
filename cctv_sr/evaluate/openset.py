"""Open-set identification (watchlists) for ``cctv-sr eval identify --open-set`` (docs/EVAL.md 1b).

The probes are those of the closed-set benchmark; the watchlist is the closed-set gallery
without the identities whose sha256(name), in hex, ends in an even digit (0 2 4 6 8 a c e):
their probes are strangers. The scores are the closed-set scores restricted to the watchlist's
columns, so nothing is embedded twice. Per (method, size, embedder):

* FNIR at FPIR = 1e-2 and 1e-3, the threshold read off the stranger scores
  (:func:`~cctv_sr.evaluate.metrics.threshold_at_fpir`, ties and resolution documented there);
* FPIR and FNIR at the threshold the product ships for the embedder: the manifest's
  ``[spec] threshold_far_1e-3`` (:func:`cctv_sr.identity.setup.calibrated_thresholds`).
  `cctv-sr run` names a track when its combined LR+SR score reaches far_1e-3 AND its LR score
  reaches far_1e-2; a still probe here has a single crop (the method's output), so its one
  score is held to far_1e-3 (the stricter of the two);
* the DET curve (:func:`~cctv_sr.evaluate.metrics.det_curve`), drawn by
  :mod:`cctv_sr.evaluate.det_plot`.

Example::

    split = split_watchlist(gallery_names, probe_gallery_index)
    shipped = shipped_threshold("dlib", split.watchlist_identities)
    row = open_set_row("bicubic", 16, "dlib", scores, split, shipped)
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cctv_sr.errors import CctvSrError
from cctv_sr.evaluate import metrics

log = logging.getLogger(__name__)

FPIR_TARGETS: tuple[float, ...] = (1e-2, 1e-3)
STRANGER_DIGITS = frozenset("02468ace")
SHIPPED_SOURCE = ("the threshold cctv-sr run uses for this gallery size: match.fpir (default "
                  "0.01) over the calibrated [spec] threshold_far_* points")


def is_stranger(name: str) -> bool:
    """True when identity ``name`` is left out of the watchlist: the last hex digit of the
    sha256 of its UTF-8 name is even."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[-1] in STRANGER_DIGITS


@dataclass(frozen=True)
class WatchlistSplit:
    """The watchlist of one run.

    ``columns``: closed-set gallery indices kept on the watchlist (in gallery order);
    ``labels``: per probe its watchlist index, -1 for a stranger; the counts are of gallery
    (watchlist) identities, of probe identities on and off the list, and of probes.
    """

    columns: np.ndarray
    labels: np.ndarray
    watchlist_identities: int
    listed_identities: int
    stranger_identities: int
    listed_probes: int
    stranger_probes: int

    def counts(self) -> dict[str, int]:
        return {"watchlist_identities": self.watchlist_identities,
                "listed_identities": self.listed_identities,
                "stranger_identities": self.stranger_identities,
                "listed_probes": self.listed_probes,
                "stranger_probes": self.stranger_probes}


def split_watchlist(gallery_names: Sequence[str], probe_labels: np.ndarray) -> WatchlistSplit:
    """The watchlist from the closed-set gallery names and the probes' gallery indices."""
    probe_labels = np.asarray(probe_labels, np.int64)
    keep = np.array([not is_stranger(n) for n in gallery_names], dtype=bool)
    columns = np.flatnonzero(keep)
    remap = np.full(len(gallery_names), -1, np.int64)
    remap[columns] = np.arange(columns.size)
    labels = remap[probe_labels] if probe_labels.size else probe_labels.copy()
    listed = labels >= 0
    if probe_labels.size and (listed.all() or not listed.any()):
        log.warning("open set: every probe is %s, so %s are undefined",
                    "listed" if listed.all() else "a stranger",
                    "FPIR and the thresholds at a target FPIR" if listed.all() else "FNIR")
    return WatchlistSplit(
        columns=columns, labels=labels, watchlist_identities=int(columns.size),
        listed_identities=len(set(probe_labels[listed].tolist())),
        stranger_identities=len(set(probe_labels[~listed].tolist())),
        listed_probes=int(listed.sum()), stranger_probes=int((~listed).sum()))


def shipped_threshold(embedder: str, people: int) -> float:
    """The decision threshold ``cctv-sr run`` uses with a gallery of ``people`` (the default
    ``match.fpir`` over the embedder's calibrated points); NaN when it has no calibration (its
    figures are then undefined)."""
    from cctv_sr.config import MatchConfig
    from cctv_sr.identity.setup import calibrated_thresholds

    try:
        chosen = calibrated_thresholds(embedder).for_watchlist(MatchConfig().fpir, people)
        return float(chosen.threshold)
    except CctvSrError as exc:
        log.warning("open set: %s", exc)
        return math.nan


@dataclass(frozen=True)
class OpenSetRow:
    """Open-set figures of ``method`` at ``size`` under ``embedder`` (fractions; NaN =
    undefined). ``thresholds_at_fpir`` are aligned with :data:`FPIR_TARGETS`."""

    method: str
    size: int
    embedder: str
    fnir_at_fpir: tuple[float, ...]
    thresholds_at_fpir: tuple[float, ...]
    threshold_shipped: float
    fpir_shipped: float
    fnir_shipped: float
    det: metrics.DetCurve

    def to_json(self) -> dict[str, Any]:
        """The keys this row adds to the closed-set JSON row."""
        out: dict[str, Any] = {}
        for f, fnir, t in zip(FPIR_TARGETS, self.fnir_at_fpir, self.thresholds_at_fpir):
            out[f"fnir_at_fpir_{f:.0e}".replace("e-0", "e-")] = _num(fnir)
            out[f"threshold_at_fpir_{f:.0e}".replace("e-0", "e-")] = _num(t)
        out.update(fpir_shipped=_num(self.fpir_shipped), fnir_shipped=_num(self.fnir_shipped),
                   threshold_shipped=_num(self.threshold_shipped))
        return out


def open_set_row(method: str, size: int, embedder: str, scores: np.ndarray,
                 split: WatchlistSplit, threshold: float) -> OpenSetRow:
    """The open-set figures from the closed-set ``scores`` (P, G) of one row."""
    os_scores = metrics.open_set_scores(np.asarray(scores)[:, split.columns], split.labels)
    thresholds = tuple(metrics.threshold_at_fpir(os_scores.stranger_best, f)
                       for f in FPIR_TARGETS)
    return OpenSetRow(
        method=method, size=size, embedder=embedder,
        fnir_at_fpir=tuple(metrics.fnir_at(os_scores.listed_hit, t) for t in thresholds),
        thresholds_at_fpir=thresholds, threshold_shipped=threshold,
        fpir_shipped=metrics.fpir_at(os_scores.stranger_best, threshold),
        fnir_shipped=metrics.fnir_at(os_scores.listed_hit, threshold),
        det=metrics.det_curve(os_scores))


@dataclass(frozen=True)
class OpenSetResult:
    """The open-set part of a run: the split's counts, the shipped threshold per embedder and
    one :class:`OpenSetRow` per closed-set row."""

    split: WatchlistSplit
    shipped: dict[str, float]
    rows: tuple[OpenSetRow, ...]

    def row(self, method: str, size: int, embedder: str) -> OpenSetRow:
        for r in self.rows:
            if (r.method, r.size, r.embedder) == (method, size, embedder):
                return r
        raise KeyError((method, size, embedder))

    def to_json(self) -> dict[str, Any]:
        """The top-level keys the open set adds."""
        return {"open_set": True, **self.split.counts(), "fpir_targets": list(FPIR_TARGETS),
                "thresholds_shipped": {e: _num(t) for e, t in self.shipped.items()},
                "threshold_shipped_source": SHIPPED_SOURCE}


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)
