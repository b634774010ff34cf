"""Per-track identity: aggregate a track's face embeddings and match them against a gallery.

Each embedded face of a track contributes two vectors, one from its LR crop and one from its
SR crop, weighted by the face's quality. A track is scored three ways against every gallery
template (cosine): LR only, SR only, and combined (the mean of the two scores). The decision is
made on the combined score, and it also needs the LR score to clear the looser threshold: an
enhanced crop can add a face that is not there, so a match never rests on the SR crop alone.

Example::

    acc = TrackEmbeddings()
    acc.add(face_id, quality, lr_vec, sr_vec)
    result = match_track(acc, names, templates, Thresholds(0.35, 0.45), top_k=3)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cctv_sr.errors import ConfigError


@dataclass(frozen=True)
class Thresholds:
    """Cosine thresholds of one embedder, calibrated at two false-accept rates."""

    far_1e2: float  # looser: 1 impostor in 100 passes
    far_1e3: float  # stricter: 1 in 1000; the default decision threshold

    def __post_init__(self) -> None:
        if not -1.0 <= self.far_1e2 <= self.far_1e3 <= 1.0:
            raise ConfigError(f"thresholds must satisfy -1 <= far_1e2 <= far_1e3 <= 1, got "
                              f"{self.far_1e2}, {self.far_1e3}")


@dataclass(frozen=True)
class Candidate:
    name: str
    score: float
    lr: float | None = None  # for combined candidates: the two scores the combined one averages
    sr: float | None = None


@dataclass(frozen=True)
class TrackMatch:
    """The identity result of one track (one line of matches.jsonl)."""

    n_faces: int  # faces embedded for this decision
    lr: tuple[Candidate, ...]
    sr: tuple[Candidate, ...]
    combined: tuple[Candidate, ...]
    threshold: float
    decision: str | None  # the matched name, or None
    decision_lr: str | None  # what LR alone would decide (at the same threshold)
    decision_sr: str | None  # what SR alone would decide (never used on its own)


@dataclass
class TrackEmbeddings:
    """Accumulates one track's embedded faces (not thread-safe)."""

    face_ids: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    lr: list[np.ndarray] = field(default_factory=list)
    sr: list[np.ndarray] = field(default_factory=list)

    def add(self, face_id: str, quality: float, lr: np.ndarray, sr: np.ndarray) -> None:
        if face_id in self.face_ids:
            return  # the same face offered twice (best shot and time sample)
        self.face_ids.append(face_id)
        self.weights.append(max(float(quality), 1e-3))
        self.lr.append(np.asarray(lr, np.float32))
        self.sr.append(np.asarray(sr, np.float32))

    def __len__(self) -> int:
        return len(self.face_ids)


def aggregate(vectors: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Quality-weighted mean of L2-normalised vectors, re-normalised."""
    if not vectors:
        raise ConfigError("no embeddings to aggregate")
    w = np.asarray(weights, np.float64)[:, None]
    mean = (np.stack(vectors).astype(np.float64) * w).sum(0) / w.sum()
    norm = np.linalg.norm(mean)
    return (mean / norm if norm > 0 else mean).astype(np.float32)


def _ranked(names: list[str], scores: np.ndarray, top_k: int, lr: np.ndarray | None = None,
            sr: np.ndarray | None = None) -> tuple[Candidate, ...]:
    order = np.argsort(-scores, kind="stable")[:top_k]
    return tuple(
        Candidate(names[i], round(float(scores[i]), 4),
                  None if lr is None else round(float(lr[i]), 4),
                  None if sr is None else round(float(sr[i]), 4))
        for i in order
    )


def match_track(acc: TrackEmbeddings, names: list[str], templates: np.ndarray,
                thresholds: Thresholds, top_k: int = 3, threshold: float | None = None
                ) -> TrackMatch | None:
    """Score a track against the gallery; None when the track has no embedded face."""
    if len(acc) == 0 or not names:
        return None
    t = thresholds.far_1e3 if threshold is None else float(threshold)
    lr = templates @ aggregate(acc.lr, acc.weights)
    sr = templates @ aggregate(acc.sr, acc.weights)
    combined = (lr + sr) / 2.0
    k = min(top_k, len(names))

    def decide(scores: np.ndarray, extra_ok: np.ndarray | None = None) -> str | None:
        best = int(np.argmax(scores))
        ok = scores[best] >= t and (extra_ok is None or bool(extra_ok[best]))
        return names[best] if ok else None

    return TrackMatch(
        n_faces=len(acc),
        lr=_ranked(names, lr, k),
        sr=_ranked(names, sr, k),
        combined=_ranked(names, combined, k, lr, sr),
        threshold=t,
        decision=decide(combined, lr >= min(thresholds.far_1e2, t)),
        decision_lr=decide(lr),
        decision_sr=decide(sr),
    )
