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
  :mod:`cctv_sr.evaluate.det_plot`;
* the score rules of :data:`RULES` (cohort normalisation and the margin rule,
  :mod:`cctv_sr.evaluate.normalise`), on held-out identities: probe identities whose
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

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cctv_sr.errors import CctvSrError
from cctv_sr.evaluate import metrics
from cctv_sr.evaluate import normalise as norm

log = logging.getLogger(__name__)

FPIR_TARGETS: tuple[float, ...] = (1e-2, 1e-3)
STRANGER_DIGITS = frozenset("02468ace")
SHIPPED_SOURCE = ("the threshold cctv-sr run uses for this gallery size: match.fpir (default "
                  "0.01) over the calibrated [spec] threshold_far_* points (per face size "
                  "with match.size_thresholds)")


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


# ------------------------------------------------------------------ score rules (issue 7)

CALIBRATION_DIGITS = frozenset("01234567")  # sha256 hex digit [-2]: calibration half
COHORT_DIGITS = frozenset("01234567")  # hex digit [-3] of a stranger: explicit cohort
CAL_FPIR = 1e-2  # the rate a calibrated threshold claims
MARGIN_KEEP = 0.9  # share of the calibration half's listed top-1 hits the gap g keeps
RULES: dict[str, str] = {
    "raw": "best cosine (today's rule)",
    "tnorm": "T-norm of the top-1, cohort = the other watchlist templates",
    "gap": f"top-1 minus the mean of the {norm.DEFAULT_TOP_K} best other watchlist scores",
    "margin": "raw, named only when top-1 - top-2 >= g",
    "fused": "top-1 plus its margin, 2 * top-1 - top-2 (fixed weight 1, not tuned)",
    "raw_c": "raw, without the probes of the explicit-cohort identities (baseline of *_c)",
    "tnorm_wc": "T-norm, cohort = the other watchlist templates + the explicit cohort",
    "tnorm_c": "T-norm, cohort = the explicit cohort only",
    "margin_c": "raw, named only when top-1 - max(top-2, best cohort score) >= g",
}
_MARGINS = {"margin": "margin", "margin_c": "margin_cohort"}


