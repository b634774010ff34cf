"""Open-set identification (watchlists) for ``cctv-sr eval identify --open-set`` (docs/EVAL.md 1b).

The probes are those of the closed-set benchmark; the watchlist is the closed-set gallery
without the identities whose sha256(name), in hex, ends in an even digit (0 2 4 6 8 a c e):
their probes are strangers (the split: :mod:`cctv_sr.evaluate.watchlist`). The scores are the
closed-set scores restricted to the watchlist's columns, so nothing is embedded twice. Per
(method, size, embedder):

* FNIR at FPIR = 1e-2 and 1e-3, the threshold read off the stranger scores
  (:func:`~cctv_sr.evaluate.metrics.threshold_at_fpir`, ties and resolution documented there);
* FPIR and FNIR at the threshold the product ships for the embedder: the manifest's
  ``[spec] threshold_far_1e-3`` (:func:`cctv_sr.identity.setup.calibrated_thresholds`).
  `cctv-sr run` names a track when its combined LR+SR score reaches far_1e-3 AND its LR score
  reaches far_1e-2; a still probe here has a single crop (the method's output), so its one
  score is held to far_1e-3 (the stricter of the two);
* the DET curve (:func:`~cctv_sr.evaluate.metrics.det_curve`), drawn by
  :mod:`cctv_sr.evaluate.det_plot`;
* the score rules of :data:`RULES` (cohort normalisation and the margin rule,
  :mod:`cctv_sr.evaluate.score_rules` over :mod:`cctv_sr.evaluate.normalise`), on held-out
  identities: probe identities whose
  sha256(name) hex digit [-2] is in ``01234567`` are the *calibration* half, the others the
  *test* half. Per embedder, each rule's threshold at FPIR 1e-2 (and the margin rule's gap g:
  the margin that 90% of the listed top-1 hits reach) is read off the calibration half of the
  ``hr`` probes (each row's own calibration half without ``hr``), as the product would
  calibrate on good photos; each row then reports, on its test half, FNIR at FPIR 1e-2 / 1e-3
  and FPIR / FNIR at that calibrated threshold. The ``*_c`` rules use an explicit cohort:
  the gallery templates of stranger identities whose hex digit [-3] is in ``01234567``; their
  probes are left out of those rules (``raw_c`` is raw on the same probes).

Example::

    split = split_watchlist(gallery_names, probe_gallery_index)
    shipped = shipped_threshold("dlib", split.watchlist_identities)
    row = open_set_row("bicubic", 16, "dlib", scores, split, shipped)
    result = finish_open_set(split, shipped, rows, norm_split)  # calibrates the rules
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cctv_sr.errors import CctvSrError
from cctv_sr.evaluate import metrics
from cctv_sr.evaluate.score_rules import (  # noqa: F401  (re-exported)
    CAL_FPIR,
    CALIBRATION_DIGITS,
    COHORT_DIGITS,
    MARGIN_KEEP,
    RULES,
    NormSplit,
    RuleCalibration,
    RuleFigures,
    RuleValues,
    calibrate_rule,
    is_calibration,
    is_cohort,
    rule_figures,
    rule_values,
    split_norm,
)
from cctv_sr.evaluate.watchlist import (  # noqa: F401  (re-exported)
    FPIR_TARGETS,
    STRANGER_DIGITS,
    WatchlistSplit,
    is_stranger,
    json_key,
    json_num,
    split_watchlist,
)

log = logging.getLogger(__name__)

SHIPPED_SOURCE = ("the threshold cctv-sr run uses for this gallery size: match.fpir (default "
                  "0.01) over the calibrated [spec] threshold_far_* points (per face size "
                  "with match.size_thresholds)")


def shipped_threshold(embedder: str, people: int, size: int | None = None,
                      size_thresholds: bool | None = None) -> float:
    """The decision threshold ``cctv-sr run`` uses with a gallery of ``people`` for a track of
    full evidence whose faces are ``size`` px (None: full resolution): the default
    ``match.fpir`` over the embedder's calibrated points, those of that size when
    ``size_thresholds`` (None: the default ``match.size_thresholds``) and the manifest has
    them (:class:`cctv_sr.identity.match.DecisionRule`); NaN when it has no calibration (its
    figures are then undefined)."""
    from cctv_sr.config import MatchConfig
    from cctv_sr.identity.match import DecisionRule
    from cctv_sr.identity.setup import calibrated_size_thresholds, calibrated_thresholds

    try:
        if size_thresholds is None:
            size_thresholds = MatchConfig().size_thresholds
        by_size = calibrated_size_thresholds(embedder) if size_thresholds else ()
        rule = DecisionRule(calibrated_thresholds(embedder), MatchConfig().fpir, people,
                            by_size=by_size)
        return float(rule.threshold(size_px=size))
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
    values: RuleValues | None = field(default=None, repr=False, compare=False)
    rules: dict[str, RuleFigures] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The keys this row adds to the closed-set JSON row."""
        out: dict[str, Any] = {}
        for f, fnir, t in zip(FPIR_TARGETS, self.fnir_at_fpir, self.thresholds_at_fpir):
            out[json_key("fnir_at_fpir", f)] = json_num(fnir)
            out[json_key("threshold_at_fpir", f)] = json_num(t)
        out.update(fpir_shipped=json_num(self.fpir_shipped),
                   fnir_shipped=json_num(self.fnir_shipped),
                   threshold_shipped=json_num(self.threshold_shipped))
        if self.rules:
            out["rules"] = {r: fig.to_json() for r, fig in self.rules.items()}
        return out


