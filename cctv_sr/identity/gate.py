"""The gate before matching: a track is matched only when enough of its faces are real,
usable faces (issue 7).

Each face is judged on its :class:`~cctv_sr.records.Quality` terms (native size, sharpness,
landmark geometry, detector score) and on a face / non-face score from a verifier that looks
at the aligned crop itself (:class:`cctv_sr.face.faceness.OnetFaceness`). A track is matchable
when at least ``min_usable`` of its faces pass every bar and most of its faces are faces;
otherwise it is reported as not matchable with the reason, never dropped silently. Short
tracks rest on little evidence: :func:`evidence_far_factor` says how much stricter the
per-pair false-accept rate of their match must be.

Example::

    faces = [FaceEvidence(f.face_id, f.quality, s) for f, s in zip(faces, verifier.score(crops))]
    verdict = gate_track(faces)
    if verdict.matchable:
        pair_far = base_pair_far * evidence_far_factor(verdict.n_usable)

The bars are in :class:`GateConfig`; each default names the measurement that set it
(samples/measure_gate.py on LFW dev, the talking-head clips and hand-labelled detections of
the cctv_like clips, labels in samples/gate_labels.json).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cctv_sr.config import GateConfig
from cctv_sr.records import Quality

DEFAULT_GATE = GateConfig()


@dataclass(frozen=True)
class FaceEvidence:
    """What the gate needs of one face: its id, its quality terms and its faceness score."""

    face_id: str
    quality: Quality
    faceness: float


@dataclass(frozen=True)
class FaceVerdict:
    """One face judged: usable, or the first bar it failed (``reason``, ``failed``)."""

    face_id: str
    usable: bool
    failed: str | None  # "not a face" | "too small" | "too blurred" | "bad landmarks" |
    #                     "low detector score", or None
    reason: str | None


@dataclass(frozen=True)
class TrackGate:
    """One track judged: matchable, or why not; ``usable_ids`` are the faces to match on."""

    matchable: bool
    reason: str | None
    n_faces: int
    n_usable: int
    n_not_face: int
    best_faceness: float
    best_size_px: float
    usable_ids: tuple[str, ...]
    far_factor: float  # multiply the decision's per-pair FAR by this (1.0: no change)
    faces: tuple[FaceVerdict, ...]


def judge_face(face: FaceEvidence, cfg: GateConfig = DEFAULT_GATE) -> FaceVerdict:
    """The per-face bars, in order: faceness, size, sharpness, landmarks, detector score."""
    q = face.quality
    if math.isnan(face.faceness):  # no verifier ran: say so rather than "not a face"
        return FaceVerdict(face.face_id, False, "faceness not scored",
                           "faceness not scored (no face / non-face check ran)")
    checks = (
        ("not a face", face.faceness, cfg.min_faceness, "faceness"),
        ("too small", q.size_px, cfg.min_size_px, "px"),
        ("too blurred", q.sharpness, cfg.min_sharpness, "sharpness"),
        ("bad landmarks", q.frontal, cfg.min_frontal, "frontal"),
        ("low detector score", q.det_score, cfg.min_det_score, "score"),
    )
    for failed, value, bar, unit in checks:
        if not value >= bar:  # NaN fails
            return FaceVerdict(face.face_id, False, failed,
                               f"{failed} ({unit} {value:.3g} < {bar:.3g})")
    return FaceVerdict(face.face_id, True, None, None)


def evidence_far_factor(n_usable: int, cfg: GateConfig = DEFAULT_GATE) -> float:
    """How much stricter the per-pair FAR of a decision resting on ``n_usable`` faces must be.

    1.0 from ``full_evidence_faces`` on; ``short_track_far_factor`` at ``min_usable``; in
    between interpolated in log FAR (defaults: 2 faces 0.1, 3 faces 0.22, 4 faces 0.46, 5+ 1).
    Below ``min_usable`` the track is not matchable at all (0.0). The lead's wiring: the
    threshold is the calibrated one at ``pair_far * factor`` (``Thresholds.for_watchlist``
    interpolates in log FAR, so this is a fixed step up the calibrated curve).
    """
    if n_usable < cfg.min_usable:
        return 0.0
    if n_usable >= cfg.full_evidence_faces or cfg.full_evidence_faces == cfg.min_usable:
        return 1.0
    span = cfg.full_evidence_faces - cfg.min_usable
    missing = (cfg.full_evidence_faces - n_usable) / span
    return float(10.0 ** (missing * math.log10(cfg.short_track_far_factor)))


def _count(failed: dict[str, int], n: int) -> str:
    return ", ".join(f"{k} on {v} of {n}" for k, v in failed.items())


def gate_track(faces: Sequence[FaceEvidence], cfg: GateConfig = DEFAULT_GATE) -> TrackGate:
    """Judge a track on its faces (all it has, or the ones embedded for matching)."""
    verdicts = tuple(judge_face(f, cfg) for f in faces)
    n = len(verdicts)
    usable = tuple(v.face_id for v in verdicts if v.usable)
    not_face = sum(v.failed == "not a face" for v in verdicts)
    scored = [f.faceness for f in faces if not math.isnan(f.faceness)]
    best_faceness = max(scored, default=float("nan"))
    best_size = max((f.quality.size_px for f in faces), default=float("nan"))
    failed: dict[str, int] = {}
    for v in verdicts:
        if v.failed is not None:
            failed[v.failed] = failed.get(v.failed, 0) + 1
    reason: str | None = None
    if n == 0:
        reason = "no faces"
    elif not_face > cfg.max_not_face_share * n:
        reason = (f"not a face (faceness < {cfg.min_faceness:g} on {not_face} of {n} faces, "
                  f"best {best_faceness:.2f})")
    elif len(usable) < cfg.min_usable:
        detail = _count(failed, n)
        if not usable and failed.get("too small", 0) == n:
            reason = f"too small (best {best_size:.1f} px < {cfg.min_size_px:g} px)"
        else:
            reason = f"too few usable faces ({len(usable)} < {cfg.min_usable}" + (
                f"; {detail})" if detail else ")")
    matchable = reason is None
    return TrackGate(
        matchable=matchable,
        reason=reason,
        n_faces=n,
        n_usable=len(usable),
        n_not_face=not_face,
        best_faceness=float(best_faceness),
        best_size_px=float(best_size),
        usable_ids=usable,
        far_factor=evidence_far_factor(len(usable), cfg) if matchable else 0.0,
        faces=verdicts,
    )
