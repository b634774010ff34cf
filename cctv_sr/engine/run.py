"""``cctv-sr run``: footage files or streams (one or several) through the pipeline into OUTDIR.

Builds the backends, opens the source (errors before anything is written), keeps run.json up
to date (``status`` is ``running`` until the end, so a crash is visible), shows progress, and
turns Ctrl-C / SIGTERM into a clean stop that flushes every open track.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from cctv_sr.alerts import WebhookConfig, WebhookSender
from cctv_sr.config import RunConfig
from cctv_sr.detect import create_detector
from cctv_sr.engine.pipeline import FaceSink, Pipeline, PipelineStats
from cctv_sr.engine.progress import RunProgress
from cctv_sr.engine.streams import StreamRouter
from cctv_sr.errors import CctvSrError, OutputError
from cctv_sr.face.faceness import OnetFaceness
from cctv_sr.identity.alerts import TrackAlerts
from cctv_sr.identity.setup import open_identity
from cctv_sr.identity.sink import IdentityWriter, MatchCounts, MatchedTrack
from cctv_sr.io.events import EventLog
from cctv_sr.io.outdir import OutputWriter, WriteCounts, write_json_atomic
from cctv_sr.io.run_record import (
    InputRecord,
    ModelRecord,
    RunCounts,
    RunRecord,
    RunTiming,
    StreamRecord,
    now_utc,
)
from cctv_sr.io.source import SourceInfo, SourceStats, VideoSource, file_sha256, is_live_url
from cctv_sr.io.sources import MergedSource, stream_names
from cctv_sr.report import write_report
from cctv_sr.report.refresh import ReportRefresher
from cctv_sr.sr import create_super_resolver as create_sr

log = logging.getLogger(__name__)

C = TypeVar("C", bound=Any)  # a counter dataclass


@dataclass(frozen=True)
class RunResult:
    """What a finished run reports (run.json holds the same and more)."""

    outdir: Path
    status: str  # complete | truncated | stopped | interrupted | failed
    frames_decoded: int
    frames_analysed: int
    faces: int
    tracks: int
    wall_s: float
    stats: PipelineStats  # per-stage counters and times (``bench`` reads these)
    source_stats: SourceStats
    write_counts: WriteCounts
    report: Path | None = None  # report.html, when it could be written
    matched: tuple[MatchedTrack, ...] = ()  # tracks a gallery person was named in


class _Hasher(threading.Thread):
    """sha256 of the input file, computed beside the run (an hour of video takes seconds)."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="cctv-sha256", daemon=True)
        self.path = path
        self.digest: str | None = None

    def run(self) -> None:
        try:
            self.digest = file_sha256(self.path)
        except OSError as exc:
            log.warning("could not hash %s: %s", self.path, exc)


def run_footage(footage: str, outdir: Path, cfg: RunConfig, *, stream_id: str = "cam0",
                overwrite: bool = False, quiet: bool = False) -> RunResult:
    """Run the whole pipeline on ``footage`` (a path or an rtsp:// URL) into ``outdir``."""
    return run_inputs([footage], outdir, cfg, stream_ids=[stream_id], overwrite=overwrite,
                      quiet=quiet)


def _open_sources(inputs: list[str], cfg: RunConfig, names: list[str]
                  ) -> tuple[VideoSource | MergedSource, list[SourceInfo]]:
    if len(inputs) == 1:
        one = VideoSource(inputs[0], cfg.source, stream_id=names[0])
        return one, [one.open()]
    merged = MergedSource(inputs, cfg.source, names, max(16, 2 * cfg.detector.batch_size))
    return merged, merged.open()


def _each(source: VideoSource | MergedSource) -> list[VideoSource]:
    return source.sources if isinstance(source, MergedSource) else [source]


