"""Where the detector looks in each frame, and when (``[scan]``; one :class:`Scanner` per stream).

Each analysed frame gets a :class:`ScanPlan`:

* ``full``: the whole frame at native resolution: the first frame, every
  ``scan.full_frame_s``, at a shot cut, and every frame with ``scan.mode = "exhaustive"``;
* ``regions``: at most every ``scan.detect_interval_s``, squares around motion blobs and
  around the tracks due for a check (a track over moving pixels at every detection, a still
  one every ``scan.static_check_s``), merged and scaled (:mod:`cctv_sr.detect.regions`);
  in between, squares around new motion (and, from the analysis, around tracks seen once);
* ``none``: nothing is searched; tracks carry their faces (rows marked not detected).

A frame with no motion and no live track costs the motion test only (well under 1 ms).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cctv_sr.config import ScanConfig
from cctv_sr.detect.motion import MotionGate
from cctv_sr.detect.regions import (
    Region,
    blob_region,
    covers,
    fresh_region,
    holds,
    merge_regions,
    track_region,
)

FULL, REGIONS, NONE = "full", "regions", "none"
# Motion counts as new where nothing was searched for this many detection intervals.
NEW_AFTER = 2.0


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
    _mask: np.ndarray | None = None  # the motion mask when regions were last planned

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
            self._mask = None
            return ScanPlan(FULL, cut=motion.cut)
        height, width = image.shape[:2]
        self._searched = [(ts, r) for ts, r in self._searched
                          if t - ts < NEW_AFTER * cfg.detect_interval_s - eps]
        tracked = [track_region(box, cfg, width, height) for _, box in tracks]
        # Motion already followed by a track needs no region of its own: the tracked people's
        # bodies are cleared from the mask first, so a newcomer beside them makes a blob of
        # their own size rather than a group's (whose face guess would shrink its region).
        bodies = [body_box(box) for _, box in tracks]
        untracked: list[Region] = []
        new: list[Region] = []
        blobs = motion.blobs_outside(bodies, cfg.motion_min_area)
        for blob in blobs:
            region = blob_region(blob, cfg, width, height)
            if any(covers(tr, region) for tr in tracked):
                continue
            if any(covers(old, region) for _, old in self._searched):
                untracked.append(region)
            else:  # motion where nothing was searched lately
                new.append(region)
        # Someone who just appeared inside motion searched before (a group's blob, or the
        # swinging legs under a tracked face): the new moving pixels make a blob of their own,
        # whose shape gives their face's size. Tracked bodies are not cleared here: a head
        # may pop in inside one. (Where such a square cuts a tracked face, the cut detection
        # gives way to the tracked face: regions.drop_cut_duplicates.)
        if self._mask is not None:
            for fresh in motion.blobs_outside([], cfg.motion_min_area, self._mask):
                new.append(fresh_region(fresh, _top_of(fresh, motion.blobs), cfg, width, height))
        if self._last_detect is not None and t - self._last_detect < cfg.detect_interval_s - eps:
            plan = self._newcomers(new, t, width, height)
            if plan.kind != NONE:
                self._mask = motion.mask
            return plan
        self._mask = motion.mask
        regions: list[Region] = []
        checked = set()
        every = min(cfg.static_check_s, 0.5 * self.max_lost_s)
        for (tid, box), region in zip(tracks, tracked):
            due = t - self._checked_at.get(tid, -np.inf) >= every - eps
            if due or motion.moving(box):
                regions.append(region)
                checked.add(tid)
                self._checked_at[tid] = t
        regions += untracked + new
        if not regions:
            return ScanPlan(NONE, checked=frozenset())
        self._last_detect = t
        merged = merge_regions(regions, width, height)
        self._searched += [(t, r) for r in merged]
        # A track inside a region searched for a blob was searched for too, where the region
        # shows its face as large as its own region would (a 12 px face inside a crowd's
        # square seen at 0.6x was not looked for: a miss there lost the track).
        for (tid, box), own in zip(tracks, tracked):
            if tid not in checked and any(holds(r, box, own) for r in merged):
                checked.add(tid)
                self._checked_at[tid] = t
        return ScanPlan(REGIONS, tuple(merged), checked=frozenset(checked))

    def _newcomers(self, new: list[Region], t: float, width: int, height: int) -> ScanPlan:
        """Between detections: the regions of ``new`` motion (no track's region covers it, and
        nothing was searched there lately: someone who just appeared) are searched at once, so
        a newcomer's first frames are not lost. No track counts as searched for: they wait
        for the next detection (a miss here never loses a track)."""
        if not new:
            return ScanPlan(NONE, checked=frozenset())
        merged = merge_regions(new, width, height)
        self._searched += [(t, r) for r in merged]
        return ScanPlan(REGIONS, tuple(merged), checked=frozenset())


def body_box(face: np.ndarray) -> np.ndarray:
    """Where the person under a face box (xyxy) stands: 1.5 face widths either side of it and
    down to 6.5 face widths below its chin (a standing person is about 7.5 heads tall)."""
    x0, y0, x1, y1 = (float(v) for v in face)
    f = max(x1 - x0, y1 - y0, 1.0)
    cx = (x0 + x1) / 2
    return np.array([cx - 1.5 * f, y0 - 0.3 * f, cx + 1.5 * f, y1 + 6.5 * f], np.float32)


def _top_of(part: np.ndarray, blobs: np.ndarray) -> float:
    """The top (y) of the blob that holds ``part`` (xyxy; its own top if none does)."""
    x0, y0, x1, y1 = (float(v) for v in part)
    tops = [float(b[1]) for b in blobs
            if b[0] <= x1 and x0 <= b[2] and b[1] <= y1 and y0 <= b[3]]
    return min(tops, default=y0)
