"""JSONL files: written in time order although their lines become final out of order
(:class:`OrderedJsonl`), and read back (:func:`read_jsonl`).

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
import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from cctv_sr.errors import OutputError


class OrderedJsonl:
    """Lines keyed by ``(frame, tie)``; written in key order once they are released."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise OutputError.cannot_write(path, exc) from None
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
            raise OutputError.cannot_write(self.path, exc) from None

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


#: Called with (1-based line number, whether it is the file's unterminated last line) for a
#: line that is not a JSON object.
BadLine = Callable[[int, bool], None]


def read_jsonl(path: Path, on_bad: BadLine | None = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, blank lines skipped. A line that is not a JSON
    object goes to ``on_bad`` (a run stopped mid-write leaves a cut last line) and is
    skipped; without ``on_bad`` it is an OutputError. A missing or unreadable file is an
    OutputError too."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise OutputError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    lines = text.split("\n")
    out: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if isinstance(value, dict):
            out.append(value)
        elif on_bad is None:
            raise OutputError(f"{path}:{i + 1}: not a JSON object")
        else:
            on_bad(i + 1, i == len(lines) - 1)
    return out
