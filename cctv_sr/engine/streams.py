"""The writer thread's sink for a run of several inputs: each message to its stream's sinks.

With one input the run's sinks are the OUTDIR writer and (with a gallery) the identity writer.
With several, every stream has its own pair under ``OUTDIR/<stream>/`` and
:class:`StreamRouter` hands each writer message to the sinks of the stream it belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cctv_sr.engine.pipeline import FaceSink
from cctv_sr.errors import ContractError
from cctv_sr.records import WriterMessage, stream_of

__all__ = ["StreamRouter"]


class StreamRouter:
    """A :class:`~cctv_sr.engine.pipeline.FaceSink` that routes by
    :func:`cctv_sr.records.stream_of`."""

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
