"""Score rules for the open-set benchmark (docs/EVAL.md 1b): cohort normalisation and the
margin rule, calibrated on one half of the probe identities and measured on the other.

The formulas are in :mod:`cctv_sr.evaluate.normalise`; :mod:`cctv_sr.evaluate.openset` adds
each rule's figures to its rows. The product does not use these rules (see EVAL.md 1b).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cctv_sr.evaluate import metrics
from cctv_sr.evaluate import normalise as norm
from cctv_sr.evaluate.watchlist import FPIR_TARGETS, is_stranger, json_key, json_num

if TYPE_CHECKING:
    from cctv_sr.evaluate.watchlist import WatchlistSplit

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
        out = {json_key("fnir_at_fpir", f): json_num(v)
               for f, v in zip(FPIR_TARGETS, self.fnir_at_fpir)}
        return {**out, "fpir_cal": json_num(self.fpir_cal), "fnir_cal": json_num(self.fnir_cal)}


def rule_figures(rv: RuleValues, rule: str, ns: NormSplit, cal: RuleCalibration) -> RuleFigures:
    test = _scores(rv, rule, ~ns.calibration, cal.gap)
    return RuleFigures(
        fnir_at_fpir=tuple(metrics.fnir_at_fpir(test, f) for f in FPIR_TARGETS),
        fpir_cal=metrics.fpir_at(test.stranger_best, cal.threshold),
        fnir_cal=metrics.fnir_at(test.listed_hit, cal.threshold))


