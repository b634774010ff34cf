"""`cctv-sr eval video` (docs/EVAL.md section 3): fidelity and flicker of SR along tracks.

For each clean talking-head clip and face width s: the clip is shrunk so its face is about
s px wide (:func:`cctv_sr.face.align.native_size` of the first clean frame's face), padded
onto a canvas (edges replicated; at least 128 px, even sides) and re-encoded with H.264
(CRF 30) through PyAV. The analysis stage (:class:`cctv_sr.engine.analysis.Analyzer`:
scan, detect, track, smooth, align, window) runs on the degraded clip once per mode:

- ``single``: ``temporal.frames = 1``, no landmark smoothing (the single-frame path);
- ``temporal``: the run's ``[temporal]`` settings (5-frame windows, smoothing).

Every aligned face of a track is kept (``output.save_all_crops``) and enhanced by each SR
method through the accelerator (:class:`cctv_sr.engine.accelerator.Accelerator`), exactly as
in ``cctv-sr run``: a single-frame model gets the fused window in ``temporal`` mode, a T > 1
model the window itself. Each SR crop is compared with the crop taken at the same place from
the clean frame (the face's alignment mapped back through the shrink and the padding, at the
output side 128): PSNR and SSIM, identity cosine between the two under an embedder that
trained nothing here (dlib by default; the project's models learned from MobileFaceNet), and
flicker: mean absolute difference, in grey levels, between ``SR_t - SR_prev`` and
``GT_t - GT_prev`` over consecutive detected faces of a track.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from cctv_sr.config import RunConfig, TemporalConfig
from cctv_sr.data.encode import write_h264
from cctv_sr.embed.base import FaceEmbedder
from cctv_sr.engine.accelerator import Accelerator
from cctv_sr.engine.analysis import Analyzer
from cctv_sr.engine.temporal import window_frames
from cctv_sr.errors import ConfigError, SourceError
from cctv_sr.face.align import native_size, warp_face
from cctv_sr.records import AnalysisMessage, EnhancedFace, SaveRequest, TrackWindow
from cctv_sr.sr.base import SuperResolver

if TYPE_CHECKING:
    from cctv_sr.embed.lrhead import LrHeadEmbedder

log = logging.getLogger(__name__)

__all__ = ["MODES", "Margin", "VideoRow", "clean_frames", "degrade", "eval_clip", "gt_affine",
           "paired_margins", "summarise"]

CRF = 30
MIN_CANVAS = 128
MODES = ("single", "temporal")


@dataclass(frozen=True)
class FaceScore:
    """One enhanced face of one method, mode and clip against its clean crop."""

    method: str  # e.g. "lrnet temporal"
    size: int
    clip: str
    track: int
    frame: int
    psnr: float | None  # None: an LR head's row (no image)
    ssim: float | None
    id_cos: float
    flicker: float | None  # against the track's previous face (None: the track's first)


@dataclass(frozen=True)
class VideoRow:
    """One line of the table / ``--json`` rows: a method and mode at one face width. An LR
    identity head's row (``head:NAME single|temporal``) has only ``id_cos``: the cosine of its
    vector to the head's teacher embedder's vector of the clean crop."""

    method: str
    size: int
    psnr: float | None
    ssim: float | None
    id_cos: float
    flicker: float | None
    faces: int
    clips: int


def clean_frames(path: Path, max_frames: int = 0) -> tuple[list[np.ndarray], float]:
    """The decoded BGR frames of a clip (at most ``max_frames``; 0: all) and its frame rate."""
    import av

    try:
        container = av.open(str(path))
    except (OSError, av.FFmpegError) as exc:
        raise SourceError(f"{path}: cannot open ({exc})") from None
    with container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        frames: list[np.ndarray] = []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="bgr24"))
            if max_frames and len(frames) >= max_frames:
                break
    if not frames:
        raise SourceError(f"{path}: no video frames")
    return frames, fps


def _even(x: int) -> int:
    return x + (x % 2)


def degrade(frames: Sequence[np.ndarray], fps: float, scale: float, out: Path
            ) -> tuple[tuple[float, float], tuple[float, float]]:
    """Shrink by about ``scale`` (area, to whole pixels), pad onto a canvas, encode H.264 CRF
    30 to ``out``; returns the top-left offset ``(ox, oy)`` of the shrunk frame on the canvas
    and the exact scales ``(fx, fy)`` of the shrink (``sw / w``, ``sh / h``)."""
    h, w = frames[0].shape[:2]
    sw, sh = max(2, round(w * scale)), max(2, round(h * scale))
    cw, ch = _even(max(MIN_CANVAS, sw + 32)), _even(max(MIN_CANVAS, sh + 32))
    ox, oy = (cw - sw) // 2, (ch - sh) // 2

    def canvases() -> Iterator[np.ndarray]:
        for image in frames:
            small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
            yield cv2.copyMakeBorder(small, oy, ch - sh - oy, ox, cw - sw - ox,
                                     cv2.BORDER_REPLICATE)

    write_h264(out, canvases(), fps, CRF)
    return (float(ox), float(oy)), (sw / w, sh / h)


def gt_affine(M: np.ndarray, f: tuple[float, float], offset: tuple[float, float], side: int,
              out_side: int) -> np.ndarray:
    """The clean-frame affine of a face aligned in the degraded frame by ``M`` (degraded
    pixels -> crop of ``side``), for a crop of ``out_side``: the shrink by ``f = (fx, fy)``
    (pixel centres: ``d = f c + (f - 1) / 2`` per axis), the canvas offset, then the crop
    scaled by ``out_side / side`` (centres again)."""
    A, b = np.asarray(M, np.float64)[:, :2], np.asarray(M, np.float64)[:, 2]
    fxy = np.array([f[0], f[1]], np.float64)
    shift = np.array([offset[0], offset[1]]) + (fxy - 1.0) / 2.0
    A1, b1 = A * fxy[None, :], A @ shift + b  # clean pixels -> crop of ``side``
    k = out_side / side
    return np.hstack([A1 * k, ((b1 + 0.5) * k - 0.5)[:, None]]).astype(np.float32)


def analyse(path: Path, cfg: RunConfig, detector: object, window: int) -> list[TrackWindow]:
    """Every tracked face of ``path`` with its track window (``cfg.output.save_all_crops``)."""
    from cctv_sr.io.source import VideoSource

    saved: list[TrackWindow] = []

    def keep(message: AnalysisMessage) -> None:
        if isinstance(message, SaveRequest):
            w = message.window if message.window is not None else TrackWindow.single(
                message.face)
            saved.append(w)

    with VideoSource(path, cfg.source, stream_id="eval") as source:
        info = source.info
        analyzer = Analyzer(cfg, detector, keep, info.fps or 25.0,  # type: ignore[arg-type]
                            window=window)
        batch = []
        for frame in source:
            batch.append(frame)
            if len(batch) >= cfg.detector.batch_size:
                analyzer.process(batch)
                batch = []
        if batch:
            analyzer.process(batch)
        analyzer.finish()
    return saved


def mode_config(cfg: RunConfig, mode: str) -> RunConfig:
    """The run settings of one mode (``single`` turns temporal fusion and smoothing off)."""
    temporal = cfg.temporal if mode == "temporal" else TemporalConfig(frames=1, smooth=False)
    return replace(cfg, temporal=temporal,
                   output=replace(cfg.output, save_all_crops=True))


def _psnr_ssim(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    from cctv_sr.train.validate import psnr, ssim

    x = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255
    return psnr(x, y).numpy(), ssim(x, y).numpy()


def score_faces(method: str, size: int, clip: str, enhanced: Sequence[EnhancedFace],
                gt: np.ndarray, gt_vectors: np.ndarray, embedder: FaceEmbedder
                ) -> list[FaceScore]:
    """Scores of one method's enhanced faces (``gt``: their clean crops, in order)."""
    sr = np.stack([e.sr for e in enhanced])
    p, s = _psnr_ssim(sr, gt)
    cos = np.sum(embedder.embed(sr) * gt_vectors, axis=1)
    prev: dict[int, int] = {}
    out = []
    for i, e in enumerate(enhanced):
        j = prev.get(e.face.track_id)
        flick = None
        if j is not None:
            d_sr = sr[i].astype(np.float32) - sr[j].astype(np.float32)
            d_gt = gt[i].astype(np.float32) - gt[j].astype(np.float32)
            flick = float(np.abs(d_sr - d_gt).mean())
        prev[e.face.track_id] = i
        out.append(FaceScore(method, size, clip, e.face.track_id, e.face.frame_index,
                             float(p[i]), float(s[i]), float(cos[i]), flick))
    return out


