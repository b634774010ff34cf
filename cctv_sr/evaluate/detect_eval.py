"""``cctv-sr eval detect`` (docs/EVAL.md section 5): small-face recall, people found, false
detections and speed, for several pipeline settings side by side in one run.

A ground-truth face counts as found in a frame when a faces.jsonl row of that frame overlaps it
with IoU >= 0.3 (one-to-one, greedy by IoU): ``frame_recall`` counts every row, as EVAL.md
says, including rows a track carried between detections (``detected: false``);
``detected_recall`` counts detected rows only, so the two together show what the detector
found and what tracking added. A person counts as found when found in at least 5
frames. A detected row that overlaps no ground-truth face is a false detection. Speed is
end-to-end frames/s over decode-only frames/s of the same clip, measured back to back.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cctv_sr.config import RunConfig
from cctv_sr.data.scene import SceneTruth
from cctv_sr.engine.run import run_footage
from cctv_sr.evaluate.bench import decode_only
from cctv_sr.io.jsonl import read_jsonl
from cctv_sr.track.tracker import iou_matrix

MIN_IOU = 0.3
MIN_FRAMES = 5


@dataclass(frozen=True)
class WidthRow:
    width: int
    frame_recall: float
    detected_recall: float
    face_frames: int
    people_found: int
    people: int


@dataclass(frozen=True)
class DetectScore:
    rows: tuple[WidthRow, ...]
    false_per_frame: float
    frames: int


@dataclass(frozen=True)
class ConfigResult:
    """One pipeline setting on one clip: the score (None on a real clip) and the counts."""

    name: str
    score: DetectScore | None
    detected_rows: int
    tracks: int  # tracks with at least MIN_FRAMES detected rows
    frames: int
    decode_fps: float
    e2e_fps: float

    @property
    def ratio(self) -> float:
        return self.e2e_fps / self.decode_fps if self.decode_fps > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "config": self.name, "detected_rows": self.detected_rows, "tracks": self.tracks,
            "frames": self.frames, "decode_fps": round(self.decode_fps, 3),
            "e2e_fps": round(self.e2e_fps, 3), "ratio": round(self.ratio, 4)}
        if self.score is not None:
            out["false_per_frame"] = round(self.score.false_per_frame, 4)
            out["rows"] = [{"width": r.width, "frame_recall": round(r.frame_recall, 4),
                            "detected_recall": round(r.detected_recall, 4),
                            "face_frames": r.face_frames, "people_found": r.people_found,
                            "people": r.people} for r in self.score.rows]
        return out


def boxes_by_frame(faces: Sequence[Mapping], detected_only: bool) -> dict[int, np.ndarray]:
    """Row boxes per frame (all rows, or the detected ones only)."""
    out: dict[int, list[list[float]]] = {}
    for row in faces:
        if row.get("detected", True) or not detected_only:
            out.setdefault(int(row["frame"]), []).append(list(row["box"]))
    return {k: np.asarray(v, np.float32).reshape(-1, 4) for k, v in out.items()}


def _match(gt_boxes: np.ndarray, boxes: np.ndarray) -> tuple[set[int], int]:
    """Ground-truth rows matched one-to-one (greedy by IoU >= MIN_IOU), and unmatched boxes."""
    iou = iou_matrix(gt_boxes, boxes)
    matched_gt: set[int] = set()
    matched_det: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        g, d = (int(v) for v in np.unravel_index(int(flat), iou.shape))
        if iou[g, d] < MIN_IOU:
            break
        if g in matched_gt or d in matched_det:
            continue
        matched_gt.add(g)
        matched_det.add(d)
    return matched_gt, len(boxes) - len(matched_det)


def score(truth: SceneTruth, faces: Sequence[Mapping]) -> DetectScore:
    """Frame recall and people found per width class, false detections per frame (detected
    rows that overlap no face)."""
    rows_all = boxes_by_frame(faces, detected_only=False)
    rows_det = boxes_by_frame(faces, detected_only=True)
    empty = np.zeros((0, 4), np.float32)
    found: dict[int, int] = {}  # person -> frames found (detected)
    seen: dict[int, int] = {}  # person -> frames on screen
    width_of = {p.pid: p.width_px for p in truth.people}
    hits: dict[int, list[int]] = {w: [0, 0, 0] for w in truth.spec.widths}  # all, det, frames
    false = 0
    for index, gt in enumerate(truth.frames):
        gt_boxes = np.asarray([b for _, _, b in gt], np.float32).reshape(-1, 4)
        in_all, _ = _match(gt_boxes, rows_all.get(index, empty))
        in_det, unmatched = _match(gt_boxes, rows_det.get(index, empty))
        false += unmatched
        for g, (pid, w, _) in enumerate(gt):
            seen[pid] = seen.get(pid, 0) + 1
            hits[w][2] += 1
            hits[w][0] += int(g in in_all)
            if g in in_det:
                found[pid] = found.get(pid, 0) + 1
                hits[w][1] += 1
    rows = []
    for w in truth.spec.widths:
        pids = [pid for pid, pw in width_of.items() if pw == w and seen.get(pid, 0) > 0]
        n = max(hits[w][2], 1)
        rows.append(WidthRow(w, hits[w][0] / n, hits[w][1] / n, hits[w][2],
                             sum(found.get(pid, 0) >= MIN_FRAMES for pid in pids), len(pids)))
    return DetectScore(tuple(rows), false / max(len(truth.frames), 1), len(truth.frames))


def run_config(footage: Path, name: str, cfg: RunConfig, truth: SceneTruth | None
               ) -> ConfigResult:
    """Decode-only, then the whole pipeline with ``cfg``; scored against ``truth`` if any."""
    decoded, decode_s = decode_only(str(footage), cfg)
    with tempfile.TemporaryDirectory(prefix="cctv-sr-eval-detect-") as tmp:
        t0 = time.perf_counter()
        result = run_footage(str(footage), Path(tmp) / "out", cfg, quiet=True)
        e2e_s = time.perf_counter() - t0
        faces = read_jsonl(Path(tmp) / "out" / "faces.jsonl")
    detected = [f for f in faces if f.get("detected", True)]
    per_track: dict[int, int] = {}
    for f in detected:
        if f.get("track_id") is not None:
            per_track[int(f["track_id"])] = per_track.get(int(f["track_id"]), 0) + 1
    return ConfigResult(
        name, None if truth is None else score(truth, faces), len(detected),
        sum(n >= MIN_FRAMES for n in per_track.values()), result.frames_analysed,
        decoded / max(decode_s, 1e-9), result.frames_decoded / max(e2e_s, 1e-9))


def table(results: Sequence[ConfigResult]) -> list[str]:
    """Lines of a text table: per width, frame recall and people found per setting."""
    scored = [r for r in results if r.score is not None]
    lines = []
    if scored:
        head = "width  " + " ".join(f"| {r.name[:30]:<30}" for r in scored)
        lines.append(head)
        head = "       " + " ".join("| recall (detected)  people     " for r in scored)
        lines.append(head)
        for k, row in enumerate(scored[0].score.rows):  # type: ignore[union-attr]
            cells = []
            for r in scored:
                wr = r.score.rows[k]  # type: ignore[union-attr]
                cells.append(f"| {100 * wr.frame_recall:5.1f}% ({100 * wr.detected_recall:5.1f}%)"
                             f"  {wr.people_found:2d}/{wr.people:<2d}     ")
            lines.append(f"{row.width:4d}px " + " ".join(cells))
    for r in results:
        extra = "" if r.score is None else f", {r.score.false_per_frame:.3f} false/frame"
        lines.append(f"{r.name}: {r.detected_rows} detected rows, {r.tracks} tracks (>= "
                     f"{MIN_FRAMES} detections), {r.frames} frames{extra}; "
                     f"{r.e2e_fps:.1f} frames/s = {r.ratio:.4f}x decode-only")
    return lines
