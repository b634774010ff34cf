"""`cctv-sr run` on a live camera that drops and comes back, with watchlist alerts to a webhook.

A real GStreamer RTSP server plays a clip of two enrolled people; it is killed (no RTCP BYE:
the camera just vanishes) and started again on the same port three times in one run. A real
HTTP server receives the alerts but is down for the first part of the run. The run must
reconnect each time, lose nothing it wrote before an outage, write nothing twice, keep its
frame indices and times monotonic, end every track at an outage, and every alert in
events.jsonl must reach the webhook exactly once (after de-duplicating retries by header).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO
from rtsp import RtspServer, free_port, skip_without_gstreamer
from videos import encode_clip

from cctv_sr.cli import main
from cctv_sr.data.synth import Walker, head_patches, render_clip

FPS = 10


class Receiver:
    """A webhook receiver on 127.0.0.1:``port``, started (and stopped) by the test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, dict]] = []  # (X-Cctv-Sr-Event, body)
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.headers.get("X-Cctv-Sr-Event", ""), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] \
        if path.exists() else []


@pytest.fixture
def people(tmp_path: Path, group_photo: np.ndarray) -> tuple[Path, Path]:
    """A gallery of two people and a 60 s clip of them walking to and fro (MJPEG: the test
    server re-encodes it to H.264)."""
    skip_without_gstreamer()
    heads = head_patches(group_photo, margin=2.2)
    for i, name in ((0, "ana"), (2, "cy")):
        (tmp_path / "people" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "people" / name / "photo.png"), heads[i])
    db = tmp_path / "gallery.db"
    assert main(["gallery", "build", str(tmp_path / "people"), "--out", str(db)]) == 0
    heads = head_patches(group_photo)
    n = 60 * FPS
    walkers = [Walker(heads[0], (60, 90), (260, 100), 46, 50, 0, n - 1),
               Walker(heads[2], (260, 170), (60, 160), 44, 48, 0, n - 1)]
    frames = [f for f, _ in render_clip(walkers, 320, 240, n, seed=3)]
    return db, encode_clip(tmp_path / "people.mkv", frames, FPS, "mjpeg")


def wait_for(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def camera(tmp_path: Path, people: tuple[Path, Path]) -> Iterator[RtspServer]:
    server = RtspServer(tmp_path, people[1], FPS)
    assert server.start()
    yield server
    server.terminate()


def test_three_camera_restarts_and_a_webhook_that_was_down(
        tmp_path: Path, people: tuple[Path, Path], camera: RtspServer) -> None:
    db, _ = people
    out = tmp_path / "live"
    receiver = Receiver(free_port())  # reserved, not listening yet: the webhook is down
    proc = subprocess.Popen(
        [sys.executable, "-m", "cctv_sr.cli", "run", f"{camera.url}/file", "--out", str(out),
         "--gallery", str(db), "--alert-webhook", receiver.url, "--quiet", "--json",
         "--set", "source.reconnect_backoff_s=0.3", "--set", "source.reconnect_max_backoff_s=1",
         "--set", "source.read_timeout_s=3", "--set", "alerts.backoff_max_s=1",
         "--set", "alerts.attempts=60", "--set", "output.report_every_s=2"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    events = out / "events.jsonl"
    try:
        def alerts_seen(k: int) -> bool:
            return sum(e["event"] == "alert" and not e["update"]
                       for e in lines(events)) >= k

        # each session: wait for an alert of its own, then the camera vanishes for a second
        for restart in range(3):
            wait_for(f"an alert in session {restart + 1}",
                     lambda k=restart + 1: alerts_seen(k), 120 if restart == 0 else 40)
            if restart == 0:  # rows of tracks still open are on disk within seconds
                wait_for("rows of an open track", lambda: {
                    f["track_id"] for f in lines(out / "faces.jsonl")} - {None} - {
                    t["track_id"] for t in lines(out / "tracks.jsonl")}, 15)
                # and the report is there to open while the run goes on
                wait_for("report.html during the run", (out / "report.html").exists, 15)
                assert "RUNNING" in (out / "report.html").read_text().upper()
            camera.kill()
            time.sleep(1.0)
            assert camera.start()
            wait_for(f"reconnect {restart + 1}", lambda k=restart: sum(
                e["event"] == "outage_end" for e in lines(events)) > k, 40)
            if restart == 0:
                receiver.start()  # the webhook comes back after the first outage
        wait_for("an alert after the last restart", lambda: alerts_seen(4), 40)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
        receiver.stop()
    assert proc.returncode == 0, stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "stopped"
    assert meta["counts"]["reconnects"] == 3 and meta["events"]["outages"] == 3
    assert meta["counts"]["frames_lost"] > 0
    summary = json.loads(stdout)
    assert {m["person"] for m in summary["matched"]} == {"ana", "cy"}

    log = lines(events)
    assert [e["event"] for e in log if e["event"].startswith("outage")] == \
        ["outage_start", "outage_end"] * 3
    ids = [e["event_id"] for e in log]
    assert len(ids) == len(set(ids))
    # every face row once, in time order, frame indices and times never going back
    faces = lines(out / "faces.jsonl")
    keys = [(f["frame"], f["det"]) for f in faces]
    assert len(keys) == len(set(keys)) and keys == sorted(keys)
    seconds = [f["seconds"] for f in faces]
    assert None not in seconds and seconds == sorted(seconds)
    utc = [f["utc"] for f in faces]
    assert None not in utc and utc == sorted(utc)
    # rows from every session: before the first outage, between each two, after the last
    cuts = [e["seconds"] for e in log if e["event"] == "outage_end"]
    bounds = [-1.0, *cuts, float("inf")]
    for lo, hi in zip(bounds, bounds[1:]):
        assert any(lo - 0.01 <= s < hi for s in seconds), (lo, hi)
    # no track runs across an outage
    tracks = lines(out / "tracks.jsonl")
    assert len({t["track_id"] for t in tracks}) == len(tracks)
    for lo, hi in zip(bounds, bounds[1:]):  # tracks in every session
        assert any(lo - 0.01 <= t["first_seconds"] < hi for t in tracks), (lo, hi)
    rows_of: dict[int, int] = {}
    for f in faces:
        if f["track_id"] is not None:
            rows_of[f["track_id"]] = rows_of.get(f["track_id"], 0) + 1
    for t in tracks:
        assert not any(t["first_seconds"] < c <= t["last_seconds"] for c in cuts), (t, cuts)
        assert t["first_utc"] is not None
        assert rows_of.get(t["track_id"], 0) == t["n_faces"] + t["n_carried"], t
    # every alert the events file has reached the webhook, once each after de-duplication
    alerts = {e["event_id"]: e for e in log if e["event"] in ("alert", "alert_withdrawn")}
    delivered = {key: body for key, body in receiver.received}
    assert set(delivered) == set(alerts)
    assert all(delivered[k] == alerts[k] for k in alerts)
    assert meta["webhook"]["sent"] == len(alerts) and meta["webhook"]["retried"] > 0
    matches = lines(out / "matches.jsonl")
    named = [m for m in matches if m["decision"]]
    assert named and all(m["alert_event"] in alerts for m in named)
