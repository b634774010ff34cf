"""VideoSource on files encoded here with PyAV, on damaged files, and on a real RTSP server."""

from __future__ import annotations

import hashlib
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path
from rtsp import RtspServer, free_port, rtsp_server, skip_without_gstreamer
from videos import encode_clip, find_bytes, pattern_frames, read_frame_number

from cctv_sr.config import SourceConfig
from cctv_sr.errors import SourceError
from cctv_sr.io.container import redact_url
from cctv_sr.io.events import OutageEnd, OutageStart
from cctv_sr.io.source import SourceStats, VideoSource, file_sha256, is_live_url
from cctv_sr.records import Frame

FPS = 25
N_FRAMES = 40
W, H = 160, 120


def source_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("cctv_sr-source")]


def one_line_error(excinfo: pytest.ExceptionInfo[SourceError], *parts: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 5.0
    while source_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not source_threads(), "a decode thread outlived its test"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "mp4": encode_clip(d / "clip.mp4", pattern_frames(N_FRAMES, W, H), FPS, "libx264"),
        "avi": encode_clip(d / "clip.avi", pattern_frames(N_FRAMES, W, H), FPS, "mpeg4"),
        "mkv": encode_clip(d / "clip.mkv", pattern_frames(N_FRAMES, W, H), FPS, "mjpeg"),
    }


# ---------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("url", "live"),
    [
        ("rtsp://cam/stream1", True),
        ("RTSPS://user:pw@cam:322/x", True),
        ("rtmp://host/app/key", True),
        ("udp://239.0.0.1:1234", True),
        ("https://host/live/index.m3u8", True),
        ("http://cam/video.mjpg", True),
        ("http://host/clip.mp4", False),
        ("/data/clip.mp4", False),
        ("clip.avi", False),
        ("C:\\videos\\clip.mkv", False),
    ],
)
def test_is_live_url(url: str, live: bool) -> None:
    assert is_live_url(url) is live


def test_redact_url_masks_password() -> None:
    assert redact_url("rtsp://admin:s3cret@10.0.0.2:554/s") == "rtsp://admin:***@10.0.0.2:554/s"
    assert redact_url("rtsp://10.0.0.2/s") == "rtsp://10.0.0.2/s"
    assert redact_url("/a/b.mp4") == "/a/b.mp4"


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    data = bytes(range(256)) * 5000
    path.write_bytes(data)
    assert file_sha256(path, chunk=4096) == hashlib.sha256(data).hexdigest()
    with pytest.raises(SourceError):
        file_sha256(tmp_path / "missing.bin")


# ---------------------------------------------------------------------------- files


@pytest.mark.parametrize(
    ("kind", "codec", "frame_count"),
    [("mp4", "h264", N_FRAMES), ("avi", "mpeg4", N_FRAMES), ("mkv", "mjpeg", None)],
)
def test_file_round_trip(clips: dict[str, Path], kind: str, codec: str,
                         frame_count: int | None) -> None:
    with VideoSource(clips[kind], stream_id="door") as source:
        info = source.info
        frames = list(source)
    assert not info.is_live
    assert (info.width, info.height, info.codec, info.fps) == (W, H, codec, FPS)
    assert info.frame_count == frame_count
    assert info.duration_s == pytest.approx(N_FRAMES / FPS, abs=0.05)
    assert len(frames) == N_FRAMES
    for k, frame in enumerate(frames):
        assert frame.stream_id == "door"
        assert frame.index == k
        assert frame.time_base == info.time_base
        assert isinstance(frame.time_base, Fraction)
        assert frame.pts is not None
        assert frame.pts * frame.time_base == Fraction(k, FPS)  # exact, no float rounding
        assert frame.seconds == pytest.approx(k / FPS)
        assert frame.image.shape == (H, W, 3) and frame.image.dtype == np.uint8
        assert frame.image.flags["C_CONTIGUOUS"]
        assert read_frame_number(frame.image) == k
    # BGR order: the moving square is drawn as (B, G, R) = (0, 200, 255)
    square = frames[0].image[frames[0].image[..., 2] > 230]
    assert square.shape[0] > 50 and square[:, 0].mean() < 60
    assert source.stats == SourceStats(decoded=N_FRAMES, yielded=N_FRAMES)


