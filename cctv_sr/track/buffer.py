"""Per-track ring of aligned crops, and the T-frame windows that temporal SR takes.

A face in CCTV is seen in many frames. :class:`TrackBuffer` keeps the last ``capacity``
aligned faces of every live track (keyed by stream and track id, ordered by stream time) and
builds a :class:`~cctv_sr.records.TrackWindow` of T slots centred on any buffered face. Slot
``centre + k`` holds the track's k-th face after the centre (``centre - k`` the k-th before),
among faces of the centre's crop side, when it lies within ``k * step_s`` seconds of the
centre; otherwise the slot is a gap, padded with the nearest valid crop and marked invalid.
Neighbours, not frame numbers: the detector sees a track every few frames (issue 9's scan)
and only detected faces are aligned, so a window is the track's nearest detections; the
per-slot bound keeps a window from reaching across a long gap. Times are stream seconds
(pts x time_base).

A window wants ``T // 2`` faces after its centre: :meth:`TrackBuffer.ready` says whether they
have arrived, or whether stream time has moved ``wait_s`` past the centre (no more waiting).
:meth:`end` evicts a track when it ends.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from cctv_sr.errors import ContractError
from cctv_sr.records import AlignedFace, TrackWindow

__all__ = ["TrackBuffer", "face_time", "window_of"]

Key = tuple[str, int]


def face_time(face: AlignedFace, fps: float = 1.0) -> float:
    """Stream seconds of a face; with no pts (a file without timestamps, a live stream's first
    frame) its frame index over ``fps``, the rule the analysis stage uses for frames."""
    t = face.seconds
    return float(face.frame_index) / fps if t is None else t


def window_of(faces: list[AlignedFace], centre: AlignedFace, frames: int,
              step_s: float, fps: float = 1.0) -> TrackWindow:
    """A window of ``frames`` slots centred on ``centre`` from ``faces`` (one track, time
    order, ``centre`` among them); ``fps`` gives faces without pts their time."""
    if frames < 1 or frames % 2 == 0:
        raise ContractError(f"a track window has an odd number of frames >= 1, got {frames}")
    if not step_s > 0:
        raise ContractError(f"step_s must be > 0, got {step_s}")
    side = centre.crop.shape[0]
    usable = [f for f in faces if f.crop.shape == centre.crop.shape]
    pos = next((i for i, f in enumerate(usable) if f is centre), None)
    t0, half = face_time(centre, fps), frames // 2
    crops = np.empty((frames, side, side, 3), np.uint8)
    valid = np.zeros(frames, bool)
    crops[half], valid[half] = centre.crop, True
    if pos is not None:
        for k in range(1, half + 1):
            for slot, j in ((half - k, pos - k), (half + k, pos + k)):
                if 0 <= j < len(usable) and abs(face_time(usable[j], fps) - t0) <= k * step_s:
                    crops[slot], valid[slot] = usable[j].crop, True
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
    fps: dict[str, float] = field(default_factory=dict)  # per stream: time of faces without pts
    _faces: dict[Key, deque[AlignedFace]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.frames < 1 or self.frames % 2 == 0:
            raise ContractError(f"buffer frames must be odd and >= 1, got {self.frames}")
        if self.capacity < self.frames:
            raise ContractError(f"buffer capacity {self.capacity} < window {self.frames}")

    def time(self, face: AlignedFace) -> float:
        """Stream seconds of a buffered face (:func:`face_time` at its stream's rate)."""
        return face_time(face, self.fps.get(face.stream_id, 1.0))

    def add(self, face: AlignedFace) -> None:
        """Buffer one aligned face (faces of a track come in time order)."""
        ring = self._faces.setdefault((face.stream_id, face.track_id),
                                      deque(maxlen=self.capacity))
        if ring and self.time(face) < self.time(ring[-1]):
            raise ContractError(f"track {face.track_id}: face at {self.time(face)} s after one at "
                                f"{self.time(ring[-1])} s")
        ring.append(face)

    def ready(self, centre: AlignedFace, wait_s: float, now: float | None = None) -> bool:
        """Whether the window of ``centre`` may be built: the buffer holds ``frames // 2``
        faces of its side after it, or stream time (``now``, else the track's last face) is
        ``wait_s`` past it."""
        if self.frames == 1:
            return True
        half, t0 = self.frames // 2, self.time(centre)
        ring = self._faces.get((centre.stream_id, centre.track_id))
        if not ring:
            return False
        last = self.time(ring[-1]) if now is None else max(now, self.time(ring[-1]))
        if last >= t0 + wait_s:
            return True
        after = 0
        for face in reversed(ring):
            if face is centre or self.time(face) < t0:
                break
            after += face.crop.shape == centre.crop.shape
        return after >= half

    def window(self, centre: AlignedFace, step_s: float) -> TrackWindow:
        """The window of ``centre`` from what is buffered now (missing slots invalid)."""
        if self.frames == 1:
            return TrackWindow.single(centre)
        ring = self._faces.get((centre.stream_id, centre.track_id))
        return window_of(list(ring) if ring else [centre], centre, self.frames, step_s,
                         self.fps.get(centre.stream_id, 1.0))

    def end(self, stream_id: str, track_id: int) -> None:
        """Evict an ended track."""
        self._faces.pop((stream_id, track_id), None)

    def last(self, stream_id: str, track_id: int) -> AlignedFace | None:
        """The track's latest buffered face (None: none)."""
        ring = self._faces.get((stream_id, track_id))
        return ring[-1] if ring else None

    def held(self, stream_id: str, track_id: int) -> int:
        ring = self._faces.get((stream_id, track_id))
        return len(ring) if ring else 0

    def __len__(self) -> int:
        return len(self._faces)
