"""A JSONL file written in time order although its lines become final out of order.

A face row is final only when its track ends, and tracks end in any order. The analysis stage
says, with each track end, below which frame every row of the stream is final
(``rows_final_before``); :class:`OrderedJsonl` holds lines in a heap keyed by frame and
writes (and flushes) every line below that mark, so the file on disk is always a time-ordered
prefix of the final file. The price: while a track is open, every line after its first frame
waits in memory (finished tracks and untracked rows too), and a crash loses those lines; one
person standing in view of a live camera for an hour holds an hour of lines.
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import IO

from cctv_sr.errors import OutputError


class OrderedJsonl:
    """Lines keyed by ``(frame, tie)``; written in key order once they are released."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"{path}: cannot write: {exc}") from None
        self._heap: list[tuple[int, int, int, str]] = []
        self._seq = 0  # keeps arrival order among equal keys

    def add(self, frame: int, tie: int, line: str) -> None:
        """Hold ``line`` until :meth:`release` passes ``frame``."""
        heapq.heappush(self._heap, (frame, tie, self._seq, line))
        self._seq += 1

    def release(self, before: int | None) -> None:
        """Write every held line with a frame below ``before`` (None: every held line)."""
        wrote = False
        try:
            while self._heap and (before is None or self._heap[0][0] < before):
                _, _, _, line = heapq.heappop(self._heap)
                self._file.write(line)
                wrote = True
            if wrote:
                self._file.flush()
        except OSError as exc:  # a full disk: one error line, not a traceback
            raise OutputError(f"{self.path}: cannot write: {exc.strerror or exc}") from None

    def close(self) -> None:
        """Write what is still held, then close."""
        if not self._file.closed:
            try:
                self.release(None)
            finally:
                try:
                    self._file.close()
                except OSError:  # the write error above already says what went wrong
                    pass
