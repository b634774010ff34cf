"""The writer thread's sink for a run of several inputs: each message to its stream's sinks.

With one input the run's sinks are the OUTDIR writer and (with a gallery) the identity writer.
With several, every stream has its own pair under ``OUTDIR/<stream>/`` and
:class:`StreamRouter` hands each writer message to the sinks of the stream it belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cctv_sr.engine.pipeline import FaceSink
from cctv_sr.errors import ContractError
from cctv_sr.records import Embedded, Saved, TrackEnd, UntrackedRows, WriterMessage

__all__ = ["StreamRouter", "stream_of"]


def stream_of(item: WriterMessage) -> str:
    """The stream id a writer message belongs to."""
    if isinstance(item, Saved):
        return item.enhanced.face.stream_id
    if isinstance(item, Embedded):
        return item.face.stream_id
    if isinstance(item, TrackEnd):
        return item.summary.stream_id
    if isinstance(item, UntrackedRows):
        return item.stream_id
    raise ContractError(f"no stream for a {type(item).__name__}")


class StreamRouter:
    """A :class:`~cctv_sr.engine.pipeline.FaceSink` that routes by ``stream_of``."""

    def __init__(self, sinks: Mapping[str, Sequence[FaceSink]]) -> None:
        self._sinks = {k: list(v) for k, v in sinks.items()}

    @property
    def write_s(self) -> float:
        return sum(s.write_s for group in self._sinks.values() for s in group)

    @write_s.setter
    def write_s(self, value: float) -> None:  # the FaceSink protocol's attribute; summed here
        raise ContractError("StreamRouter.write_s is the sum of its sinks' times")

    def handle(self, item: WriterMessage) -> None:
        stream = stream_of(item)
        group = self._sinks.get(stream)
        if group is None:
            raise ContractError(f"a message of stream {stream!r}, which this run does not have")
        for sink in group:
            sink.handle(item)
