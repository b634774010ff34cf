"""One queue protocol for every thread boundary: values, one end marker, failures.

A :class:`Channel` is a bounded queue between two threads. The producer puts values, then
exactly one of :meth:`Channel.end` (finished normally) or :meth:`Channel.fail` (finished with an
exception, which the consumer re-raises or forwards). Blocking puts of values give up when the
channel's ``abort`` event is set, so a producer never hangs on a consumer that died; the end
and failure markers are never dropped, so a consumer never waits for an end that cannot come.
Used by the video source (decode thread -> consumer) and by the pipeline's stages.

Example::

    ch: Channel[int] = Channel(maxsize=8, abort=threading.Event())
    ch.put(1); ch.end()
    for item in ch.drain():    # 1, then stops at the end marker
        ...
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from cctv_sr.errors import ContractError

T = TypeVar("T")

POLL_S = 0.05  # how often a blocked put or get re-checks the abort flag


@dataclass(frozen=True)
class End:
    """The producer finished normally; nothing follows."""


@dataclass(frozen=True)
class Failure:
    """The producer failed: ``stage`` names it, ``exc`` is what it raised; nothing follows."""

    stage: str
    exc: BaseException


END = End()


class Channel(Generic[T]):
    """A bounded queue of ``T`` values followed by one :class:`End` or :class:`Failure`."""

    def __init__(self, maxsize: int, abort: threading.Event | None = None) -> None:
        self._q: queue.Queue[T | End | Failure] = queue.Queue(maxsize=max(1, maxsize))
        self.abort = abort if abort is not None else threading.Event()

    def _put_item(self, item: T | End | Failure) -> bool:
        while True:
            try:
                self._q.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                if self.abort.is_set():
                    return False

    def put(self, item: T) -> bool:
        """Block until there is room; False (item dropped) when ``abort`` is set meanwhile."""
        return self._put_item(item)

    def put_latest(self, item: T) -> T | None:
        """Never block: when full, drop the oldest waiting value and return it (live input)."""
        while True:
            try:
                self._q.put_nowait(item)
                return None
            except queue.Full:
                try:
                    old = self._q.get_nowait()
                except queue.Empty:
                    continue
                if isinstance(old, (End, Failure)):  # the producer already ended this channel
                    self._q.put_nowait(old)
                    raise ContractError("Channel.put_latest after the end marker") from None
                self._q.put_nowait(item)
                return old

    def _put_marker(self, marker: End | Failure) -> None:
        """Markers are never dropped: when aborted and full, discard waiting values instead,
        so a consumer that is still reading always learns that the producer is done."""
        while True:
            try:
                self._q.put(marker, timeout=POLL_S)
                return
            except queue.Full:
                if self.abort.is_set():
                    try:
                        self._q.get_nowait()
                    except queue.Empty:
                        pass

    def end(self) -> None:
        """Mark the normal end (always delivered; see :meth:`_put_marker`)."""
        self._put_marker(END)

    def fail(self, stage: str, exc: BaseException) -> None:
        """Mark the end with a failure the consumer will see (always delivered)."""
        self._put_marker(Failure(stage, exc))

    def get(self, timeout: float | None = None) -> T | End | Failure:
        """The next item; raises :class:`queue.Empty` after ``timeout`` seconds (None: wait)."""
        return self._q.get(timeout=timeout)

    def qsize(self) -> int:
        return self._q.qsize()

    def drain(self, timeout_s: float = 5.0) -> Iterator[T]:
        """Values up to the end or failure marker; stops early after ``timeout_s`` of silence.

        After a downstream failure the consumer calls this and discards what it yields, so
        upstream producers that are blocked on a full queue can finish.
        """
        while True:
            try:
                item = self._q.get(timeout=timeout_s)
            except queue.Empty:
                return
            if isinstance(item, (End, Failure)):
                return
            yield item

    def clear(self) -> None:
        """Discard everything waiting now (markers included)."""
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                return
