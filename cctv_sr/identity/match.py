"""Per-track identity: aggregate a track's face embeddings and match them against a gallery.

Each embedded face of a track contributes two vectors, one from its LR crop and one from its
SR crop, weighted by the face's quality. A track is scored three ways against every gallery
template (cosine): LR only, SR only, and combined (the mean of the two scores). The decision is
made on the combined score, and it also needs the LR score to clear the looser threshold: an
enhanced crop can add a face that is not there, so a match never rests on the SR crop alone.

With an LR identity head (:mod:`cctv_sr.embed.lrhead`: every face of the track also carries
the head's vector of its LR crop, in the embedder's space) there is a third score, head only,
and the head is the track's LR channel: combined is the mean of the head and SR scores, and
the head score (not the embedder's LR score) must clear the looser threshold. The embedder's
LR-only decision is still reported beside the head-only one.

Example::

    acc = TrackEmbeddings()
    acc.add(face_id, quality, lr_vec, sr_vec)       # head_vec as a fifth argument with a head
    result = match_track(acc, names, templates, Thresholds(0.35, 0.45), top_k=3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cctv_sr.errors import ConfigError, ContractError

MAX_PAIR_FAR = 1e-3  # the loosest per-pair FAR a watchlist decision uses, whatever its size


@dataclass(frozen=True)
class WatchlistThreshold:
    """The decision threshold for a gallery: the per-pair false-accept rate that names at most
    ``fpir`` of strangers against ``people`` entries, and the cosine it calibrates to."""

    threshold: float
    fpir: float
    people: int
    pair_far: float
    beyond_calibration: bool  # pair_far is finer than the finest calibrated FAR

    def describe(self) -> str:
        note = " (finer than calibrated: the finest calibrated threshold is used)" if (
            self.beyond_calibration) else ""
        who = "person" if self.people == 1 else "people"
        return (f"FPIR {self.fpir:g} against {self.people} {who}: per-pair FAR "
                f"{self.pair_far:.2e}, threshold {self.threshold:.4f}{note}")


@dataclass(frozen=True)
class Thresholds:
    """Cosine thresholds of one embedder, calibrated at per-pair false-accept rates.

    ``far_1e2`` and ``far_1e3`` are always known; ``tail`` adds finer ones as (FAR, threshold)
    pairs (e.g. 1e-4, 1e-5), measured with ``cctv-sr eval calibrate --fars``.
    """

    far_1e2: float  # looser: 1 impostor pair in 100 passes (also the LR-alone bar)
    far_1e3: float  # 1 in 1000
    tail: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if not -1.0 <= self.far_1e2 <= self.far_1e3 <= 1.0:
            raise ConfigError(f"thresholds must satisfy -1 <= far_1e2 <= far_1e3 <= 1, got "
                              f"{self.far_1e2}, {self.far_1e3}")
        points = self.points()
        if any(b[1] < a[1] for a, b in zip(points, points[1:])):
            raise ConfigError(f"thresholds must grow as the FAR falls, got {points}")

    def points(self) -> list[tuple[float, float]]:
        """(FAR, threshold), FAR falling."""
        pts = {1e-2: self.far_1e2, 1e-3: self.far_1e3, **dict(self.tail)}
        return sorted(pts.items(), reverse=True)

    def for_watchlist(self, fpir: float, people: int, max_pair_far: float = MAX_PAIR_FAR,
                      far_factor: float = 1.0) -> WatchlistThreshold:
        """The threshold that names at most a share ``fpir`` of strangers against a gallery of
        ``people``: a stranger is named when any of the ``people`` scores clears it, so the
        per-pair FAR must be 1 - (1 - fpir) ** (1 / people); the threshold is interpolated
        in log10(FAR) between calibrated points (clamped to the calibrated range).

        The per-pair FAR is never looser than ``max_pair_far``: small galleries would
        otherwise get a looser threshold than the FAR 1e-3 one, and real footage scores
        strangers higher than the LFW pairs the points were measured on (dlib named 10 of 90
        tracks of absent people without this floor, 7 with it; see samples/absent_gallery_runs.py).
        ``far_factor`` (0 < f <= 1) then makes it stricter, for decisions that rest on few
        faces (:func:`cctv_sr.identity.gate.evidence_far_factor`).
        """
        if not 0.0 < fpir < 1.0 or people < 1 or not 0.0 < far_factor <= 1.0:
            raise ConfigError(f"need 0 < fpir < 1, at least one person and 0 < far_factor <= 1, "
                              f"got {fpir}, {people}, {far_factor}")
        pair_far = min(1.0 - (1.0 - fpir) ** (1.0 / people), max_pair_far) * far_factor
        pts = self.points()
        if pair_far >= pts[0][0]:
            return WatchlistThreshold(pts[0][1], fpir, people, pair_far, False)
        if pair_far <= pts[-1][0]:
            beyond = pair_far < pts[-1][0] * (1 - 1e-9)
            return WatchlistThreshold(pts[-1][1], fpir, people, pair_far, beyond)
        x = math.log10(pair_far)
        for (f0, t0), (f1, t1) in zip(pts, pts[1:]):
            if f1 <= pair_far <= f0:
                w = (math.log10(f0) - x) / (math.log10(f0) - math.log10(f1))
                return WatchlistThreshold(t0 + w * (t1 - t0), fpir, people, pair_far, False)
        raise ConfigError(f"no calibrated interval holds FAR {pair_far}")  # pragma: no cover


@dataclass(frozen=True)
class DecisionRule:
    """How a run picks a track's threshold: a fixed cosine set by the user, or the watchlist
    rule (``fpir`` over ``people``) on the thresholds of the track's face size, made stricter
    by the track's evidence factor.

    ``by_size`` holds thresholds calibrated on probes degraded to a crop side (e.g. 16, 24,
    32 px, ``eval calibrate --sizes``), smallest first; a face of native size s uses those of
    the smallest calibrated side at or above s (the higher, safer threshold of the two sides
    around it), and ``thresholds`` (full resolution) above the largest.
    """

    thresholds: Thresholds
    fpir: float
    people: int
    fixed: float | None = None
    by_size: tuple[tuple[int, Thresholds], ...] = ()

    def __post_init__(self) -> None:
        sides = [side for side, _ in self.by_size]
        if sides != sorted(set(sides)) or any(side < 1 for side in sides):
            raise ConfigError(f"size thresholds need distinct sides >= 1, smallest first, got "
                              f"{sides}")

    def thresholds_for(self, size_px: float | None = None) -> Thresholds:
        """The calibrated thresholds for a face of native size ``size_px`` (None: HR)."""
        if size_px is not None:
            for side, th in self.by_size:
                if size_px <= side:
                    return th
        return self.thresholds

    def size_bucket(self, size_px: float | None = None) -> str:
        """Which calibration ``thresholds_for`` uses: ``"hr"`` or the side, e.g. ``"24"``."""
        if size_px is not None:
            for side, _ in self.by_size:
                if size_px <= side:
                    return str(side)
        return "hr"

    def choose(self, far_factor: float = 1.0, size_px: float | None = None
               ) -> WatchlistThreshold | None:
        """The watchlist threshold for a track (None when the user fixed the threshold)."""
        if self.fixed is not None:
            return None
        return self.thresholds_for(size_px).for_watchlist(self.fpir, self.people,
                                                          far_factor=far_factor)

    def threshold(self, far_factor: float = 1.0, size_px: float | None = None) -> float:
        """The cosine threshold; a fixed ``match.threshold`` ignores ``far_factor``."""
        if self.fixed is not None:
            return self.fixed
        return self.thresholds_for(size_px).for_watchlist(self.fpir, self.people,
                                                          far_factor=far_factor).threshold


@dataclass(frozen=True)
class Candidate:
    name: str
    score: float
    lr: float | None = None  # for combined candidates: the embedder's LR and SR scores (the
    sr: float | None = None  # combined one averages these, or head and sr with a head)
    head: float | None = None  # the LR identity head's score (None: no head ran)


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
    margin: float | None  # combined top-1 minus top-2 score (None with one gallery person)
    reason: str | None  # why there is no match (None when matched)
    head: tuple[Candidate, ...] = ()  # head-only candidates (empty: no head ran)
    decision_head: str | None = None  # what the head alone would decide (same threshold)
    n_frames: int = 0  # frames the decision rests on (the faces and their windows' frames)


@dataclass
class TrackEmbeddings:
    """Accumulates one track's embedded faces (not thread-safe)."""

    face_ids: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    lr: list[np.ndarray] = field(default_factory=list)
    sr: list[np.ndarray] = field(default_factory=list)
    head: list[np.ndarray] = field(default_factory=list)  # every face's, or empty: no head
    frames: list[int] = field(default_factory=list)  # frames each face's vectors rest on

    def add(self, face_id: str, quality: float, lr: np.ndarray, sr: np.ndarray,
            head: np.ndarray | None = None, frames: int = 1) -> None:
        """One face's vectors; ``head`` (the LR head's) for every face of a track or none."""
        if face_id in self.face_ids:
            return  # the same face offered twice (best shot and time sample)
        if self.face_ids and (head is None) != (not self.head):
            raise ContractError(f"track embeddings: face {face_id} has "
                                f"{'no' if head is None else 'a'} head vector, the track's "
                                f"earlier faces {'do' if self.head else 'do not'}")
        self.face_ids.append(face_id)
        self.weights.append(max(float(quality), 1e-3))
        self.lr.append(np.asarray(lr, np.float32))
        self.sr.append(np.asarray(sr, np.float32))
        self.frames.append(max(1, int(frames)))
        if head is not None:
            self.head.append(np.asarray(head, np.float32))

    def __len__(self) -> int:
        return len(self.face_ids)

    def subset(self, face_ids: set[str] | frozenset[str] | tuple[str, ...]) -> TrackEmbeddings:
        """The faces whose id is in ``face_ids`` (e.g. those the gate found usable)."""
        keep = [i for i, f in enumerate(self.face_ids) if f in face_ids]
        return TrackEmbeddings([self.face_ids[i] for i in keep], [self.weights[i] for i in keep],
                               [self.lr[i] for i in keep], [self.sr[i] for i in keep],
                               [self.head[i] for i in keep] if self.head else [],
                               [self.frames[i] for i in keep])


