"""``cctv-sr bench``: decode-only vs end-to-end throughput on the same clip, in one run.

The machine may be shared and noisy, so the headline is the ratio of two figures measured side
by side (docs/EVAL.md section 4); per-stage rows say where the time goes.
"""

from __future__ import annotations

import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cctv_sr.config import RunConfig
from cctv_sr.engine.run import run_footage
from cctv_sr.io.source import VideoSource


@dataclass(frozen=True)
class BenchRow:
    stage: str
    items: int
    unit: str  # what ``items`` counts: frame | face
    seconds: float

    @property
    def per_s(self) -> float | None:
        return self.items / self.seconds if self.seconds > 0 else None


@dataclass(frozen=True)
class BenchResult:
    footage: str
    frames_decoded: int
    frames_analysed: int
    decode_fps: float
    e2e_fps: float
    rows: tuple[BenchRow, ...]
    peak_rss_mb: float

    @property
    def ratio(self) -> float:
        """End-to-end over decode-only frames per second (1.0: analysis costs nothing)."""
        return self.e2e_fps / self.decode_fps if self.decode_fps > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "footage": self.footage,
            "decode_fps": round(self.decode_fps, 3),
            "e2e_fps": round(self.e2e_fps, 3),
            "ratio": round(self.ratio, 5),
            "frames_decoded": self.frames_decoded,
            "frames_analysed": self.frames_analysed,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "device": "cpu",
            "rows": [{"stage": r.stage, "items": r.items, "unit": r.unit,
                      "seconds": round(r.seconds, 4),
                      "per_s": None if r.per_s is None else round(r.per_s, 3)}
                     for r in self.rows],
        }


def decode_only(footage: str, cfg: RunConfig) -> tuple[int, float]:
    """Decode (with the run's stride/max-fps/max-frames) and do nothing else."""
    t0 = time.perf_counter()
    with VideoSource(footage, cfg.source) as source:
        for _ in source:
            pass
        decoded = source.stats.decoded
    return decoded, time.perf_counter() - t0


def bench(footage: str, cfg: RunConfig, quiet: bool = True) -> BenchResult:
    """Decode-only, then the whole pipeline, on the same footage and settings."""
    decoded, decode_s = decode_only(footage, cfg)
    with tempfile.TemporaryDirectory(prefix="cctv-sr-bench-") as tmp:
        t0 = time.perf_counter()
        result = run_footage(footage, Path(tmp) / "out", cfg, quiet=quiet)
        e2e_s = time.perf_counter() - t0
    stats, times = result.stats, result.stats.times
    analysed = result.frames_analysed
    rows = (
        BenchRow("decode", decoded, "frame", decode_s),
        BenchRow("scan", analysed, "frame", times.scan_s),
        BenchRow("detect", analysed, "frame", times.detect_s),
        BenchRow("track", analysed, "frame", times.track_s),
        BenchRow("align", stats.analysis.faces, "face", times.align_s),
        BenchRow("sr", stats.sr_faces, "face", times.sr_s),
        BenchRow("embed", stats.embedded_faces, "face", times.embed_s),
        BenchRow("head", stats.accelerator.head_faces, "face", times.head_s),
        BenchRow("write", result.write_counts.crops_written, "face", times.write_s),
        BenchRow("e2e", result.frames_decoded, "frame", e2e_s),
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return BenchResult(footage, decoded, analysed, decoded / max(decode_s, 1e-9),
                       result.frames_decoded / max(e2e_s, 1e-9), rows, peak_mb)
