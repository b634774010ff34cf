"""Soak `cctv-sr run` on a live RTSP stream of walking people and watch its memory.

A real GStreamer RTSP server (tests/rtsp_server.py, started through tests/rtsp.py) serves a
synthetic clip of several people from insightface's group photo walking over a background,
faces 30-60 px. `cctv-sr run` reconnects to a live stream that ends, so the clip replays from
its start at each reconnect, for as long as the soak lasts. Optionally the server is killed
(SIGKILL: no RTCP BYE, a camera that vanishes) and started again every ``--restart-every``
seconds. Every ``--interval`` seconds the run's VmRSS, thread count and open descriptors are read
from /proc into a CSV; at the end the run is stopped with SIGINT and a summary is printed:

    python samples/soak_live.py --minutes 10 --restart-every 60 --out /tmp/soak

See docs/SOAK.md for a measured run. tests/test_soak.py calls :func:`soak` for about a minute.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from rtsp import RtspServer  # noqa: E402  (tests/rtsp.py: the project's RTSP test server)
from videos import encode_clip  # noqa: E402

from cctv_sr.data.synth import Walker, head_patches, render_clip  # noqa: E402

FPS = 10
WIDTH, HEIGHT = 320, 240
ENROLLED = (0, 2, 4)  # heads of the group photo put in the gallery; the others are strangers
# live settings for a camera that comes back quickly (the defaults are for real cameras)
RUN_SET = ("source.reconnect_backoff_s=0.3", "source.reconnect_max_backoff_s=1",
           "source.read_timeout_s=3")


def group_photo() -> np.ndarray:
    """insightface's t1.jpg (six people), shipped in the insightface wheel."""
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("insightface wheel not installed (see README setup command)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "images" / "t1.jpg"
    image = cv2.imread(str(path))
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return image


def walkers(photo: np.ndarray, seconds: float, fps: int = FPS, seed: int = 0) -> list[Walker]:
    """Passes across the frame, one after another per lane, two or three people on screen."""
    heads = head_patches(photo)
    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    out: list[Walker] = []
    for lane in range(3):
        t = int(rng.integers(0, 3 * fps))
        while t < n - 2 * fps:
            length = int(rng.integers(6 * fps, 12 * fps))
            last = min(t + length, n - 1)
            y = 55 + 70 * lane + float(rng.uniform(-10, 10))
            x0, x1 = (30.0, WIDTH - 30.0) if rng.random() < 0.5 else (WIDTH - 30.0, 30.0)
            px0, px1 = float(rng.uniform(30, 60)), float(rng.uniform(30, 60))
            out.append(Walker(heads[int(rng.integers(0, len(heads)))], (x0, y),
                              (x1, y + float(rng.uniform(-15, 15))), px0, px1, t, last))
            t = last + int(rng.integers(1 * fps, 4 * fps))
    return out


def make_people(workdir: Path, photo: np.ndarray, seconds: float = 120.0, fps: int = FPS,
                seed: int = 0) -> tuple[Path, Path]:
    """A gallery of three of the six people (gallery.db) and the clip (people.mkv, MJPEG)."""
    from cctv_sr.cli import main

    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "gallery.db"
    if not db.exists():
        big = head_patches(photo, margin=2.2)
        for i in ENROLLED:
            person = workdir / "people" / f"p{i}"
            person.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(person / "photo.png"), big[i])
        if main(["gallery", "build", str(workdir / "people"), "--out", str(db)]) != 0:
            raise SystemExit("gallery build failed")
    n = int(seconds * fps)
    frames = (f for f, _ in render_clip(walkers(photo, seconds, fps, seed), WIDTH, HEIGHT, n,
                                        seed=seed))
    return db, encode_clip(workdir / "people.mkv", frames, fps, "mjpeg")


@dataclass
class Sample:
    t: float  # seconds since the run started
    rss_mb: float
    threads: int
    fds: int


