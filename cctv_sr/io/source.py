"""Video input: files and live streams decoded with PyAV in one background thread per source.

Usage::

    with VideoSource("clip.mp4", cfg.source, stream_id="cam0") as source:
        print(source.info)
        for frame in source:      # Frame records, in decode order, BGR uint8
            ...

A bounded queue (``source.queue_size``) sits between the decode thread and the consumer. For
files it blocks, so no frame is lost. For live streams a slow consumer does not stall the
camera: when the queue is full the oldest waiting frame is dropped (``stats.dropped_live``).

``source.stride`` and ``source.max_fps`` thin the frames that are yielded; ``Frame.index``
still counts every decoded frame. Packets that fail to decode are skipped and counted in
``stats.decode_errors``, so a damaged or truncated file yields what it can and then ends.

Live streams (see :func:`is_live_url`) are opened with ``source.rtsp_transport`` and PyAV's
interrupt-callback timeouts: the first open fails with :class:`SourceError` after
``source.open_timeout_s`` (a wrong URL is reported at once, before anything is written).
After that, a stream that ends (RTCP BYE, server gone), fails, sends garbage or nothing for
``source.read_timeout_s`` is *reopened*, waiting ``source.reconnect_backoff_s`` doubling up to
``source.reconnect_max_backoff_s`` between attempts, forever unless ``source.max_reconnects``
(attempts in a row) says otherwise; then the iteration raises SourceError ("lost: ..."). With
``max_reconnects = 0`` a clean end ends the iteration and a failure raises. Each session runs
in its own thread under a watchdog: one that yields no frame for ``source.stall_timeout_s``
(a read hung inside FFmpeg, which PyAV's timeouts do not always interrupt) is abandoned and
the stream reopened. Outages are reported to ``on_event`` (:mod:`cctv_sr.io.events`); every
Frame carries its ``session`` number, so the analysis ends a stream's tracks at an outage.

Time: ``Frame.pts`` is rewritten by :class:`~cctv_sr.io.live.Timeline` so stream time starts
at 0 at the first frame (a file's pts minus its first pts; ``pts_origin`` keeps the offset)
and, for live streams, continues monotonically across reconnects; ``source.clock`` maps it to
wall-clock UTC. A file that ends before the frame count (or duration) its container states is
reported in ``truncation`` (a warning; the run says ``truncated``).

Threading: :meth:`VideoSource.stop` may be called from any thread (e.g. a Ctrl-C handler);
the consumer's loop then ends within ~0.1 s and ``stop()`` joins the decode thread. The decode
thread notices the stop between packets, which is immediate for files and flowing streams. A
read blocked on a stream that has gone silent can only be interrupted by PyAV's read timeout,
so in that one case ``stop()`` gives up joining after its ``timeout`` (2 s) and the thread, a
daemon that closes its own container, exits by itself within ``source.read_timeout_s``.
A source is iterated once; leaving the loop early (``break``) stops it and joins the thread.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from types import TracebackType
from typing import Any

import av.error
import numpy as np

from cctv_sr.channel import Channel, End, Failure
from cctv_sr.config import SourceConfig
from cctv_sr.errors import SourceError
from cctv_sr.io.container import (
    RateLimitedWarning,
    SourceInfo,
    SourceStats,
    describe,
    file_sha256,
    is_live_url,
    open_container,
    redact_url,
    video_stream,
)
from cctv_sr.io.events import Event, OutageEnd, OutageStart, StreamLost
from cctv_sr.io.live import Backoff, StreamClock, Timeline, creation_epoch
from cctv_sr.records import Frame

__all__ = [
    "SourceInfo",
    "SourceStats",
    "VideoSource",
    "file_sha256",
    "is_live_url",
    "redact_url",
]

logger = logging.getLogger(__name__)

_POLL_S = 0.05  # how often the consumer re-checks the stop flag and the decode thread
_MAX_READ_RETRIES = 3  # consecutive demuxer errors in a file before it is treated as ended
_DEFAULT_CONFIG = SourceConfig()  # frozen, so one shared default is safe


class _Stopped(Exception):
    """Raised inside the decode thread when stop() interrupts a blocking put."""


EventSink = Callable[[Event, float], object]  # (event, wall time) -> anything


@dataclass(frozen=True)
class Truncation:
    """A file that ended before its container said it would."""

    expected: int  # frames the container states (or its duration times its rate)
    decoded: int
    basis: str  # frame_count | duration


@dataclass
class _Session:
    """One connection of a live stream (or the one pass over a file)."""

    number: int
    container: Any
    stream: Any
    heartbeat: float  # monotonic time of the last frame (or of the session's start)
    frames: int = 0
    abandoned: bool = False  # the watchdog gave up on it: its frames are refused
    clean: bool = False  # ended by the stream (BYE / end of file), not by an error
    outcome: str = ""  # why it ended


@dataclass
class _Outage:
    last_wall: float  # monotonic time of the last frame before it
    attempts: int = 0


class VideoSource:
    """Frames of one video file or live stream, decoded in a background thread.

    ``url`` is a file path or a stream URL; ``stream_id`` names the source in every Frame.
    Use as a context manager (``__enter__`` opens, ``__exit__`` stops and closes), or call
    :meth:`open`, iterate, then :meth:`close`.
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        cfg: SourceConfig = _DEFAULT_CONFIG,
        stream_id: str = "cam0",
        on_event: EventSink | None = None,
    ) -> None:
        self.url = os.fspath(url)
        self.cfg = cfg
        self.stream_id = stream_id
        self.is_live = is_live_url(self.url)
        self.name = redact_url(self.url)
        self._stop = threading.Event()
        # decode thread -> consumer; a blocked put gives up when stop() sets _stop
        self._queue: Channel[Frame] = Channel(cfg.queue_size, abort=self._stop)
        self._lock = threading.Lock()  # guards state and counters, never held while blocking
        self._open_lock = threading.Lock()  # serialises open()
        self._container: Any = None
        self._stream: Any = None
        self._info: SourceInfo | None = None
        self._thread: threading.Thread | None = None
        self._iterating = False
        self._counts = {k: 0 for k in SourceStats.__dataclass_fields__}
        self._warn_decode = RateLimitedWarning()
        self._warn_drop = RateLimitedWarning(first=1, every_s=30.0)
        gap = Fraction(repr(float(cfg.max_fps))) if cfg.max_fps > 0 else None
        self._min_gap: Fraction | None = None if gap is None else 1 / gap
        self._last_time: Fraction | None = None
        self._time_base = Fraction(1, 1)  # the stream's, set by open()
        self.on_event = on_event
        self.clock = StreamClock()  # stream seconds -> UTC (set by open() / the first frame)
        self.truncation: Truncation | None = None  # set when a file ended early
        self._timeline = Timeline(self._time_base, self.is_live)
        self._session: _Session | None = None
        self._outage: _Outage | None = None

    # ----------------------------------------------------------------- public API

    def open(self) -> SourceInfo:
        """Open the input (once) and return its :class:`SourceInfo`.

        Raises SourceError for a missing, empty or unreadable file, a file with no video
        stream, or a stream that does not answer within ``open_timeout_s``.
        """
        with self._open_lock:
            if self._info is not None:
                return self._info
            container = open_container(self.url, self.cfg, self.is_live)
            try:
                stream = video_stream(container, self.name)
                stream.codec_context.thread_type = "AUTO"
                info = describe(container, stream, self.name, self.is_live)
            except BaseException:
                container.close()
                raise
            with self._lock:
                self._container, self._stream, self._info = container, stream, info
                self._time_base = info.time_base
                self._timeline = Timeline(info.time_base, self.is_live)
            if not self.is_live:
                epoch = creation_epoch(container)
                if epoch is not None:
                    self.clock.epoch, self.clock.origin = epoch, "creation_time"
            logger.info(
                "opened %s: %s %dx%d fps=%s live=%s", self.name, info.codec, info.width,
                info.height, f"{info.fps:.3f}" if info.fps else "?", info.is_live,
            )
            return info

    @property
    def info(self) -> SourceInfo:
        """Facts about the input; opens it first if needed."""
        return self._info if self._info is not None else self.open()

    @property
    def stats(self) -> SourceStats:
        """A consistent snapshot of the counters (safe from any thread)."""
        with self._lock:
            return SourceStats(**self._counts)

    def __iter__(self) -> Iterator[Frame]:
        """Frames in decode order; starts the decode thread on first use.

        Ends at the end of the file or stream, or soon after :meth:`stop`. A failure in the
        decode thread is raised here as SourceError. Iterating a stopped source yields nothing.
        """
        return self._frames()

    def stop(self, timeout: float = 2.0) -> None:
        """Make iteration end and wait up to ``timeout`` s for the decode thread to exit.

        Thread-safe and idempotent. A decode thread still blocked in a read of a silent live
        stream after ``timeout`` is left to exit by itself at the read timeout.
        """
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout)
        if thread.is_alive():
            logger.warning(
                "%s: decode thread still blocked in a read; it exits within %g s "
                "(source.read_timeout_s)", self.name, self.cfg.read_timeout_s,
            )
        else:
            self._drain()

    def close(self) -> None:
        """Stop and release the container (the decode thread closes it if it was started)."""
        self.stop()
        with self._lock:
            container = self._container if self._thread is None else None
            if container is not None:
                self._container = None
        if container is not None:
            container.close()

    def __enter__(self) -> VideoSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VideoSource({self.name!r}, stream_id={self.stream_id!r}, live={self.is_live})"

    # ----------------------------------------------------------------- consumer side

    def _frames(self) -> Iterator[Frame]:
        if self._stop.is_set():
            return
        self.open()
        with self._lock:
            if self._iterating:
                raise RuntimeError(f"{self!r} is already being iterated")
            self._iterating = True
        thread: threading.Thread | None = None
        try:
            thread = self._start()
            while thread is not None and not self._stop.is_set():
                try:
                    item = self._queue.get(timeout=_POLL_S)
                except queue.Empty:
                    if not (thread.is_alive() or self._stop.is_set() or self._queue.qsize()):
                        message = f"{self.name}: decode thread ended unexpectedly"
                        raise SourceError(message) from None
                    continue
                if isinstance(item, End):
                    return
                if isinstance(item, Failure):
                    raise item.exc
                self._count("yielded")
                yield item
                if self.cfg.max_frames and self.stats.yielded >= self.cfg.max_frames:
                    return  # source.max_frames reached: a normal end of input
        finally:
            if thread is None or not self._stop.is_set():
                self.close()  # end of input, failure, or the consumer left the loop
            # else stop() came from another thread, which joins the decode thread itself

    def _start(self) -> threading.Thread | None:
        """Start the decode thread unless stop() came first (e.g. during a slow open)."""
        with self._lock:
            if self._stop.is_set():
                return None
            self._thread = threading.Thread(
                target=self._run, name=f"cctv_sr-source-{self.stream_id}", daemon=True
            )
            self._thread.start()
            return self._thread

    def _drain(self) -> None:
        self._queue.clear()

    # ----------------------------------------------------------------- decode thread

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def _run(self) -> None:
        final: SourceError | None = None  # None: a normal end
        try:
            if self.is_live:
                self._run_live()
            else:
                self._run_file()
        except _Stopped:
            return
        except SourceError as exc:
            final = exc
        except Exception as exc:  # never leave the consumer waiting
            logger.debug("%s: decode thread failed", self.name, exc_info=True)
            final = self._failure(f"{self.name}: decoding failed: {type(exc).__name__}: {exc}",
                                  exc)
        if self._stop.is_set():
            return
        if final is None:
            self._queue.end()
        else:
            self._queue.fail("source", final)

    @staticmethod
    def _failure(message: str, cause: BaseException) -> SourceError:
        error = SourceError(message)
        error.__cause__ = cause
        return error

    # files --------------------------------------------------------------------------------
    def _run_file(self) -> None:
        with self._lock:
            session = _Session(1, self._container, self._stream, time.monotonic())
            self._container = None  # the session owns it now
        try:
            self._decode_all(session)
        except av.error.FFmpegError as exc:
            raise self._failure(f"{self.name}: read failed: {exc.strerror or exc}",
                                exc) from None
        finally:
            _close(session, self.name)
        if self._stop.is_set():
            raise _Stopped
        stats = self.stats
        if stats.decoded == 0:
            raise SourceError(f"{self.name}: no decodable video frames")
        if stats.decode_errors:
            logger.warning("%s: ended after %d frames; %d packets or reads failed and were "
                           "skipped", self.name, stats.decoded, stats.decode_errors)
        self.truncation = self._truncated(stats.decoded)
        if self.truncation is not None:
            t = self.truncation
            logger.warning("%s: truncated: the file ends after %d of the %d frames its "
                           "container states (by its %s)", self.name, t.decoded, t.expected,
                           t.basis.replace("_", " "))

    def _truncated(self, decoded: int) -> Truncation | None:
        info = self._info
        if info is None:
            return None
        if info.frame_count:
            if decoded < info.frame_count - max(2, 0.005 * info.frame_count):
                return Truncation(info.frame_count, decoded, "frame_count")
            return None
        last = self._timeline.last_t
        if info.duration_s and info.fps and last is not None:
            if last + 1.0 / info.fps < info.duration_s - max(1.0, 0.01 * info.duration_s):
                return Truncation(round(info.duration_s * info.fps), decoded, "duration")
        return None

    # live streams -------------------------------------------------------------------------
    def _run_live(self) -> None:
        cfg = self.cfg
        with self._lock:
            session = _Session(1, self._container, self._stream, time.monotonic())
            self._container = None  # each session closes its own container
        backoff = Backoff(cfg.reconnect_backoff_s, cfg.reconnect_max_backoff_s)
        while True:
            self._watch(session)
            if self._stop.is_set():
                raise _Stopped
            reason = session.outcome or "the stream ended"
            if session.frames:
                backoff.reset()
                if cfg.max_reconnects == 0:
                    if session.clean:
                        return  # the stream ended and reconnecting is off: a normal end
                    raise SourceError(f"{self.name}: {reason}")
                self._outage = _Outage(self._timeline.last_wall or time.monotonic())
                logger.warning("%s: %s; reconnecting", self.name, reason)
                self._emit(OutageStart(self.stream_id, reason, self._timeline.last_t,
                                       self.stats.decoded))
            else:  # the session gave no frame: opening failed, or it failed at once
                if cfg.max_reconnects == 0:
                    if session.clean:
                        reason = "no decodable video frames"
                    raise SourceError(f"{self.name}: {reason}")
                backoff.failures += 1
                if self._outage is None:  # the first session, before its first frame
                    self._outage = _Outage(time.monotonic())
                    self._emit(OutageStart(self.stream_id, reason, None, 0))
                logger.info("%s: reconnect attempt failed: %s", self.name, reason)
                outage = self._outage
                if 0 < cfg.max_reconnects <= outage.attempts:
                    self._emit(StreamLost(self.stream_id, reason, outage.attempts))
                    raise SourceError(
                        f"{self.name}: lost: {outage.attempts} reconnect attempts in a row "
                        f"failed (source.max_reconnects); last: {reason}")
            if self._stop.wait(backoff.next_delay()):
                raise _Stopped
            if self._outage is not None:
                self._outage.attempts += 1
            self._count("reconnect_attempts")
            self._timeline.new_session()
            session = _Session(session.number + 1, None, None, time.monotonic())

    def _watch(self, session: _Session) -> None:
        """Run one session in its own thread; return when it ends, on stop(), or when it
        has yielded no frame for ``stall_timeout_s`` (the watchdog abandons it)."""
        thread = threading.Thread(target=self._session_main, args=(session,), daemon=True,
                                  name=f"cctv_sr-session-{self.stream_id}-{session.number}")
        with self._lock:
            self._session = session
        thread.start()
        while True:
            thread.join(4 * _POLL_S)
            if not thread.is_alive() or self._stop.is_set():
                return
            limit = self.cfg.stall_timeout_s
            if not session.frames and session.container is None:
                limit += self.cfg.open_timeout_s  # still opening
            idle = time.monotonic() - session.heartbeat
            if idle > limit:
                session.abandoned = True
                session.outcome = (f"stalled: no frame for {idle:.1f} s "
                                   "(source.stall_timeout_s)")
                self._count("stalls")
                return

    def _session_main(self, session: _Session) -> None:
        """One connection: open (after the first), decode until it ends; never raises."""
        prefix = f"{self.name}: "
        try:
            if session.container is None:
                session.container = open_container(self.url, self.cfg, True)
                session.stream = video_stream(session.container, self.name)
                session.stream.codec_context.thread_type = "AUTO"
                session.heartbeat = time.monotonic()
            self._decode_all(session)
            session.clean = True
        except _Stopped:
            session.outcome = "stopped"
        except av.error.ExitError:
            session.outcome = f"no data for {self.cfg.read_timeout_s:g} s (source.read_timeout_s)"
        except av.error.FFmpegError as exc:
            session.outcome = f"read failed: {exc.strerror or exc}"
        except SourceError as exc:
            text = str(exc)
            session.outcome = text[len(prefix):] if text.startswith(prefix) else text
        except Exception as exc:  # noqa: BLE001 - reported as the session's outcome
            logger.debug("%s: session %d failed", self.name, session.number, exc_info=True)
            session.outcome = f"decoding failed: {type(exc).__name__}: {exc}"
        finally:
            if session.abandoned:
                logger.info("%s: an abandoned session's read returned", self.name)
            _close(session, self.name)

    def _emit(self, event: Event) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event, time.time())
        except Exception:  # noqa: BLE001 - reporting must not end the stream
            logger.exception("%s: could not record a %s event", self.name, event.event)

    # both ---------------------------------------------------------------------------------
    def _decode_all(self, session: _Session) -> None:
        """Demux and decode to the end; files survive a few consecutive demuxer errors."""
        container, stream = session.container, session.stream
        failures = 0
        while True:
            try:
                for packet in container.demux(stream):
                    failures = 0
                    if self._stop.is_set() or session.abandoned:
                        return
                    self._decode(packet, session)
                return
            except av.error.ExitError:
                raise
            except av.error.FFmpegError as exc:
                if self.is_live:
                    raise
                failures += 1
                self._count("decode_errors")
                self._warn_decode(f"{self.name}: read error ({exc.strerror or exc}), skipping")
                if failures >= _MAX_READ_RETRIES:
                    logger.warning("%s: unreadable from here on, ending the file", self.name)
                    self._decode(None, session)  # flush frames still inside the decoder
                    return

    def _decode(self, packet: Any, session: _Session) -> None:
        try:
            frames = session.stream.codec_context.decode(packet)
        except av.error.ExitError:
            raise
        except av.error.FFmpegError as exc:
            self._count("decode_errors")
            where = f" at pts {packet.pts}" if packet is not None else ""
            self._warn_decode(
                f"{self.name}: packet{where} failed to decode "
                f"({exc.strerror or exc}), skipped"
            )
            return
        for video_frame in frames:
            self._handle(video_frame, session)

    def _handle(self, video_frame: Any, session: _Session) -> None:
        if session.abandoned:
            raise _Stopped
        now = time.monotonic()
        session.heartbeat = now
        with self._lock:
            index = self._counts["decoded"]
            self._counts["decoded"] = index + 1
        timeline = self._timeline
        pts = timeline.place(video_frame.pts, Fraction(video_frame.time_base or self._time_base),
                             now)
        if self.is_live and not session.frames:
            self._session_started(session, now, None if pts is None
                                  else float(pts * timeline.time_base))
        session.frames += 1
        if not self._wanted(index, pts, timeline.time_base):
            self._count("skipped")
            return
        image = np.ascontiguousarray(video_frame.to_ndarray(format="bgr24"))
        self._put(Frame(self.stream_id, index, pts, timeline.time_base, image,
                        session=session.number))

    def _session_started(self, session: _Session, now: float, seconds: float | None) -> None:
        """The first frame of a live session: the end of an outage, the clock's epoch."""
        if self.clock.epoch is None and self._timeline.last_t is not None:
            self.clock.set_live(time.time() - self._timeline.last_t)
        outage, self._outage = self._outage, None
        if outage is None:
            return
        gap = max(now - outage.last_wall, 0.0)
        fps = self._info.fps if self._info is not None and self._info.fps else 0.0
        lost = max(round(gap * fps) - 1, 0)
        self._count("reconnects")
        self._count("frames_lost", lost)
        logger.warning("%s: reconnected after %.1f s (%d attempts, about %d frames lost)",
                       self.name, gap, outage.attempts, lost)
        self._emit(OutageEnd(self.stream_id, round(gap, 3), outage.attempts, lost, seconds))

    def _wanted(self, index: int, pts: int | None, time_base: Fraction) -> bool:
        """Apply stride, then max_fps (by pts time; by index/fps when pts is missing)."""
        if index % self.cfg.stride:
            return False
        if self._min_gap is None:
            return True
        fps = self._info.fps if self._info is not None else None
        if pts is not None:
            now = pts * Fraction(time_base)
        elif fps:
            now = Fraction(index) / Fraction(repr(fps))
        else:
            return True
        last = self._last_time
        if last is None or now >= last + self._min_gap or now < last:  # now < last: pts reset
            self._last_time = now
            return True
        return False

    def _put(self, frame: Frame) -> None:
        if self.is_live:  # never block a live stream: drop the oldest waiting frame
            if self._queue.put_latest(frame) is not None:
                self._count("dropped_live")
                self._warn_drop(f"{self.name}: consumer too slow, dropping oldest frames")
            return
        if not self._queue.put(frame):  # stop() came while the consumer was not reading
            raise _Stopped


def _close(session: _Session, name: str) -> None:
    container, session.container = session.container, None
    if container is None:
        return
    try:
        container.close()
    except Exception:  # noqa: BLE001 - closing must not mask the real outcome
        logger.debug("%s: error closing container", name, exc_info=True)
