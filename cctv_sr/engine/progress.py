"""Progress bar for long runs: frames analysed (of the expected total), fps, faces, tracks."""

from __future__ import annotations

import math
import sys
from typing import Protocol

from tqdm import tqdm

from cctv_sr.engine.pipeline import PipelineStats


class _HasStats(Protocol):
    @property
    def stats(self) -> object: ...


class RunProgress:
    """A tqdm bar on stderr fed from ``Pipeline.run(on_tick=...)``; silent when disabled."""

    def __init__(self, source: _HasStats, count: int | None, stride: int = 1,
                 max_fps: float = 0.0, disable: bool = False) -> None:
        """``count``: frames the input(s) hold, when every container says (None: unknown)."""
        self._source = source
        # Frames that will be analysed, when the container says how many it has.
        total = math.ceil(count / stride) if count and not max_fps else None
        self._bar = tqdm(total=total, unit="frame", desc="analysed", disable=disable,
                         file=sys.stderr, dynamic_ncols=True, mininterval=0.5)

    def update(self, stats: PipelineStats) -> None:
        a = stats.analysis
        if a.frames > self._bar.n:
            self._bar.update(a.frames - self._bar.n)
        self._bar.set_postfix(
            decoded=int(getattr(self._source.stats, "decoded", 0)), faces=a.faces,
            tracks=a.tracks_ended + a.live_tracks, refresh=False,
        )

    def close(self) -> None:
        self._bar.close()