def read_proc(pid: int) -> tuple[float, int, int] | None:
    """(VmRSS in MB, threads, open fds) of ``pid``, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = float(fields["VmRSS"].split()[0]) if "VmRSS" in fields else 0.0
    return rss_kb / 1024.0, int(fields["Threads"]), fds


def slope_mb_per_hour(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over time, MB/hour (0 with fewer than two samples)."""
    if len(samples) < 2:
        return 0.0
    t = np.array([s.t for s in samples])
    y = np.array([s.rss_mb for s in samples])
    return float(np.polyfit(t, y, 1)[0] * 3600.0)


@dataclass
class Summary:
    seconds: float
    warmup_s: float
    samples: int
    rss_start_mb: float
    rss_warm_mb: float
    rss_end_mb: float
    rss_max_mb: float
    slope_mb_per_hour: float
    threads_start: int
    threads_warm: int
    threads_end: int
    threads_max: int
    fds_start: int
    fds_warm: int
    fds_end: int
    fds_max: int
    server_restarts: int
    returncode: int | None
    status: str | None
    frames_analysed: int
    frames_dropped_live: int
    faces: int
    tracks: int
    reconnects: int
    outages: int
    matched: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"soak: {self.seconds:.0f} s, {self.samples} samples, warm-up {self.warmup_s:.0f} s, "
            f"{self.server_restarts} server restarts",
            f"RSS MB: start {self.rss_start_mb:.1f}, warm {self.rss_warm_mb:.1f}, "
            f"end {self.rss_end_mb:.1f} ({self.rss_end_mb - self.rss_warm_mb:+.1f}), "
            f"max {self.rss_max_mb:.1f}, slope {self.slope_mb_per_hour:+.1f} MB/h after warm-up",
            f"threads: start {self.threads_start}, warm {self.threads_warm}, "
            f"end {self.threads_end}, max {self.threads_max}",
            f"fds: start {self.fds_start}, warm {self.fds_warm}, end {self.fds_end}, "
            f"max {self.fds_max}",
            f"run: exit {self.returncode}, status {self.status}, {self.frames_analysed} frames "
            f"analysed ({self.frames_dropped_live} dropped live), {self.faces} faces, "
            f"{self.tracks} tracks, {self.reconnects} reconnects, {self.outages} outages, "
            f"matched {', '.join(self.matched) or 'nobody'}",
        ]


