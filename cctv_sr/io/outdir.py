"""Writes a run's results into OUTDIR, incrementally, so a crash keeps what was done.

Layout::

    OUTDIR/run.json          input, sha256, settings, models, counts, timings, status
    OUTDIR/faces.jsonl       one line per detected face, in time order (frame, detection)
    OUTDIR/tracks.jsonl      one line per track, in order of first appearance
    OUTDIR/tracks/<stream>_t<id>/<face_id>_lr.png and _sr.png   best shots per track
    OUTDIR/NOTICE.txt        enhanced faces are aids to identification, not evidence

A line is written (and flushed) as soon as it is final and every earlier line is written
(:mod:`cctv_sr.io.jsonl`); run.json is replaced atomically. Line formats:
:mod:`cctv_sr.io.lines`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from cctv_sr import EVIDENCE_NOTE
from cctv_sr.config import OutputConfig
from cctv_sr.errors import OutputError
from cctv_sr.io.jsonl import OrderedJsonl
from cctv_sr.io.lines import CropRef, FaceLine, TrackLine, to_line
from cctv_sr.io.live import StreamClock
from cctv_sr.records import (
    EnhancedFace,
    FaceRow,
    FaceRows,
    Saved,
    TrackEnd,
    WriterMessage,
)

log = logging.getLogger(__name__)

_RESULT_FILES = ("run.json", "faces.jsonl", "tracks.jsonl", "NOTICE.txt", "events.jsonl",
                 "matches.jsonl", "report.html", "annotated.mp4")


@dataclass
class WriteCounts:
    faces: int = 0
    faces_untracked: int = 0
    tracks: int = 0
    crops_written: int = 0
    crops_removed: int = 0


_JSON_SLACK = 4096  # bytes of trailing whitespace run.json keeps for its last rewrite


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON: a temporary file renamed over it, so readers
    never see half a file. On a full disk, where the copy cannot be written, the file is
    rewritten in place instead, in blocks it already owns: it ends in up to 4 KiB of
    whitespace (valid JSON) so that the final ``failed`` record still fits. The temporary file
    never outlives a failure. Raises OutputError (one line) when neither works."""
    text = (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    body = text + b" " * (_JSON_SLACK - len(text) % _JSON_SLACK) + b"\n"
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(body)
        os.replace(tmp, path)
        return
    except OSError as exc:
        first = exc
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            log.debug("could not remove %s", tmp, exc_info=True)
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if len(text) + 1 > size:
        raise OutputError.cannot_write(path, first) from None
    try:  # in place, within the file's own size: the text, then blanks to the old length
        with open(path, "r+b") as handle:
            handle.write(text)
            handle.write(b" " * (size - handle.tell() - 1) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise OutputError.cannot_write(path, exc) from None
    log.warning("%s: rewritten in place (%s)", path, first.strerror or first)


def _why(path: Path) -> str:
    """What a failed image write most likely means (OpenCV gives no reason)."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return ""
    return f" (No space left on device: {free} bytes free)" if free < (1 << 20) else ""


class OutputWriter:
    """Owns OUTDIR; used from the writer thread only (``write_run_json`` from any one thread)."""

    def __init__(self, outdir: Path, cfg: OutputConfig, overwrite: bool = False,
                 clock: StreamClock | None = None) -> None:
        self.outdir = Path(outdir)
        self.cfg = cfg
        self.clock = clock if clock is not None else StreamClock()  # stream seconds -> UTC
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
        try:
            (self.outdir / "NOTICE.txt").write_text(EVIDENCE_NOTE + "\n", encoding="utf-8")
        except OSError as exc:
            raise OutputError.cannot_write(self.outdir, exc) from None
        self._faces = OrderedJsonl(self.outdir / "faces.jsonl")
        self._tracks = OrderedJsonl(self.outdir / "tracks.jsonl")
        self._final_before: dict[str, int | None] = {}

    # paths ---------------------------------------------------------------------------------
    def track_dir(self, stream_id: str, track_id: int) -> Path:
        return self.outdir / "tracks" / f"{stream_id}_t{track_id:06d}"

    def crop_paths(self, stream_id: str, track_id: int, face_id: str) -> tuple[Path, Path]:
        d = self.track_dir(stream_id, track_id)
        ext = self.cfg.image_format
        return d / f"{face_id}_lr.{ext}", d / f"{face_id}_sr.{ext}"

    def crop_ref(self, stream_id: str, track_id: int, face_id: str) -> CropRef:
        """The crop files of one face, relative to OUTDIR (as every JSONL file names them)."""
        lr, sr = self.crop_paths(stream_id, track_id, face_id)
        return CropRef(face_id, self.rel(lr), self.rel(sr))

    def rel(self, path: Path) -> str:
        return path.relative_to(self.outdir).as_posix()

    # the writer thread's entry point ------------------------------------------------------
    def handle(self, item: WriterMessage) -> None:
        """Write what one stage message asks for (embeddings are the identity sink's)."""
        if isinstance(item, Saved):
            self.save_face(item.enhanced, item.evict)
        elif isinstance(item, TrackEnd):
            self.end_track(item)
        elif isinstance(item, FaceRows):
            if item.tracked:  # rows of an open track, written before it ends (no crops)
                for row in item.rows:
                    self._add_face(row, None, tracked=True)
            else:
                self.write_untracked(item.rows)
            self._release(item.stream_id, item.rows_final_before)

    # writes --------------------------------------------------------------------------------
    def save_face(self, enhanced: EnhancedFace, evict: Iterable[str] = ()) -> None:
        t0 = time.perf_counter()
        face = enhanced.face
        lr_path, sr_path = self.crop_paths(face.stream_id, face.track_id, face.face_id)
        try:
            lr_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{lr_path.parent}: cannot create: {exc.strerror or exc}") from None
        for path, image in ((lr_path, face.crop), (sr_path, enhanced.sr)):
            if not cv2.imwrite(str(path), image):
                raise OutputError(f"{path}: could not write image{_why(path)}")
        self.counts.crops_written += 1
        for face_id in evict:
            for path in self.crop_paths(face.stream_id, face.track_id, face_id):
                path.unlink(missing_ok=True)
            self.counts.crops_removed += 1
        self.write_s += time.perf_counter() - t0

    def _add_face(self, row: FaceRow, crop: CropRef | None, tracked: bool) -> None:
        line = to_line(FaceLine.of(row, crop, tracked, self.clock.utc(row.seconds)))
        self._faces.add(row.frame_index, row.det_index, line)
        self.counts.faces += 1

    def write_untracked(self, rows: Iterable[FaceRow]) -> None:
        t0 = time.perf_counter()
        for row in rows:
            self._add_face(row, None, tracked=False)
            self.counts.faces_untracked += 1
        self.write_s += time.perf_counter() - t0

    def end_track(self, end: TrackEnd) -> None:
        s = end.summary
        if end.discarded:
            self.write_untracked(end.rows)
            self._release(s.stream_id, end.rows_final_before)
            return
        t0 = time.perf_counter()
        kept = set(end.kept)
        for row in end.rows:
            crop = None
            if row.face_id is not None and row.face_id in kept:
                crop = self.crop_ref(s.stream_id, s.track_id, row.face_id)
            self._add_face(row, crop, tracked=True)
        best = tuple(self.crop_ref(s.stream_id, s.track_id, f) for f in end.kept)
        line = TrackLine.of(s, best, self.rel(self.track_dir(s.stream_id, s.track_id)),
                            (self.clock.utc(s.first_seconds), self.clock.utc(s.last_seconds)))
        self._tracks.add(s.first_frame, s.track_id, to_line(line))
        self.counts.tracks += 1
        self.write_s += time.perf_counter() - t0
        self._release(s.stream_id, end.rows_final_before)

    def _release(self, stream_id: str, final_before: int | None) -> None:
        """Write every held line that no open track can precede any more."""
        t0 = time.perf_counter()
        self._final_before[stream_id] = final_before
        marks = [m for m in self._final_before.values() if m is not None]
        before = min(marks) if marks else None
        self._faces.release(before)
        self._tracks.release(before)
        self.write_s += time.perf_counter() - t0

    def write_run_json(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.outdir / "run.json", data)

    def close(self) -> None:
        """Write every line still held (a stop or failure mid-track) and close the files."""
        for sink in (self._faces, self._tracks):
            sink.close()
