#!/usr/bin/python3
"""A small RTSP server for the live-source tests, built on GStreamer's gst-rtsp-server.

Run it with Debian's *system* Python (it needs python3-gi, gir1.2-gst-rtsp-server-1.0 and the
GStreamer base/good/ugly plugins), not the project's virtualenv::

    /usr/bin/python3 tests/rtsp_server.py --port 8554 [--file clip.mkv]

Mounts, all on 127.0.0.1:

* ``/test``  an endless live test pattern (videotestsrc, H.264 via x264enc, RTP/H.264);
* ``/stall`` the same pattern, but it stops sending after ``--stall-after`` seconds while the
  session stays open (a camera that hangs), to test read timeouts;
* ``/file``  the file given with ``--file``, decoded with decodebin and re-encoded to H.264;
  it plays once and ends. Use MJPEG in .avi/.mkv here: its decoder is in plugins-good, while
  H.264 input would need gstreamer1.0-plugins-bad or gstreamer1.0-libav.

Once it listens it prints one line ``READY rtsp://127.0.0.1:PORT`` on stdout. It exits on
SIGTERM or SIGINT. Exit status 3 means GStreamer or its RTSP server bindings are missing.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer
except (ImportError, ValueError) as exc:  # ValueError: typelib not installed
    print(f"rtsp_server: GStreamer RTSP server bindings unavailable: {exc}", file=sys.stderr)
    sys.exit(3)

ENCODE = (
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bframes=0 "
    "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1"
)


def pattern_launch(width: int, height: int, fps: int, valve: bool) -> str:
    """gst-launch description of the live test pattern (optionally behind a named valve)."""
    gate = "valve name=gate drop=false ! " if valve else ""
    return (
        f"( videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! videoconvert ! {gate}{ENCODE.format(gop=fps)} )"
    )


def file_launch(path: Path, fps: int) -> str:
    """gst-launch description that decodes ``path`` and re-encodes it to RTP/H.264, once."""
    location = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'( filesrc location="{location}" ! decodebin ! videoconvert '
        f"! video/x-raw,format=I420 ! {ENCODE.format(gop=fps)} )"
    )


class StallFactory(GstRtspServer.RTSPMediaFactory):
    """Test pattern whose valve closes ``stall_after`` seconds after the media is prepared."""

    def __init__(self, launch: str, stall_after: float) -> None:
        super().__init__()
        self.set_launch(launch)
        self.stall_after = stall_after
        self.connect("media-configure", self._on_configure)

    def _on_configure(self, _factory: GstRtspServer.RTSPMediaFactory,
                      media: GstRtspServer.RTSPMedia) -> None:
        gate = media.get_element().get_by_name("gate")

        def close_gate() -> bool:
            gate.set_property("drop", True)
            print("rtsp_server: /stall stopped sending", file=sys.stderr, flush=True)
            return False

        GLib.timeout_add(int(self.stall_after * 1000), close_gate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    parser.add_argument("--file", type=Path, help="video file served on /file")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--stall-after", type=float, default=3.0,
                        help="seconds of video /stall sends before it goes silent")
    args = parser.parse_args(argv)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()

    test = GstRtspServer.RTSPMediaFactory()
    test.set_launch(pattern_launch(args.width, args.height, args.fps, valve=False))
    mounts.add_factory("/test", test)

    stall = StallFactory(pattern_launch(args.width, args.height, args.fps, valve=True),
                         args.stall_after)
    mounts.add_factory("/stall", stall)

    if args.file is not None:
        if not args.file.is_file():
            print(f"rtsp_server: {args.file}: file not found", file=sys.stderr)
            return 2
        clip = GstRtspServer.RTSPMediaFactory()
        clip.set_launch(file_launch(args.file.resolve(), args.fps))
        mounts.add_factory("/file", clip)

    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 2

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