@pytest.mark.parametrize(
    ("stride", "max_fps", "expected"),
    [
        (4, 0.0, list(range(0, N_FRAMES, 4))),
        (1, 10.0, list(range(0, N_FRAMES, 3))),  # 0.08 s < 1/10 s <= 0.12 s
        (2, 10.0, list(range(0, N_FRAMES, 4))),
        (1, 25.0, list(range(N_FRAMES))),
        (1, 1.0, [0, 25]),
    ],
)
def test_stride_and_max_fps(clips: dict[str, Path], stride: int, max_fps: float,
                            expected: list[int]) -> None:
    cfg = SourceConfig(stride=stride, max_fps=max_fps)
    with VideoSource(clips["mp4"], cfg) as source:
        frames = list(source)
    assert [f.index for f in frames] == expected
    assert [read_frame_number(f.image) for f in frames] == expected
    stats = source.stats
    assert (stats.decoded, stats.yielded, stats.skipped) == (
        N_FRAMES, len(expected), N_FRAMES - len(expected))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(SourceError) as excinfo:
        VideoSource(path).open()
    one_line_error(excinfo, str(path), "file not found")
    with pytest.raises(SourceError), VideoSource(path):
        pass


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as excinfo:
        VideoSource(tmp_path).open()
    one_line_error(excinfo, str(tmp_path), "directory")


def test_text_file_renamed_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 20)
    with pytest.raises(SourceError) as excinfo:
        VideoSource(path).open()
    one_line_error(excinfo, str(path), "not a video file")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.avi"
    path.touch()
    with pytest.raises(SourceError) as excinfo:
        VideoSource(path).open()
    one_line_error(excinfo, str(path), "empty file")


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    import av

    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    with pytest.raises(SourceError) as excinfo:
        VideoSource(path).open()
    one_line_error(excinfo, str(path), "no video stream", "audio")


def test_truncated_mp4_without_index(tmp_path: Path) -> None:
    """moov at the end (the default): a file cut in the mdat has no index at all."""
    full = encode_clip(tmp_path / "full.mp4", pattern_frames(60, W, H), FPS)
    data = full.read_bytes()
    mdat = find_bytes(data, b"mdat")
    assert mdat < len(data) // 2  # moov comes after the media data
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: mdat + (len(data) - mdat) // 2])
    start = time.monotonic()
    with pytest.raises(SourceError) as excinfo:
        VideoSource(cut).open()
    assert time.monotonic() - start < 5
    one_line_error(excinfo, str(cut), "not a video file", "moov")