def aggregate(vectors: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Quality-weighted mean of L2-normalised vectors, re-normalised."""
    if not vectors:
        raise ConfigError("no embeddings to aggregate")
    w = np.asarray(weights, np.float64)[:, None]
    mean = (np.stack(vectors).astype(np.float64) * w).sum(0) / w.sum()
    norm = np.linalg.norm(mean)
    return (mean / norm if norm > 0 else mean).astype(np.float32)


def _ranked(names: list[str], scores: np.ndarray, top_k: int, lr: np.ndarray | None = None,
            sr: np.ndarray | None = None, head: np.ndarray | None = None
            ) -> tuple[Candidate, ...]:
    order = np.argsort(-scores, kind="stable")[:top_k]

    def part(x: np.ndarray | None, i: int) -> float | None:
        return None if x is None else round(float(x[i]), 4)

    return tuple(Candidate(names[i], round(float(scores[i]), 4), part(lr, i), part(sr, i),
                           part(head, i)) for i in order)


def match_track(acc: TrackEmbeddings, names: list[str], templates: np.ndarray,
                thresholds: Thresholds, top_k: int = 3, threshold: float | None = None
                ) -> TrackMatch | None:
    """Score a track against the gallery; None when the track has no embedded face.

    With head vectors the head score stands in for the embedder's LR score in the combined
    score and the LR bar (module docstring)."""
    if len(acc) == 0 or not names:
        return None
    t = thresholds.far_1e3 if threshold is None else float(threshold)
    lr = templates @ aggregate(acc.lr, acc.weights)
    sr = templates @ aggregate(acc.sr, acc.weights)
    head = templates @ aggregate(acc.head, acc.weights) if acc.head else None
    lr_channel = lr if head is None else head  # the track's LR evidence
    combined = (lr_channel + sr) / 2.0
    k = min(top_k, len(names))

    lr_bar = min(thresholds.far_1e2, t)

    def decide(scores: np.ndarray, extra_ok: np.ndarray | None = None) -> str | None:
        best = int(np.argmax(scores))
        ok = scores[best] >= t and (extra_ok is None or bool(extra_ok[best]))
        return names[best] if ok else None

    decision = decide(combined, lr_channel >= lr_bar)
    top = int(np.argmax(combined))
    reason = None
    if decision is None:
        channel = "LR" if head is None else "head"
        reason = (f"best {combined[top]:.3f} < {t:.3f}" if combined[top] < t
                  else f"{channel} score {lr_channel[top]:.3f} < {lr_bar:.3f}")
    ordered = np.sort(combined)[::-1]
    margin = round(float(ordered[0] - ordered[1]), 4) if len(ordered) > 1 else None
    return TrackMatch(
        n_faces=len(acc),
        lr=_ranked(names, lr, k),
        sr=_ranked(names, sr, k),
        combined=_ranked(names, combined, k, lr, sr, head),
        threshold=t,
        decision=decision,
        decision_lr=decide(lr),
        decision_sr=decide(sr),
        margin=margin,
        reason=reason,
        head=() if head is None else _ranked(names, head, k),
        decision_head=None if head is None else decide(head),
        n_frames=sum(acc.frames),
    )
