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
interrupt-callback timeouts; the first open fails with :class:`SourceError` after
``source.open_timeout_s`` (a wrong URL is reported at once). After that, a stream that ends,
fails or stalls is reopened by :class:`~cctv_sr.io.sessions.LiveSupervisor` (one thread per
session, a watchdog, backoff, ``source.max_reconnects``); outages go to ``on_event`` and every
Frame carries its ``session`` number, so the analysis ends a stream's tracks at an outage.

Time: ``Frame.pts`` is rewritten by :class:`~cctv_sr.io.live.Timeline`: stream time from 0 at
the first frame (a file's pts minus its first pts), monotonic across a live stream's
reconnects; ``source.clock`` maps it to wall-clock UTC. A file that ends before the frame
count (or duration) its container states is reported in ``truncation`` (a warning; the run
says ``truncated``).

Threading: :meth:`VideoSource.stop` may be called from any thread (e.g. a Ctrl-C handler);
the consumer's loop then ends within ~0.1 s and ``stop()`` joins the decode thread. A live
session blocked in a read of a silent stream runs in its own daemon thread, which closes its
container when FFmpeg returns. A source is iterated once; leaving the loop early (``break``)
stops it and joins the thread.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from types import TracebackType
from typing import Any

import av.error
import numpy as np

from cctv_sr.channel import Channel, End, Failure
from cctv_sr.config import SourceConfig
from cctv_sr.errors import CctvSrError, SourceError
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
from cctv_sr.io.events import Event
from cctv_sr.io.live import StreamClock, Thinning, Timeline, creation_epoch
from cctv_sr.io.sessions import (
    LiveSupervisor,
    Session,
    SessionDecoder,
    Stopped,
    Truncation,
    close_session,
    truncation_of,
)
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
_DEFAULT_CONFIG = SourceConfig()  # frozen, so one shared default is safe


EventSink = Callable[[Event, float], object]  # (event, wall time) -> anything


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
        self._warn_drop = RateLimitedWarning(first=1, every_s=30.0)
        self._thin = Thinning(cfg.stride, cfg.max_fps)
        self._time_base = Fraction(1, 1)  # the stream's, set by open()
        self.on_event = on_event
        self.clock = StreamClock()  # stream seconds -> UTC (set by open() / the first frame)
        self.truncation: Truncation | None = None  # set when a file ended early
        self._timeline = Timeline(self._time_base, self.is_live)
        self._decoder = SessionDecoder(self.name, self.is_live, self._stop, self._handle,
                                       self._count)
        self._live = self._supervisor()

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
                self._live = self._supervisor()
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
            self._queue.clear()

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

    def _supervisor(self) -> LiveSupervisor:
        return LiveSupervisor(self.url, self.name, self.stream_id, self.cfg, self._stop,
                              self._timeline, self._decoder.run, self._emit, self._count,
                              lambda: self.stats.decoded)

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
        except Stopped:
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
            session = Session(1, self._container, self._stream, time.monotonic())
            self._container = None  # the session owns it now
        try:
            self._decoder.run(session)
        except av.error.FFmpegError as exc:
            raise self._failure(f"{self.name}: read failed: {exc.strerror or exc}",
                                exc) from None
        finally:
            close_session(session, self.name)
        if self._stop.is_set():
            raise Stopped
        stats = self.stats
        if stats.decoded == 0:
            raise SourceError(f"{self.name}: no decodable video frames")
        if stats.decode_errors:
            logger.warning("%s: ended after %d frames; %d packets or reads failed and were "
                           "skipped", self.name, stats.decoded, stats.decode_errors)
        if self._info is not None:
            self.truncation = truncation_of(self._info, stats.decoded, self._timeline.last_t)
        if self.truncation is not None:
            t = self.truncation
            logger.warning("%s: truncated: the file ends after %d of the %d frames its "
                           "container states (by its %s)", self.name, t.decoded, t.expected,
                           t.basis.replace("_", " "))

    # live streams -------------------------------------------------------------------------
    def _run_live(self) -> None:
        with self._lock:
            container, stream = self._container, self._stream
            self._container = None  # each session closes its own container
        self._live.run(container, stream)

    def _emit(self, event: Event) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event, time.time())
        except CctvSrError as exc:  # a full disk: the run reports it when it closes its files
            logger.error("%s: %s event not recorded: %s", self.name, event.event, exc)
        except Exception:  # noqa: BLE001 - reporting must not end the stream
            logger.exception("%s: could not record a %s event", self.name, event.event)

    def _handle(self, video_frame: Any, session: Session) -> None:
        if session.abandoned or self._stop.is_set():
            raise Stopped  # nothing (frames, events, counts) after stop() or abandonment
        now = time.monotonic()
        session.heartbeat = now
        with self._lock:
            index = self._counts["decoded"]
            self._counts["decoded"] = index + 1
        timeline = self._timeline
        pts = timeline.place(video_frame.pts, Fraction(video_frame.time_base or self._time_base),
                             now)
        fps = self._info.fps if self._info is not None else None
        if self.is_live and not session.frames:  # a session's first frame
            if self.clock.epoch is None and timeline.last_t is not None:
                self.clock.set_live(time.time() - timeline.last_t)
            self._live.first_frame(now, None if pts is None
                                   else float(pts * timeline.time_base), fps or 0.0)
        session.frames += 1
        if not self._thin.wanted(index, pts, timeline.time_base, fps):
            self._count("skipped")
            return
        image = np.ascontiguousarray(video_frame.to_ndarray(format="bgr24"))
        self._put(Frame(self.stream_id, index, pts, timeline.time_base, image,
                        session=session.number))

    def _put(self, frame: Frame) -> None:
        if self.is_live:  # never block a live stream: drop the oldest waiting frame
            if self._queue.put_latest(frame) is not None:
                self._count("dropped_live")
                self._warn_drop(f"{self.name}: consumer too slow, dropping oldest frames")
            return
        if not self._queue.put(frame):  # stop() came while the consumer was not reading
            raise Stopped

