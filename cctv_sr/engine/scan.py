"""Where the detector looks in each frame, and when (``[scan]``; one :class:`Scanner` per stream).

Each analysed frame gets a :class:`ScanPlan`:

* ``full``: the whole frame at native resolution: the first frame, every
  ``scan.full_frame_s``, at a shot cut, and every frame with ``scan.mode = "exhaustive"``;
* ``regions``: at most every ``scan.detect_interval_s``, squares around motion blobs and
  around the tracks due for a check (a track over moving pixels at every detection, a still
  one every ``scan.static_check_s``), merged and scaled (:mod:`cctv_sr.detect.regions`);
* ``none``: nothing is searched; tracks carry their faces (rows marked not detected).

A frame with no motion and no live track costs the motion test only (well under 1 ms).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cctv_sr.config import ScanConfig
from cctv_sr.detect.motion import MotionGate
from cctv_sr.detect.regions import Region, blob_region, covers, merge_regions, track_region

FULL, REGIONS, NONE = "full", "regions", "none"


@dataclass(frozen=True)
class ScanPlan:
    """What to search in one frame. ``checked``: the track ids searched for (None: every
    track, a full-frame pass; empty: none, the tracks are carried)."""

    kind: str
    regions: tuple[Region, ...] = ()
    cut: bool = False
    checked: frozenset[int] | None = None

    @property
    def searched(self) -> tuple[Region, ...] | None:
        """The regions for :func:`cctv_sr.detect.regions.detect_regions` (None: full frame)."""
        return None if self.kind == FULL else self.regions


@dataclass
class ScanStats:
    """Counts over a run (run.json and bench): frames per plan kind, regions searched, cuts."""

    full: int = 0
    regions: int = 0
    none: int = 0
    region_count: int = 0
    cuts: int = 0

    def count(self, plan: ScanPlan) -> None:
        if plan.kind == FULL:
            self.full += 1
        elif plan.kind == REGIONS:
            self.regions += 1
            self.region_count += len(plan.regions)
        else:
            self.none += 1
        self.cuts += int(plan.cut)


@dataclass
class Scanner:
    """Plans the search of one stream's frames, in order."""

    cfg: ScanConfig
    max_lost_s: float = 1.5  # tracker.max_lost_s: a still track is re-checked within half
    gate: MotionGate = field(init=False)
    _last_full: float | None = None
    _last_detect: float | None = None
    _checked_at: dict[int, float] = field(default_factory=dict)
    _searched: list[tuple[float, Region]] = field(default_factory=list)  # recent regions

    def __post_init__(self) -> None:
        self.gate = MotionGate(self.cfg)

    def plan(self, image: np.ndarray, t: float,
             tracks: list[tuple[int, np.ndarray]]) -> ScanPlan:
        """The plan for a frame at stream time ``t`` with live ``tracks`` (id, predicted box)."""
        cfg = self.cfg
        motion = self.gate.update(image)
        live = {tid for tid, _ in tracks}
        for tid in [k for k in self._checked_at if k not in live]:
            del self._checked_at[tid]
        eps = 1e-6
        if (cfg.mode == "exhaustive" or motion.cut or self._last_full is None
                or t - self._last_full >= cfg.full_frame_s - eps):
            self._last_full = self._last_detect = t
            self._checked_at = {tid: t for tid in live}
            return ScanPlan(FULL, cut=motion.cut)
        height, width = image.shape[:2]
        self._searched = [(ts, r) for ts, r in self._searched
                          if t - ts < cfg.detect_interval_s - eps]
        tracked = [track_region(box, cfg, width, height) for _, box in tracks]
        # Motion already followed by a track needs no region of its own.
        untracked = [r for r in (blob_region(b, cfg, width, height) for b in motion.blobs)
                     if not any(covers(tr, r) for tr in tracked)]
        if self._last_detect is not None and t - self._last_detect < cfg.detect_interval_s - eps:
            return self._newcomers(untracked, t, width, height)
        regions: list[Region] = []
        checked = set()
        every = min(cfg.static_check_s, 0.5 * self.max_lost_s)
        for (tid, box), region in zip(tracks, tracked):
            due = t - self._checked_at.get(tid, -np.inf) >= every - eps
            if due or motion.moving(box):
                regions.append(region)
                checked.add(tid)
                self._checked_at[tid] = t
        regions += untracked
        if not regions:
            return ScanPlan(NONE, checked=frozenset())
        self._last_detect = t
        merged = merge_regions(regions, width, height)
        self._searched += [(t, r) for r in merged]
        # A track inside a region searched for a blob was searched for too.
        for tid, box in tracks:
            if tid not in checked and any(_inside(box, r) for r in merged):
                checked.add(tid)
                self._checked_at[tid] = t
        return ScanPlan(REGIONS, tuple(merged), checked=frozenset(checked))

    def _newcomers(self, untracked: list[Region], t: float, width: int,
                   height: int) -> ScanPlan:
        """Between detections: motion that no track's region covers (``untracked``) and that
        was not searched within the interval (someone who just appeared) is searched at once,
        so a newcomer's first frames are not lost. No track counts as searched for: they wait
        for the next detection (a miss here never loses a track)."""
        new = [r for r in untracked
               if not any(covers(old, r, 0.3) for _, old in self._searched)]
        if not new:
            return ScanPlan(NONE, checked=frozenset())
        merged = merge_regions(new, width, height)
        self._searched += [(t, r) for r in merged]
        return ScanPlan(REGIONS, tuple(merged), checked=frozenset())

def _inside(box: np.ndarray, region: Region) -> bool:
    x0, y0, x1, y1 = (float(v) for v in box)
    return (x0 >= region.x0 and y0 >= region.y0 and x1 <= region.x0 + region.side
            and y1 <= region.y0 + region.side)
