"""Temporal fusion along tracks in the analysis stage: windows for every face sent to SR.

:class:`TemporalStage` sits between the analysis stage and its channel to the accelerator.
Every detected, aligned face of a track goes into a :class:`~cctv_sr.track.buffer.TrackBuffer`;
every outgoing message goes into its stream's FIFO outbox (streams never wait for each other;
each has its own writer). A ``SaveRequest`` or ``EmbedRequest`` waits there until its face's
window is complete (the track's next ``T // 2`` faces have arrived, or stream time is
``temporal.max_wait_s`` past it, or the track or its stream ended), then leaves with its
:class:`~cctv_sr.records.TrackWindow` attached; messages of its stream behind it wait, so the
accelerator and the writer see each stream's messages in exactly the order the analysis stage
produced them (time order of rows, saves before their evictions).

A track's end builds the windows of its waiting requests from what is buffered before the
buffer lets the track go. With ``frames == 1`` nothing waits and no window is attached.

Frames between two detections: the detector sees a track every few frames (issue 9's scan),
but a window wants neighbouring frames. For every frame in which a live track is carried (not
detected), :meth:`TemporalStage.hold` keeps a small patch of the frame around its predicted
box; when the track is detected again within ``temporal.max_wait_s``, each held frame is
aligned from the landmarks interpolated in stream time between the two detections (both
smoothed) and buffered as window material (``det_index = -1``: never written, embedded or a
best shot, only a neighbour in the windows of the detected faces around it). So a window is
consecutive frames whatever the detection rate; a request waits at most ``max_wait_s``.

Landmark smoothing (:class:`~cctv_sr.track.smooth.TrackSmoother`, One-Euro in stream time)
lives here too: :meth:`TemporalStage.smooth` gives the landmarks a detected face is aligned
from, so the crops of one window line up. faces.jsonl keeps the detector's raw landmarks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np

from cctv_sr.config import TemporalConfig
from cctv_sr.face.align import similarity_to_template, warp_face
from cctv_sr.records import (
    AlignedFace,
    AnalysisMessage,
    EmbedRequest,
    SaveRequest,
    TrackEnd,
    TrackWindow,
    stream_of,
)
from cctv_sr.track.buffer import TrackBuffer
from cctv_sr.track.smooth import SmoothConfig, TrackSmoother

Emit = Callable[[AnalysisMessage], object]
Key = tuple[str, int]

__all__ = ["TemporalStage", "TemporalStats", "window_frames"]


def window_frames(cfg: TemporalConfig, *model_windows: int) -> int:
    """Frames the buffer's windows hold: 1 when temporal fusion is off (``frames == 1``),
    else the largest of ``frames`` and the windows of the models that take one (an SR model
    or an LR head with ``T > 1``; each takes the centre ``T`` slots)."""
    if cfg.frames <= 1:
        return 1
    return max([cfg.frames, *[int(w) for w in model_windows]])


@dataclass
class TemporalStats:
    windows: int = 0  # requests that left with a window of T > 1
    window_frames: int = 0  # valid slots over those windows
    between: int = 0  # frames between detections aligned from interpolated landmarks
    max_waiting: int = 0  # most messages held in the outbox at once


@dataclass
class _Waiting:
    message: AnalysisMessage
    window: TrackWindow | None = None  # built: the message may leave


@dataclass(frozen=True)
class _Held:
    """A frame in which a track was carried: a patch around its predicted box."""

    frame_index: int
    pts: int | None
    time_base: Fraction
    t: float
    patch: np.ndarray
    origin: tuple[int, int]  # the patch's top-left corner in frame pixels
    xyxy: np.ndarray


PATCH_FACES = 3.0  # a held patch is this many predicted face widths square


@dataclass
class TemporalStage:
    """Buffers tracks' aligned faces and holds requests until their windows are complete."""

    cfg: TemporalConfig
    emit: Emit
    frames: int = 1  # window_frames(...)
    stats: TemporalStats = field(default_factory=TemporalStats)
    _buffer: TrackBuffer = field(init=False)
    _smoothers: dict[str, TrackSmoother] = field(default_factory=dict)
    _outbox: dict[str, deque[_Waiting]] = field(default_factory=dict)  # one FIFO per stream
    _now: dict[str, float] = field(default_factory=dict)  # latest stream time per stream
    _period: dict[str, float] = field(default_factory=dict)  # analysed frame period
    _held: dict[Key, list[_Held]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._buffer = TrackBuffer(self.frames, capacity=max(32, 4 * self.frames))

    @property
    def on(self) -> bool:
        return self.frames > 1

    def set_period(self, stream_id: str, seconds: float, fps: float = 25.0) -> None:
        """The stream's analysed frame period (a window slot k frames from the centre takes a
        face within 1.5 k periods of it) and frame rate (the time of frames without pts)."""
        self._period[stream_id] = max(float(seconds), 1e-3)
        self._buffer.fps[stream_id] = max(float(fps), 1e-3)

    def step_s(self, stream_id: str) -> float:
        return 1.5 * self._period.get(stream_id, 0.04)

    def hold(self, stream_id: str, track_id: int, frame_index: int, pts: int | None,
             time_base: Fraction, t: float, image: np.ndarray, xyxy: np.ndarray) -> None:
        """Keep a patch of a frame in which the track was carried (see the module text)."""
        if not self.on:
            return
        box = np.asarray(xyxy, np.float64).reshape(4)
        half = PATCH_FACES * max(box[2] - box[0], box[3] - box[1], 4.0) / 2.0
        cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
        h, w = image.shape[:2]
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(w, int(np.ceil(cx + half))), min(h, int(np.ceil(cy + half)))
        if x1 - x0 < 4 or y1 - y0 < 4:
            return
        held = self._held.setdefault((stream_id, track_id), [])
        held.append(_Held(frame_index, pts, time_base, t, image[y0:y1, x0:x1].copy(),
                          (x0, y0), box.astype(np.float32)))
        while held and t - held[0].t > self.cfg.max_wait_s:
            held.pop(0)
    def smooth(self, stream_id: str, track_id: int, t: float, xyxy: np.ndarray,
               kps: np.ndarray) -> np.ndarray:
        """The landmarks to align a detected face from: smoothed along its track when
        ``temporal.smooth`` is on, else the detector's own."""
        if not self.cfg.smooth:
            return np.asarray(kps, np.float32)
        smoother = self._smoothers.get(stream_id)
        if smoother is None:
            smoother = self._smoothers[stream_id] = TrackSmoother(
                SmoothConfig(self.cfg.min_cutoff_hz, self.cfg.beta))
        return smoother.update(track_id, t, xyxy, kps)[1]

    def add_face(self, face: AlignedFace) -> None:
        """Buffer a detected face of a live track (in the track's time order), after the
        frames held since the track's previous detection, aligned from interpolated
        landmarks."""
        if not self.on:
            return
        key = (face.stream_id, face.track_id)
        held = self._held.pop(key, [])
        last = self._buffer.last(face.stream_id, face.track_id)
        t1 = self._buffer.time(face)
        if last is not None and held and t1 - self._buffer.time(last) <= self.cfg.max_wait_s:
            t0 = self._buffer.time(last)
            side = last.crop.shape[0]
            for h in held:
                if not t0 < h.t < t1:
                    continue
                u = (h.t - t0) / (t1 - t0)
                kps = (1.0 - u) * last.kps + u * face.kps
                M = similarity_to_template(kps.astype(np.float32), side)
                local = M.copy()
                local[:, 2] += M[:, :2] @ np.asarray(h.origin, np.float32)
                crop = warp_face(h.patch, local, side)
                self._buffer.add(AlignedFace(face.stream_id, face.track_id, h.frame_index,
                                             h.pts, h.time_base, -1, h.xyxy,
                                             kps.astype(np.float32), crop, M, last.quality))
                self.stats.between += 1
        self._buffer.add(face)

    def tick(self, stream_id: str, t: float) -> None:
        """Stream ``stream_id`` has been analysed up to time ``t``: windows that no later face
        could complete may leave."""
        self._now[stream_id] = t
        self._release(stream_id)

    def send(self, message: AnalysisMessage) -> None:
        """Queue one outgoing message; whatever is ready leaves, in order."""
        if isinstance(message, TrackEnd):
            self.end_track(message.summary.stream_id, message.summary.track_id)
        stream = stream_of(message)
        self._outbox.setdefault(stream, deque()).append(_Waiting(message))
        self.stats.max_waiting = max(self.stats.max_waiting, len(self))
        self._release(stream)

    def end_track(self, stream_id: str, track_id: int) -> None:
        """A track ended (or was discarded): its waiting requests take their windows from what
        is buffered, then the buffer and the smoother let it go."""
        for waiting in self._outbox.get(stream_id, ()):
            face = _face_of(waiting.message)
            if face is not None and waiting.window is None and face.track_id == track_id:
                waiting.window = self._window(face)
        self._buffer.end(stream_id, track_id)
        self._held.pop((stream_id, track_id), None)
        smoother = self._smoothers.get(stream_id)
        if smoother is not None:
            smoother.end(track_id)

    def flush(self, stream_id: str | None = None) -> None:
        """End of input (of one stream, or of all): every waiting request leaves with what
        is buffered."""
        for stream in [stream_id] if stream_id is not None else list(self._outbox):
            for waiting in self._outbox.get(stream, ()):
                face = _face_of(waiting.message)
                if face is not None and waiting.window is None:
                    waiting.window = self._window(face)
            self._release(stream)

    def _window(self, face: AlignedFace) -> TrackWindow:
        window = self._buffer.window(face, self.step_s(face.stream_id))
        self.stats.windows += 1
        self.stats.window_frames += int(window.valid.sum())
        return window

    def _release(self, stream: str) -> None:
        box = self._outbox.get(stream)
        while box:
            head = box[0]
            face = _face_of(head.message)
            if face is not None and self.on and head.window is None:
                if not self._buffer.ready(face, self.cfg.max_wait_s,
                                          self._now.get(face.stream_id)):
                    return
                head.window = self._window(face)
            box.popleft()
            message = head.message
            if head.window is not None and isinstance(message, (SaveRequest, EmbedRequest)):
                message = replace(message, window=head.window)
            self.emit(message)

    def __len__(self) -> int:
        return sum(len(box) for box in self._outbox.values())


def _face_of(message: AnalysisMessage) -> AlignedFace | None:
    return message.face if isinstance(message, (SaveRequest, EmbedRequest)) else None
