"""Counters and seconds of the analysis stage (run.json counts, bench rows), and their sum
over several analysis workers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass

from cctv_sr.engine.scan import ScanStats
from cctv_sr.engine.temporal import TemporalStats


@dataclass
class AnalysisStats:
    frames: int = 0
    faces: int = 0  # detected faces
    carried: int = 0  # rows carried by tracks between detections
    looked_back: int = 0  # faces found in the frames before a new track's first (lookback.py)
    live_tracks: int = 0
    tracks_ended: int = 0
    detect_s: float = 0.0
    scan_s: float = 0.0  # motion, cuts and region planning
    track_s: float = 0.0
    align_s: float = 0.0
    scan: ScanStats = field(default_factory=ScanStats)
    temporal: TemporalStats = field(default_factory=TemporalStats)


def merged_stats(parts: Sequence[AnalysisStats]) -> AnalysisStats:
    """Counters and seconds of several analysis workers added up (seconds are summed worker
    time, not wall time; ``temporal.max_waiting`` is the largest)."""

    def add(kind: type, items: Sequence[object]) -> object:
        values = {}
        for f in fields(kind):
            got = [getattr(i, f.name) for i in items]
            if is_dataclass(got[0]):
                values[f.name] = add(type(got[0]), got)
            else:
                values[f.name] = max(got) if f.name == "max_waiting" else sum(got)
        return kind(**values)

    if len(parts) == 1:
        return parts[0]
    return add(AnalysisStats, parts)  # type: ignore[return-value]
