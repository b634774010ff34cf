"""Opening a video file or live stream with PyAV: URL helpers, input checks and stream facts.

This is the part of :mod:`cctv_sr.io.source` that runs before any frame is decoded. Every problem
with the input becomes a :class:`~cctv_sr.errors.SourceError` whose one-line message names the
input (passwords in URLs are masked) and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import av
import av.error

from cctv_sr.config import SourceConfig
from cctv_sr.errors import ConfigError, SourceError

logger = logging.getLogger(__name__)

#: URL schemes that are always live streams.
LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "rtp", "srt", "udp", "tcp"})
#: http(s) paths that are live streams (HLS playlists, MJPEG camera feeds).
LIVE_HTTP_SUFFIXES = (".m3u8", ".mjpg", ".mjpeg", ".cgi")
#: Extensions of ISO-BMFF files, which are unreadable when cut before their index.
MP4_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".3gp"})
#: Transports FFmpeg's ``rtsp_transport`` flag accepts (joinable with "+").
RTSP_TRANSPORTS = frozenset({"tcp", "udp", "udp_multicast", "http", "https"})


@dataclass(frozen=True)
class SourceInfo:
    """Facts about an opened source.

    url: the input as given, with any password masked. fps: the stream's average frame rate
    (None if unknown). time_base: the unit of every :class:`~cctv_sr.records.Frame` ``pts``.
    duration_s and frame_count: as the container states them (None for live streams and for
    containers that do not store them, e.g. frame_count for mkv).
    """

    url: str
    is_live: bool
    width: int
    height: int
    fps: float | None
    codec: str
    time_base: Fraction
    duration_s: float | None
    frame_count: int | None


def is_live_url(url: str | os.PathLike[str]) -> bool:
    """True for live network streams (rtsp, rtsps, rtmp, rtp, srt, udp, tcp, and http(s) URLs
    of HLS playlists or MJPEG feeds); False for files, including files served over http(s)."""
    text = os.fspath(url)
    if "://" not in text:
        return False
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in LIVE_SCHEMES:
        return True
    if scheme in ("http", "https"):
        return parts.path.lower().endswith(LIVE_HTTP_SUFFIXES)
    return False


def redact_url(url: str) -> str:
    """``url`` with the password of any ``user:password@`` part replaced by ``***``."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read ``chunk`` bytes at a time."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    """FFmpeg's description of an error without the file name PyAV appends."""
    strerror = getattr(exc, "strerror", None)
    return str(strerror) if strerror else f"{type(exc).__name__}: {exc}"


def _check_local_file(url: str, name: str) -> None:
    path = Path(url)
    if not path.exists():
        raise SourceError(f"{name}: file not found")
    if path.is_dir():
        raise SourceError(f"{name}: is a directory, not a video file")
    if path.is_file() and path.stat().st_size == 0:
        raise SourceError(f"{name}: empty file (0 bytes)")


def _stream_options(url: str, cfg: SourceConfig) -> dict[str, str]:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("rtsp", "rtsps"):
        return {}
    parts = cfg.rtsp_transport.lower().split("+")
    if not parts or not set(parts) <= RTSP_TRANSPORTS:
        raise ConfigError(
            f"source.rtsp_transport must be one of {', '.join(sorted(RTSP_TRANSPORTS))}, "
            f"got {cfg.rtsp_transport!r}"
        )
    return {
        "rtsp_transport": cfg.rtsp_transport.lower(),
        # FFmpeg >= 5 (every PyAV >= 12 wheel): socket I/O timeout in microseconds. It was
        # called "stimeout" before; unknown options are silently ignored, so only this one.
        "timeout": str(max(1, int(cfg.read_timeout_s * 1_000_000))),
        "allowed_media_types": "video",
    }


def open_container(url: str, cfg: SourceConfig, live: bool) -> Any:
    """``av.open`` the input, mapping every failure to a one-line SourceError."""
    name = redact_url(url)
    if not live and "://" not in url:
        _check_local_file(url, name)
    kwargs: dict[str, Any] = {"metadata_errors": "replace"}
    if live:
        kwargs["options"] = _stream_options(url, cfg)
        kwargs["timeout"] = (cfg.open_timeout_s, cfg.read_timeout_s)
    started = time.monotonic()
    try:
        return av.open(url, **kwargs)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise SourceError(_open_problem(exc, url, cfg, live, time.monotonic() - started)) from exc


