"""False alarms on real footage: clips run against galleries of people who are NOT in them.

    python samples/absent_gallery_runs.py OUTDIR --gallery-dir ../shared/data/gallery/faceapi_bbt \\
        --clips ../shared/data/videos/cctv_like/*.mp4 ../shared/data/videos/talking_heads/*.mp4 \\
        [--embedder mobilefacenet] [--max-frames 150] [--set head.name=lrmfn] [--json result.json]

Every gallery person is absent from every clip, so every named track is a false alarm (an
innocent person, or something that is not a face, given a watchlist name). The report counts,
per clip, the tracks scored and the tracks named by the combined decision, by LR alone and by
SR alone, and the best score of the named ones. Issue 7's "no track is named" is measured here.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from cctv_sr.cli import main as cctv_main


@dataclass(frozen=True)
class ClipResult:
    clip: str
    gallery: str
    embedder: str
    tracks: int
    scored: int
    named: int
    named_lr_only: int
    named_sr_only: int
    named_head_only: int  # tracks the LR head alone would have named (0 without a head)
    not_matchable: int  # tracks the gate held back (not faces, too few usable faces)
    names: tuple[str, ...]
    best_named_score: float | None


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run_clip(clip: Path, gallery_db: Path, out: Path, embedder: str,
             max_frames: int, settings: tuple[str, ...] = ()) -> ClipResult:
    args = ["run", str(clip), "--out", str(out), "--quiet", "--overwrite", "--gallery",
            str(gallery_db), "--set", f"embedder.name={embedder}"]
    for setting in settings:
        args += ["--set", setting]
    if max_frames:
        args += ["--max-frames", str(max_frames)]
    if cctv_main(args) != 0:
        raise SystemExit(f"cctv-sr run failed on {clip}")
    tracks = read_jsonl(out / "tracks.jsonl")
    matches = read_jsonl(out / "matches.jsonl")
    named = [m for m in matches if m["decision"] is not None]
    best = max((m["candidates"][0]["score"] for m in named), default=None)
    return ClipResult(clip.name, gallery_db.stem, embedder, len(tracks), len(matches),
                      len(named), sum(m["decision_lr_only"] is not None for m in matches),
                      sum(m["decision_sr_only"] is not None for m in matches),
                      sum(m.get("decision_head_only") is not None for m in matches),
                      sum(not m["gate"]["matchable"] for m in matches),
                      tuple(sorted({m["decision"] for m in named})), best)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("outdir", type=Path)
    p.add_argument("--gallery-dir", type=Path, action="append", required=True,
                   help="a folder of <person>/<photos> (repeatable); none of them in the clips")
    p.add_argument("--clips", type=Path, nargs="+", required=True)
    p.add_argument("--embedder", default="mobilefacenet")
    p.add_argument("--max-frames", type=int, default=150)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a cctv-sr run setting for every run, e.g. head.name=lrmfn")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    results = []
    for gdir in args.gallery_dir:
        db = args.outdir / f"{gdir.name}-{args.embedder}.db"
        if not db.is_file() and cctv_main(["gallery", "build", str(gdir), "--out", str(db),
                                           "--embedder", args.embedder]) != 0:
            raise SystemExit(f"gallery build failed for {gdir}")
        for clip in args.clips:
            out = args.outdir / f"{gdir.name}-{args.embedder}" / clip.stem
            r = run_clip(clip, db, out, args.embedder, args.max_frames, tuple(args.set))
            results.append(r)
            print(f"{r.gallery:22} {r.clip:48} tracks {r.tracks:3} scored {r.scored:3} "
                  f"named {r.named:2} (LR only {r.named_lr_only}, SR only {r.named_sr_only}, "
                  f"head only {r.named_head_only}) "
                  f"not matchable {r.not_matchable:2} "
                  f"{','.join(r.names)}", flush=True)
    total = sum(r.scored for r in results)
    named = sum(r.named for r in results)
    held = sum(r.not_matchable for r in results)
    print(f"total: {named} of {total} scored tracks named (every one a false alarm), {held} "
          f"not matchable; embedder {args.embedder}")
    if args.json:
        args.json.write_text(json.dumps({"rows": [asdict(r) for r in results],
                                         "scored": total, "named": named}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
