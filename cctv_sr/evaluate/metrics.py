"""Identification metrics on a probe x gallery similarity matrix (docs/EVAL.md 1.4 and 1b).

``scores[i, j]`` is the similarity (higher = more alike) of probe ``i`` to gallery identity
``j``; ``labels[i]`` is the gallery index of probe ``i``'s own identity.

* rank-1: the share of probes whose best-scoring gallery identity is their own.
* TAR at FAR: genuine scores are each probe against its own identity; impostor scores are each
  probe against every OTHER gallery identity. The threshold is the impostor score that leaves at
  most ``far`` of the impostors strictly above it (the ``k``-th largest impostor score,
  ``k = floor(far * n_impostors)``, 0-based); TAR is the share of genuine scores strictly above.
* open set (watchlists): FPIR, FNIR, the threshold at a target FPIR and the DET curve; the
  rules are written out above :class:`OpenSetScores`.

Example::

    rank1(np.array([[0.9, 0.1], [0.7, 0.2]]), np.array([0, 1]))   # 0.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cctv_sr.errors import ConfigError


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ConfigError(f"metrics: expected scores (P, G) and labels (P,), got "
                          f"{scores.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ConfigError("metrics: a label is not a gallery index")
    return scores, labels


def similarity(probe_emb: np.ndarray, gallery_emb: np.ndarray) -> np.ndarray:
    """Cosine similarity of L2-normalised embeddings, (P, G) float64."""
    return np.asarray(probe_emb, np.float64) @ np.asarray(gallery_emb, np.float64).T


def rank1(scores: np.ndarray, labels: np.ndarray) -> float:
    """Share of probes whose top gallery identity is their own (NaN with no probes)."""
    scores, labels = _check(scores, labels)
    if scores.shape[0] == 0:
        return math.nan
    return float(np.mean(np.argmax(scores, axis=1) == labels))


def genuine_impostor(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Genuine scores (P,) and impostor scores (P * (G - 1),)."""
    scores, labels = _check(scores, labels)
    rows = np.arange(scores.shape[0])
    genuine = scores[rows, labels]
    mask = np.ones(scores.shape, dtype=bool)
    mask[rows, labels] = False
    return genuine, scores[mask]


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """The score above which at most ``far`` of the impostors lie (+inf with none)."""
    if not 0.0 <= far <= 1.0:
        raise ConfigError(f"metrics: FAR must be in [0, 1], got {far}")
    impostor = np.sort(np.asarray(impostor, np.float64))[::-1]
    if impostor.size == 0:
        return math.inf
    k = int(math.floor(far * impostor.size + 1e-9))
    return float(impostor[k]) if k < impostor.size else -math.inf


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float = 1e-2) -> float:
    """True accept rate at the threshold giving FAR <= ``far`` (NaN with no probes or no
    impostors)."""
    genuine, impostor = genuine_impostor(scores, labels)
    if genuine.size == 0 or impostor.size == 0:
        return math.nan
    return float(np.mean(genuine > threshold_at_far(impostor, far)))


# ---------------------------------------------------------------------- open set (EVAL.md 1b)
#
# A watchlist search names a probe when its best gallery score REACHES the threshold t
# (``score >= t``, the rule of ``identity/match.py``). ``labels[i] == -1`` marks a stranger
# probe (its identity is not in the gallery).
#
# * FPIR(t): share of stranger probes whose best gallery score is >= t.
# * FNIR(t): share of listed probes NOT matched to their own identity at t: their own identity
#   is not the top-1 (ties for top-1 go to the lower gallery index, as np.argmax and rank-1),
#   or its score is below t.
# * Threshold at a target FPIR f, from the S stranger best scores sorted high to low
#   (s_0 >= s_1 >= ...): k = floor(f * S); t = the next float above s_k, so exactly the
#   strangers strictly above s_k are named and FPIR(t) <= f. Ties at s_k are all left
#   unnamed, so with ties FPIR(t) may fall below f (never above). With S <= 1 / f (k = 0) the
#   threshold is just above the top stranger score: FPIR 0, the finest figure S strangers
#   can resolve. k >= S (f = 1): t = -inf.
# * Undefined figures are NaN: FPIR with no stranger, FNIR with no listed probe, and anything
#   at a target FPIR with no stranger (no threshold can be read off).


