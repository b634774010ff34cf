"""Time of one source: stream time from 0, wall-clock UTC, which frames are analysed.

:class:`Timeline` turns each decoded frame's pts into the run's stream time, which starts at 0
at the first frame (so ``seconds`` lines up with a player's 0:00) and, for live streams, goes
on across reconnects: a stream reopened after an outage restarts its pts (RTP clocks restart,
the first frame of a session often has none), so each session is anchored at the wall time it
resumed, and time never goes back. The frame's pts is rewritten in the first session's time
base. :class:`StreamClock` maps stream time to wall-clock UTC: for a live stream the epoch is
the wall time of its first frame, for a file the container's ``creation_time`` when it states
one (else none). :class:`Thinning` applies stride and max_fps.

Threading: a Timeline belongs to its source's decode thread; a StreamClock is set once by
that thread before its first frame is queued and read by the writer thread afterwards (the
queue orders the two).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any

from cctv_sr.io.events import utc_iso

log = logging.getLogger(__name__)


class StreamClock:
    """Stream seconds -> wall-clock UTC of one stream (``epoch`` None: unknown)."""

    def __init__(self, epoch: float | None = None, origin: str = "none") -> None:
        self.epoch = epoch  # epoch seconds of stream time 0
        self.origin = origin  # none | live (wall time of the first frame) | creation_time

    def set_live(self, epoch: float) -> None:
        if self.epoch is None:
            self.epoch, self.origin = epoch, "live"

    def utc(self, seconds: float | None) -> str | None:
        """ISO 8601 UTC of stream time ``seconds`` (None when either is unknown)."""
        if self.epoch is None or seconds is None:
            return None
        return utc_iso(self.epoch + seconds)


def creation_epoch(container: Any) -> float | None:
    """The container's ``creation_time`` metadata as epoch seconds (None if absent/invalid)."""
    for meta in (getattr(container, "metadata", None) or {},
                 *[getattr(s, "metadata", None) or {} for s in container.streams.video]):
        text = meta.get("creation_time")
        if not text:
            continue
        try:
            stamp = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
        except ValueError:
            log.debug("unreadable creation_time %r", text)
            continue
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=timezone.utc)
        epoch = stamp.timestamp()
        if epoch > 0:  # muxers write 1970 / 1904 for "unknown"
            return epoch
    return None


@dataclass
class _Anchor:
    pts: int  # pts of the session's first frame that had one
    t: float  # its stream time


class Timeline:
    """Stream time of each frame of one source, across the sessions of a live stream."""

    def __init__(self, time_base: Fraction, live: bool) -> None:
        self.time_base = time_base  # of the pts this timeline writes
        self.live = live
        self.last_t: float | None = None  # stream time of the last frame
        self.last_wall: float | None = None  # monotonic time of the last frame
        self._origin: int | None = None  # files: the first frame's pts
        self._start: float | None = None  # live: monotonic time the session's first frame came
        self._offset = 0.0  # live: stream time at the session's first frame
        self._anchor: _Anchor | None = None

    def new_session(self) -> None:
        """A live stream was reopened: its pts restart."""
        self._start, self._anchor = None, None

    def place(self, pts: int | None, time_base: Fraction, now: float) -> int | None:
        """The pts (in :attr:`time_base`) of a frame decoded at monotonic time ``now``."""
        if not self.live:  # a file: its own clock, from its first frame
            if pts is None:
                return None
            if self._origin is None:
                self._origin = pts
            out = pts - self._origin
            if time_base != self.time_base:
                out = round(out * time_base / self.time_base)
            self.last_t = float(out * self.time_base)
            return out
        if self._start is None:  # the session's first frame
            self._start = now
            gap = 0.0 if self.last_wall is None else max(now - self.last_wall, 0.0)
            self._offset = 0.0 if self.last_t is None else self.last_t + gap
        t = self._offset + (now - self._start)
        if pts is not None:
            if self._anchor is None:
                self._anchor = _Anchor(pts, t)
            t = self._anchor.t + float((pts - self._anchor.pts) * time_base)
            if self.last_t is not None and self.last_wall is not None and t <= self.last_t:
                # the camera's clock went back (an encoder reset, a pts wrap) without a new
                # session: re-anchor on the wall time since the last frame, never back
                t = self.last_t + max(now - self.last_wall, 1e-3)
                self._anchor = _Anchor(pts, t)
        out = round(Fraction(t) / self.time_base)
        self.last_t, self.last_wall = float(out * self.time_base), now  # as the Frame says
        return out


class Thinning:
    """Which decoded frames are analysed: every ``stride``-th, then at most ``max_fps`` per
    second of stream time (by pts; by index / fps when a frame has none)."""

    def __init__(self, stride: int, max_fps: float) -> None:
        self.stride = stride
        self.min_gap = 1 / Fraction(repr(float(max_fps))) if max_fps > 0 else None
        self._last: Fraction | None = None

    def wanted(self, index: int, pts: int | None, time_base: Fraction, fps: float | None
               ) -> bool:
        if index % self.stride:
            return False
        if self.min_gap is None:
            return True
        if pts is not None:
            now = pts * Fraction(time_base)
        elif fps:
            now = Fraction(index) / Fraction(repr(fps))
        else:
            return True
        last = self._last
        if last is None or now >= last + self.min_gap or now < last:  # now < last: pts reset
            self._last = now
            return True
        return False