def open_set_row(method: str, size: int, embedder: str, scores: np.ndarray,
                 split: WatchlistSplit, threshold: float,
                 norm_split: NormSplit | None = None) -> OpenSetRow:
    """The open-set figures from the closed-set ``scores`` (P, G) of one row; with
    ``norm_split`` also the rules' values (calibrated by :func:`finish_open_set`)."""
    os_scores = metrics.open_set_scores(np.asarray(scores)[:, split.columns], split.labels)
    thresholds = tuple(metrics.threshold_at_fpir(os_scores.stranger_best, f)
                       for f in FPIR_TARGETS)
    return OpenSetRow(
        method=method, size=size, embedder=embedder,
        fnir_at_fpir=tuple(metrics.fnir_at(os_scores.listed_hit, t) for t in thresholds),
        thresholds_at_fpir=thresholds, threshold_shipped=threshold,
        fpir_shipped=metrics.fpir_at(os_scores.stranger_best, threshold),
        fnir_shipped=metrics.fnir_at(os_scores.listed_hit, threshold),
        det=metrics.det_curve(os_scores),
        values=None if norm_split is None else rule_values(scores, split, norm_split))


@dataclass(frozen=True)
class OpenSetResult:
    """The open-set part of a run: the split's counts, the shipped threshold per embedder and
    one :class:`OpenSetRow` per closed-set row."""

    split: WatchlistSplit
    shipped: dict[str, float]
    rows: tuple[OpenSetRow, ...]
    norm_split: NormSplit | None = None
    calibration: dict[str, dict[str, RuleCalibration]] = field(default_factory=dict)

    def row(self, method: str, size: int, embedder: str) -> OpenSetRow:
        for r in self.rows:
            if (r.method, r.size, r.embedder) == (method, size, embedder):
                return r
        raise KeyError((method, size, embedder))

    def to_json(self) -> dict[str, Any]:
        """The top-level keys the open set adds."""
        out = {"open_set": True, **self.split.counts(), "fpir_targets": list(FPIR_TARGETS),
               "thresholds_shipped": {e: json_num(t) for e, t in self.shipped.items()},
               "threshold_shipped_source": SHIPPED_SOURCE}
        if self.norm_split is not None:
            out["rules"] = {
                "descriptions": RULES, "calibration_fpir": CAL_FPIR,
                "margin_keep": MARGIN_KEEP, **self.norm_split.counts(self.split.labels),
                "calibrated": {e: {r: {"threshold": json_num(c.threshold),
                                       "gap": json_num(c.gap),
                                       "source": c.source} for r, c in cals.items()}
                               for e, cals in self.calibration.items()}}
        return out


def finish_open_set(split: WatchlistSplit, shipped: dict[str, float],
                    rows: Sequence[OpenSetRow], norm_split: NormSplit | None) -> OpenSetResult:
    """The result of a run: without ``norm_split`` just the rows; with it each embedder's
    rules calibrated on its ``hr`` row (else each row's own) and every row's rule figures."""
    if norm_split is None:
        return OpenSetResult(split, shipped, tuple(rows))
    calibration: dict[str, dict[str, RuleCalibration]] = {}
    for r in rows:
        if r.method == "hr" and r.values is not None and r.embedder not in calibration:
            calibration[r.embedder] = {rule: calibrate_rule(r.values, rule, norm_split, "hr")
                                       for rule in RULES}
    done = []
    for r in rows:
        if r.values is None:
            done.append(r)
            continue
        cals = calibration.get(r.embedder) or {
            rule: calibrate_rule(r.values, rule, norm_split, f"{r.method} s={r.size}")
            for rule in RULES}
        done.append(replace(r, rules={rule: rule_figures(r.values, rule, norm_split, c)
                                      for rule, c in cals.items()}))
    return OpenSetResult(split, shipped, tuple(done), norm_split, calibration)
