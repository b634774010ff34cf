"""Writes a run's results into OUTDIR, incrementally, so a crash keeps what was done.

Layout::

    OUTDIR/run.json          input, sha256, settings, models, counts, timings, status
    OUTDIR/faces.jsonl       one line per detected face (written when its track ends)
    OUTDIR/tracks.jsonl      one line per track
    OUTDIR/tracks/<stream>_t<id>/<face_id>_lr.png and _sr.png   best shots per track
    OUTDIR/NOTICE.txt        enhanced faces are aids to identification, not evidence

Every JSONL line is flushed when written; run.json is replaced atomically.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cctv_sr import EVIDENCE_NOTE
from cctv_sr.config import OutputConfig
from cctv_sr.errors import OutputError
from cctv_sr.records import EnhancedFace
from cctv_sr.track.book import FaceRow, TrackEnd

log = logging.getLogger(__name__)

_RESULT_FILES = ("run.json", "faces.jsonl", "tracks.jsonl", "NOTICE.txt")


@dataclass
class WriteCounts:
    faces: int = 0
    faces_untracked: int = 0
    tracks: int = 0
    crops_written: int = 0
    crops_removed: int = 0


def _r(x: Any, nd: int = 2) -> Any:
    return np.round(np.asarray(x, dtype=np.float64), nd).tolist()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_run_json(outdir: Path) -> dict[str, Any]:
    """The run.json of a finished (or running) run in ``outdir``."""
    path = Path(outdir) / "run.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: cannot read run.json: {exc}") from None
    return data


class OutputWriter:
    """Owns OUTDIR; used from the writer thread only (``write_run_json`` from any one thread)."""

    def __init__(self, outdir: Path, cfg: OutputConfig, overwrite: bool = False) -> None:
        self.outdir = Path(outdir)
        self.cfg = cfg
        self.counts = WriteCounts()
        self.write_s = 0.0
        try:
            self.outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.outdir}: cannot create output directory: {exc}") from None
        if not os.access(self.outdir, os.W_OK):
            raise OutputError(f"{self.outdir}: output directory is not writable")
        existing = [n for n in _RESULT_FILES if (self.outdir / n).exists()]
        if existing and not overwrite:
            raise OutputError(
                f"{self.outdir}: already holds results ({', '.join(existing)}); "
                "choose another --out or pass --overwrite"
            )
        if overwrite:
            for name in existing:
                (self.outdir / name).unlink()
            shutil.rmtree(self.outdir / "tracks", ignore_errors=True)
        (self.outdir / "NOTICE.txt").write_text(EVIDENCE_NOTE + "\n", encoding="utf-8")
        self._faces = open(self.outdir / "faces.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        self._tracks = open(self.outdir / "tracks.jsonl", "w", encoding="utf-8")  # noqa: SIM115

    # paths ---------------------------------------------------------------------------------
    def track_dir(self, stream_id: str, track_id: int) -> Path:
        return self.outdir / "tracks" / f"{stream_id}_t{track_id:06d}"

    def crop_paths(self, stream_id: str, track_id: int, face_id: str) -> tuple[Path, Path]:
        d = self.track_dir(stream_id, track_id)
        ext = self.cfg.image_format
        return d / f"{face_id}_lr.{ext}", d / f"{face_id}_sr.{ext}"

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.outdir).as_posix()

    # writes --------------------------------------------------------------------------------
    def save_face(self, enhanced: EnhancedFace, evict: Iterable[str] = ()) -> None:
        t0 = time.perf_counter()
        face = enhanced.face
        lr_path, sr_path = self.crop_paths(face.stream_id, face.track_id, face.face_id)
        lr_path.parent.mkdir(parents=True, exist_ok=True)
        for path, image in ((lr_path, face.crop), (sr_path, enhanced.sr)):
            if not cv2.imwrite(str(path), image):
                raise OutputError(f"{path}: could not write image")
        self.counts.crops_written += 1
        for face_id in evict:
            for path in self.crop_paths(face.stream_id, face.track_id, face_id):
                path.unlink(missing_ok=True)
            self.counts.crops_removed += 1
        self.write_s += time.perf_counter() - t0

    def _face_line(self, row: FaceRow, kept: bool) -> dict[str, Any]:
        crop_lr = crop_sr = None
        if kept and row.track_id is not None and row.face_id is not None:
            lr, sr = self.crop_paths(row.stream_id, row.track_id, row.face_id)
            crop_lr, crop_sr = self._rel(lr), self._rel(sr)
        return {
            "stream": row.stream_id,
            "frame": row.frame_index,
            "pts": row.pts,
            "time_base": str(row.time_base),
            "seconds": None if row.seconds is None else round(row.seconds, 6),
            "det": row.det_index,
            "box": _r(row.xyxy),
            "score": round(float(row.score), 4),
            "landmarks": _r(row.kps),
            "track_id": row.track_id,
            "quality": None if row.quality is None
            else {k: round(v, 4) for k, v in asdict(row.quality).items()},
            "crop_lr": crop_lr,
            "crop_sr": crop_sr,
        }

    def write_untracked(self, rows: Iterable[FaceRow]) -> None:
        t0 = time.perf_counter()
        for row in rows:
            line = self._face_line(replace(row, track_id=None), kept=False)
            self._faces.write(json.dumps(line) + "\n")
            self.counts.faces += 1
            self.counts.faces_untracked += 1
        self._faces.flush()
        self.write_s += time.perf_counter() - t0

    def end_track(self, end: TrackEnd) -> None:
        if end.discarded:
            self.write_untracked(end.rows)
            return
        t0 = time.perf_counter()
        kept = set(end.kept)
        for row in end.rows:
            line = self._face_line(row, kept=row.face_id in kept)
            self._faces.write(json.dumps(line) + "\n")
            self.counts.faces += 1
        self._faces.flush()
        s = end.summary
        best = []
        for face_id in end.kept:
            lr, sr = self.crop_paths(s.stream_id, s.track_id, face_id)
            best.append({"face_id": face_id, "lr": self._rel(lr), "sr": self._rel(sr)})
        record = {
            "stream": s.stream_id,
            "track_id": s.track_id,
            "first_frame": s.first_frame,
            "last_frame": s.last_frame,
            "first_seconds": s.first_seconds,
            "last_seconds": s.last_seconds,
            "n_faces": s.n_faces,
            "best_frame": s.best_frame,
            "best_quality": round(s.best_quality, 4),
            "best_crops": best,
            "folder": self._rel(self.track_dir(s.stream_id, s.track_id)),
        }
        self._tracks.write(json.dumps(record) + "\n")
        self._tracks.flush()
        self.counts.tracks += 1
        self.write_s += time.perf_counter() - t0

    def write_run_json(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.outdir / "run.json", data)

    def close(self) -> None:
        for fh in (self._faces, self._tracks):
            if not fh.closed:
                fh.close()
