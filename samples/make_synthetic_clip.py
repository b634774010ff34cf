"""Write a synthetic CCTV-like clip: real faces from a photo walking across a backdrop.

    python samples/make_synthetic_clip.py out.mp4 [--photo group.jpg] [--frames 96] [--fps 12]

Without --photo it uses the group photo that ships in the insightface wheel (installed by the
README's setup command). The clip is the project's own; the faces belong to the photo's owners.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import av
import cv2
import numpy as np

from cctv_sr.data.synth import Walker, head_patches, render_clip


def default_photo() -> Path:
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("no --photo given and the insightface wheel is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "images" / "t1.jpg"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--photo", type=Path, help="photo with the faces of insightface's t1.jpg")
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--fps", type=int, default=12)
    parser.add_argument("--size", default="640x360")
    args = parser.parse_args()
    photo = cv2.imread(str(args.photo or default_photo()))
    if photo is None:
        sys.exit(f"cannot read {args.photo}")
    width, height = (int(v) for v in args.size.split("x"))
    heads = head_patches(photo)
    n = args.frames
    walkers = [
        Walker(heads[0], (0.1 * width, 0.3 * height), (0.9 * width, 0.32 * height), 22, 30, 0,
               n * 3 // 4),
        Walker(heads[2], (0.9 * width, 0.7 * height), (0.15 * width, 0.68 * height), 18, 24,
               n // 8, n - 1),
        Walker(heads[4], (0.5 * width, 0.15 * height), (0.55 * width, 0.8 * height), 16, 40,
               n // 3, n - 1),
    ]
    with av.open(str(args.out), "w") as container:
        stream = container.add_stream("libx264", rate=args.fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "28"}
        for frame, _ in render_clip(walkers, width, height, n, seed=1):
            video = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
            container.mux(stream.encode(video))
        container.mux(stream.encode(None))
    print(f"wrote {args.out}: {n} frames at {args.fps} fps, {width}x{height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