def score_head(name: str, size: int, clip: str, head: LrHeadEmbedder,
               wins: Sequence[TrackWindow], mode: str, teacher_gt: np.ndarray
               ) -> list[FaceScore]:
    """An LR head's vectors of the faces (their windows in ``temporal`` mode, for a T > 1
    head) against the teacher's vectors of the clean crops."""
    from cctv_sr.engine.accelerator import centre_slots

    vectors = np.zeros((len(wins), head.dim), np.float32)
    by_side: dict[int, list[int]] = {}
    for i, w in enumerate(wins):
        by_side.setdefault(w.centre.crop.shape[0], []).append(i)
    for idx in by_side.values():  # a batch holds crops of one side
        for k in range(0, len(idx), 64):
            part = idx[k:k + 64]
            if head.window > 1 and mode == "temporal":
                got = head.embed_windows(centre_slots([wins[i] for i in part], head.window)[0])
            else:
                got = head.embed(np.stack([wins[i].centre.crop for i in part]))
            vectors[part] = got
    cos = np.sum(vectors * teacher_gt, axis=1)
    return [FaceScore(f"head:{name} {mode}", size, clip, w.centre.track_id,
                      w.centre.frame_index, None, None, float(c), None)
            for w, c in zip(wins, cos)]


def eval_clip(path: Path, sizes: Sequence[int], cfg: RunConfig, detector: object,
              srs: dict[str, SuperResolver], embedder: FaceEmbedder, max_frames: int = 0,
              on_step: Callable[[str], None] | None = None,
              heads: dict[str, LrHeadEmbedder] | None = None,
              teacher: FaceEmbedder | None = None) -> Iterator[FaceScore]:
    """Scores of every method, mode and size on one clean clip (and of every LR head, scored
    in the space of ``teacher``, the embedder it was distilled from)."""
    frames, fps = clean_frames(path, max_frames)
    found = detector.detect([frames[0]])[0]  # type: ignore[attr-defined]
    if len(found) == 0:
        log.warning("%s: no face in the first clean frame; skipped", path.name)
        return
    clean_px = max(native_size(k) for k in found.kps)
    out_side = cfg.align.out_size
    heads = heads or {}
    windows_of = max([1, *(sr.window for sr in srs.values()),
                      *(h.window for h in heads.values())])
    with tempfile.TemporaryDirectory(prefix="cctv-sr-eval-video-") as tmp:
        for size in sizes:
            degraded = Path(tmp) / f"{path.stem}_{size}.mp4"
            offset, f = degrade(frames, fps, size / clean_px, degraded)
            for mode in MODES:
                mcfg = mode_config(cfg, mode)
                window = window_frames(mcfg.temporal, windows_of)
                wins = [w for w in analyse(degraded, mcfg, detector, window)
                        if w.centre.crop.shape[0] < out_side]
                wins.sort(key=lambda w: (w.centre.track_id, w.centre.frame_index))
                if on_step is not None:
                    on_step(f"{path.name} {size}px {mode}: {len(wins)} faces")
                if not wins:
                    continue
                gt = np.stack([warp_face(frames[w.centre.frame_index], gt_affine(
                    w.centre.M, f, offset, w.centre.crop.shape[0], out_side), out_side)
                    for w in wins])
                gt_vectors = embedder.embed(gt)
                for name, sr in srs.items():
                    acc = Accelerator(sr, out_side, temporal=mcfg.temporal)
                    enhanced = [e for k in range(0, len(wins), 64)
                                for e in acc.enhance(wins[k:k + 64])]
                    yield from score_faces(f"{name} {mode}", size, path.name, enhanced, gt,
                                           gt_vectors, embedder)
                if heads and teacher is not None:
                    teacher_gt = teacher.embed(gt)
                    for hname, head in heads.items():
                        yield from score_head(hname, size, path.name, head, wins, mode,
                                              teacher_gt)


