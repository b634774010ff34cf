"""``cctv-sr run --annotate``: OUTDIR/annotated.mp4, the footage with each face's box, track id
and, on matched tracks, the matched name.

A post-pass after the run: the input file is decoded again (frames numbered as the run's
source numbers them, one per decoded frame, packets that fail to decode skipped) and drawn
from what the run wrote, nothing else: ``faces.jsonl`` (stream, frame, box, track id,
``detected``) and ``matches.jsonl`` (one decision per track, written when the track ended, so
a matched track's name is shown over the whole track). Detected faces get a solid box, rows a
track carried between detections a dashed, thinner one; a track's box is also held over the
frames between two of its rows that are at most :data:`HOLD_FRAMES` apart (frames the run did
not analyse with ``--stride`` / ``--max-fps``). Colours and boxes are
:func:`cctv_sr.face.draw.face_box`'s; the video is written by
:func:`cctv_sr.data.encode.write_h264`. A live stream (``rtsp://``) cannot be decoded again:
it is skipped with a warning. Example::

    videos = annotate_inputs(["footage.mp4"], Path("results/"))
    videos[0].path              # results/annotated.mp4
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cctv_sr.data.encode import write_h264
from cctv_sr.errors import OutputError, SourceError
from cctv_sr.face.draw import MATCH_BGR, TRACK_BGR, UNTRACKED_BGR, face_box
from cctv_sr.io.container import is_live_url
from cctv_sr.io.jsonl import read_jsonl

log = logging.getLogger(__name__)

ANNOTATED = "annotated.mp4"
HOLD_FRAMES = 12  # a track's box is held over gaps between its rows up to this many frames
CRF = 20  # visually clean: the boxes and labels must stay sharp


@dataclass(frozen=True)
class FaceBox:
    """One face row of faces.jsonl as drawn: its box, track (None: untracked) and whether the
    detector saw it (False: carried by its track, or held over a frame the run skipped)."""

    xyxy: tuple[float, float, float, float]
    track_id: int | None
    detected: bool


@dataclass(frozen=True)
class TrackLabel:
    """What a track's boxes say, their colour and the matched name (None: not matched)."""

    text: str
    colour: tuple[int, int, int]
    name: str | None = None


@dataclass(frozen=True)
class AnnotatedVideo:
    """One annotated video: where, how many frames, how many of them carry boxes, how many
    boxes were drawn and the names shown."""

    stream: str
    path: Path
    frames: int
    frames_with_faces: int
    boxes: int
    names: tuple[str, ...]


def _lines(path: Path) -> list[dict]:
    """The rows of a JSONL file the run wrote (none when it is absent); a run that crashed
    may leave a torn last line, which is skipped with a warning."""
    if not path.is_file():
        return []
    return read_jsonl(path, lambda n, _last: log.warning("%s:%d: not a JSON line, skipped",
                                                          path, n))


def read_face_boxes(faces_jsonl: Path, stream: str) -> dict[int, list[FaceBox]]:
    """Per frame index, the boxes of ``stream``'s rows in faces.jsonl, with each track's box
    held over gaps of at most HOLD_FRAMES frames between two of its rows."""
    by_frame: dict[int, list[FaceBox]] = defaultdict(list)
    last: dict[int, tuple[int, FaceBox]] = {}
    for row in _lines(faces_jsonl):
        if row.get("stream") != stream:
            continue
        x0, y0, x1, y1 = (float(v) for v in row["box"])
        tid = row.get("track_id")
        box = FaceBox((x0, y0, x1, y1), None if tid is None else int(tid),
                      bool(row.get("detected", True)))
        frame = int(row["frame"])
        by_frame[frame].append(box)
        if box.track_id is None:
            continue
        before = last.get(box.track_id)
        if before is not None and 1 < frame - before[0] <= HOLD_FRAMES:
            held = FaceBox(before[1].xyxy, box.track_id, False)
            for f in range(before[0] + 1, frame):
                by_frame[f].append(held)
        last[box.track_id] = (frame, box)
    return dict(by_frame)


def read_labels(matches_jsonl: Path, stream: str) -> dict[int, TrackLabel]:
    """The label of each track of ``stream`` that matches.jsonl names (its decision)."""
    labels: dict[int, TrackLabel] = {}
    for row in _lines(matches_jsonl):
        if row.get("stream") == stream and row.get("decision"):
            tid = int(row["track_id"])
            name = str(row["decision"])
            labels[tid] = TrackLabel(f"t{tid} {name}", MATCH_BGR, name)
    return labels


