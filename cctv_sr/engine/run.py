"""``cctv-sr run``: one footage file or stream through the pipeline into OUTDIR.

Builds the backends, opens the source (errors before anything is written), keeps run.json up
to date (``status`` is ``running`` until the end, so a crash is visible), shows progress, and
turns Ctrl-C / SIGTERM into a clean stop that flushes every open track.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from cctv_sr import EVIDENCE_NOTE, __version__
from cctv_sr.config import RunConfig, to_dict
from cctv_sr.engine.build import create_detector, create_sr, model_provenance
from cctv_sr.engine.pipeline import Pipeline, PipelineStats
from cctv_sr.engine.progress import RunProgress
from cctv_sr.identity.setup import open_identity
from cctv_sr.io.outdir import OutputWriter
from cctv_sr.io.source import VideoSource, file_sha256, is_live_url

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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    out = {"cctv-sr": __version__, "python": platform.python_version()}
    for dist in ("numpy", "torch", "av", "opencv-contrib-python-headless", "onnxruntime",
                 "onnxruntime-gpu", "mtcnn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


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
    embedder, identity = None, None
    if identity_setup is not None:
        embedder = identity_setup.embedder
        identity = identity_setup.writer_for(writer)
    hasher = None if live else _Hasher(Path(footage))
    if hasher is not None:
        hasher.start()
    started = _now()
    meta: dict[str, Any] = {
        "tool": "cctv-sr",
        "status": "running",
        "notice": EVIDENCE_NOTE,
        "started_at": started,
        # info.url has any password in a stream URL masked: run.json never holds credentials
        "input": {**asdict(info), "is_live": live, "sha256": None},
        "settings": to_dict(cfg),
        "models": {"detector": model_provenance(detector), "sr": model_provenance(sr),
                   **({"embedder": model_provenance(embedder)} if embedder else {})},
        "gallery": None if identity_setup is None else identity_setup.describe(),
        "versions": _versions(),
    }
    meta["input"]["time_base"] = str(info.time_base)
    writer.write_run_json(meta)
    pipeline = Pipeline(cfg, detector, sr, writer, fps_hint=info.fps or 25.0,
                        queue_size=max(16, cfg.sr.batch_size * 2), embedder=embedder,
                        identity=identity)
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
            meta["matching"] = identity.counts_dict()
        if hasher is not None:
            hasher.join()
            meta["input"]["sha256"] = hasher.digest
        meta.update(_final_meta(stats, source, writer, status, error, time.perf_counter() - t0))
        writer.write_run_json(meta)
    a = stats.analysis
    return RunResult(outdir, status, source.stats.decoded, a.frames, writer.counts.faces,
                     writer.counts.tracks, stats.times.wall_s)


def _final_meta(stats: PipelineStats, source: VideoSource, writer: OutputWriter, status: str,
                error: str | None, wall_s: float) -> dict[str, Any]:
    s = source.stats
    a = stats.analysis
    times = asdict(stats.times)
    times["wall_s"] = wall_s
    times["analysed_fps"] = a.frames / wall_s if wall_s > 0 else None
    return {
        "status": status,
        "error": error,
        "finished_at": _now(),
        "counts": {
            "frames_decoded": s.decoded,
            "frames_analysed": a.frames,
            "frames_skipped": s.skipped,
            "frames_dropped_live": s.dropped_live,
            "decode_errors": s.decode_errors,
            "detections": a.faces,
            "sr_faces": stats.sr_faces,
            "embedded_faces": stats.embedded_faces,
            **asdict(writer.counts),
        },
        "timing": {k: round(v, 4) if isinstance(v, float) else v for k, v in times.items()},
    }
