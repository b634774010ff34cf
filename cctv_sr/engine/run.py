"""``cctv-sr run``: one footage file or stream through the pipeline into OUTDIR.

Builds the backends, opens the source (errors before anything is written), keeps run.json up
to date (``status`` is ``running`` until the end, so a crash is visible), shows progress, and
turns Ctrl-C / SIGTERM into a clean stop that flushes every open track.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cctv_sr.config import RunConfig
from cctv_sr.detect import create_detector
from cctv_sr.engine.pipeline import FaceSink, Pipeline, PipelineStats
from cctv_sr.engine.progress import RunProgress
from cctv_sr.face.faceness import OnetFaceness
from cctv_sr.identity.setup import open_identity
from cctv_sr.io.outdir import OutputWriter, WriteCounts
from cctv_sr.io.run_record import (
    InputRecord,
    ModelRecord,
    RunCounts,
    RunRecord,
    RunTiming,
    now_utc,
)
from cctv_sr.io.source import SourceStats, VideoSource, file_sha256, is_live_url
from cctv_sr.sr import create_super_resolver as create_sr

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """What a finished run reports (run.json holds the same and more)."""

    outdir: Path
    status: str  # complete | stopped | interrupted | failed
    frames_decoded: int
    frames_analysed: int
    faces: int
    tracks: int
    wall_s: float
    stats: PipelineStats  # per-stage counters and times (``bench`` reads these)
    source_stats: SourceStats
    write_counts: WriteCounts


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
    live = is_live_url(footage)
    source = VideoSource(footage, cfg.source, stream_id=stream_id)
    info = source.open()  # bad input fails here, before OUTDIR is touched
    identity_setup = None
    try:
        detector = create_detector(cfg.detector)
        sr = create_sr(cfg.sr)
        if cfg.match.gallery:
            identity_setup = open_identity(cfg)
        writer = OutputWriter(outdir, cfg.output, overwrite=overwrite)
    except BaseException:
        source.stop()
        raise
    embedder, faceness, head, identity = None, None, None, None
    sinks: list[FaceSink] = [writer]
    if identity_setup is not None:
        embedder, faceness = identity_setup.embedder, identity_setup.faceness
        head = identity_setup.head
        identity = identity_setup.writer_for(writer)
        sinks.append(identity)
    hasher = None if live else _Hasher(Path(footage))
    if hasher is not None:
        hasher.start()
    # The analysis stage's face / non-face check, folded into each face's quality
    # (face/quality.py); MTCNN's O-Net from the mtcnn package, nothing to download.
    quality_faceness = OnetFaceness(device=cfg.detector.device)
    models = {"detector": ModelRecord.of(detector), "sr": ModelRecord.of(sr),
              "quality_faceness": ModelRecord.of(quality_faceness)}
    if embedder is not None:
        models["embedder"] = ModelRecord.of(embedder)
        models["faceness"] = ModelRecord.of(faceness)
    if head is not None:
        models["head"] = ModelRecord.of(head)
    record = RunRecord(input=InputRecord.of(info), settings=cfg, models=models,
                       gallery=None if identity_setup is None else identity_setup.describe())
    writer.write_run_json(record.to_json())
    pipeline = Pipeline(cfg, detector, sr, sinks, fps_hint=info.fps or 25.0,
                        queue_size=max(16, cfg.sr.batch_size * 2), embedder=embedder,
                        faceness=faceness, head=head, quality_faceness=quality_faceness)
    progress = RunProgress(source, info, cfg.source.stride, cfg.source.max_fps, disable=quiet)
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
        writer.close()
        if identity is not None:
            identity.close()
            record.matching = identity.counts
        if hasher is not None:
            hasher.join()
            record.input.sha256 = hasher.digest
        _finish(record, stats, source.stats, writer, status, error, time.perf_counter() - t0)
        writer.write_run_json(record.to_json())
    a = stats.analysis
    return RunResult(outdir, status, source.stats.decoded, a.frames, writer.counts.faces,
                     writer.counts.tracks, stats.times.wall_s, stats, source.stats,
                     writer.counts)


def _finish(record: RunRecord, stats: PipelineStats, s: SourceStats, writer: OutputWriter,
            status: str, error: str | None, wall_s: float) -> None:
    a = stats.analysis
    w = writer.counts
    record.status, record.error, record.finished_at = status, error, now_utc()
    record.counts = RunCounts(
        frames_decoded=s.decoded, frames_analysed=a.frames, frames_skipped=s.skipped,
        frames_dropped_live=s.dropped_live, decode_errors=s.decode_errors, detections=a.faces,
        sr_faces=stats.sr_faces, embedded_faces=stats.embedded_faces,
        head_faces=stats.accelerator.head_faces, faces=w.faces,
        faces_untracked=w.faces_untracked, tracks=w.tracks, crops_written=w.crops_written,
        crops_removed=w.crops_removed, carried_rows=a.carried, frames_full_scan=a.scan.full,
        frames_region_scan=a.scan.regions, frames_no_scan=a.scan.none,
        regions_searched=a.scan.region_count, shot_cuts=a.scan.cuts,
        windows=a.temporal.windows, window_frames=a.temporal.window_frames)
    record.timing = RunTiming(**{**asdict(stats.times), "wall_s": wall_s},
                              analysed_fps=a.frames / wall_s if wall_s > 0 else None)
