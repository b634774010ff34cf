"""Settings as frozen dataclasses, loaded from TOML and overridden with ``--set a.b=value``.

Unknown keys are errors that suggest the nearest known key; values are type-checked against the
dataclass annotations (the mechanism, for any frozen dataclass: :mod:`cctv_sr.config_toml`).
Example::

    cfg = load_config(Path("pipelines/cpu_default.toml"), ["detector.name=yunet"])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cctv_sr.config_toml import apply_mapping, parse_override, read_toml
from cctv_sr.errors import ConfigError

__all__ = ["RunConfig", "apply_mapping", "load_config", "parse_override", "read_toml",
           "to_dict", "validate", "with_values"]


@dataclass(frozen=True)
class SourceConfig:
    stride: int = 1  # analyse every Nth decoded frame
    max_fps: float = 0.0  # 0 = no limit; otherwise analyse at most this many frames per second
    max_frames: int = 0  # 0 = to the end; otherwise stop after analysing this many frames
    queue_size: int = 32
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    rtsp_transport: str = "tcp"
    # Live streams (io/live.py): a stream that ends, fails or stalls is reopened, waiting
    # reconnect_backoff_s, doubling up to reconnect_max_backoff_s, between attempts;
    # max_reconnects = failed attempts in a row before the stream is given up (-1: never
    # give up, 0: never reconnect). stall_timeout_s: the watchdog's limit for a session that
    # yields no frame (FFmpeg's own read_timeout_s does not cover every hang).
    max_reconnects: int = -1
    reconnect_backoff_s: float = 1.0
    reconnect_max_backoff_s: float = 10.0
    stall_timeout_s: float = 15.0


@dataclass(frozen=True)
class DetectorConfig:
    name: str = "yunet"  # yunet (shipped in the package) | mtcnn | scrfd
    model_path: str = ""  # explicit weights file; empty = resolve from the manifest
    score_thresh: float = 0.5  # lowest score returned (the tracker's low bar)
    nms_thresh: float = 0.4
    min_face_px: int = 12  # smallest face side searched for
    batch_size: int = 8  # frames per detector call
    device: str = "cpu"  # cpu | cuda | cuda:N
    # yunet: auto (onnxruntime when the [onnx] extra is installed: about 2x faster here, and
    # batched; else OpenCV's cv2.FaceDetectorYN) | onnxruntime | opencv
    runtime: str = "auto"


@dataclass(frozen=True)
class ScanConfig:
    """Where and how often the detector looks (``[scan]``; docs/ARCHITECTURE.md "Scan").

    ``mode = "regions"`` (default): motion on a small grey image gates square regions around
    moving blobs and live tracks, upsampled so the expected face is about ``target_face_px``;
    the detector runs on those regions every ``detect_interval_s`` and tracks carry faces in
    between (rows marked ``detected: false``); the whole frame is searched every
    ``full_frame_s``, at a shot cut and on the first frame. ``mode = "exhaustive"``: the
    detector on every full frame (``--exhaustive``).
    """

    mode: str = "regions"  # regions | exhaustive
    motion_height: int = 160  # rows of the grey image motion is computed on
    motion_alpha: float = 0.05  # running-average background learning rate per analysed frame
    motion_thresh: int = 14  # grey-level difference that counts as motion
    motion_min_area: int = 20  # least blob area in motion-image pixels, after dilation (one
    # moving pixel dilates to a 5 x 5 square of area 16: noise, not a blob)
    max_motion_share: float = 0.4  # more of the image moving: a moving camera, no blobs
    target_face_px: float = 40.0  # regions are scaled so the expected face is about this wide
    max_upscale: float = 2.5  # at most this upsampling of a region (a 16 px face seen at 40)
    region_faces: float = 2.5  # a track's region side in face widths
    min_region_px: int = 48  # least region side in frame pixels
    detect_interval_s: float = 0.12  # run the detector on regions at most this often
    full_frame_s: float = 2.0  # search the whole frame this often (people standing still)
    static_check_s: float = 0.4  # a track over no motion is re-checked this often (at most half
    # of tracker.max_lost_s, so a still track never ends unchecked)
    look_back: int = 2  # analysed frames a face found for the first time is searched back
    # through (where they searched elsewhere or nothing; 0: off; off with mode = "exhaustive")
    cut_thresh: float = 0.45  # grey-histogram distance between frames that marks a shot cut
    cut_changed: float = 0.6  # ... or this share of pixels changing at once


@dataclass(frozen=True)
class TrackerConfig:
    # 0 = the detector's own calibrated default (scores mean different things per detector)
    high_thresh: float = 0.0  # detections at or above this are matched first
    new_track_thresh: float = 0.0  # detections at or above this may start a new track
    match_iou: float = 0.2  # least IoU (predicted box vs detection) for the first association
    low_match_iou: float = 0.3  # least IoU for low-score detections continuing a track
    max_centre_dist: float = 1.5  # also allow a match within this many box sides (fast motion)
    max_lost_s: float = 1.5  # a track unseen this long (stream time) ends
    min_faces: int = 2  # tracks with fewer faces are written as untracked detections
    max_look_dist: float = 0.5  # colour-descriptor distance above which a pair never matches
    look_rate: float = 0.2  # how fast a track's colour descriptor follows new detections


@dataclass(frozen=True)
class AlignConfig:
    out_size: int = 128  # side of the enhanced (SR) crop
    lr_sizes: tuple[int, ...] = (16, 32)  # LR crop sides; the largest not above the face's size
    skip_sr_px: float = 64.0  # faces at least this large are warped straight to out_size


@dataclass(frozen=True)
class SRConfig:
    name: str = "bicubic"  # bicubic | espcn | fsrcnn | lapsrn | trained (with model_path)
    model_path: str = ""  # explicit weights file (a .pb for the OpenCV models)
    batch_size: int = 32
    max_wait_ms: float = 50.0
    device: str = "cpu"
    # CUDA only (the project's own nets, sr/trained.py): float16 weights and inputs. Off until
    # a GPU benchmark shows identification unchanged; channels-last and pinned host memory
    # are always used on CUDA. Ignored on CPU.
    half: bool = False


@dataclass(frozen=True)
class TemporalConfig:
    """Temporal fusion along each track (:mod:`cctv_sr.engine.temporal`): every face that is
    enhanced or embedded goes with a window of aligned crops of its track centred on it."""

    frames: int = 5  # odd; 1 = single-frame (no window, no wait for later frames)
    # how a single-frame SR model uses the window: robust (per-pixel weighted mean of the
    # window's crops before SR, :mod:`cctv_sr.sr.fuse`) | none (the centre crop only). A T > 1
    # model always takes the window itself.
    fuse: str = "robust"
    sigma: float = 6.0  # robust fusion: grey-level difference from the centre at weight e^-1/2
    # a request waits at most this long (stream time) for the frames after its face; frames
    # between two detections this close are aligned from interpolated landmarks
    max_wait_s: float = 0.5
    smooth: bool = True  # One-Euro smoothing of landmarks along the track before alignment
    min_cutoff_hz: float = 1.0  # smoothing of a still face (lower: smoother, more lag)
    beta: float = 2.0  # how fast smoothing lets go as the face moves (per face size per s)


@dataclass(frozen=True)
class EmbedderConfig:
    name: str = "mobilefacenet"  # mobilefacenet | dlib | arcface | mobilefacenet_onnx
    model_path: str = ""  # explicit weights file; empty = resolve from the manifest
    batch_size: int = 32
    device: str = "cpu"
    num_threads: int = 0  # 0 = what the machine allows


@dataclass(frozen=True)
class HeadConfig:
    """The LR identity head (:mod:`cctv_sr.embed.lrhead`): a network distilled from the gallery
    embedder that maps each LR crop straight into that embedder's space, a third score per
    track beside LR and SR (used only with a gallery; :mod:`cctv_sr.identity.match`)."""

    # lrmfn (the shipped head; used with galleries of the shipped MobileFaceNet, skipped with
    # others; docs/MODELS.md) | lrmfn_t5 (the shipped burst head: embeds each face's track
    # window) | none (off) | checkpoint (a `cctv-sr train` file of lrhead / lrmfn in
    # model_path)
    name: str = "lrmfn"
    model_path: str = ""  # the checkpoint file (name=checkpoint needs one); empty = the manifest's
    batch_size: int = 64
    device: str = "cpu"


@dataclass(frozen=True)
class MatchConfig:
    gallery: str = ""  # gallery.db from `cctv-sr gallery build`; empty = no identity matching
    threshold: float = 0.0  # 0 = from fpir and the gallery's size (the embedder's calibration)
    fpir: float = 0.01  # share of strangers (people not in the gallery) a run may name
    # faces up to 32 px use thresholds calibrated at their size (off: the full-resolution ones
    # at every size; on lfw_dev "on" named 1.4% of 32 px strangers for FPIR 0.01, "off" 0.3%)
    size_thresholds: bool = False
    top_k: int = 3  # candidates reported per track
    sample_s: float = 1.0  # besides its best shots, embed one face of a track per this interval


@dataclass(frozen=True)
class GateConfig:
    """The matching gate's per-face bars and per-track rule (:mod:`cctv_sr.identity.gate`;
    defaults from samples/measure_gate.py).

    min_faceness: O-Net face probability on the aligned crop (face/faceness.py). At 0.5
        (measured, samples/measure_gate.py --gate-only): LFW dev faces pass 100% at HR and
        32 px, 99.3% at 24 px, 97.5% at 16 px; talking-head faces 100% (HR, 32, 16 px);
        hand-labelled cctv_like faces 80% (MTCNN) / 64% (YuNet: mostly top-down fisheye
        heads). Rejected: 90% of YuNet's and 66% of MTCNN's labelled false detections
        (mined at score >= 0.3), 82% of back-of-head detections, 69% of the talking-head
        clips' hands / shoes / plants, 100% of warped random patches. With all the bars, 4.5%
        / 19% / 17% of those false detections stay usable, 0% of the patches.
    min_size_px: native face size (112-template pixels, Quality.size_px); the detectors'
        default search floor (detector.min_face_px = 12): below it landmarks are guesses.
    min_sharpness: Quality.sharpness; a flat or smeared crop carries no identity. 0.05 keeps
        every measured face (LFW 16 px median 0.78) and rejected none of the false detections
        on its own (their median is 0.26-0.75): a floor, not a discriminator.
    min_frontal: Quality.frontal (landmark residual against the template, 1 = perfect);
        0.05 is a residual of 0.285 eye distances, landmarks that fit no frontal face; it
        rejected 0-3% of the false detections (medians 0.61-0.75 against 0.70-0.83 for
        faces): landmark geometry does not separate them.
    min_det_score: the detector's own score; 0.5 is detector.score_thresh's default, so it
        only bites when a run lowers that threshold (false detections: medians 0.38-0.45 at
        a 0.3 threshold, faces 0.79-0.98).
    min_usable: usable faces a decision must rest on (a 1-face "track" is a detection).
    max_not_face_share: a track whose faces fail the faceness bar more often than this is
        not a face track, however many of its faces pass.
    full_evidence_faces: usable faces at which a track gets the gallery's own per-pair FAR
        (:func:`evidence_far_factor`); shorter tracks get a stricter one. Not yet measured on
        track lengths (how long non-face tracks are against face tracks): a judgement, one
        decade of FAR for the shortest matchable track, to revisit with that measurement.
    short_track_far_factor: the per-pair FAR factor at ``min_usable`` faces.
    """

    min_faceness: float = 0.5
    min_size_px: float = 12.0
    min_sharpness: float = 0.05
    min_frontal: float = 0.05
    min_det_score: float = 0.5
    min_usable: int = 2
    max_not_face_share: float = 0.5
    full_evidence_faces: int = 5
    short_track_far_factor: float = 0.1

    def __post_init__(self) -> None:
        for name in ("min_faceness", "min_sharpness", "min_frontal", "min_det_score",
                     "max_not_face_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"gate.{name} must be in [0, 1], got {value}")
        if self.min_size_px < 0:
            raise ConfigError(f"gate.min_size_px must be >= 0, got {self.min_size_px}")
        if self.min_usable < 1 or self.full_evidence_faces < self.min_usable:
            raise ConfigError(f"gate needs 1 <= min_usable <= full_evidence_faces, got "
                              f"{self.min_usable}, {self.full_evidence_faces}")
        if not 0.0 < self.short_track_far_factor <= 1.0:
            raise ConfigError(f"gate.short_track_far_factor must be in (0, 1], got "
                              f"{self.short_track_far_factor}")


@dataclass(frozen=True)
class OutputConfig:
    top_k: int = 5  # best crops kept per track
    min_shot_gap_s: float = 0.3  # best shots closer in time than this compete (no near-duplicates)
    save_all_crops: bool = False
    image_format: str = "png"
    # live streams: rows of tracks still open are written this many seconds (stream time)
    # after their frame, without crop refs (tracks.jsonl lists the best crops); 0: at the
    # track's end, as for files
    flush_s: float = 2.0
    # live streams: report.html is rewritten this often while the run goes on (0: at the end
    # only, as for files)
    report_every_s: float = 30.0


@dataclass(frozen=True)
class AlertsConfig:
    """Watchlist alerts (``[alerts]``; identity/alerts.py): each goes to events.jsonl and,
    with ``webhook`` set (``--alert-webhook URL``), is POSTed there as JSON."""

    webhook: str = ""  # http(s) URL; empty: events.jsonl only
    timeout_s: float = 5.0  # per POST attempt
    # tries per alert (connection errors, timeouts, 5xx, 429), waiting backoff_max_s at most
    # between two: the defaults ride out a receiver that is down for about two minutes
    attempts: int = 10
    backoff_max_s: float = 30.0
    close_timeout_s: float = 10.0  # at the end of a run, alerts still queued get this long
    min_gain: float = 0.02  # an open track's alert is updated when its score rises this much


@dataclass(frozen=True)
class EngineConfig:
    """Threads of the pipeline (docs/ARCHITECTURE.md, "Threads and messages")."""

    # analysis workers for a run of several inputs (each stream analysed by one, with its own
    # detector); 0 = one per input, at most the CPU count
    analysis_workers: int = 0


@dataclass(frozen=True)
class RunConfig:
    source: SourceConfig = field(default_factory=SourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    sr: SRConfig = field(default_factory=SRConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    match: MatchConfig = field(default_factory=MatchConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults, then the TOML file (if any), then each ``--set`` override in order."""
    cfg = RunConfig()
    if path is not None:
        cfg = apply_mapping(cfg, read_toml(path), "")
    for text in overrides or []:
        cfg = apply_mapping(cfg, parse_override(text), "")
    validate(cfg)
    return cfg


def with_values(cfg: RunConfig, **sections: dict[str, Any]) -> RunConfig:
    """Apply plain values per section (used by CLI flags), with the same checks as TOML."""
    out = apply_mapping(cfg, {k: v for k, v in sections.items() if v}, "")
    validate(out)
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict for run.json."""
    return dataclasses.asdict(cfg)


# The range checks live in their own module (config_checks.py); re-exported here, imported last
# because they need the dataclasses above.
from cctv_sr.config_checks import validate  # noqa: E402
