"""Per-track ring of aligned crops, and the T-frame windows that temporal SR takes.

A face in CCTV is seen in many frames. :class:`TrackBuffer` keeps the last ``capacity``
aligned faces of every live track (keyed by stream and track id, ordered by stream time) and
builds a :class:`~cctv_sr.records.TrackWindow` of T slots centred on any buffered face: slot
``k`` wants the face nearest to ``centre + (k - T // 2) * frame_s`` within half a frame
period, of the same crop side; a slot with none (a gap, the track's first or last frames)
is padded with the nearest valid crop and marked invalid. Times are stream seconds (pts x
time_base), so dropped frames leave gaps instead of shifting the window.

A window wants ``T // 2`` faces after its centre: :meth:`TrackBuffer.ready` says whether they
have arrived (or can no longer arrive: the track moved on past them). :meth:`end` evicts a
track when it ends.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from cctv_sr.errors import ContractError
from cctv_sr.records import AlignedFace, TrackWindow

__all__ = ["TrackBuffer", "window_of"]

Key = tuple[str, int]


def _time(face: AlignedFace) -> float:
    t = face.seconds
    # No pts (a live stream's first frame): its frame index stands in, which is only right
    # when frame_s is 1; the live-operation issue gives every frame a time.
    return float(face.frame_index) if t is None else t


def window_of(faces: list[AlignedFace], centre: AlignedFace, frames: int,
              frame_s: float) -> TrackWindow:
    """A window of ``frames`` slots centred on ``centre`` from ``faces`` (one track, time
    order, ``centre`` among them)."""
    if frames < 1 or frames % 2 == 0:
        raise ContractError(f"a track window has an odd number of frames >= 1, got {frames}")
    if not frame_s > 0:
        raise ContractError(f"frame_s must be > 0, got {frame_s}")
    side = centre.crop.shape[0]
    usable = [f for f in faces if f.crop.shape == centre.crop.shape]
    times = np.array([_time(f) for f in usable], np.float64)
    t0, half = _time(centre), frames // 2
    crops = np.empty((frames, side, side, 3), np.uint8)
    valid = np.zeros(frames, bool)
    chosen: list[int] = []
    for k in range(frames):
        if k == half:
            crops[k], valid[k] = centre.crop, True
            continue
        want = t0 + (k - half) * frame_s
        if times.size:
            j = int(np.argmin(np.abs(times - want)))
            if abs(times[j] - want) <= 0.5 * frame_s and usable[j] is not centre:
                if j not in chosen:
                    chosen.append(j)
                    crops[k], valid[k] = usable[j].crop, True
    for k in range(frames):  # pad each invalid slot with the nearest valid one
        if not valid[k]:
            order = sorted(np.flatnonzero(valid), key=lambda i: (abs(int(i) - k), int(i)))
            crops[k] = crops[order[0]]
    return TrackWindow(centre, crops, valid)


@dataclass
class TrackBuffer:
    """The last ``capacity`` aligned faces of every live track, for windows of ``frames``."""

    frames: int = 5
    capacity: int = 32
    _faces: dict[Key, deque[AlignedFace]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.frames < 1 or self.frames % 2 == 0:
            raise ContractError(f"buffer frames must be odd and >= 1, got {self.frames}")
        if self.capacity < self.frames:
            raise ContractError(f"buffer capacity {self.capacity} < window {self.frames}")

    def add(self, face: AlignedFace) -> None:
        """Buffer one aligned face (faces of a track come in time order)."""
        ring = self._faces.setdefault((face.stream_id, face.track_id),
                                      deque(maxlen=self.capacity))
        if ring and _time(face) < _time(ring[-1]):
            raise ContractError(f"track {face.track_id}: face at {_time(face)} s after one at "
                                f"{_time(ring[-1])} s")
        ring.append(face)

    def ready(self, centre: AlignedFace, frame_s: float) -> bool:
        """Whether the window of ``centre`` is complete: the buffer holds a face at least
        ``frames // 2`` frame periods after it (or the window is a single frame)."""
        ring = self._faces.get((centre.stream_id, centre.track_id))
        if self.frames == 1:
            return True
        if not ring:
            return False
        return _time(ring[-1]) >= _time(centre) + (self.frames // 2 - 0.5) * frame_s

    def window(self, centre: AlignedFace, frame_s: float) -> TrackWindow:
        """The window of ``centre`` from what is buffered now (missing slots invalid)."""
        if self.frames == 1:
            return TrackWindow.single(centre)
        ring = self._faces.get((centre.stream_id, centre.track_id))
        return window_of(list(ring) if ring else [centre], centre, self.frames, frame_s)

    def end(self, stream_id: str, track_id: int) -> None:
        """Evict an ended track."""
        self._faces.pop((stream_id, track_id), None)

    def held(self, stream_id: str, track_id: int) -> int:
        ring = self._faces.get((stream_id, track_id))
        return len(ring) if ring else 0

    def __len__(self) -> int:
        return len(self._faces)
