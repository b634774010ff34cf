"""The threaded pipeline: source -> analysis -> accelerator -> writer.

Threads: the source's own decode thread; one analysis thread (detect, track, align: all
per-stream state, :mod:`cctv_sr.engine.analysis`); one accelerator thread (SR and embedding,
batched; the only one that would touch CUDA, :mod:`cctv_sr.engine.accelerator`); one writer
thread (files, and identity matching when a gallery is given). They are joined by bounded
:class:`~cctv_sr.channel.Channel` queues typed with the stage messages of
:mod:`cctv_sr.records`; each carries values, then one end marker or one failure. A failing
stage makes ``run()`` raise instead of hanging; threads are always joined.

Stopping (Ctrl-C, SIGTERM, ``stop()``): the source stops, the analysis stage ends every open
track, and everything in flight is written before ``run()`` returns.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from cctv_sr.channel import POLL_S, Channel, End, Failure
from cctv_sr.config import RunConfig
from cctv_sr.detect.base import FaceDetector
from cctv_sr.embed.base import FaceEmbedder
from cctv_sr.engine.accelerator import Accelerator, AcceleratorStats, Batcher
from cctv_sr.engine.analysis import Analyzer
from cctv_sr.engine.analysis_stats import AnalysisStats, merged_stats
from cctv_sr.engine.temporal import window_frames
from cctv_sr.errors import CctvSrError, PipelineError
from cctv_sr.face.faceness import Faceness
from cctv_sr.records import (
    AnalysisMessage,
    Embedded,
    FaceRows,
    Frame,
    Saved,
    StageTimes,
    StreamEnd,
    TrackEnd,
    WriterMessage,
)
from cctv_sr.sr.base import SuperResolver

if TYPE_CHECKING:
    from cctv_sr.embed.lrhead import LrHeadEmbedder

log = logging.getLogger(__name__)


class FaceSink(Protocol):
    """What the writer thread writes to (the OUTDIR writer and the identity sink)."""

    write_s: float

    def handle(self, item: WriterMessage) -> None: ...


@dataclass
class PipelineStats:
    analyses: list[AnalysisStats] = field(default_factory=lambda: [AnalysisStats()])
    accelerator: AcceleratorStats = field(default_factory=AcceleratorStats)
    times: StageTimes = field(default_factory=StageTimes)
    stopped: bool = False

    @property
    def analysis(self) -> AnalysisStats:
        """The analysis workers' counters added up (the one worker's own object if one)."""
        return merged_stats(self.analyses)

    @property
    def sr_faces(self) -> int:
        return self.accelerator.sr_faces

    @property
    def embedded_faces(self) -> int:
        return self.accelerator.embedded_faces


class Pipeline:
    """Runs frames through the stages; ``run()`` blocks until everything is written."""

    def __init__(self, cfg: RunConfig, detector: FaceDetector, sr: SuperResolver,
                 sinks: Iterable[FaceSink], fps_hint: float = 25.0, queue_size: int = 64,
                 embedder: FaceEmbedder | None = None,
                 faceness: Faceness | None = None, head: LrHeadEmbedder | None = None,
                 quality_faceness: Faceness | None = None,
                 stream_fps: dict[str, float] | None = None,
                 workers: Sequence[tuple[FaceDetector, Faceness | None]] = (),
                 live: Iterable[str] = ()) -> None:
        """``workers``: a detector and face / non-face check for each analysis worker beyond
        the first (several streams only: each stream is analysed by one worker). ``live``:
        the live streams, whose open tracks' rows are written after ``output.flush_s``."""
        self.cfg = cfg
        self.sinks = list(sinks)
        self.stats = PipelineStats()
        self._abort = threading.Event()  # a later stage failed: nobody will read any more
        self._to_accel: Channel[AnalysisMessage] = Channel(queue_size, self._abort)
        self._to_writer: Channel[WriterMessage] = Channel(queue_size, self._abort)
        self._failures: list[Failure] = []
        self._source_stop: Callable[[], None] | None = None
        # quality_faceness: the analysis thread's own face / non-face check (a second instance,
        # so no torch module is shared between threads).
        window = window_frames(cfg.temporal, sr.window, head.window if head is not None else 1)
        self._analyzers = [
            Analyzer(cfg, d, self._to_accel.put, fps_hint, embed=embedder is not None,
                     faceness=f, window=window, stream_fps=dict(stream_fps or {}),
                     live=frozenset(live))
            for d, f in [(detector, quality_faceness), *workers]]
        self._analyzer = self._analyzers[0]
        self._accelerator = Accelerator(sr, cfg.align.out_size, embedder, faceness, head,
                                        cfg.temporal)
        self.stats.analyses = [a.stats for a in self._analyzers]
        self.stats.accelerator = self._accelerator.stats

    def _fail(self, stage: str, exc: BaseException, abort: bool = True) -> None:
        log.debug("stage %s failed", stage, exc_info=exc)
        self._failures.append(Failure(stage, exc))
        if abort:
            self._abort.set()
        if self._source_stop is not None:
            self._source_stop()

    def stop(self) -> None:
        """Ask for a clean stop: no new frames, flush everything (thread-safe)."""
        self.stats.stopped = True
        if self._source_stop is not None:
            self._source_stop()

    # stages --------------------------------------------------------------------------------
    def _analysis_stage(self, frames: Iterable[Frame | StreamEnd]) -> None:
        try:
            if len(self._analyzers) == 1:
                self._analyse(self._analyzer, frames)
            else:
                self._dispatch(frames)
        finally:
            self._to_accel.end()

    def _analyse(self, analyzer: Analyzer, frames: Iterable[Frame | StreamEnd]) -> None:
        try:
            batch: list[Frame] = []
            for frame in frames:
                if self._abort.is_set():
                    break
                if isinstance(frame, StreamEnd):  # one input of several ended
                    if batch:
                        analyzer.process(batch)
                        batch = []
                    analyzer.end_stream(frame.stream_id)
                    continue
                batch.append(frame)
                if len(batch) >= self.cfg.detector.batch_size:
                    analyzer.process(batch)
                    batch = []
            if batch and not self._abort.is_set():
                analyzer.process(batch)
            if not self._abort.is_set():
                analyzer.finish()
        except BaseException as exc:  # noqa: BLE001 - forwarded to run()
            # The source or a model failed; later stages are healthy, so still end the open
            # tracks: what was found before the failure is written, not lost.
            self._fail("analysis", exc, abort=False)
            if not self._abort.is_set():
                try:
                    analyzer.finish()
                except Exception:  # noqa: BLE001
                    log.exception("could not flush open tracks after the failure")

    def _dispatch(self, frames: Iterable[Frame | StreamEnd]) -> None:
        """Several analysis workers: each stream goes to one (in the order streams first
        appear, round robin), so its frames stay in order and its state in one thread."""
        stopped = [threading.Event() for _ in self._analyzers]  # a worker that failed
        inboxes: list[Channel[Frame | StreamEnd]] = [
            Channel(2 * self.cfg.detector.batch_size, stop) for stop in stopped]

        def work(k: int) -> None:
            def inbox() -> Iterator[Frame | StreamEnd]:
                while True:
                    item = inboxes[k].get()
                    if isinstance(item, (End, Failure)):
                        return
                    yield item

            try:
                self._analyse(self._analyzers[k], inbox())
            finally:  # the worker reads no more: the dispatcher's puts to it give up
                stopped[k].set()

        threads = [threading.Thread(target=work, args=(k,), daemon=True,
                                    name=f"cctv-analysis-{k}")
                   for k in range(len(self._analyzers))]
        for th in threads:
            th.start()
        owner: dict[str, int] = {}
        try:
            for frame in frames:
                if self._abort.is_set():
                    break
                k = owner.setdefault(frame.stream_id, len(owner) % len(self._analyzers))
                inboxes[k].put(frame)  # a StreamEnd goes to its stream's worker too
        except BaseException as exc:  # noqa: BLE001 - the source failed: workers flush
            self._fail("analysis", exc, abort=False)
        finally:
            for box in inboxes:
                box.end()
            for th in threads:
                th.join()

    def _accelerator_stage(self) -> None:
        batcher = Batcher(self.cfg.sr.batch_size, self.cfg.sr.max_wait_ms / 1000.0)
        try:
            while not self._abort.is_set():  # a later stage failed: stop working for it
                wait = batcher.timeout()
                try:
                    item = self._to_accel.get(timeout=POLL_S if wait is None
                                              else min(wait, POLL_S))
                except queue.Empty:
                    if batcher.timeout() == 0.0:  # the oldest waiting request's deadline
                        self._run_batch(batcher.take())
                    continue
                if isinstance(item, (End, Failure)):
                    break
                if batcher.add(item):
                    self._run_batch(batcher.take())
            if not self._abort.is_set():
                self._run_batch(batcher.take())
        except BaseException as exc:  # noqa: BLE001
            self._fail("sr", exc)
            for _ in self._to_accel.drain():
                pass
        finally:
            self._to_writer.end()

    def _run_batch(self, batch: list[AnalysisMessage]) -> None:
        if not batch:
            return
        for message in self._accelerator.run(batch):
            self._to_writer.put(message)

    def _write_stage(self) -> None:
        try:
            while True:
                item = self._to_writer.get()
                if isinstance(item, (End, Failure)):
                    break
                if not isinstance(item, (Saved, Embedded, TrackEnd, FaceRows)):
                    raise PipelineError(f"writer got an unexpected item {type(item).__name__}")
                for sink in self.sinks:
                    sink.handle(item)
        except BaseException as exc:  # noqa: BLE001
            self._fail("writer", exc)
            for _ in self._to_writer.drain():
                pass

    # entry point ---------------------------------------------------------------------------
    def run(self, frames: Iterable[Frame | StreamEnd], source_stop: Callable[[], None],
            on_tick: Callable[[PipelineStats], None] | None = None) -> PipelineStats:
        """Process ``frames`` to the end (or until ``stop()``); raise if a stage failed.

        ``source_stop`` makes the frame iterator end promptly; ``on_tick`` is called about
        five times a second from the calling thread (progress bars).
        """
        self._source_stop = source_stop
        t0 = time.perf_counter()
        threads = [
            threading.Thread(target=self._analysis_stage, args=(frames,), name="cctv-analysis"),
            threading.Thread(target=self._accelerator_stage, name="cctv-accelerator"),
            threading.Thread(target=self._write_stage, name="cctv-writer"),
        ]
        for th in threads:
            th.daemon = True
            th.start()
        try:
            for th in threads:
                while th.is_alive():
                    th.join(timeout=0.2)
                    if on_tick is not None:
                        on_tick(self.stats)
        except KeyboardInterrupt:
            log.warning("interrupted: stopping the source and writing what is in flight")
            self.stop()
            for th in threads:
                th.join()
        finally:
            times = self.stats.times
            a, acc = self.stats.analysis, self._accelerator.stats
            times.detect_s, times.track_s, times.align_s = a.detect_s, a.track_s, a.align_s
            times.scan_s = a.scan_s
            times.sr_s, times.embed_s, times.head_s = acc.sr_s, acc.embed_s, acc.head_s
            times.write_s = sum(sink.write_s for sink in self.sinks)
            times.wall_s = time.perf_counter() - t0
            if on_tick is not None:
                on_tick(self.stats)
        if self._failures:
            first = self._failures[0]
            if isinstance(first.exc, (KeyboardInterrupt, CctvSrError)):
                raise first.exc
            raise PipelineError(f"{first.stage} stage failed: {first.exc}") from first.exc
        return self.stats
