"""Cohort score normalisation and the margin rule for watchlist decisions (pure numpy), as
measured by ``cctv-sr eval identify --open-set``. The product does not use them: on lfw_dev
none lowered MobileFaceNet's FNIR at a fixed FPIR (docs/EVAL.md 1b), so matching keeps the raw
cosine.

A probe (a still, or a track's aggregated vector) has one cosine per watchlist template,
``scores`` (G,), and optionally one per *cohort* face, ``cohort`` (C,): faces known NOT to be
on the watchlist (in the benchmark, gallery templates of a third group of identities). The
candidate is always the raw top-1, ``b = argmax(scores)`` (ties: the lower index, as
``np.argmax``), with ``s1 = scores[b]`` and ``s2`` the second-best watchlist score (-inf
with one template). The probe's *cohort scores* are the other watchlist scores (``scores``
without ``b``), when ``use_watchlist``, followed by ``cohort``: M values ``c_1 .. c_M``.

* **T-norm** (test normalisation; the statistics are the probe's own scores against the
  cohort, so a probe that scores high against everyone, as tiny or blurred faces do, is
  scaled back): ``tnorm = (s1 - mean(c)) / max(std(c), MIN_STD)`` (population std).
  With ``top_k`` > 0 only the ``top_k`` highest cohort scores give mean and std (adaptive
  T-norm).
* **Top-k gap**: ``gap = s1 - mean(top_k highest c)``: the top-1 against the nearest faces
  that are not it.
* **Margin**: ``margin = s1 - s2`` (watchlist only); ``margin_cohort = s1 - max(s2, max of
  the explicit cohort)``, which is negative when a known non-watchlist face beats the top-1.
  The margin *rule* names the top-1 only when ``s1 >= t`` AND ``margin >= g``.
* **Fused**: ``fused = s1 + margin = 2 s1 - s2`` (the margin added to the score, weight 1),
  one score to threshold instead of two.

Every statistic needs at least :data:`MIN_COHORT` cohort scores, else ConfigError.

Example::

    r = normalise(track_scores, cohort_scores)      # one probe
    named = r.tnorm >= t_norm and r.raw >= t_raw_floor
    b = normalise_batch(score_matrix, cohort_matrix)  # P probes at once, arrays (P,)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cctv_sr.errors import ConfigError

MIN_STD = 1e-3  # floor of the cohort std (cosines): keeps T-norm finite on a degenerate cohort
MIN_COHORT = 2  # fewest cohort scores a statistic is computed from
DEFAULT_TOP_K = 10  # cohort scores of the top-k gap


@dataclass(frozen=True)
class NormalisedScore:
    """The normalised figures of one probe's top-1 candidate (see the module docstring).

    ``best``: watchlist index of the top-1; ``raw``: its cosine ``s1``; ``second``: ``s2``;
    ``cohort_size``: M; ``cohort_mean`` / ``cohort_std``: of the cohort scores T-norm uses.
    """

    best: int
    raw: float
    second: float
    margin: float
    margin_cohort: float
    tnorm: float
    gap: float
    cohort_size: int
    cohort_mean: float
    cohort_std: float


@dataclass(frozen=True)
class NormalisedBatch:
    """:class:`NormalisedScore` fields for P probes at once, each an array (P,)."""

    best: np.ndarray
    raw: np.ndarray
    second: np.ndarray
    margin: np.ndarray
    margin_cohort: np.ndarray
    tnorm: np.ndarray
    gap: np.ndarray
    cohort_size: int
    cohort_mean: np.ndarray
    cohort_std: np.ndarray

    def __len__(self) -> int:
        return int(self.best.shape[0])

    def probe(self, i: int) -> NormalisedScore:
        """Probe ``i`` as a :class:`NormalisedScore`."""
        return NormalisedScore(
            best=int(self.best[i]), raw=float(self.raw[i]), second=float(self.second[i]),
            margin=float(self.margin[i]), margin_cohort=float(self.margin_cohort[i]),
            tnorm=float(self.tnorm[i]), gap=float(self.gap[i]), cohort_size=self.cohort_size,
            cohort_mean=float(self.cohort_mean[i]), cohort_std=float(self.cohort_std[i]))


def _matrix(x: np.ndarray, what: str) -> np.ndarray:
    m = np.asarray(x, dtype=np.float64)
    if m.ndim != 2:
        raise ConfigError(f"normalise: {what} must be (P, N), got shape {m.shape}")
    if m.size and not np.all(np.isfinite(m)):
        raise ConfigError(f"normalise: {what} holds non-finite scores")
    return m


def normalise_batch(scores: np.ndarray, cohort: np.ndarray | None = None, *,
                    use_watchlist: bool = True, top_k: int = DEFAULT_TOP_K,
                    tnorm_top_k: int = 0) -> NormalisedBatch:
    """Normalise P probes: ``scores`` (P, G) against the watchlist, ``cohort`` (P, C) against
    the explicit cohort (None: none). ``use_watchlist``: the other watchlist scores join the
    cohort; ``top_k``: cohort scores of the gap; ``tnorm_top_k``: 0 = plain T-norm over the
    whole cohort, k > 0 = adaptive T-norm over its k highest scores."""
    s = _matrix(scores, "scores")
    p, g = s.shape
    c = np.zeros((p, 0)) if cohort is None else _matrix(cohort, "cohort")
    if c.shape[0] != p:
        raise ConfigError(f"normalise: {p} probes against the watchlist but {c.shape[0]} "
                          f"against the cohort")
    if g == 0:
        raise ConfigError("normalise: an empty watchlist has no top-1 to normalise")
    if top_k < 1 or tnorm_top_k < 0:
        raise ConfigError(f"normalise: need top_k >= 1 and tnorm_top_k >= 0, got {top_k}, "
                          f"{tnorm_top_k}")
    rows = np.arange(p)
    best = np.argmax(s, axis=1) if p else np.zeros(0, np.int64)
    raw = s[rows, best]
    others = s.copy()
    others[rows, best] = -np.inf
    # Descending sort of the cohort scores; the top-1's slot (-inf) sorts last and is dropped.
    parts = [np.sort(others, axis=1)[:, ::-1][:, :g - 1]] if use_watchlist else []
    pool = np.concatenate([*parts, np.sort(c, axis=1)[:, ::-1]], axis=1)
    m = pool.shape[1]
    if m < MIN_COHORT:
        raise ConfigError(f"normalise: {m} cohort score(s), need at least {MIN_COHORT} (add "
                          f"cohort faces: `cctv-sr gallery cohort`)")
    pool = np.sort(pool, axis=1)[:, ::-1]
    t_pool = pool[:, :tnorm_top_k] if 0 < tnorm_top_k < m else pool
    mean = t_pool.mean(axis=1)
    std = np.maximum(t_pool.std(axis=1), MIN_STD)
    second = others.max(axis=1) if g > 1 else np.full(p, -np.inf)
    rival = np.maximum(second, c.max(axis=1)) if c.shape[1] else second
    return NormalisedBatch(
        best=best.astype(np.int64), raw=raw, second=second, margin=raw - second,
        margin_cohort=raw - rival, tnorm=(raw - mean) / std,
        gap=raw - pool[:, :min(top_k, m)].mean(axis=1), cohort_size=m, cohort_mean=mean,
        cohort_std=std)


def normalise(scores: np.ndarray, cohort: np.ndarray | None = None, *,
              use_watchlist: bool = True, top_k: int = DEFAULT_TOP_K,
              tnorm_top_k: int = 0) -> NormalisedScore:
    """One probe: ``scores`` (G,) against the watchlist, ``cohort`` (C,) against the
    explicit cohort (see :func:`normalise_batch`)."""
    s = np.asarray(scores, np.float64)
    if s.ndim != 1:
        raise ConfigError(f"normalise: scores must be (G,), got shape {s.shape}")
    c = None if cohort is None else np.asarray(cohort, np.float64).reshape(1, -1)
    return normalise_batch(s[None], c, use_watchlist=use_watchlist, top_k=top_k,
                           tnorm_top_k=tnorm_top_k).probe(0)


def fused(batch: NormalisedBatch | NormalisedScore) -> Any:
    """``raw + margin`` (= 2 s1 - s2) of a batch (array) or of one probe (float); +inf with
    a single watchlist template (no second score)."""
    return batch.raw + batch.margin


def margin_gap(margins: np.ndarray, keep: float = 0.9) -> float:
    """The calibrated gap g: the largest gap that a share ``keep`` of ``margins`` (the margins
    of genuine top-1 hits) reach, i.e. their (1 - keep) quantile, lower order statistic:
    ``sorted(margins)[floor((1 - keep) * n)]``. NaN with no margin."""
    if not 0.0 < keep <= 1.0:
        raise ConfigError(f"margin_gap: keep must be in (0, 1], got {keep}")
    m = np.sort(np.asarray(margins, np.float64))
    m = m[np.isfinite(m)]
    if m.size == 0:
        return math.nan
    return float(m[min(m.size - 1, int(math.floor((1.0 - keep) * m.size + 1e-9)))])


def passes_margin(value: np.ndarray, margin: np.ndarray, gap: float) -> np.ndarray:
    """``value`` where ``margin >= gap``, else -inf (never named): the margin rule folded
    into one decision score, so ``named = result >= t`` means ``value >= t and margin >= g``."""
    v = np.asarray(value, np.float64)
    return np.where(np.asarray(margin, np.float64) >= gap, v, -np.inf)