def is_calibration(name: str) -> bool:
    """True when probe identity ``name`` is in the calibration half (hex digit [-2])."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[-2] in CALIBRATION_DIGITS


def is_cohort(name: str) -> bool:
    """True when ``name`` is a stranger whose gallery template is the explicit cohort."""
    return is_stranger(name) and hashlib.sha256(
        name.encode("utf-8")).hexdigest()[-3] in COHORT_DIGITS


@dataclass(frozen=True)
class NormSplit:
    """The identities the score rules need: ``calibration`` (P,) bool per probe;
    ``cohort_columns``: gallery indices of the explicit cohort; ``cohort_probe`` (P,) bool:
    probes of cohort identities (left out of the ``*_c`` rules)."""

    calibration: np.ndarray
    cohort_columns: np.ndarray
    cohort_probe: np.ndarray

    def counts(self, labels: np.ndarray) -> dict[str, int]:
        listed = np.asarray(labels) >= 0
        cal, keep = self.calibration, ~self.cohort_probe
        return {"cohort_identities": int(self.cohort_columns.size),
                "calibration_listed_probes": int((cal & listed).sum()),
                "calibration_stranger_probes": int((cal & ~listed).sum()),
                "test_listed_probes": int((~cal & listed).sum()),
                "test_stranger_probes": int((~cal & ~listed).sum()),
                "test_stranger_probes_c": int((~cal & ~listed & keep).sum())}


def split_norm(gallery_names: Sequence[str], probe_labels: np.ndarray) -> NormSplit:
    """Calibration half and explicit cohort from the gallery names and probe gallery indices."""
    names = list(gallery_names)
    probe_labels = np.asarray(probe_labels, np.int64)
    cal = np.array([is_calibration(n) for n in names], dtype=bool)
    coh = np.array([is_cohort(n) for n in names], dtype=bool)
    return NormSplit(calibration=cal[probe_labels], cohort_columns=np.flatnonzero(coh),
                     cohort_probe=coh[probe_labels])


@dataclass(frozen=True)
class RuleValues:
    """One row's decision inputs per probe: ``values[rule]`` (P,) (NaN = not scored by that
    rule), ``hit`` (P,) bool (listed and own identity top-1), ``margins[rule]`` (P,)."""

    values: dict[str, np.ndarray]
    margins: dict[str, np.ndarray]
    hit: np.ndarray
    stranger: np.ndarray


def rule_values(scores: np.ndarray, split: WatchlistSplit, ns: NormSplit) -> RuleValues:
    """The decision values of every rule for the closed-set ``scores`` (P, G) of one row."""
    scores = np.asarray(scores, np.float64)
    watch = scores[:, split.columns]
    p = watch.shape[0]
    nan = np.full(p, math.nan)
    stranger = split.labels < 0
    if watch.shape[1] == 0 or p == 0:
        return RuleValues({r: nan for r in RULES}, {r: nan for r in _MARGINS},
                          np.zeros(p, bool), stranger)
    keep = ~ns.cohort_probe
    w = norm.normalise_batch(watch) if watch.shape[1] > norm.MIN_COHORT else None
    c = scores[:, ns.cohort_columns]
    wc = norm.normalise_batch(watch, c) if c.shape[1] else None
    co = norm.normalise_batch(watch, c, use_watchlist=False) if c.shape[1] >= 2 else None
    raw = watch[np.arange(p), np.argmax(watch, axis=1)]

    def only(x: np.ndarray) -> np.ndarray:
        return np.where(keep, x, math.nan)

    values = {"raw": raw, "tnorm": nan if w is None else w.tnorm,
              "gap": nan if w is None else w.gap, "margin": raw, "raw_c": only(raw),
              "fused": nan if w is None else norm.fused(w),
              "tnorm_wc": nan if wc is None else only(wc.tnorm),
              "tnorm_c": nan if co is None else only(co.tnorm),
              "margin_c": nan if wc is None else only(raw)}
    second = np.sort(watch, axis=1)[:, -2] if watch.shape[1] > 1 else np.full(p, -math.inf)
    margins = {"margin": raw - second,
               "margin_c": nan if wc is None else wc.margin_cohort}
    hit = ~stranger & (np.argmax(watch, axis=1) == np.maximum(split.labels, 0))
    return RuleValues(values, margins, hit, stranger)


def _scores(rv: RuleValues, rule: str, rows: np.ndarray, gap: float) -> metrics.OpenSetScores:
    """:class:`~cctv_sr.evaluate.metrics.OpenSetScores` of ``rule`` over the probes ``rows``
    (bool), the margin rules at gap ``gap``; probes the rule does not score are left out."""
    v = rv.values[rule]
    if rule in _MARGINS:
        v = np.where(np.isnan(v), v, norm.passes_margin(v, rv.margins[rule], gap))
    rows = rows & ~np.isnan(v)
    listed = rows & ~rv.stranger
    return metrics.OpenSetScores(stranger_best=v[rows & rv.stranger],
                                 listed_hit=np.where(rv.hit[listed], v[listed], -math.inf))


@dataclass(frozen=True)
class RuleCalibration:
    """A rule's calibrated operating point: ``threshold`` at FPIR :data:`CAL_FPIR` and (margin
    rules) ``gap`` g, read off ``source`` (e.g. ``"hr"``) calibration probes."""

    threshold: float
    gap: float
    source: str


def calibrate_rule(rv: RuleValues, rule: str, ns: NormSplit, source: str) -> RuleCalibration:
    """Calibrate ``rule`` on the calibration half of ``rv`` (see the module docstring)."""
    cal = ns.calibration
    gap = math.nan
    if rule in _MARGINS:
        gap = norm.margin_gap(rv.margins[rule][cal & rv.hit], MARGIN_KEEP)
    t = metrics.threshold_at_fpir(_scores(rv, rule, cal, gap).stranger_best, CAL_FPIR)
    if t < -1e300:  # just above -inf: the margin alone names few enough strangers
        t = -math.inf
    return RuleCalibration(threshold=t, gap=gap, source=source)


@dataclass(frozen=True)
class RuleFigures:
    """A rule's figures on the test half (fractions; NaN = undefined): FNIR at each target
    FPIR (aligned with :data:`FPIR_TARGETS`), and FPIR / FNIR at the calibrated point."""

    fnir_at_fpir: tuple[float, ...]
    fpir_cal: float
    fnir_cal: float

    def to_json(self) -> dict[str, Any]:
        out = {_key("fnir_at_fpir", f): _num(v) for f, v in zip(FPIR_TARGETS, self.fnir_at_fpir)}
        return {**out, "fpir_cal": _num(self.fpir_cal), "fnir_cal": _num(self.fnir_cal)}


def rule_figures(rv: RuleValues, rule: str, ns: NormSplit, cal: RuleCalibration) -> RuleFigures:
    test = _scores(rv, rule, ~ns.calibration, cal.gap)
    return RuleFigures(
        fnir_at_fpir=tuple(metrics.fnir_at_fpir(test, f) for f in FPIR_TARGETS),
        fpir_cal=metrics.fpir_at(test.stranger_best, cal.threshold),
        fnir_cal=metrics.fnir_at(test.listed_hit, cal.threshold))


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
            out[_key("fnir_at_fpir", f)] = _num(fnir)
            out[_key("threshold_at_fpir", f)] = _num(t)
        out.update(fpir_shipped=_num(self.fpir_shipped), fnir_shipped=_num(self.fnir_shipped),
                   threshold_shipped=_num(self.threshold_shipped))
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
               "thresholds_shipped": {e: _num(t) for e, t in self.shipped.items()},
               "threshold_shipped_source": SHIPPED_SOURCE}
        if self.norm_split is not None:
            out["rules"] = {
                "descriptions": RULES, "calibration_fpir": CAL_FPIR,
                "margin_keep": MARGIN_KEEP, **self.norm_split.counts(self.split.labels),
                "calibrated": {e: {r: {"threshold": _num(c.threshold), "gap": _num(c.gap),
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


def _key(stem: str, f: float) -> str:
    return f"{stem}_{f:.0e}".replace("e-0", "e-")


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)
