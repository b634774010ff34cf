"""How throughput grows with faces per frame and with concurrent streams (EVAL.md section 4).

- Streams: N copies of one clip (links in a temporary folder) through one ``cctv-sr run``
  (:func:`cctv_sr.engine.run.run_inputs`: N decode threads, one analysis, accelerator and
  writer stage); the figure is the aggregate end-to-end frames/s, all streams' analysed
  frames over the run's wall time, beside the same for one stream, in the same call.
- Faces per frame: synthetic clips (:func:`face_grid_clip`) with 1, 8, 32 faces on screen in
  every frame, each drifting slowly over a textured backdrop, H.264; end-to-end frames/s and
  the per-stage seconds per frame of each.

Every row carries the per-stage seconds of its run (scan, detect, track, align, SR, embed,
head, write), so a table says where the time went, not only how much.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cctv_sr.config import RunConfig
from cctv_sr.data.encode import write_h264
from cctv_sr.data.synth import Walker, render_clip
from cctv_sr.engine.run import RunResult, run_inputs
from cctv_sr.errors import ConfigError

__all__ = ["ScaleRow", "bench_faces", "bench_streams", "face_grid_clip", "stage_seconds"]

STAGES = ("scan", "detect", "track", "align", "sr", "embed", "head", "write")


@dataclass(frozen=True)
class ScaleRow:
    """One run of a scaling table: ``kind`` is ``streams`` or ``faces``, ``n`` its count."""

    kind: str
    n: int
    frames: int  # analysed, all streams
    faces: int  # detected faces
    wall_s: float
    e2e_fps: float  # aggregate: frames / wall_s
    scale: float  # e2e_fps over the n = first row's
    stages: dict[str, float]  # seconds per stage

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "n": self.n, "frames": self.frames, "faces": self.faces,
                "wall_s": round(self.wall_s, 3), "e2e_fps": round(self.e2e_fps, 3),
                "scale": round(self.scale, 3),
                "stages": {k: round(v, 3) for k, v in self.stages.items()}}


def stage_seconds(result: RunResult) -> dict[str, float]:
    t = result.stats.times
    return {"scan": t.scan_s, "detect": t.detect_s, "track": t.track_s, "align": t.align_s,
            "sr": t.sr_s, "embed": t.embed_s, "head": t.head_s, "write": t.write_s}


def _run(inputs: list[str], cfg: RunConfig, quiet: bool) -> tuple[RunResult, float]:
    with tempfile.TemporaryDirectory(prefix="cctv-sr-bench-scale-") as tmp:
        t0 = time.perf_counter()
        result = run_inputs(inputs, Path(tmp) / "out", cfg, quiet=quiet)
        return result, time.perf_counter() - t0


def _rows(kind: str, runs: list[tuple[int, RunResult, float]]) -> list[ScaleRow]:
    rows: list[ScaleRow] = []
    for n, result, wall in runs:
        fps = result.frames_analysed / max(wall, 1e-9)
        base = rows[0].e2e_fps if rows else fps
        rows.append(ScaleRow(kind, n, result.frames_analysed, result.stats.analysis.faces, wall,
                             fps, fps / base if base > 0 else 0.0, stage_seconds(result)))
    return rows


def bench_streams(footage: str, cfg: RunConfig, counts: Sequence[int] = (1, 4, 16),
                  quiet: bool = True) -> list[ScaleRow]:
    """Aggregate end-to-end frames/s of ``n`` concurrent copies of ``footage``, per ``n``."""
    if not Path(footage).is_file():
        raise ConfigError(f"bench --streams needs a file, got {footage}")
    runs = []
    with tempfile.TemporaryDirectory(prefix="cctv-sr-bench-streams-") as tmp:
        suffix = Path(footage).suffix
        for n in counts:
            links = []
            for k in range(n):
                link = Path(tmp) / f"n{n}_s{k:02d}{suffix}"
                os.symlink(Path(footage).resolve(), link)
                links.append(str(link))
            result, wall = _run(links, cfg, quiet)
            runs.append((n, result, wall))
    return _rows("streams", runs)


def face_grid_clip(patches: Sequence[np.ndarray], n_faces: int, out: Path, seconds: float = 4.0,
                   fps: float = 12.0, width: int = 960, height: int = 540,
                   face_px: int = 24, seed: int = 0, face_frac: float = 1.0 / 1.8) -> Path:
    """A clip with ``n_faces`` faces of about ``face_px`` on screen in every frame: a grid of
    heads (``patches`` reused in turn; the face is the central ``face_frac`` of a patch's
    width), each drifting a few pixels a second."""

    if n_faces < 1 or not patches:
        raise ConfigError("a face grid needs at least one face and one photo")
    frames = max(2, int(round(seconds * fps)))
    cols = int(np.ceil(np.sqrt(n_faces * width / height)))
    rows = int(np.ceil(n_faces / cols))
    rng = np.random.default_rng(seed)
    walkers = []
    for k in range(n_faces):
        cx = (k % cols + 0.5) * width / cols
        cy = (k // cols + 0.5) * height / rows
        dx, dy = rng.uniform(-12, 12, 2)
        w = face_px * rng.uniform(0.9, 1.1)
        walkers.append(Walker(patches[k % len(patches)], (cx - dx, cy - dy), (cx + dx, cy + dy),
                              w, w, 0, frames - 1, face_frac))
    write_h264(out, (image for image, _ in render_clip(walkers, width, height, frames,
                                                       seed=seed)), fps, crf=23)
    return out


def bench_faces(patches: Sequence[np.ndarray], cfg: RunConfig,
                counts: Sequence[int] = (1, 8, 32), seconds: float = 4.0,
                quiet: bool = True, face_frac: float = 1.0 / 1.8) -> list[ScaleRow]:
    """End-to-end frames/s and stage times of synthetic clips with ``n`` faces per frame."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="cctv-sr-bench-faces-") as tmp:
        for n in counts:
            clip = face_grid_clip(patches, n, Path(tmp) / f"faces{n}.mp4", seconds,
                                  face_frac=face_frac)
            result, wall = _run([str(clip)], cfg, quiet)
            runs.append((n, result, wall))
    return _rows("faces", runs)


def table(rows: Sequence[ScaleRow]) -> list[str]:
    """Text lines: one per row, stage seconds per analysed frame in ms."""
    if not rows:
        return []
    kind = rows[0].kind
    head = f"{kind:>8} {'frames':>7} {'faces':>7} {'e2e fps':>8} {'x one':>6}  " + " ".join(
        f"{s:>7}" for s in STAGES) + "   (ms per frame)"
    out = [head]
    for r in rows:
        per = " ".join(f"{1000 * r.stages[s] / max(r.frames, 1):7.1f}" for s in STAGES)
        out.append(f"{r.n:>8} {r.frames:>7} {r.faces:>7} {r.e2e_fps:>8.2f} {r.scale:>6.2f}  "
                   f"{per}")
    return out