def _decoded(footage: str) -> Iterator[np.ndarray]:
    """Every frame of ``footage`` (BGR), numbered as the run's source numbers them."""
    import av

    try:
        container = av.open(footage)
    except (av.error.FFmpegError, OSError) as exc:
        raise SourceError(f"{footage}: cannot open for --annotate ({exc})") from exc
    with container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                frames = stream.codec_context.decode(packet)
            except av.error.FFmpegError as exc:  # the run skipped it too
                log.debug("%s: packet not decoded (%s)", footage, exc)
                continue
            for frame in frames:
                yield frame.to_ndarray(format="bgr24")


def _probe(footage: str) -> tuple[float, int | None]:
    """The footage's frame rate (25 when it has none) and frame count (None: unknown)."""
    import av

    try:
        with av.open(footage) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            return (float(rate) if rate else 25.0), (int(stream.frames) or None)
    except (av.error.FFmpegError, OSError, IndexError) as exc:
        raise SourceError(f"{footage}: cannot open for --annotate ({exc})") from exc


def annotate_stream(footage: str, outdir: Path, stream: str, *,
                    quiet: bool = False) -> AnnotatedVideo:
    """Write ``outdir/annotated.mp4``: ``footage`` with the boxes of ``stream``'s rows in
    ``outdir``'s faces.jsonl and the names of its matched tracks in matches.jsonl."""
    import av.error
    from tqdm import tqdm

    outdir = Path(outdir)
    boxes = read_face_boxes(outdir / "faces.jsonl", stream)
    labels = read_labels(outdir / "matches.jsonl", stream)
    fps, total = _probe(footage)
    counts = {"frames": 0, "with_faces": 0, "boxes": 0}

    def drawn() -> Iterator[np.ndarray]:
        for index, image in enumerate(tqdm(_decoded(footage), total=total, disable=quiet,
                                           desc=f"annotate {stream}", unit="frame")):
            rows = boxes.get(index, [])
            counts["frames"] += 1
            counts["with_faces"] += bool(rows)
            for row in rows:
                if row.track_id is None:
                    face_box(image, row.xyxy, UNTRACKED_BGR, None, carried=not row.detected)
                else:
                    label = labels.get(row.track_id, TrackLabel(f"t{row.track_id}", TRACK_BGR))
                    face_box(image, row.xyxy, label.colour, label.text,
                             carried=not row.detected)
                counts["boxes"] += 1
            h, w = image.shape[:2]
            if h % 2 or w % 2:  # yuv420p needs even sides: one border row / column added
                image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            yield image

    path = outdir / ANNOTATED
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")  # the muxer reads the suffix
    try:
        write_h264(tmp, drawn(), fps, CRF)
        os.replace(tmp, path)
    except (av.error.FFmpegError, OSError) as exc:  # a full disk, say: no half video left
        raise OutputError(f"{path}: cannot write: {getattr(exc, 'strerror', None) or exc}"
                          ) from None
    finally:
        tmp.unlink(missing_ok=True)
    names = tuple(sorted({lab.name for lab in labels.values() if lab.name}))
    log.info("%s: %d frames, %d boxes", path, counts["frames"], counts["boxes"])
    return AnnotatedVideo(stream, path, counts["frames"], counts["with_faces"], counts["boxes"],
                          names)


def annotate_inputs(inputs: Sequence[str], outdir: Path,
                    stream_ids: Sequence[str] | None = None, *,
                    quiet: bool = False) -> list[AnnotatedVideo]:
    """Annotate each input of a run (``run_inputs``' inputs, stream ids and OUTDIR: one input
    writes OUTDIR itself, several OUTDIR/<stream>/); live streams are skipped with a warning."""
    from cctv_sr.io.sources import stream_names

    names = list(stream_ids) if stream_ids else stream_names(list(inputs))
    multi = len(inputs) > 1
    out: list[AnnotatedVideo] = []
    for footage, name in zip(inputs, names):
        if is_live_url(footage):
            log.warning("%s: --annotate needs a file to decode again; a live stream cannot be, "
                        "so stream %s has no annotated video", footage, name)
            continue
        out.append(annotate_stream(footage, Path(outdir) / name if multi else Path(outdir),
                                   name, quiet=quiet))
    return out
