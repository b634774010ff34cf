"""The threaded pipeline: source -> analysis -> SR batcher -> writer.

Threads: the source's own decode thread; one analysis thread (detect, track, align: all
per-stream state); one accelerator thread (SR and embedding, batched; the only one that would
touch CUDA); one writer thread (files, and identity matching when a gallery is given). Queues
between them are bounded. Every queue item is a value, the end marker, or a ``_Failure``
carrying the exception, so a failing stage makes ``run()`` raise instead of hanging. Threads
are always joined.

Stopping (Ctrl-C, SIGTERM, ``stop()``): the source stops, the analysis stage ends every open
track, and everything in flight is written before ``run()`` returns.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cctv_sr.config import RunConfig
from cctv_sr.detect.base import FaceDetector
from cctv_sr.embed.base import FaceEmbedder
from cctv_sr.engine.analysis import AnalysisStats, Analyzer, UntrackedRows
from cctv_sr.errors import CctvSrError, PipelineError
from cctv_sr.identity.sink import FaceVectors, IdentityWriter
from cctv_sr.io.outdir import OutputWriter
from cctv_sr.records import AlignedFace, EnhancedFace, Frame
from cctv_sr.sr.base import SuperResolver
from cctv_sr.track.book import EmbedRequest, SaveRequest, TrackEnd

log = logging.getLogger(__name__)

_END = object()


@dataclass(frozen=True)
class _Failure:
    stage: str
    exc: BaseException


@dataclass(frozen=True, eq=False)
class _Saved:
    enhanced: EnhancedFace
    evict: tuple[str, ...]
    vectors: FaceVectors | None = None


@dataclass(frozen=True, eq=False)
class _Embedded:
    face: AlignedFace
    vectors: FaceVectors


@dataclass
class StageTimes:
    detect_s: float = 0.0
    track_s: float = 0.0
    align_s: float = 0.0
    sr_s: float = 0.0
    embed_s: float = 0.0
    write_s: float = 0.0
    wall_s: float = 0.0


@dataclass
class PipelineStats:
    analysis: AnalysisStats = field(default_factory=AnalysisStats)
    sr_faces: int = 0
    sr_batches: int = 0
    embedded_faces: int = 0
    times: StageTimes = field(default_factory=StageTimes)
    stopped: bool = False


class Pipeline:
    """Runs one source through the stages; ``run()`` blocks until everything is written."""

    def __init__(self, cfg: RunConfig, detector: FaceDetector, sr: SuperResolver,
                 writer: OutputWriter, fps_hint: float = 25.0, queue_size: int = 64,
                 embedder: FaceEmbedder | None = None, identity: IdentityWriter | None = None
                 ) -> None:
        self.cfg = cfg
        self.detector = detector
        self.sr = sr
        self.writer = writer
        self.embedder = embedder
        self.identity = identity
        self.stats = PipelineStats()
        self._sr_q: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._write_q: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._abort = threading.Event()
        self._stop = threading.Event()
        self._failures: list[_Failure] = []
        self._source_stop: Callable[[], None] | None = None
        self._analyzer = Analyzer(cfg, detector, self._put_sr, fps_hint,
                                  embed=embedder is not None and identity is not None)
        self.stats.analysis = self._analyzer.stats

    # plumbing ------------------------------------------------------------------------------
    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        """Blocking put that gives up when a later stage has failed (nothing would read)."""
        while True:
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                if self._abort.is_set():
                    return

    def _put_sr(self, item: object) -> None:
        self._put(self._sr_q, item)

    def _fail(self, stage: str, exc: BaseException, abort: bool = True) -> None:
        log.debug("stage %s failed", stage, exc_info=exc)
        self._failures.append(_Failure(stage, exc))
        if abort:
            self._abort.set()
        if self._source_stop is not None:
            self._source_stop()

    def stop(self) -> None:
        """Ask for a clean stop: no new frames, flush everything (thread-safe)."""
        self._stop.set()
        self.stats.stopped = True
        if self._source_stop is not None:
            self._source_stop()

    # stages --------------------------------------------------------------------------------
    def _analysis_stage(self, frames: Iterable[Frame]) -> None:
        try:
            batch: list[Frame] = []
            for frame in frames:
                if self._abort.is_set():
                    break
                batch.append(frame)
                if len(batch) >= self.cfg.detector.batch_size:
                    self._analyzer.process(batch)
                    batch = []
            if batch and not self._abort.is_set():
                self._analyzer.process(batch)
            if not self._abort.is_set():
                self._analyzer.finish()
        except BaseException as exc:  # noqa: BLE001 - forwarded to run()
            # The source or a model failed; later stages are healthy, so still end the open
            # tracks: what was found before the failure is written, not lost.
            self._fail("analysis", exc, abort=False)
            if not self._abort.is_set():
                try:
                    self._analyzer.finish()
                except Exception:  # noqa: BLE001
                    log.exception("could not flush open tracks after the failure")
        finally:
            self._put(self._sr_q, _END)

    def _enhance(self, faces: list[AlignedFace]) -> list[EnhancedFace]:
        """SR for every face that needs it, batched by LR side; large faces pass through."""
        out_size = self.cfg.align.out_size
        result: list[EnhancedFace | None] = [None] * len(faces)
        by_side: dict[int, list[int]] = {}
        for i, face in enumerate(faces):
            side = face.crop.shape[0]
            if side >= out_size:
                result[i] = EnhancedFace(face, face.crop, "none")
            else:
                by_side.setdefault(side, []).append(i)
        for side, idx in by_side.items():
            sr = self.sr.upscale(np.stack([faces[i].crop for i in idx]), out_size)
            method = self.sr.describe(side, out_size)
            for i, image in zip(idx, sr):
                result[i] = EnhancedFace(faces[i], image, method)
            self.stats.sr_faces += len(idx)
            self.stats.sr_batches += 1
        return [r for r in result if r is not None]

    def _embed(self, enhanced: list[EnhancedFace]) -> list[FaceVectors]:
        """Identity vectors from each face's LR crop and from its SR crop."""
        if self.embedder is None or not enhanced:
            return []
        lr = [np.zeros(0, np.float32)] * len(enhanced)
        by_side: dict[int, list[int]] = {}
        for i, e in enumerate(enhanced):
            by_side.setdefault(e.face.crop.shape[0], []).append(i)
        for idx in by_side.values():
            vectors = self.embedder.embed(np.stack([enhanced[i].face.crop for i in idx]))
            for i, v in zip(idx, vectors):
                lr[i] = v
        sr = self.embedder.embed(np.stack([e.sr for e in enhanced]))
        self.stats.embedded_faces += len(enhanced)
        return [FaceVectors(a, b) for a, b in zip(lr, sr)]

    def _flush_sr(self, pending: list[Any]) -> None:
        requests = [p for p in pending if isinstance(p, (SaveRequest, EmbedRequest))]
        t0 = time.perf_counter()
        enhanced = self._enhance([r.face for r in requests])
        t1 = time.perf_counter()
        vectors = self._embed(enhanced)
        self.stats.times.sr_s += t1 - t0
        self.stats.times.embed_s += time.perf_counter() - t1
        done = {id(r): (e, vectors[i] if vectors else None)
                for i, (r, e) in enumerate(zip(requests, enhanced))}
        for item in pending:
            if isinstance(item, SaveRequest):
                e, v = done[id(item)]
                self._put(self._write_q, _Saved(e, item.evict, v))
            elif isinstance(item, EmbedRequest):
                e, v = done[id(item)]
                if v is not None:
                    self._put(self._write_q, _Embedded(e.face, v))
            else:
                self._put(self._write_q, item)
        pending.clear()

    def _sr_stage(self) -> None:
        pending: list[Any] = []
        n_requests = 0
        wait_s = self.cfg.sr.max_wait_ms / 1000.0
        try:
            while True:
                try:
                    item = self._sr_q.get(timeout=wait_s if pending else None)
                except queue.Empty:
                    self._flush_sr(pending)
                    n_requests = 0
                    continue
                if item is _END:
                    break
                pending.append(item)
                n_requests += isinstance(item, (SaveRequest, EmbedRequest))
                if n_requests >= self.cfg.sr.batch_size:
                    self._flush_sr(pending)
                    n_requests = 0
            if not self._abort.is_set():
                self._flush_sr(pending)
        except BaseException as exc:  # noqa: BLE001
            self._fail("sr", exc)
            self._drain(self._sr_q)
        finally:
            self._put(self._write_q, _END)

    def _write_stage(self) -> None:
        try:
            while True:
                item = self._write_q.get()
                if item is _END:
                    break
                if isinstance(item, _Saved):
                    self.writer.save_face(item.enhanced, item.evict)
                    if self.identity is not None and item.vectors is not None:
                        self.identity.add(item.enhanced.face, item.vectors)
                elif isinstance(item, _Embedded):
                    if self.identity is not None:
                        self.identity.add(item.face, item.vectors)
                elif isinstance(item, TrackEnd):
                    self.writer.end_track(item)
                    if self.identity is not None:
                        self.identity.end_track(item)
                elif isinstance(item, UntrackedRows):
                    self.writer.write_untracked(item.rows)
                else:
                    raise PipelineError(f"writer got an unexpected item {type(item).__name__}")
        except BaseException as exc:  # noqa: BLE001
            self._fail("writer", exc)
            self._drain(self._write_q)

    @staticmethod
    def _drain(q: queue.Queue[Any]) -> None:
        """After a failure: consume until the end marker so upstream puts never block."""
        while True:
            try:
                if q.get(timeout=5.0) is _END:
                    return
            except queue.Empty:
                return

    # entry point ---------------------------------------------------------------------------
    def run(self, frames: Iterable[Frame], source_stop: Callable[[], None],
            on_tick: Callable[[PipelineStats], None] | None = None) -> PipelineStats:
        """Process ``frames`` to the end (or until ``stop()``); raise if a stage failed.

        ``source_stop`` makes the frame iterator end promptly; ``on_tick`` is called about
        five times a second from the calling thread (progress bars).
        """
        self._source_stop = source_stop
        t0 = time.perf_counter()
        threads = [
            threading.Thread(target=self._analysis_stage, args=(frames,), name="cctv-analysis"),
            threading.Thread(target=self._sr_stage, name="cctv-sr"),
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
            a = self._analyzer.stats
            times.detect_s, times.track_s, times.align_s = a.detect_s, a.track_s, a.align_s
            times.write_s = self.writer.write_s + (
                self.identity.write_s if self.identity is not None else 0.0)
            times.wall_s = time.perf_counter() - t0
            if on_tick is not None:
                on_tick(self.stats)
        if self._failures:
            first = self._failures[0]
            if isinstance(first.exc, (KeyboardInterrupt, CctvSrError)):
                raise first.exc
            raise PipelineError(f"{first.stage} stage failed: {first.exc}") from first.exc
        return self.stats