@pytest.mark.parametrize(
    ("name", "codec", "options"),
    [
        ("faststart.mp4", "libx264", {"movflags": "+faststart"}),
        ("cut.mkv", "mjpeg", {}),
        ("cut.avi", "mpeg4", {}),
    ],
)
def test_truncated_file_yields_a_prefix(tmp_path: Path, name: str, codec: str,
                                        options: dict[str, str]) -> None:
    full = encode_clip(tmp_path / f"full_{name}", pattern_frames(60, W, H), FPS, codec,
                       container_options=options)
    data = full.read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[: len(data) // 2])
    with VideoSource(cut) as source:
        frames = list(source)
    assert 5 < len(frames) < 60
    numbers = [read_frame_number(f.image) for f in frames]
    # display order; with B-frames the frame just before the cut may be missing
    assert numbers[0] == 0 and all(b > a for a, b in zip(numbers, numbers[1:]))
    assert numbers[-1] - len(numbers) <= 2
    assert [f.index for f in frames] == list(range(len(frames)))
    assert source.stats.decoded == len(frames)
    # the container said more: a truncated file, not a complete one (avi states no count)
    t = source.truncation
    if name.endswith(".avi") and t is None:
        return
    assert t is not None and t.decoded == len(frames) and t.expected >= 58, t


def test_complete_file_is_not_truncated(tmp_path: Path) -> None:
    for name, codec in (("whole.mp4", "libx264"), ("whole.mkv", "mjpeg")):
        clip = encode_clip(tmp_path / name, pattern_frames(30, W, H), FPS, codec)
        with VideoSource(clip) as source:
            assert len(list(source)) == 30
        assert source.truncation is None, name
        assert source.clock.epoch is None  # our clips state no creation_time


def test_file_time_starts_at_its_first_frame_and_utc_from_creation_time(tmp_path: Path
                                                                        ) -> None:
    """An MPEG-TS file starts at pts 1.4 s: seconds still count from 0 (a player's 0:00);
    creation_time in the container gives the frames a wall-clock time."""
    clip = encode_clip(tmp_path / "c.mkv", pattern_frames(10, W, H), FPS, "mjpeg",
                       metadata={"creation_time": "2026-11-30T08:15:00.000000Z"})
    with VideoSource(clip) as source:
        frames = list(source)
    assert frames[0].seconds == 0.0
    assert source.clock.origin == "creation_time"
    assert source.clock.utc(frames[1].seconds) == "2026-11-30T08:15:00.040Z"
    ts = encode_clip(tmp_path / "c.ts", pattern_frames(10, W, H), FPS, "mpeg4")
    with VideoSource(ts) as source:
        first = next(iter(source))
    assert first.seconds == 0.0


@pytest.mark.parametrize(
    ("name", "codec", "media_marker"),
    [("bad.avi", "mpeg4", b"movi"), ("bad.mkv", "mjpeg", b"\x1f\x43\xb6\x75")],  # Cluster
)
def test_corrupted_bytes_are_skipped(tmp_path: Path, name: str, codec: str,
                                     media_marker: bytes) -> None:
    full = encode_clip(tmp_path / f"full_{name}", pattern_frames(60, W, H), FPS, codec)
    data = bytearray(full.read_bytes())
    media = find_bytes(bytes(data), media_marker)
    size = len(data) - media
    for offset in range(media + 4 * size // 10, media + 6 * size // 10, 97):
        data[offset] ^= 0xFF  # flip bytes in the middle of the media data
    bad = tmp_path / name
    bad.write_bytes(bytes(data))
    with VideoSource(bad) as source:
        frames = list(source)
    stats = source.stats
    assert stats.decode_errors > 0
    assert 0 < len(frames) < 60
    assert [f.index for f in frames] == list(range(len(frames)))
    numbers = [read_frame_number(f.image) for f in frames]
    assert numbers[:10] == list(range(10))  # before the damage
    assert numbers[-5:] == list(range(55, 60))  # decoding went on to the end of the file


def test_no_decodable_frames(tmp_path: Path) -> None:
    full = encode_clip(tmp_path / "full.mkv", pattern_frames(10, W, H), FPS, "mjpeg")
    data = full.read_bytes()
    # Blank every JPEG (SOI .. EOI) and keep the Matroska structure intact.
    out = bytearray(data)
    start = data.find(b"\xff\xd8")
    while start >= 0:
        end = data.find(b"\xff\xd9", start) + 2
        out[start:end] = bytes(end - start)
        start = data.find(b"\xff\xd8", end)
    blank = tmp_path / "blank.mkv"
    blank.write_bytes(bytes(out))
    with VideoSource(blank) as source, pytest.raises(SourceError) as excinfo:
        list(source)
    one_line_error(excinfo, str(blank), "no decodable video frames")
    assert source.stats.decode_errors == 10


def test_decode_thread_failure_reaches_the_consumer(clips: dict[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: VideoSource, video_frame: object, session: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(VideoSource, "_handle", broken)
    with VideoSource(clips["mp4"]) as source, pytest.raises(SourceError) as excinfo:
        list(source)
    one_line_error(excinfo, str(clips["mp4"]), "boom")
    assert isinstance(excinfo.value.__cause__, RuntimeError)


def test_iterating_after_stop_yields_nothing(clips: dict[str, Path]) -> None:
    source = VideoSource(clips["avi"])
    source.stop()
    source.stop()  # idempotent
    assert list(source) == []
    with VideoSource(clips["avi"]) as source:
        assert len(list(source)) == N_FRAMES
        assert list(source) == []  # a source is iterated once


def test_break_leaves_no_thread(clips: dict[str, Path]) -> None:
    source = VideoSource(clips["mp4"], SourceConfig(queue_size=2))  # no context manager
    for frame in source:
        if frame.index == 2:
            break
    assert not source_threads()
    assert source.stats.yielded == 3


def test_stop_from_another_thread(clips: dict[str, Path]) -> None:
    source = VideoSource(clips["mkv"], SourceConfig(queue_size=2))
    stopped_at: list[float] = []

    def stop_soon() -> None:
        time.sleep(0.3)
        stopped_at.append(time.monotonic())
        source.stop()

    stopper = threading.Thread(target=stop_soon)
    with source:
        stopper.start()
        count = 0
        for _ in source:
            count += 1
            time.sleep(0.05)  # a slow consumer: the decode thread waits on the full queue
        ended = time.monotonic()
    stopper.join()
    assert 0 < count < N_FRAMES
    assert ended - stopped_at[0] < 1.0


@pytest.mark.shared
def test_opencv_vtest_with_stride() -> None:
    video = shared_path("data/videos/cctv_like/opencv_vtest.avi")
    probe_file = shared_path("data/videos/video_probe.jsonl")
    rows = [json.loads(line) for line in probe_file.read_text().splitlines() if line.strip()]
    meta = next(r for r in rows if r["file"] == "cctv_like/opencv_vtest.avi")
    with VideoSource(video, SourceConfig(stride=10)) as source:
        info = source.info
        indices = [f.index for f in source]
        stats = source.stats
    assert (info.width, info.height) == (meta["w"], meta["h"])
    assert info.fps == pytest.approx(meta["fps"])
    assert info.codec.startswith(meta["codec"])
    assert stats.decoded == meta["frames"]
    assert indices == list(range(0, meta["frames"], 10))
    assert stats.yielded == math.ceil(meta["frames"] / 10)
    assert stats.decode_errors == 0


# ---------------------------------------------------------------------------- live (RTSP)

@pytest.fixture(scope="module")
def rtsp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of tests/rtsp_server.py run with the system Python (skips without GStreamer)."""
    workdir = tmp_path_factory.mktemp("rtsp")
    served = encode_clip(workdir / "served.mkv", pattern_frames(50, 320, 240), FPS, "mjpeg")
    with rtsp_server(workdir, served, FPS, stall_after_s=3) as url:
        yield url


LIVE_CFG = SourceConfig(open_timeout_s=10.0, read_timeout_s=5.0, max_reconnects=0)


def test_rtsp_reads_frames(rtsp_url: str) -> None:
    frames = []
    with VideoSource(f"{rtsp_url}/test", LIVE_CFG, stream_id="gate") as source:
        info = source.info
        for frame in source:
            frames.append(frame)
            if len(frames) == 40:
                break
    assert info.is_live
    assert (info.width, info.height, info.codec) == (320, 240, "h264")
    assert info.time_base == Fraction(1, 90000)
    assert info.fps == pytest.approx(FPS)
    assert info.duration_s is None and info.frame_count is None
    assert all(f.stream_id == "gate" for f in frames)
    assert all(f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 for f in frames)
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    timed = [f for f in frames if f.pts is not None]  # the very first RTP frame may lack pts
    assert len(timed) >= 35
    pts = [f.pts for f in timed]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    rate = (timed[-1].index - timed[0].index) / (timed[-1].seconds - timed[0].seconds)
    assert rate == pytest.approx(FPS, rel=0.05)


def test_rtsp_stream_end_ends_iteration(rtsp_url: str) -> None:
    with VideoSource(f"{rtsp_url}/file", LIVE_CFG) as source:
        numbers = [read_frame_number(f.image) for f in source]
    assert numbers == list(range(50))  # the whole served file, in order, then a clean end


def test_rtsp_stop_from_another_thread(rtsp_url: str) -> None:
    source = VideoSource(f"{rtsp_url}/test", LIVE_CFG)
    stopped_at: list[float] = []
    got_frame = threading.Event()

    def ctrl_c() -> None:
        got_frame.wait(20)
        time.sleep(0.5)
        stopped_at.append(time.monotonic())
        source.stop()

    stopper = threading.Thread(target=ctrl_c)
    stopper.start()
    count = 0
    for _ in source:
        count += 1
        got_frame.set()
    ended = time.monotonic()
    stopper.join()
    assert count > 0
    assert ended - stopped_at[0] < 1.0
    assert not source_threads()


def test_rtsp_slow_consumer_drops_oldest(rtsp_url: str) -> None:
    cfg = SourceConfig(queue_size=2, open_timeout_s=10.0, read_timeout_s=5.0)
    with VideoSource(f"{rtsp_url}/test", cfg) as source:
        indices = []
        for frame in source:
            indices.append(frame.index)
            time.sleep(0.2)  # 5 fps consumer, 25 fps camera
            if len(indices) == 10:
                break
        stats = source.stats
    assert stats.dropped_live > 0
    assert stats.decoded >= stats.yielded + stats.dropped_live
    assert indices == sorted(indices)
    gaps = np.diff(indices)
    assert gaps[3:].min() > 1  # frames in between were dropped, the newest kept


def test_rtsp_silent_stream_raises_after_read_timeout(rtsp_url: str) -> None:
    cfg = SourceConfig(open_timeout_s=10.0, read_timeout_s=1.5, max_reconnects=0)
    count = 0
    last = time.monotonic()
    with VideoSource(f"{rtsp_url}/stall", cfg) as source, pytest.raises(SourceError) as excinfo:
        for _ in source:
            count += 1
            last = time.monotonic()
    waited = time.monotonic() - last
    one_line_error(excinfo, "/stall", "no data for 1.5 s")
    assert count > 10
    assert 1.0 < waited < 4.0


def test_rtsp_stop_during_silent_stream(rtsp_url: str) -> None:
    """A read blocked on a silent stream: the loop still ends promptly after stop()."""
    cfg = SourceConfig(open_timeout_s=10.0, read_timeout_s=3.0)
    source = VideoSource(f"{rtsp_url}/stall", cfg)
    stopped_at: list[float] = []
    last_frame = [time.monotonic()]
    got_frame = threading.Event()

    def stop_when_silent() -> None:
        got_frame.wait(20)
        while time.monotonic() - last_frame[0] < 0.7:
            time.sleep(0.05)
        stopped_at.append(time.monotonic())
        source.stop(timeout=0.2)

    stopper = threading.Thread(target=stop_when_silent)
    stopper.start()
    count = 0
    for _ in source:
        count += 1
        last_frame[0] = time.monotonic()
        got_frame.set()
    ended = time.monotonic()
    stopper.join()
    assert count > 10
    assert ended - stopped_at[0] < 1.0
    # the fixture no_thread_left checks that the blocked decode thread exits by itself


def test_rtsp_unknown_path_raises(rtsp_url: str) -> None:
    with pytest.raises(SourceError) as excinfo:
        VideoSource(f"{rtsp_url}/nosuch", LIVE_CFG).open()
    one_line_error(excinfo, "/nosuch", "404")


def test_rtsp_no_server_raises_quickly() -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/test"
    start = time.monotonic()
    with pytest.raises(SourceError) as excinfo:
        VideoSource(url, SourceConfig(open_timeout_s=2.0)).open()
    assert time.monotonic() - start < 3.0
    one_line_error(excinfo, url)


def test_rtsp_server_that_never_answers_times_out() -> None:
    """A TCP port that accepts but never speaks RTSP: SourceError after open_timeout_s."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        url = f"rtsp://viewer:hunter2@127.0.0.1:{port}/cam"
        start = time.monotonic()
        with pytest.raises(SourceError) as excinfo:
            VideoSource(url, SourceConfig(open_timeout_s=1.0)).open()
        elapsed = time.monotonic() - start
    assert 0.9 < elapsed < 3.0
    message = one_line_error(excinfo, "no answer within 1 s", "viewer:***@")
    assert "hunter2" not in message


# ------------------------------------------------------------------ live: outages, watchdog

def test_rtsp_reconnects_after_server_restarts(tmp_path: Path) -> None:
    """The server is killed (no BYE) and started again on the same port, three times: the
    source reopens each time, reports each outage, and its frame indices and pts never go
    back; each session replays the served clip from its first frame."""
    skip_without_gstreamer()
    served = encode_clip(tmp_path / "served.mkv", pattern_frames(400, 320, 240), FPS, "mjpeg")
    server = RtspServer(tmp_path, served, FPS)
    assert server.start()
    events: list[tuple[object, float]] = []
    cfg = SourceConfig(open_timeout_s=5.0, read_timeout_s=2.0, reconnect_backoff_s=0.2,
                       reconnect_max_backoff_s=0.5)
    source = VideoSource(f"{server.url}/file", cfg, on_event=lambda e, t: events.append((e, t)))
    frames: list[Frame] = []

    def sessions() -> list[int]:  # connection numbers in order (failed attempts skip some)
        return list(dict.fromkeys(f.session for f in frames))

    def consume() -> None:
        for frame in source:
            frames.append(frame)
            if len(sessions()) == 4 and sum(f.session == frame.session for f in frames) >= 10:
                return

    try:
        source.open()
        reader = threading.Thread(target=consume)
        reader.start()
        for restart in range(3):
            deadline = time.monotonic() + 30
            while len(sessions()) <= restart or sum(
                    f.session == sessions()[restart] for f in frames) < 15:
                assert time.monotonic() < deadline, f"no frames after restart {restart}"
                time.sleep(0.05)
            server.kill()
            time.sleep(1.0)  # the camera is away for a second
            assert server.start()
        reader.join(40)
        assert not reader.is_alive(), f"sessions seen: {sessions()}"
    finally:
        source.stop()
        server.terminate()
    kinds = [type(e).__name__ for e, _ in events]
    assert kinds == ["OutageStart", "OutageEnd"] * 3, kinds
    ends = [e for e, _ in events if isinstance(e, OutageEnd)]
    assert all(e.duration_s >= 0.9 and e.frames_lost >= 5 for e in ends), ends
    stats = source.stats
    assert stats.reconnects == 3 and stats.frames_lost == sum(e.frames_lost for e in ends)
    indices = [f.index for f in frames]
    assert all(b > a for a, b in zip(indices, indices[1:]))
    assert all(f.pts is not None for f in frames)
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))  # type: ignore[operator]
    order = sessions()
    assert len(order) == 4 and order == sorted(order)
    for s in order:  # every session starts the clip again, in order
        numbers = [read_frame_number(f.image) for f in frames if f.session == s]
        assert numbers[0] <= 2 and numbers == sorted(numbers), (s, numbers[:20])
    # the gap in stream time at each outage is about its wall-clock length
    for prev, s, end in zip(order, order[1:], ends):
        before = max(f.seconds for f in frames if f.session == prev)  # type: ignore[type-var]
        after = min(f.seconds for f in frames if f.session == s)  # type: ignore[type-var]
        assert after - before == pytest.approx(end.duration_s, abs=0.5)
    assert source.clock.epoch is not None and source.clock.origin == "live"


def test_watchdog_reopens_a_stalled_stream(rtsp_url: str) -> None:
    """/stall stops sending while the session stays open; FFmpeg's read timeout is set far
    beyond the watchdog's, so only the watchdog can notice: it abandons the session and
    reopens the stream, which sends again."""
    cfg = SourceConfig(open_timeout_s=5.0, read_timeout_s=60.0, stall_timeout_s=1.5,
                       reconnect_backoff_s=0.2)
    events: list[object] = []
    source = VideoSource(f"{rtsp_url}/stall", cfg, on_event=lambda e, t: events.append(e))
    started = time.monotonic()
    sessions: list[int] = []
    with source:
        for frame in source:
            sessions.append(frame.session)
            if frame.session > 1 and sessions.count(frame.session) >= 5:
                break
    assert time.monotonic() - started < 20
    assert source.stats.stalls == 1
    starts = [e for e in events if isinstance(e, OutageStart)]
    assert len(starts) == 1 and "stalled" in starts[0].reason


def test_rtsp_given_up_after_max_reconnects(tmp_path: Path) -> None:
    skip_without_gstreamer()
    served = encode_clip(tmp_path / "served.mkv", pattern_frames(400, 320, 240), FPS, "mjpeg")
    server = RtspServer(tmp_path, served, FPS)
    assert server.start()
    events: list[object] = []
    cfg = SourceConfig(open_timeout_s=2.0, read_timeout_s=2.0, reconnect_backoff_s=0.1,
                       reconnect_max_backoff_s=0.2, max_reconnects=3)
    source = VideoSource(f"{server.url}/file", cfg, on_event=lambda e, t: events.append(e))
    count = 0
    try:
        with source, pytest.raises(SourceError) as excinfo:
            for _ in source:
                count += 1
                if count == 10:
                    server.kill()  # and never comes back
    finally:
        server.terminate()
    one_line_error(excinfo, "lost: 3 reconnect attempts in a row failed")
    assert [type(e).__name__ for e in events] == ["OutageStart", "StreamLost"]
