"""Writing synthetic and degraded clips: BGR frames to an H.264 file through PyAV.

One writer for every clip the project makes (eval detect scenes, eval video's degraded clips,
bench's face grids): libx264, yuv420p, preset veryfast, at a constant rate and CRF.

Example::

    write_h264(Path("clip.mp4"), frames, fps=25.0, crf=30)   # frames: iterable of (H, W, 3)
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from cctv_sr.errors import ConfigError, OutputError

__all__ = ["write_h264"]


def write_h264(path: Path, frames: Iterable[np.ndarray], fps: float, crf: int) -> int:
    """Encode ``frames`` (uint8 BGR, all of the first frame's even size) to ``path``; returns
    the number of frames written. An unwritable path is an OutputError."""
    import av

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(path), "w")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the clip ({exc})") from exc
    count = 0
    with container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": "veryfast"}
        for image in frames:
            image = np.ascontiguousarray(image, np.uint8)
            if count == 0:
                h, w = image.shape[:2]
                if h % 2 or w % 2:
                    raise ConfigError(f"{path}: H.264 (yuv420p) needs even sides, got {w}x{h}")
                stream.width, stream.height = w, h
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
            count += 1
        for packet in stream.encode():
            container.mux(packet)
    return count
