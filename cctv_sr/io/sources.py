"""Several inputs in one run: folders expanded, stream names, and one merged frame stream.

``cctv-sr run a.mp4 b.mp4 rtsp://cam/1 folder/`` opens one :class:`~cctv_sr.io.source.VideoSource`
per input (each with its own decode thread, as with one input). :class:`MergedSource` runs
one feeder thread per source that moves its frames into one bounded channel, so the analysis
stage sees the streams interleaved as they decode (``Frame.stream_id`` tells them apart; all
per-stream state is keyed by it). A file source blocks when the channel is full (nothing is
lost); a live source keeps dropping its own oldest frames as it does alone.

A source that fails ends its own stream only: the others run on, and the first failure is
raised when every stream has ended (so what the other streams found is written and the run
still reports the failure).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path

from cctv_sr.channel import Channel, End, Failure
from cctv_sr.config import SourceConfig
from cctv_sr.errors import ConfigError
from cctv_sr.io.source import SourceInfo, SourceStats, VideoSource, is_live_url
from cctv_sr.records import Frame, StreamEnd

log = logging.getLogger(__name__)

__all__ = ["MergedSource", "VIDEO_SUFFIXES", "expand_inputs", "stream_names"]

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".ts", ".m4v", ".webm", ".mpg", ".mpeg",
                  ".h264", ".h265", ".flv", ".wmv")


def expand_inputs(items: Sequence[str]) -> list[str]:
    """Inputs as given, a folder replaced by its video files (by suffix, sorted, not
    recursive). A folder with none is a ConfigError; a missing file is left for the source to
    report."""
    out: list[str] = []
    for item in items:
        path = Path(item)
        if not is_live_url(item) and path.is_dir():
            found = sorted(str(p) for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise ConfigError(f"{item}: a folder with no video files "
                                  f"({', '.join(VIDEO_SUFFIXES[:5])}, ...)")
            out.extend(found)
        else:
            out.append(item)
    if not out:
        raise ConfigError("no input given")
    if len(set(out)) != len(out):
        raise ConfigError("the same input is given twice")
    return out


def stream_names(inputs: Sequence[str], single: str = "cam0") -> list[str]:
    """One stream id per input: ``single`` for a run of one input; else each file's stem
    (a stream URL's last path part), reduced to ``[A-Za-z0-9_-]`` and made unique."""
    if len(inputs) == 1:
        return [single]
    names: list[str] = []
    for item in inputs:
        base = item.rstrip("/").rsplit("/", 1)[-1] if is_live_url(item) else Path(item).stem
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", base).strip("_") or "stream"
        unique, k = name, 2
        while unique in names:
            unique, k = f"{name}_{k}", k + 1
        names.append(unique)
    return names


class MergedSource:
    """Frames of several :class:`VideoSource` objects, interleaved, in one iterator."""

    def __init__(self, inputs: Sequence[str], cfg: SourceConfig, names: Sequence[str],
                 queue_size: int = 64) -> None:
        if len(inputs) != len(names):
            raise ConfigError(f"{len(inputs)} inputs but {len(names)} stream names")
        self.sources = [VideoSource(u, cfg, stream_id=n) for u, n in zip(inputs, names)]
        self._stop = threading.Event()
        self._queue: Channel[Frame | StreamEnd] = Channel(queue_size, abort=self._stop)
        self._failures: list[BaseException] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def open(self) -> list[SourceInfo]:
        """Open every input (a bad one fails here, before anything is written); the ones
        already open are stopped again on failure."""
        infos = []
        try:
            for source in self.sources:
                infos.append(source.open())
        except BaseException:
            self.stop()
            raise
        return infos

    @property
    def stats(self) -> SourceStats:
        """Counters summed over the inputs."""
        parts = [s.stats for s in self.sources]
        return SourceStats(**{f.name: sum(getattr(p, f.name) for p in parts)
                              for f in fields(SourceStats)})

    def _feed(self, source: VideoSource) -> None:
        try:
            for frame in source:
                self._queue.put(frame)
        except BaseException as exc:  # noqa: BLE001 - raised when every stream has ended
            log.error("input %s failed: %s", source.name, exc)
            with self._lock:
                self._failures.append(exc)
        finally:  # the analysis ends this stream's tracks now, not when every input has
            self._queue.put(StreamEnd(source.stream_id))

    def __iter__(self) -> Iterator[Frame | StreamEnd]:
        self._threads = [threading.Thread(target=self._feed, args=(s,), daemon=True,
                                          name=f"cctv-feed-{s.stream_id}")
                         for s in self.sources]
        for th in self._threads:
            th.start()
        closer = threading.Thread(target=self._close_when_done, daemon=True,
                                  name="cctv-feed-end")
        closer.start()
        while True:
            item = self._queue.get()
            if isinstance(item, (End, Failure)):
                break
            yield item
        with self._lock:
            failures = list(self._failures)
        if failures and not self._stop.is_set():
            raise failures[0]

    def _close_when_done(self) -> None:
        for th in self._threads:
            th.join()
        self._queue.end()

    def stop(self) -> None:
        """Stop every input (thread-safe); the iterator ends promptly."""
        self._stop.set()
        for source in self.sources:
            source.stop()