def run_inputs(inputs: list[str], outdir: Path, cfg: RunConfig, *,
               stream_ids: list[str] | None = None, overwrite: bool = False,
               quiet: bool = False) -> RunResult:
    """Run several inputs (files, stream URLs) through one pipeline: one decode thread each,
    one analysis, accelerator and writer stage for all. One input writes into ``outdir``
    itself; several write ``outdir/<stream>/`` each (names from :func:`stream_names`), and
    one ``outdir/run.json`` for the run."""
    names = list(stream_ids) if stream_ids else stream_names(inputs)
    multi = len(inputs) > 1
    source, infos = _open_sources(inputs, cfg, names)  # bad input fails here
    identity_setup = None
    writers: dict[str, OutputWriter] = {}
    try:
        if multi and (Path(outdir) / "run.json").exists() and not overwrite:
            raise OutputError(f"{outdir}: already holds results (run.json); choose another "
                              "--out or pass --overwrite")
        webhook_cfg = _webhook_config(cfg)  # a bad URL is refused before OUTDIR is made
        detector = create_detector(cfg.detector)
        sr = create_sr(cfg.sr)
        if cfg.match.gallery:
            identity_setup = open_identity(cfg)
        # The analysis stage's face / non-face check, folded into each face's quality
        # (face/quality.py); MTCNN's O-Net from the mtcnn package, nothing to download. One
        # detector and O-Net more for each analysis worker after the first.
        quality_faceness = OnetFaceness(device=cfg.detector.device)
        extra = [(create_detector(cfg.detector), OnetFaceness(device=cfg.detector.device))
                 for _ in range(analysis_workers(cfg, len(inputs)) - 1)]
        clocks = {s.stream_id: s.clock for s in _each(source)}
        for n in names:  # models first: a model that fails to load leaves no OUTDIR behind
            writers[n] = OutputWriter(Path(outdir) / n if multi else Path(outdir), cfg.output,
                                      overwrite=overwrite, clock=clocks[n])
        events = EventLog(Path(outdir))
    except BaseException:
        source.stop()
        for w in writers.values():
            w.close()
        raise
    webhook: WebhookSender | None = None
    identities: dict[str, IdentityWriter] = {}
    try:  # once OUTDIR exists: a failure here still stops the source and closes every file
        for one in _each(source):  # outages go to events.jsonl as they happen
            one.on_event = events.emit
        webhook = _start_webhook(webhook_cfg, events)
        embedder, faceness, head = None, None, None
        if identity_setup is not None:
            embedder, faceness = identity_setup.embedder, identity_setup.faceness
            head = identity_setup.head
            identities = {n: identity_setup.writer_for(w) for n, w in writers.items()}
            for n, identity in identities.items():
                identity.alerts = TrackAlerts(events, writers[n].outdir, writers[n].clock,
                                              cfg.alerts.min_gain)
        groups: dict[str, list[FaceSink]] = {
            n: [w, *([identities[n]] if n in identities else [])] for n, w in writers.items()}
        sinks: list[FaceSink] = [StreamRouter(groups)] if multi else groups[names[0]]
        hashers = {n: _Hasher(Path(u)) for n, u in zip(names, inputs) if not is_live_url(u)}
        for hasher in hashers.values():
            hasher.start()
        models = {"detector": ModelRecord.of(detector), "sr": ModelRecord.of(sr),
                  "quality_faceness": ModelRecord.of(quality_faceness)}
        if embedder is not None:
            models["embedder"] = ModelRecord.of(embedder)
            models["faceness"] = ModelRecord.of(faceness)
        if head is not None:
            models["head"] = ModelRecord.of(head)
        inputs_rec = [InputRecord.of(i, stream=n) for i, n in zip(infos, names)]
        record = RunRecord(input=inputs_rec[0], inputs=inputs_rec, settings=cfg, models=models,
                           gallery=None if identity_setup is None else identity_setup.describe())
        run_json = Path(outdir) / "run.json"
        write_json_atomic(run_json, record.to_json())
        pipeline = Pipeline(cfg, detector, sr, sinks, fps_hint=infos[0].fps or 25.0,
                            queue_size=max(16, cfg.sr.batch_size * 2), embedder=embedder,
                            faceness=faceness, head=head, quality_faceness=quality_faceness,
                            stream_fps={n: i.fps or 25.0 for n, i in zip(names, infos)},
                            live=[n for n, i in zip(names, infos) if i.is_live],
                            workers=extra)
    except BaseException:
        source.stop()
        _close_outputs([*writers.values(), *identities.values(), events], None)
        if webhook is not None:
            webhook.close(timeout_s=0)
        raise
    counts = [i.frame_count for i in infos]
    total = sum(c for c in counts if c) if all(counts) else None
    progress = RunProgress(source, total, cfg.source.stride, cfg.source.max_fps, disable=quiet)
    live = any(i.is_live for i in infos)
    refresher = None
    if live and cfg.output.report_every_s > 0:  # an operator can open it at any time
        refresher = ReportRefresher(Path(outdir), cfg.output.report_every_s)
        refresher.start()
    status, error = "complete", None
    stats: PipelineStats = pipeline.stats
    t0 = time.perf_counter()
    try:
        stats = pipeline.run(source, source.stop, on_tick=progress.update)
        if stats.stopped:
            status = "stopped" if live else "interrupted"
    except KeyboardInterrupt:
        status = "stopped" if live else "interrupted"
    except BaseException as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        progress.close()
        source.stop()
        if refresher is not None:
            refresher.stop()
        error = _close_outputs([*writers.values(), *identities.values(), events], error)
        if error is not None:
            status = "failed"
        if identities:
            record.matching = _summed(MatchCounts, [i.counts for i in identities.values()])
        for rec, n, one in zip(inputs_rec, names, _each(source)):
            if n in hashers:
                hashers[n].join()
                rec.sha256 = hashers[n].digest
            rec.utc_origin = one.clock.origin
            if one.truncation is not None:
                rec.frames_expected = one.truncation.expected
                rec.truncated = True
                if status == "complete":
                    status = "truncated"
        written = _summed(WriteCounts, [w.counts for w in writers.values()])
        if multi:
            record.streams = {n: StreamRecord(n, {**asdict(w.counts)})
                              for n, w in writers.items()}
        record.events = events.counts
        if webhook is not None:
            record.webhook = webhook.close()
        _finish(record, stats, source.stats, written, status, error, time.perf_counter() - t0)
        write_json_atomic(run_json, record.to_json())
        report = _write_report(Path(outdir))
    a = stats.analysis
    if error is not None:  # the outputs could not be finished (a full disk, say)
        raise OutputError(error)
    return RunResult(Path(outdir), status, source.stats.decoded, a.frames, written.faces,
                     written.tracks, stats.times.wall_s, stats, source.stats, written, report,
                     tuple(m for i in identities.values() for m in i.matched))


