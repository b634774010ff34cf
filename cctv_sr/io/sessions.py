"""The sessions of a source: decoding one (:class:`SessionDecoder`) and, for a live stream,
one thread per session, a watchdog, reconnects (:class:`LiveSupervisor`).

:class:`LiveSupervisor` is what a live :class:`~cctv_sr.io.source.VideoSource`'s decode thread
runs. Each session (connection) runs in its own thread: open (the first one was opened by
``VideoSource.open``), demux, decode, until the stream ends or fails. The supervisor waits on
it with a watchdog: a session that yields no frame for ``source.stall_timeout_s`` (plus
``open_timeout_s`` while it is still opening) is abandoned, because PyAV's interrupt-callback
timeouts do not cover every read that hangs inside FFmpeg; its frames are refused from then
on and it closes its own container when FFmpeg returns. A session that had frames starts an
outage; the stream is reopened, ``reconnect_backoff_s`` doubling per failed attempt up to
``reconnect_max_backoff_s`` between attempts, until a session yields a
frame (the outage ends) or ``source.max_reconnects`` attempts in a row failed (the stream is
lost: SourceError). ``max_reconnects = 0``: no reconnects, a clean end ends the stream.

Threading: the supervisor and its state belong to the decode thread, except
:meth:`LiveSupervisor.first_frame`, which the session thread calls; sessions are sequential
(a new one starts only after the previous ended or was abandoned), so the outage record is
never touched by two threads at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av.error

from cctv_sr.config import SourceConfig
from cctv_sr.errors import SourceError
from cctv_sr.io.container import RateLimitedWarning, SourceInfo, open_container, video_stream
from cctv_sr.io.events import Event, OutageEnd, OutageStart, StreamLost
from cctv_sr.io.live import Timeline

logger = logging.getLogger(__name__)

_WATCH_S = 0.2  # how often the watchdog looks at a session
_MAX_READ_RETRIES = 3  # consecutive demuxer errors in a file before it is treated as ended


class Stopped(Exception):
    """Raised inside a decode thread when stop() (or the watchdog) ends its work."""


@dataclass(frozen=True)
class Truncation:
    """A file that ended before its container said it would."""

    expected: int  # frames the container states (or its duration times its rate)
    decoded: int
    basis: str  # frame_count | duration


def truncation_of(info: SourceInfo, decoded: int, last_t: float | None) -> Truncation | None:
    """Whether a file that ended after ``decoded`` frames (the last at ``last_t`` s) was
    cut short: fewer frames than its count (a few frames' slack), or, without a count, an end
    more than a second (or 1%) before its stated duration."""
    if info.frame_count:
        if decoded < info.frame_count - max(2, 0.005 * info.frame_count):
            return Truncation(info.frame_count, decoded, "frame_count")
        return None
    if info.duration_s and info.fps and last_t is not None:
        if last_t + 1.0 / info.fps < info.duration_s - max(1.0, 0.01 * info.duration_s):
            return Truncation(round(info.duration_s * info.fps), decoded, "duration")
    return None


@dataclass
class Session:
    """One connection of a live stream (or the one pass over a file)."""

    number: int
    container: Any
    stream: Any
    heartbeat: float  # monotonic time of the last frame (or of the session's start)
    frames: int = 0
    abandoned: bool = False  # the watchdog gave up on it: its frames are refused
    clean: bool = False  # ended by the stream (BYE / end of file), not by an error
    outcome: str = ""  # why it ended
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def end(self, outcome: str, clean: bool = False, abandon: bool = False) -> None:
        """Record how the session ended, once: the watchdog's verdict (``abandon``) and the
        session thread's own end race, and the first one stands."""
        with self._lock:
            if self.abandoned or self.outcome or self.clean:
                return
            self.outcome, self.clean, self.abandoned = outcome, clean, abandon


def close_session(session: Session, name: str) -> None:
    container, session.container = session.container, None
    if container is None:
        return
    try:
        container.close()
    except Exception:  # noqa: BLE001 - closing must not mask the real outcome
        logger.debug("%s: error closing container", name, exc_info=True)


class SessionDecoder:
    """Demuxes and decodes one session to its end, handing each decoded frame to
    ``on_frame``. A packet that fails to decode is counted and skipped; a file survives a few
    consecutive demuxer errors (then ends, flushing the decoder); a live stream's demuxer error
    ends the session (the supervisor reopens it)."""

    def __init__(self, name: str, live: bool, stop: threading.Event,
                 on_frame: Callable[[Any, Session], None],
                 count: Callable[[str, int], None]) -> None:
        self.name, self.live, self.stop = name, live, stop
        self.on_frame, self.count = on_frame, count
        self._warn = RateLimitedWarning()

    def run(self, session: Session) -> None:
        container, stream = session.container, session.stream
        failures = 0
        while True:
            try:
                for packet in container.demux(stream):
                    failures = 0
                    if self.stop.is_set() or session.abandoned:
                        return
                    self._decode(packet, session)
                return
            except av.error.ExitError:
                raise
            except av.error.FFmpegError as exc:
                if self.live:
                    raise
                failures += 1
                self.count("decode_errors", 1)
                self._warn(f"{self.name}: read error ({exc.strerror or exc}), skipping")
                if failures >= _MAX_READ_RETRIES:
                    logger.warning("%s: unreadable from here on, ending the file", self.name)
                    self._decode(None, session)  # flush frames still inside the decoder
                    return

    def _decode(self, packet: Any, session: Session) -> None:
        try:
            frames = session.stream.codec_context.decode(packet)
        except av.error.ExitError:
            raise
        except av.error.FFmpegError as exc:
            self.count("decode_errors", 1)
            where = f" at pts {packet.pts}" if packet is not None else ""
            self._warn(f"{self.name}: packet{where} failed to decode "
                       f"({exc.strerror or exc}), skipped")
            return
        for video_frame in frames:
            self.on_frame(video_frame, session)


@dataclass
class _Outage:
    last_wall: float  # monotonic time of the last frame before it
    attempts: int = 0


class LiveSupervisor:
    """Runs a live stream's sessions one after another (see the module docstring)."""

    def __init__(self, url: str, name: str, stream_id: str, cfg: SourceConfig,
                 stop: threading.Event, timeline: Timeline,
                 decode: Callable[[Session], None], emit: Callable[[Event], None],
                 count: Callable[[str, int], None], decoded: Callable[[], int]) -> None:
        self.url, self.name, self.stream_id, self.cfg = url, name, stream_id, cfg
        self.stop, self.timeline = stop, timeline
        self.decode, self.emit, self.count, self.decoded = decode, emit, count, decoded
        self.outage: _Outage | None = None

    def run(self, container: Any, stream: Any) -> None:
        """Sessions until the stream is lost (SourceError), ends with reconnects off (returns),
        or stop() (raises Stopped). ``container``/``stream``: the first session, opened."""
        cfg = self.cfg
        session = Session(1, container, stream, time.monotonic())
        while True:
            self._watch(session)
            if self.stop.is_set():
                raise Stopped
            reason = session.outcome or "the stream ended"
            if session.frames:
                if cfg.max_reconnects == 0:
                    if session.clean:
                        return  # the stream ended and reconnecting is off: a normal end
                    raise SourceError(f"{self.name}: {reason}")
                self.outage = _Outage(self.timeline.last_wall or time.monotonic())
                logger.warning("%s: %s; reconnecting", self.name, reason)
                self.emit(OutageStart(self.stream_id, reason, self.timeline.last_t,
                                      self.decoded()))
            else:  # the session gave no frame: opening failed, or it failed at once
                if cfg.max_reconnects == 0:
                    if session.clean:
                        reason = "no decodable video frames"
                    raise SourceError(f"{self.name}: {reason}")
                if self.outage is None:  # the first session, before its first frame
                    self.outage = _Outage(time.monotonic())
                    self.emit(OutageStart(self.stream_id, reason, None, 0))
                logger.info("%s: reconnect attempt failed: %s", self.name, reason)
                if 0 < cfg.max_reconnects <= self.outage.attempts:
                    self.emit(StreamLost(self.stream_id, reason, self.outage.attempts))
                    raise SourceError(
                        f"{self.name}: lost: {self.outage.attempts} reconnect attempts in a "
                        f"row failed (source.max_reconnects); last: {reason}")
            # the wait doubles with each failed attempt (the exponent capped: a camera away
            # for days must not overflow it)
            delay = cfg.reconnect_backoff_s * 2.0 ** min(max(self.outage.attempts - 1, 0), 30)
            if self.stop.wait(min(delay, cfg.reconnect_max_backoff_s)):
                raise Stopped
            self.outage.attempts += 1
            self.count("reconnect_attempts", 1)
            self.timeline.new_session()
            session = Session(session.number + 1, None, None, time.monotonic())

    def first_frame(self, now: float, seconds: float | None, fps: float) -> None:
        """A session's first frame (session thread): the end of the outage, if one."""
        outage, self.outage = self.outage, None
        if outage is None:
            return
        gap = max(now - outage.last_wall, 0.0)
        lost = max(round(gap * fps) - 1, 0)
        self.count("reconnects", 1)
        self.count("frames_lost", lost)
        logger.warning("%s: reconnected after %.1f s (%d attempts, about %d frames lost)",
                       self.name, gap, outage.attempts, lost)
        self.emit(OutageEnd(self.stream_id, round(gap, 3), outage.attempts, lost, seconds))

    def _watch(self, session: Session) -> None:
        """Run one session in its own thread; return when it ends, on stop(), or when it has
        yielded no frame for ``stall_timeout_s`` (the watchdog abandons it)."""
        thread = threading.Thread(target=self._session_main, args=(session,), daemon=True,
                                  name=f"cctv_sr-session-{self.stream_id}-{session.number}")
        thread.start()
        while True:
            thread.join(_WATCH_S)
            if not thread.is_alive() or self.stop.is_set():
                return
            limit = self.cfg.stall_timeout_s
            if not session.frames and session.container is None:
                limit += self.cfg.open_timeout_s  # still opening
            idle = time.monotonic() - session.heartbeat
            if idle > limit:
                session.end(f"stalled: no frame for {idle:.1f} s (source.stall_timeout_s)",
                            abandon=True)
                if session.abandoned:
                    self.count("stalls", 1)
                return

    def _session_main(self, session: Session) -> None:
        """One connection: open (after the first), decode until it ends; never raises."""
        prefix = f"{self.name}: "
        try:
            if session.container is None:
                session.container = open_container(self.url, self.cfg, True)
                session.stream = video_stream(session.container, self.name)
                session.stream.codec_context.thread_type = "AUTO"
                session.heartbeat = time.monotonic()
            self.decode(session)
            session.end("the stream ended", clean=True)
        except Stopped:
            session.end("stopped")
        except av.error.ExitError:
            session.end(f"no data for {self.cfg.read_timeout_s:g} s (source.read_timeout_s)")
        except av.error.FFmpegError as exc:
            session.end(f"read failed: {exc.strerror or exc}")
        except SourceError as exc:
            text = str(exc)
            session.end(text[len(prefix):] if text.startswith(prefix) else text)
        except Exception as exc:  # noqa: BLE001 - reported as the session's outcome
            logger.debug("%s: session %d failed", self.name, session.number, exc_info=True)
            session.end(f"decoding failed: {type(exc).__name__}: {exc}")
        finally:
            if session.abandoned:
                logger.info("%s: an abandoned session's read returned", self.name)
            close_session(session, self.name)
