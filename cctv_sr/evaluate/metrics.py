"""Closed-set identification metrics on a probe x gallery similarity matrix (docs/EVAL.md 1.4).

``scores[i, j]`` is the similarity (higher = more alike) of probe ``i`` to gallery identity
``j``; ``labels[i]`` is the gallery index of probe ``i``'s own identity.

* rank-1: the share of probes whose best-scoring gallery identity is their own.
* TAR at FAR: genuine scores are each probe against its own identity; impostor scores are each
  probe against every OTHER gallery identity. The threshold is the impostor score that leaves at
  most ``far`` of the impostors strictly above it (the ``k``-th largest impostor score,
  ``k = floor(far * n_impostors)``, 0-based); TAR is the share of genuine scores strictly above.

Example::

    rank1(np.array([[0.9, 0.1], [0.7, 0.2]]), np.array([0, 1]))   # 0.5
"""

from __future__ import annotations

import math

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