def soak(workdir: Path, clip: Path, gallery: Path, seconds: float, warmup_s: float = 60.0,
         interval_s: float = 5.0, restart_every_s: float = 0.0, fps: int = FPS,
         extra_set: tuple[str, ...] = (), log=print,
         env: dict[str, str] | None = None) -> tuple[Summary, list[Sample]]:
    """Serve ``clip`` live, run `cctv-sr run` on it for ``seconds``, sample it, stop it.

    ``env``: variables added to the run's environment (e.g. ``MALLOC_ARENA_MAX``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "run"
    server = RtspServer(workdir, clip, fps)
    if not server.start():
        raise RuntimeError(f"RTSP test server did not start (see {workdir}/server0.log)")
    cmd = [sys.executable, "-m", "cctv_sr.cli", "run", f"{server.url}/file", "--out", str(out),
           "--gallery", str(gallery), "--quiet", "--json"]
    for item in (*RUN_SET, *extra_set):
        cmd += ["--set", item]
    samples: list[Sample] = []
    restarts = 0
    stderr_path = workdir / "run.stderr"
    with open(stderr_path, "w") as err, open(workdir / "run.stdout", "w") as std:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=std, stderr=err,
                                env={**os.environ, **(env or {})},
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        t0 = time.monotonic()
        next_restart = t0 + restart_every_s if restart_every_s > 0 else float("inf")
        try:
            with open(workdir / "soak.csv", "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["t_s", "rss_mb", "threads", "fds"])
                next_sample = t0 + interval_s  # not at exec: no VmRSS yet
                while (now := time.monotonic()) - t0 < seconds:
                    if proc.poll() is not None:
                        raise RuntimeError(f"cctv-sr run exited early ({proc.returncode}): "
                                           f"{stderr_path.read_text()[-2000:]}")
                    if now >= next_restart:
                        server.kill()
                        time.sleep(1.0)
                        if not server.start():
                            raise RuntimeError("RTSP test server did not restart")
                        restarts += 1
                        next_restart = time.monotonic() + restart_every_s
                    if now >= next_sample:
                        got = read_proc(proc.pid)
                        if got is not None and got[0] > 0:
                            s = Sample(round(now - t0, 1), *got)
                            samples.append(s)
                            writer.writerow([s.t, f"{s.rss_mb:.1f}", s.threads, s.fds])
                            fh.flush()
                            log(f"{s.t:7.1f} s  RSS {s.rss_mb:8.1f} MB  threads {s.threads:3d}"
                                f"  fds {s.fds:4d}")
                        next_sample += interval_s
                    time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            server.terminate()
    meta = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    counts, events = meta.get("counts", {}), meta.get("events", {})
    try:
        matched = sorted({m["person"] for m in
                          json.loads((workdir / "run.stdout").read_text()).get("matched", [])})
    except (ValueError, KeyError):
        matched = []
    if not samples:
        raise RuntimeError("no samples")
    warm = [s for s in samples if s.t >= warmup_s] or samples[-1:]
    summary = Summary(
        seconds=samples[-1].t, warmup_s=warmup_s, samples=len(samples),
        rss_start_mb=samples[0].rss_mb, rss_warm_mb=warm[0].rss_mb, rss_end_mb=samples[-1].rss_mb,
        rss_max_mb=max(s.rss_mb for s in samples), slope_mb_per_hour=slope_mb_per_hour(warm),
        threads_start=samples[0].threads, threads_warm=warm[0].threads,
        threads_end=samples[-1].threads, threads_max=max(s.threads for s in samples),
        fds_start=samples[0].fds, fds_warm=warm[0].fds, fds_end=samples[-1].fds,
        fds_max=max(s.fds for s in samples), server_restarts=restarts,
        returncode=proc.returncode, status=meta.get("status"),
        frames_analysed=int(counts.get("frames_analysed", 0)),
        frames_dropped_live=int(counts.get("frames_dropped_live", 0)),
        faces=int(counts.get("faces", 0)), tracks=int(counts.get("tracks", 0)),
        reconnects=int(counts.get("reconnects", 0)), outages=int(events.get("outages", 0)),
        matched=matched)
    (workdir / "soak.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return summary, samples


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="soak length (default 10)")
    p.add_argument("--restart-every", type=float, default=0.0, metavar="S",
                   help="kill and restart the RTSP server every S seconds (0: never)")
    p.add_argument("--warmup", type=float, default=60.0, metavar="S",
                   help="seconds before the 'warm' sample and the slope fit (default 60)")
    p.add_argument("--interval", type=float, default=5.0, metavar="S",
                   help="seconds between samples (default 5)")
    p.add_argument("--clip-seconds", type=float, default=120.0,
                   help="length of the served clip; it replays at each reconnect (default 120)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("soak_out"),
                   help="work dir: clip, gallery, run/, soak.csv, soak.json (default soak_out)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config for the run (repeatable)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment variable for the run, e.g. MALLOC_ARENA_MAX=2 "
                        "(repeatable)")
    args = p.parse_args(argv)
    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--env wants KEY=VALUE, got {item!r}")
        env[key] = value
    print(f"making the clip and gallery in {args.out} ...", flush=True)
    gallery, clip = make_people(args.out, group_photo(), args.clip_seconds, FPS, args.seed)
    summary, _ = soak(args.out, clip, gallery, args.minutes * 60, args.warmup, args.interval,
                      args.restart_every, FPS, tuple(args.set),
                      log=lambda line: print(line, flush=True), env=env)
    print("\n".join(summary.lines()), flush=True)
    return 0 if summary.status == "stopped" and summary.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