@dataclass(frozen=True)
class OpenSetScores:
    """What the open-set figures need from a (P, G) score matrix.

    ``stranger_best``: (S,) best gallery score of each stranger probe (-inf with an empty
    gallery: nobody can be named); ``listed_hit``: (L,) per listed probe the score of its own
    identity when that identity is the top-1, else -inf (never matched at any threshold).
    """

    stranger_best: np.ndarray
    listed_hit: np.ndarray


@dataclass(frozen=True)
class DetCurve:
    """FNIR against FPIR at every distinct threshold, thresholds from high to low."""

    thresholds: np.ndarray
    fpir: np.ndarray
    fnir: np.ndarray


def open_set_scores(scores: np.ndarray, labels: np.ndarray) -> OpenSetScores:
    """Split ``scores`` (P, G) by ``labels`` (P,; -1 = stranger, else the gallery index)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ConfigError(f"metrics: expected scores (P, G) and labels (P,), got "
                          f"{scores.shape} and {labels.shape}")
    if labels.size and (labels.min() < -1 or labels.max() >= scores.shape[1]):
        raise ConfigError("metrics: a label is neither -1 (stranger) nor a gallery index")
    stranger = labels == -1
    if scores.shape[1] == 0:
        return OpenSetScores(np.full(int(stranger.sum()), -math.inf),
                             np.full(int((~stranger).sum()), -math.inf))
    best = scores.max(axis=1)
    listed = np.flatnonzero(~stranger)
    own = labels[listed]
    top1 = np.argmax(scores[listed], axis=1) == own
    hit = np.where(top1, scores[listed, own], -math.inf)
    return OpenSetScores(stranger_best=best[stranger], listed_hit=hit)


def fpir_at(stranger_best: np.ndarray, threshold: float) -> float:
    """Share of strangers whose best score is >= ``threshold`` (NaN with no stranger)."""
    s = np.asarray(stranger_best, np.float64)
    if s.size == 0 or math.isnan(threshold):
        return math.nan
    return float(np.mean((s > -math.inf) & (s >= threshold)))  # -inf: nobody to name


def fnir_at(listed_hit: np.ndarray, threshold: float) -> float:
    """Share of listed probes not matched to their own identity at ``threshold`` (NaN with no
    listed probe)."""
    h = np.asarray(listed_hit, np.float64)
    if h.size == 0 or math.isnan(threshold):
        return math.nan
    return float(np.mean(~((h > -math.inf) & (h >= threshold))))  # -inf: never matched


def threshold_at_fpir(stranger_best: np.ndarray, fpir: float) -> float:
    """The lowest threshold whose FPIR is at most ``fpir`` (see the rules above; NaN with no
    stranger)."""
    if not 0.0 <= fpir <= 1.0:
        raise ConfigError(f"metrics: FPIR must be in [0, 1], got {fpir}")
    s = np.sort(np.asarray(stranger_best, np.float64))[::-1]
    if s.size == 0:
        return math.nan
    k = int(math.floor(fpir * s.size + 1e-9))
    if k >= s.size:
        return -math.inf
    return float(np.nextafter(s[k], math.inf))


def fnir_at_fpir(os_scores: OpenSetScores, fpir: float) -> float:
    """FNIR at the threshold of :func:`threshold_at_fpir` (NaN when either side is empty)."""
    return fnir_at(os_scores.listed_hit, threshold_at_fpir(os_scores.stranger_best, fpir))


def det_curve(os_scores: OpenSetScores) -> DetCurve:
    """(FPIR, FNIR) at +inf and at every distinct finite score of either side (empty arrays
    when either side has no probe)."""
    s = np.sort(np.asarray(os_scores.stranger_best, np.float64))
    h = np.sort(np.asarray(os_scores.listed_hit, np.float64))
    if s.size == 0 or h.size == 0:
        empty = np.zeros(0)
        return DetCurve(empty, empty, empty)
    values = np.concatenate([s, h])
    t = np.concatenate([[math.inf], np.unique(values[np.isfinite(values)])[::-1]])
    fpir = (s.size - np.searchsorted(s, t, side="left")) / s.size
    fnir = 1.0 - (h.size - np.searchsorted(h, t, side="left")) / h.size
    return DetCurve(thresholds=t, fpir=fpir, fnir=fnir)