def _close_outputs(parts: list[Any], error: str | None) -> str | None:
    """Close every output (each one even when another fails); the first failure's message
    when nothing failed before."""
    for part in parts:
        try:
            part.close()
        except CctvSrError as exc:
            if error is None:
                error = str(exc)  # the run's one error line
            else:
                log.warning("also: %s", exc)
    return error


def _webhook_config(cfg: RunConfig) -> WebhookConfig | None:
    """The webhook's settings, checked (ConfigError), or None without ``alerts.webhook``."""
    a = cfg.alerts
    if not a.webhook:
        return None
    return WebhookConfig(a.webhook, timeout_s=a.timeout_s, attempts=a.attempts,
                         backoff_max_s=a.backoff_max_s, close_timeout_s=a.close_timeout_s)


def _start_webhook(config: WebhookConfig | None, events: EventLog) -> WebhookSender | None:
    if config is None:
        return None
    sender = WebhookSender(config)
    sender.start()
    events.listen(sender.send)
    return sender


def _write_report(outdir: Path) -> Path | None:
    """report.html from what the run wrote; a failure here never fails the run."""
    try:
        return write_report(outdir)
    except CctvSrError as exc:
        log.warning("report.html not written: %s", exc)
        return None


def analysis_workers(cfg: RunConfig, inputs: int) -> int:
    """Analysis workers of a run: ``engine.analysis_workers``, else one per input up to the
    CPU count; never more than the inputs (a stream is analysed by one worker)."""
    want = cfg.engine.analysis_workers or (os.cpu_count() or 1)
    return max(1, min(want, inputs))


def _summed(kind: type[C], parts: list[C]) -> C:
    """Counter dataclasses added field by field."""
    return kind(**{f.name: sum(getattr(p, f.name) for p in parts) for f in fields(kind)})


def _finish(record: RunRecord, stats: PipelineStats, s: SourceStats, w: WriteCounts,
            status: str, error: str | None, wall_s: float) -> None:
    a = stats.analysis
    record.status, record.error, record.finished_at = status, error, now_utc()
    record.counts = RunCounts(
        frames_decoded=s.decoded, frames_analysed=a.frames, frames_skipped=s.skipped,
        frames_dropped_live=s.dropped_live, decode_errors=s.decode_errors,
        reconnects=s.reconnects, reconnect_attempts=s.reconnect_attempts, stalls=s.stalls,
        frames_lost=s.frames_lost, detections=a.faces,
        sr_faces=stats.sr_faces, embedded_faces=stats.embedded_faces,
        head_faces=stats.accelerator.head_faces, faces=w.faces,
        faces_untracked=w.faces_untracked, tracks=w.tracks, crops_written=w.crops_written,
        crops_removed=w.crops_removed, carried_rows=a.carried, looked_back=a.looked_back,
        frames_full_scan=a.scan.full,
        frames_region_scan=a.scan.regions, frames_no_scan=a.scan.none,
        regions_searched=a.scan.region_count, shot_cuts=a.scan.cuts,
        windows=a.temporal.windows, window_frames=a.temporal.window_frames,
        window_between=a.temporal.between,
        analysis_workers=len(stats.analyses))
    record.timing = RunTiming(**{**asdict(stats.times), "wall_s": wall_s},
                              analysed_fps=a.frames / wall_s if wall_s > 0 else None)
