"""Helpers that encode small test clips with PyAV, for any test that needs a video file.

Frames made by :func:`pattern_frames` carry their own number twice: as a row of black/white
blocks along the top edge (a 10-bit code that survives lossy codecs, read back with
:func:`read_frame_number`) and as printed digits for people looking at the clip. A bright square
moves across the rest of the frame so that consecutive frames differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

CODE_BITS = 10
CODE_ROWS = 12  # height of the code strip, in pixels

DEFAULT_PIX_FMT = {"mjpeg": "yuvj420p"}


def pattern_frame(number: int, width: int = 160, height: int = 120) -> np.ndarray:
    """One BGR uint8 test frame that shows ``number`` (0 <= number < 1024)."""
    if not 0 <= number < 2**CODE_BITS:
        raise ValueError(f"frame number {number} does not fit in {CODE_BITS} bits")
    image = np.full((height, width, 3), 40, np.uint8)
    block = width // CODE_BITS
    for bit in range(CODE_BITS):
        if (number >> (CODE_BITS - 1 - bit)) & 1:
            image[:CODE_ROWS, bit * block : (bit + 1) * block] = 255
        else:
            image[:CODE_ROWS, bit * block : (bit + 1) * block] = 0
    side = max(8, height // 5)
    span = max(1, width - side)
    x = (number * 7) % span
    y = CODE_ROWS + 4 + (number * 3) % max(1, height - side - CODE_ROWS - 4)
    image[y : y + side, x : x + side] = (0, 200, 255)
    cv2.putText(image, str(number), (4, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                (255, 255, 255), 2, cv2.LINE_AA)
    return image


def pattern_frames(count: int, width: int = 160, height: int = 120) -> Iterator[np.ndarray]:
    """``count`` frames numbered 0..count-1 (see :func:`pattern_frame`)."""
    for number in range(count):
        yield pattern_frame(number, width, height)


def read_frame_number(image: np.ndarray) -> int:
    """The number :func:`pattern_frame` drew into ``image`` (after any lossy codec)."""
    width = image.shape[1]
    block = width // CODE_BITS
    number = 0
    for bit in range(CODE_BITS):
        patch = image[2 : CODE_ROWS - 2, bit * block + 2 : (bit + 1) * block - 2]
        number = (number << 1) | int(patch.mean() > 128)
    return number


def encode_clip(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    codec_options: Mapping[str, str] | None = None,
    container_options: Mapping[str, str] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Encode BGR uint8 ``frames`` to ``path`` and return ``path``.

    The container follows the file extension (.mp4, .avi, .mkv, .ts, ...). ``codec`` is an
    FFmpeg encoder name such as ``libx264``, ``mpeg4`` or ``mjpeg``; ``pix_fmt`` defaults to
    yuv420p (yuvj420p for mjpeg). The stream time base is 1/fps, so frame k has pts k wherever
    the container keeps the encoder's time base (mkv and mp4 pick their own; compare seconds).
    ``container_options`` go to the muxer, e.g. ``{"movflags": "+faststart"}`` for mp4.
    """
    path = Path(path)
    rate = Fraction(str(fps)).limit_denominator(100000)
    with av.open(str(path), "w", options=dict(container_options or {})) as container:
        container.metadata.update(dict(metadata or {}))  # e.g. creation_time
        stream = container.add_stream(codec, rate=rate)
        stream.pix_fmt = pix_fmt or DEFAULT_PIX_FMT.get(codec, "yuv420p")
        stream.time_base = 1 / rate
        stream.codec_context.time_base = 1 / rate
        if codec_options:
            stream.options = dict(codec_options)
        started = False
        for pts, image in enumerate(frames):
            if not started:
                stream.height, stream.width = image.shape[:2]
                started = True
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts = pts
            frame.time_base = 1 / rate
            for packet in stream.encode(frame.reformat(format=stream.pix_fmt)):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def find_bytes(data: bytes, marker: bytes) -> int:
    """Offset of ``marker`` in ``data``; ValueError when absent (for locating e.g. mdat)."""
    offset = data.find(marker)
    if offset < 0:
        raise ValueError(f"{marker!r} not found")
    return offset