def _open_problem(
    exc: BaseException, url: str, cfg: SourceConfig, live: bool, elapsed: float
) -> str:
    """One-line SourceError message for an exception raised by ``av.open``."""
    name = redact_url(url)
    # PyAV's interrupt callback fired: FFmpeg reports that as ExitError, or (RTSP) as
    # InvalidDataError once the handshake it cut short fails.
    if live and (isinstance(exc, av.error.ExitError) or elapsed >= 0.95 * cfg.open_timeout_s):
        return f"{name}: no answer within {cfg.open_timeout_s:g} s (source.open_timeout_s)"
    if isinstance(exc, av.error.InvalidDataError):
        what = "stream" if live else "file"
        hint = ""
        if not live and Path(url).suffix.lower() in MP4_SUFFIXES:
            hint = "; an MP4 cut short before its index (moov) was written looks like this"
        return f"{name}: not a video {what} FFmpeg can read ({_reason(exc)}{hint})"
    return f"{name}: cannot open: {_reason(exc)}"


def video_stream(container: Any, name: str) -> Any:
    """The container's best video stream with a decoder; SourceError when there is none."""
    streams = list(container.streams.video)
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise SourceError(f"{name}: no video stream (streams found: {', '.join(kinds)})")
    stream = container.streams.best("video") or streams[0]
    if stream.codec_context is None:
        raise SourceError(f"{name}: no decoder for the video codec in this FFmpeg build")
    return stream


def describe(container: Any, stream: Any, name: str, live: bool) -> SourceInfo:
    """SourceInfo from an opened container and its chosen video stream."""
    ctx = stream.codec_context
    time_base = stream.time_base or ctx.time_base
    if not time_base:
        raise SourceError(f"{name}: video stream has no time base")
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    duration_s: float | None = None
    frame_count: int | None = None
    if not live:
        if stream.duration:
            duration_s = float(stream.duration * time_base)
        elif container.duration:
            duration_s = container.duration / av.time_base
        frame_count = int(stream.frames) or None
    return SourceInfo(
        url=name,
        is_live=live,
        width=int(ctx.width),
        height=int(ctx.height),
        fps=fps,
        codec=str(ctx.name),
        time_base=Fraction(time_base),
        duration_s=duration_s,
        frame_count=frame_count,
    )


@dataclass(frozen=True)
class SourceStats:
    """Counters of one source (a snapshot).

    decoded: frames the decoder produced (the next Frame.index); yielded: frames handed to the
    consumer; skipped: frames left out by stride/max_fps; dropped_live: frames of a live
    stream dropped because the consumer was slow; decode_errors: packets or reads that failed
    and were skipped; the rest count a live stream's outages (:mod:`cctv_sr.io.source`).
    """

    decoded: int = 0
    yielded: int = 0
    skipped: int = 0
    dropped_live: int = 0
    decode_errors: int = 0
    reconnects: int = 0  # outages a live stream came back from
    reconnect_attempts: int = 0
    stalls: int = 0  # sessions the watchdog abandoned
    frames_lost: int = 0  # frames an outage cost, from its length and the frame rate


class RateLimitedWarning:
    """Logs the first few occurrences of a warning, then at most one per interval."""

    def __init__(self, first: int = 3, every_s: float = 10.0) -> None:
        self.first = first
        self.every_s = every_s
        self.count = 0
        self.suppressed = 0
        self.last = 0.0

    def __call__(self, message: str) -> None:
        self.count += 1
        now = time.monotonic()
        if self.count <= self.first or now - self.last >= self.every_s:
            extra = f" ({self.suppressed} similar warnings suppressed)" if self.suppressed else ""
            logger.warning("%s%s", message, extra)
            self.last = now
            self.suppressed = 0
        else:
            self.suppressed += 1
