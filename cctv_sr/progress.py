"""Progress bar for long runs: frames decoded, analysis fps, faces and tracks."""

from __future__ import annotations

import sys
import time
from typing import Protocol

from tqdm import tqdm

from cctv_sr.pipeline import PipelineStats


class _HasStats(Protocol):
    @property
    def stats(self) -> object: ...


class RunProgress:
    """A tqdm bar on stderr fed from ``Pipeline.run(on_tick=...)``; silent when disabled."""

    def __init__(self, source: _HasStats, info: object, disable: bool = False) -> None:
        self._source = source
        total = getattr(info, "frame_count", None)
        self._bar = tqdm(total=total or None, unit="frame", desc="frames", disable=disable,
                         file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
        self._t0 = time.perf_counter()

    def update(self, stats: PipelineStats) -> None:
        decoded = int(getattr(self._source.stats, "decoded", 0))
        if decoded > self._bar.n:
            self._bar.update(decoded - self._bar.n)
        a = stats.analysis
        elapsed = max(time.perf_counter() - self._t0, 1e-6)
        self._bar.set_postfix(
            fps=f"{a.frames / elapsed:.1f}", faces=a.faces, tracks=a.tracks_ended + a.live_tracks,
            refresh=False,
        )

    def close(self) -> None:
        self._bar.close()
