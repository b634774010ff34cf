"""Range checks on a :class:`~cctv_sr.config.RunConfig` that types alone do not express
(``validate``; :func:`cctv_sr.config.load_config` and ``with_values`` call it)."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from cctv_sr.errors import ConfigError

if TYPE_CHECKING:
    from cctv_sr.config import RunConfig


def validate(cfg: RunConfig) -> None:
    """Range checks that types alone do not express."""
    checks = [
        (cfg.source.stride >= 1, "source.stride must be >= 1"),
        (cfg.source.max_fps >= 0, "source.max_fps must be >= 0"),
        (cfg.source.max_frames >= 0, "source.max_frames must be >= 0"),
        (cfg.source.queue_size >= 1, "source.queue_size must be >= 1"),
        (0.0 <= cfg.detector.score_thresh <= 1.0, "detector.score_thresh must be in [0, 1]"),
        (cfg.detector.batch_size >= 1, "detector.batch_size must be >= 1"),
        (cfg.detector.runtime in ("auto", "onnxruntime", "opencv"),
         "detector.runtime must be auto, onnxruntime or opencv"),
        (cfg.detector.min_face_px >= 4, "detector.min_face_px must be >= 4"),
        (cfg.detector.nms_thresh > 0 and cfg.detector.nms_thresh <= 1,
         "detector.nms_thresh must be in (0, 1]"),
        (cfg.scan.mode in ("regions", "exhaustive"), "scan.mode must be regions or exhaustive"),
        (cfg.scan.motion_height >= 32, "scan.motion_height must be >= 32"),
        (0.0 < cfg.scan.motion_alpha <= 1.0, "scan.motion_alpha must be in (0, 1]"),
        (1 <= cfg.scan.motion_thresh <= 255, "scan.motion_thresh must be in [1, 255]"),
        (cfg.scan.motion_min_area >= 1, "scan.motion_min_area must be >= 1"),
        (0.0 < cfg.scan.max_motion_share <= 1.0, "scan.max_motion_share must be in (0, 1]"),
        (cfg.scan.target_face_px >= 8, "scan.target_face_px must be >= 8"),
        (cfg.scan.max_upscale >= 1.0, "scan.max_upscale must be >= 1"),
        (cfg.scan.region_faces >= 1.5, "scan.region_faces must be >= 1.5"),
        (cfg.scan.min_region_px >= 16, "scan.min_region_px must be >= 16"),
        (cfg.scan.detect_interval_s >= 0, "scan.detect_interval_s must be >= 0"),
        (cfg.scan.full_frame_s > 0, "scan.full_frame_s must be > 0"),
        (cfg.scan.static_check_s >= 0, "scan.static_check_s must be >= 0"),
        (0 <= cfg.scan.look_back <= 25, "scan.look_back must be in [0, 25] frames"),
        (0.0 < cfg.scan.cut_thresh <= 1.0, "scan.cut_thresh must be in (0, 1]"),
        (0.0 < cfg.scan.cut_changed <= 1.0, "scan.cut_changed must be in (0, 1]"),
        (0.0 <= cfg.tracker.high_thresh <= 1.0, "tracker.high_thresh must be in [0, 1]"),
        (0.0 <= cfg.tracker.new_track_thresh <= 1.0,
         "tracker.new_track_thresh must be in [0, 1]"),
        (0.0 < cfg.tracker.match_iou <= 1.0, "tracker.match_iou must be in (0, 1]"),
        (0.0 < cfg.tracker.low_match_iou <= 1.0, "tracker.low_match_iou must be in (0, 1]"),
        (cfg.tracker.max_centre_dist >= 0, "tracker.max_centre_dist must be >= 0"),
        (cfg.tracker.min_faces >= 1, "tracker.min_faces must be >= 1"),
        (0.0 < cfg.tracker.max_look_dist <= 1.0, "tracker.max_look_dist must be in (0, 1]"),
        (0.0 < cfg.tracker.look_rate <= 1.0, "tracker.look_rate must be in (0, 1]"),
        (cfg.tracker.max_lost_s > 0, "tracker.max_lost_s must be > 0"),
        (cfg.source.open_timeout_s > 0, "source.open_timeout_s must be > 0"),
        (cfg.source.read_timeout_s > 0, "source.read_timeout_s must be > 0"),
        (cfg.source.max_reconnects >= -1, "source.max_reconnects must be >= -1 (-1: forever)"),
        (cfg.source.reconnect_backoff_s > 0, "source.reconnect_backoff_s must be > 0"),
        (cfg.source.reconnect_max_backoff_s >= cfg.source.reconnect_backoff_s,
         "source.reconnect_max_backoff_s must be >= source.reconnect_backoff_s"),
        (cfg.source.stall_timeout_s > 0, "source.stall_timeout_s must be > 0"),
        (cfg.output.flush_s >= 0, "output.flush_s must be >= 0 (0: at the track's end)"),
        (cfg.output.report_every_s >= 0, "output.report_every_s must be >= 0 (0: at the end)"),
        (cfg.alerts.timeout_s > 0, "alerts.timeout_s must be > 0"),
        (cfg.alerts.attempts >= 1, "alerts.attempts must be >= 1"),
        (cfg.alerts.backoff_max_s >= 0.5, "alerts.backoff_max_s must be >= 0.5"),
        (cfg.alerts.close_timeout_s >= 0, "alerts.close_timeout_s must be >= 0"),
        (cfg.alerts.min_gain >= 0, "alerts.min_gain must be >= 0"),
        (not cfg.alerts.webhook or cfg.alerts.webhook.lower().startswith(("http://", "https://")),
         "alerts.webhook must be an http:// or https:// URL"),
        (cfg.sr.max_wait_ms >= 0, "sr.max_wait_ms must be >= 0"),
        (cfg.temporal.frames >= 1 and cfg.temporal.frames % 2 == 1,
         "temporal.frames must be odd and >= 1"),
        (cfg.temporal.fuse in ("robust", "none"), "temporal.fuse must be robust or none"),
        (cfg.temporal.sigma > 0, "temporal.sigma must be > 0"),
        (cfg.engine.analysis_workers >= 0, "engine.analysis_workers must be >= 0"),
        (cfg.temporal.max_wait_s > 0, "temporal.max_wait_s must be > 0"),
        (cfg.temporal.min_cutoff_hz > 0, "temporal.min_cutoff_hz must be > 0"),
        (cfg.temporal.beta >= 0, "temporal.beta must be >= 0"),
        (cfg.align.out_size >= 16, "align.out_size must be >= 16"),
        (cfg.output.top_k >= 1, "output.top_k must be >= 1"),
        (cfg.output.min_shot_gap_s >= 0, "output.min_shot_gap_s must be >= 0"),
        (cfg.output.image_format in ("png", "jpg"), "output.image_format must be png or jpg"),
        (cfg.sr.batch_size >= 1, "sr.batch_size must be >= 1"),
        (cfg.embedder.batch_size >= 1, "embedder.batch_size must be >= 1"),
        (cfg.head.batch_size >= 1, "head.batch_size must be >= 1"),
        (cfg.head.name != "none" or not cfg.head.model_path,
         "head.model_path is set but head.name is 'none' (off); set head.name=checkpoint"),
        (-1.0 <= cfg.match.threshold <= 1.0, "match.threshold must be a cosine in [-1, 1]"),
        (cfg.match.top_k >= 1, "match.top_k must be >= 1"),
        (0.0 < cfg.match.fpir < 1.0, "match.fpir must be in (0, 1)"),
        (cfg.match.sample_s > 0, "match.sample_s must be > 0"),
        (all(s >= 8 for s in cfg.align.lr_sizes) and cfg.align.lr_sizes,
         "align.lr_sizes must be sides >= 8"),
        (all(cfg.align.out_size % s == 0 for s in cfg.align.lr_sizes),
         "align.out_size must be a multiple of every align.lr_sizes entry"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    _check_head_name(cfg.head.name)


def _check_head_name(name: str) -> None:
    """``head.name`` is ``none`` or a registry head; else ConfigError with a suggestion."""
    from cctv_sr.models import registry  # the registry imports no config: no cycle, kept lazy

    known = ["none", *registry.names("head")]
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"head.name: unknown LR identity head {name!r} ({hint}known: "
                          f"{', '.join(known)})")
