"""Identity output of a run: per-track matching against a gallery, written to matches.jsonl.

Lives in the writer thread: it collects the LR and SR vectors of each track's embedded faces
(best shots plus a sparse sample over time), and when the track ends it scores the track
against the gallery (:mod:`cctv_sr.identity.match`), writes one line to ``matches.jsonl`` and a
side-by-side image (best LR crop, its SR, the candidate's gallery photo) into the track folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cctv_sr import EVIDENCE_NOTE
from cctv_sr.identity.match import Thresholds, TrackEmbeddings, TrackMatch, match_track
from cctv_sr.io.outdir import OutputWriter
from cctv_sr.records import AlignedFace
from cctv_sr.track.book import TrackEnd

PANEL = 128


@dataclass(frozen=True, eq=False)
class FaceVectors:
    """One face's identity vectors: from its LR crop and from its SR crop (L2-normalised)."""

    lr: np.ndarray
    sr: np.ndarray


@dataclass
class MatchCounts:
    tracks_scored: int = 0
    tracks_matched: int = 0
    lr_only_would_match: int = 0  # tracks LR alone would have matched
    sr_only_would_match: int = 0  # tracks SR alone would have matched
    lr_sr_disagree: int = 0  # LR-only and SR-only decisions name different people (or one None)
    sr_only_rejected: int = 0  # SR alone said a name, the combined decision said no match


@dataclass(frozen=True)
class GalleryView:
    """What matching needs from a gallery: names, templates, and a photo per name."""

    names: list[str]
    templates: np.ndarray  # (P, D) float32, L2-normalised
    photos: dict[str, Path]  # one photo per person, for the side-by-side image


def _panel(image: np.ndarray | None, label: str) -> np.ndarray:
    out = np.full((PANEL + 18, PANEL, 3), 32, np.uint8)
    if image is not None:
        h, w = image.shape[:2]
        scale = PANEL / max(h, w)
        interp = cv2.INTER_NEAREST if scale > 2 else cv2.INTER_AREA if scale < 1 else (
            cv2.INTER_CUBIC)
        small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=interp)
        y0, x0 = (PANEL - small.shape[0]) // 2, (PANEL - small.shape[1]) // 2
        out[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    cv2.putText(out, label[:20], (3, PANEL + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                (230, 230, 230), 1, cv2.LINE_AA)
    return out


class IdentityWriter:
    """Per-track matching and matches.jsonl (used from the writer thread only)."""

    def __init__(self, writer: OutputWriter, gallery: GalleryView, thresholds: Thresholds,
                 top_k: int, threshold: float | None, embedder: dict[str, Any]) -> None:
        self.writer = writer
        self.gallery = gallery
        self.thresholds = thresholds
        self.top_k = top_k
        self.threshold = threshold
        self.embedder = embedder
        self.counts = MatchCounts()
        self.write_s = 0.0
        self._tracks: dict[tuple[str, int], TrackEmbeddings] = {}
        self._file = open(writer.outdir / "matches.jsonl", "w", encoding="utf-8")  # noqa: SIM115

    def add(self, face: AlignedFace, vectors: FaceVectors) -> None:
        acc = self._tracks.setdefault((face.stream_id, face.track_id), TrackEmbeddings())
        acc.add(face.face_id, face.quality.score, vectors.lr, vectors.sr)

    def end_track(self, end: TrackEnd) -> None:
        s = end.summary
        acc = self._tracks.pop((s.stream_id, s.track_id), None)
        if end.discarded or acc is None:
            return
        t0 = time.perf_counter()
        result = match_track(acc, self.gallery.names, self.gallery.templates, self.thresholds,
                             self.top_k, self.threshold)
        if result is None:
            return
        self._count(result)
        side_by_side = self._side_by_side(end, result)
        best = [self.writer.crop_paths(s.stream_id, s.track_id, f) for f in end.kept]
        line = {
            "stream": s.stream_id,
            "track_id": s.track_id,
            "first_seconds": s.first_seconds,
            "last_seconds": s.last_seconds,
            "n_faces": s.n_faces,
            "n_embedded": result.n_faces,
            "decision": result.decision,
            "decision_lr_only": result.decision_lr,
            "decision_sr_only": result.decision_sr,
            "threshold": round(result.threshold, 4),
            "candidates": self._candidates(result),
            "best_crops": [{"lr": self._rel(lr), "sr": self._rel(sr)} for lr, sr in best],
            "side_by_side": None if side_by_side is None else self._rel(side_by_side),
            "embedder": self.embedder,
            "notice": EVIDENCE_NOTE,
        }
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()
        self.write_s += time.perf_counter() - t0

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.writer.outdir).as_posix()

    @staticmethod
    def _candidates(result: TrackMatch) -> list[dict[str, Any]]:
        return [{"name": c.name, "score": c.score, "lr": c.lr, "sr": c.sr}
                for c in result.combined]

    def _count(self, r: TrackMatch) -> None:
        c = self.counts
        c.tracks_scored += 1
        c.tracks_matched += r.decision is not None
        c.lr_only_would_match += r.decision_lr is not None
        c.sr_only_would_match += r.decision_sr is not None
        c.lr_sr_disagree += r.decision_lr != r.decision_sr
        c.sr_only_rejected += r.decision_sr is not None and r.decision is None

    def _side_by_side(self, end: TrackEnd, result: TrackMatch) -> Path | None:
        if not end.kept:
            return None
        s = end.summary
        lr_path, sr_path = self.writer.crop_paths(s.stream_id, s.track_id, end.kept[0])
        name = result.decision or result.combined[0].name
        photo_path = self.gallery.photos.get(name)
        photo = cv2.imread(str(photo_path)) if photo_path is not None else None
        score = result.combined[0].score
        tag = f"match {score:.2f}" if result.decision else f"no match {score:.2f}"
        image = np.hstack([
            _panel(cv2.imread(str(lr_path)), "LR (input)"),
            _panel(cv2.imread(str(sr_path)), "SR (aid only)"),
            _panel(photo, f"{name}: {tag}"),
        ])
        out = self.writer.track_dir(s.stream_id, s.track_id) / "match.png"
        cv2.imwrite(str(out), image)
        return out

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def counts_dict(self) -> dict[str, int]:
        return asdict(self.counts)
