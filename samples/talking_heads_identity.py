"""Identity on real footage: talking-head clips degraded to CCTV size, matched against a gallery
made from full-resolution stills of the same clips.

    python samples/talking_heads_identity.py ../shared/data/videos/talking_heads OUTDIR \\
        [--embedder mobilefacenet] [--face-px 28] [--clips video_retalking_1,...] \
        [--set head.name=lrmfn]

For every clip: the first frame, at full resolution, is that person's gallery photo; the clip
from --skip-s on is downscaled so the face is about --face-px wide, pasted into a 320x240 frame
and re-encoded with H.264 (CRF 30) through PyAV; `cctv-sr run --gallery` then runs on it. The
report says, per track, what was matched and whether it was the clip's own person.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import av
import cv2
import numpy as np

from cctv_sr.cli import main as cctv_main

CANVAS = (320, 240)


def degrade_clip(src: Path, dst: Path, face_px: float, skip_s: float, max_s: float,
                 face_frac: float) -> int:
    """Write the CCTV-size version of ``src`` from ``skip_s`` on; returns frames written."""
    n = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream_in = inp.streams.video[0]
        rate = stream_in.average_rate or 25
        ostream = out.add_stream("libx264", rate=rate)
        ostream.width, ostream.height, ostream.pix_fmt = CANVAS[0], CANVAS[1], "yuv420p"
        ostream.options = {"crf": "30"}
        for frame in inp.decode(stream_in):
            t = float(frame.time or 0.0)
            if t < skip_s:
                continue
            if t > skip_s + max_s:
                break
            image = frame.to_ndarray(format="bgr24")
            scale = face_px / (face_frac * image.shape[1])
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            canvas = np.full((CANVAS[1], CANVAS[0], 3), 90, np.uint8)
            h, w = small.shape[:2]
            y0, x0 = (CANVAS[1] - h) // 2, (CANVAS[0] - w) // 2
            canvas[y0:y0 + h, x0:x0 + w] = small[: CANVAS[1], : CANVAS[0]]
            video = av.VideoFrame.from_ndarray(canvas, format="bgr24")
            out.mux(ostream.encode(video))
            n += 1
        out.mux(ostream.encode(None))
    return n


def first_frame(src: Path) -> np.ndarray:
    with av.open(str(src)) as inp:
        for frame in inp.decode(video=0):
            return frame.to_ndarray(format="bgr24")
    raise SystemExit(f"{src}: no frames")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clips_dir", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--clips", default="", help="comma-separated clip stems (default: all)")
    p.add_argument("--embedder", default="mobilefacenet")
    p.add_argument("--face-px", type=float, default=28.0)
    p.add_argument("--face-frac", type=float, default=0.45,
                   help="face width as a fraction of the clip's frame width (talking heads)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a cctv-sr run setting for every run, e.g. head.name=lrmfn")
    p.add_argument("--skip-s", type=float, default=2.0)
    p.add_argument("--max-s", type=float, default=4.0)
    args = p.parse_args()
    clips = sorted(args.clips_dir.glob("*.mp4"))
    if args.clips:
        wanted = set(args.clips.split(","))
        clips = [c for c in clips if c.stem in wanted]
    gallery_dir = args.out / "gallery"
    for clip in clips:
        (gallery_dir / clip.stem).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(gallery_dir / clip.stem / "still.png"), first_frame(clip))
    db = args.out / "gallery.db"
    if cctv_main(["gallery", "build", str(gallery_dir), "--out", str(db), "--overwrite",
                  "--embedder", args.embedder]) != 0:
        return 1
    report = []
    for clip in clips:
        footage = args.out / "footage" / f"{clip.stem}.mp4"
        footage.parent.mkdir(parents=True, exist_ok=True)
        degrade_clip(clip, footage, args.face_px, args.skip_s, args.max_s, args.face_frac)
        out = args.out / "runs" / clip.stem
        settings = [x for s in args.set for x in ("--set", s)]
        if cctv_main(["run", str(footage), "--out", str(out), "--overwrite", "--quiet",
                      "--gallery", str(db), *settings]) != 0:
            return 1
        for line in (out / "matches.jsonl").read_text().splitlines():
            m = json.loads(line)
            report.append({"clip": clip.stem, "track": m["track_id"], "faces": m["n_faces"],
                           "decision": m["decision"], "lr_only": m["decision_lr_only"],
                           "sr_only": m["decision_sr_only"],
                           "head_only": m.get("decision_head_only"),
                           "top": m["candidates"][0]["name"],
                           "score": m["candidates"][0]["score"],
                           "matchable": m["gate"]["matchable"],
                           "why": m["reason"],
                           "correct": m["decision"] == clip.stem})
    for r in report:
        print(f"{r['clip']:42} track {r['track']:3} faces {r['faces']:4}  decision "
              f"{str(r['decision']):42} top {r['top']} {r['score']:.3f} "
              f"lr-only {r['lr_only'] == r['clip']} sr-only {r['sr_only'] == r['clip']} "
              f"head-only {r['head_only'] == r['clip']}"
              f"{'' if r['matchable'] else '  NOT MATCHABLE'} {r['why'] or ''}")
    big = [r for r in report if r["faces"] >= 10]
    print(f"tracks with >= 10 faces: {len(big)}, matched to the clip's own person: "
          f"{sum(r['correct'] for r in big)}, wrong person: "
          f"{sum(r['decision'] not in (None, r['clip']) for r in big)}, unmatched: "
          f"{sum(r['decision'] is None for r in big)}; the embedder's LR alone right: "
          f"{sum(r['lr_only'] == r['clip'] for r in big)}, the head alone right: "
          f"{sum(r['head_only'] == r['clip'] for r in big)}")
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
