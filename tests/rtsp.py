"""Start tests/rtsp_server.py (a real GStreamer RTSP server) for a test; skip when unavailable.

The server runs under Debian's system Python, which has python3-gi and gst-rtsp-server; the
project's virtualenv does not need them.
"""

from __future__ import annotations

import selectors
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
GST_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "missing = [e for e in ('videotestsrc', 'x264enc', 'rtph264pay', 'jpegdec', "
    "'matroskademux') if Gst.ElementFactory.find(e) is None]; "
    "print(' '.join(missing))"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_ready(proc: subprocess.Popen[str], timeout: float) -> str | None:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.2):
                continue
            line = proc.stdout.readline()
            if not line:
                return None  # exited
            if line.startswith("READY "):
                return line.split()[1]
    finally:
        selector.close()
    return None


def skip_without_gstreamer() -> None:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} not found (the RTSP test server needs Debian's python3)")
    try:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", GST_PROBE], capture_output=True,
                               text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.skip("probing GStreamer with the system python timed out")
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"GStreamer RTSP server bindings unavailable to {SYSTEM_PYTHON}: {last} "
                    "(apt: python3-gi gir1.2-gst-rtsp-server-1.0)")
    if probe.stdout.strip():
        pytest.skip(f"GStreamer elements missing: {probe.stdout.strip()} "
                    "(apt: gstreamer1.0-plugins-base/-good/-ugly)")


class RtspServer:
    """tests/rtsp_server.py on one 127.0.0.1 port, which :meth:`kill` and :meth:`start` can
    stop and start again on the same port (a camera that reboots)."""

    def __init__(self, workdir: Path, served: Path, fps: int, stall_after_s: float = 3.0,
                 port: int | None = None) -> None:
        self.workdir, self.served = workdir, served
        self.fps, self.stall_after_s = fps, stall_after_s
        self.port = port
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> bool:
        """Start the server on :attr:`port` (a free one the first time); True once READY."""
        if self.port is None:
            self.port = free_port()
        log_path = self.workdir / f"server{self.starts}.log"
        self.starts += 1
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(
                [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--file",
                 str(self.served), "--fps", str(int(self.fps)), "--stall-after",
                 str(self.stall_after_s)],
                stdout=subprocess.PIPE, stderr=log, text=True,
            )
        if wait_for_ready(self.proc, timeout=timeout) is not None:
            return True
        self.kill()
        return False

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL: no RTCP BYE, clients just lose it)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def terminate(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@contextmanager
def rtsp_server(workdir: Path, served: Path, fps: int, stall_after_s: float = 3.0
                ) -> Iterator[str]:
    """Run the server on a free 127.0.0.1 port serving ``served`` at /file; yields its URL."""
    skip_without_gstreamer()
    for _attempt in range(3):  # the free port may be taken between probe and bind
        server = RtspServer(workdir, served, fps, stall_after_s)
        if server.start():
            break
    else:
        logs = sorted(workdir.glob("server*.log"))
        tail = logs[-1].read_text()[-2000:] if logs else ""
        pytest.fail(f"RTSP test server did not start: {tail}")
    try:
        yield server.url
    finally:
        server.terminate()