def summarise(scores: Sequence[FaceScore]) -> list[VideoRow]:
    """Per (method, size): means over faces (flicker over consecutive pairs)."""
    groups: dict[tuple[str, int], list[FaceScore]] = {}
    for s in scores:
        groups.setdefault((s.method, s.size), []).append(s)
    rows = []
    for (method, size), group in groups.items():
        def mean(values: list[float | None]) -> float | None:
            kept = [v for v in values if v is not None]
            return float(np.mean(kept)) if kept else None

        rows.append(VideoRow(method, size, mean([s.psnr for s in group]),
                             mean([s.ssim for s in group]),
                             float(np.mean([s.id_cos for s in group])),
                             mean([s.flicker for s in group]), len(group),
                             len({s.clip for s in group})))
    rows.sort(key=lambda r: (r.size, r.method.rsplit(" ", 1)[0], r.method))
    return rows


@dataclass(frozen=True)
class Margin:
    """Temporal minus single of one method at one size, paired face by face (the same
    detected face of the same track in both modes): mean and standard error of the id_cos
    difference over ``pairs`` faces."""

    method: str
    size: int
    pairs: int
    id_cos: float
    id_cos_se: float


def paired_margins(scores: Sequence[FaceScore]) -> list[Margin]:
    """Per method and size, the paired id_cos differences temporal - single."""
    by: dict[tuple[str, str, int], dict[tuple[str, int, int], float]] = {}
    for s in scores:
        base, _, mode = s.method.rpartition(" ")
        by.setdefault((base, mode, s.size), {})[(s.clip, s.track, s.frame)] = s.id_cos
    out = []
    for (base, mode, size), temporal in by.items():
        single = by.get((base, "single", size))
        if mode != "temporal" or single is None:
            continue
        d = np.array([v - single[k] for k, v in temporal.items() if k in single])
        if len(d) == 0:
            continue
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
        out.append(Margin(base, size, len(d), float(d.mean()), se))
    out.sort(key=lambda m: (m.size, m.method))
    return out


def check_clips(clips: Sequence[Path]) -> list[Path]:
    missing = [str(c) for c in clips if not Path(c).is_file()]
    if missing:
        raise ConfigError(f"eval video: no such clip: {', '.join(missing)}")
    if not clips:
        raise ConfigError("eval video: no clips given")
    return [Path(c) for c in clips]
