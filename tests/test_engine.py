"""The engine keeps its promises: a failing stage makes run() raise within seconds (never hang),
stop() flushes everything in flight, the batcher flushes at its size and at its deadline, and
results stay paired with their requests.

The stages here are small fakes (a detector that always sees one face, an SR that resizes, a
sink that records what it gets), so that a failure can be injected at an exact point; the
real stages are covered end to end in test_run_e2e.py and test_identity_e2e.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

import cv2
import numpy as np
import pytest

from cctv_sr.config import RunConfig, with_values
from cctv_sr.engine.accelerator import Accelerator, Batcher
from cctv_sr.engine.pipeline import Pipeline
from cctv_sr.errors import ContractError, OutputError, PipelineError
from cctv_sr.face.align import ARCFACE_112
from cctv_sr.records import (
    EmbedRequest,
    FaceDetections,
    FaceRows,
    Frame,
    Saved,
    SaveRequest,
    TrackEnd,
    WriterMessage,
)

W, H = 160, 120
DEADLINE_S = 10.0  # a failure must surface well within this


class OneFaceDetector:
    """Fake: one 48 px frontal face at a fixed place in every frame; may fail on a batch."""

    name = "fake"
    model_files: tuple[str, ...] = ()
    track_high_thresh = 0.5
    track_new_thresh = 0.6

    def __init__(self, fail_on_batch: int | None = None) -> None:
        self.fail_on_batch = fail_on_batch
        self.batches = 0

    def detect(self, images: Sequence[np.ndarray]) -> list[FaceDetections]:
        self.batches += 1
        if self.fail_on_batch is not None and self.batches >= self.fail_on_batch:
            raise RuntimeError("detector exploded")
        kps = ARCFACE_112 * (48 / 112) + 40
        one = FaceDetections(np.array([[40, 40, 88, 88]]), np.array([0.99]), kps[None])
        return [one for _ in images]


class ResizeSR:
    """Fake SR: a bicubic resize; may fail on a call, or return the wrong number of rows."""

    name = "fake-sr"
    window = 1  # a single-frame model
    model_files: tuple[str, ...] = ()

    def __init__(self, fail_on_call: int | None = None, drop_one: bool = False,
                 delay_s: float = 0.0) -> None:
        self.fail_on_call = fail_on_call
        self.drop_one = drop_one
        self.delay_s = delay_s
        self.calls = 0

    def upscale(self, crops: np.ndarray, out_size: int) -> np.ndarray:
        self.calls += 1
        time.sleep(self.delay_s)
        if self.fail_on_call is not None and self.calls >= self.fail_on_call:
            raise RuntimeError("sr exploded")
        out = np.stack([cv2.resize(c, (out_size, out_size)) for c in crops])
        return out[1:] if self.drop_one else out

    def describe(self, side: int, out_size: int) -> str:
        return "fake"


class RecordingSink:
    """Fake writer: records every message; may raise on the n-th Saved."""

    def __init__(self, fail_on_saved: int | None = None) -> None:
        self.items: list[WriterMessage] = []
        self.write_s = 0.0
        self.fail_on_saved = fail_on_saved

    def handle(self, item: WriterMessage) -> None:
        self.items.append(item)
        saved = sum(isinstance(i, Saved) for i in self.items)
        if self.fail_on_saved is not None and saved >= self.fail_on_saved:
            raise OutputError("disk full (fake)")

    def of(self, kind: type) -> list[Any]:
        return [i for i in self.items if isinstance(i, kind)]


class EndlessSource:
    """Fake live source: frames until stop(); after ``pause_after`` frames it goes silent
    (a camera with nothing new to send) until stop(). Counts what it yielded."""

    def __init__(self, pause_after: int | None = None) -> None:
        self.pause_after = pause_after
        self.stopped = threading.Event()
        self.yielded = 0

    def __iter__(self) -> Iterator[Frame]:
        image = np.full((H, W, 3), 90, np.uint8)
        i = 0
        while not self.stopped.is_set():
            if self.pause_after is not None and i >= self.pause_after:
                self.stopped.wait(0.05)
                continue
            yield Frame("cam0", i, i, Fraction(1, 25), image)
            self.yielded += 1
            i += 1
            time.sleep(0.001)

    def stop(self) -> None:
        self.stopped.set()


def make(detector: Any = None, sr: Any = None, sink: Any = None,
         settings: dict[str, dict[str, Any]] | None = None) -> tuple[Pipeline, RecordingSink]:
    # The engine's threads are under test: every frame goes through the detector (scanning
    # itself, motion gating and carried rows, is tested in test_scan.py).
    cfg = with_values(RunConfig(), **{"scan": {"mode": "exhaustive"}, **(settings or {})})
    sink = sink or RecordingSink()
    pipeline = Pipeline(cfg, detector or OneFaceDetector(), sr or ResizeSR(), [sink],
                        queue_size=4)
    return pipeline, sink


def start_run(pipeline: Pipeline, source: EndlessSource
              ) -> tuple[threading.Thread, dict[str, Any]]:
    """pipeline.run() in a daemon thread; its result lands in the returned dict as "stats"
    or "error"."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["stats"] = pipeline.run(source, source.stop)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    return th, outcome


def run_with_deadline(pipeline: Pipeline, source: EndlessSource) -> tuple[Any, float]:
    """pipeline.run() in a thread; fails the test if it is still running after the deadline."""
    t0 = time.monotonic()
    th, outcome = start_run(pipeline, source)
    th.join(DEADLINE_S)
    assert not th.is_alive(), "run() hung after a stage failed"
    return outcome.get("error", outcome.get("stats")), time.monotonic() - t0


@pytest.mark.parametrize(
    ("parts", "error", "stage_text"),
    [
        ({"detector": OneFaceDetector(fail_on_batch=3)}, PipelineError, "analysis"),
        ({"sr": ResizeSR(fail_on_call=2)}, PipelineError, "sr"),
        ({"sink": RecordingSink(fail_on_saved=2)}, OutputError, "disk full"),
        # a slow SR with a full queue behind it while the writer dies: nothing may wait for
        # an end marker that a blocked producer could not deliver
        ({"sink": RecordingSink(fail_on_saved=1), "sr": ResizeSR(delay_s=0.3),
          "settings": {"sr": {"batch_size": 1}}}, OutputError, "disk full"),
        ({"sr": ResizeSR(fail_on_call=1, delay_s=0.3), "settings": {"sr": {"batch_size": 1}}},
         PipelineError, "sr"),
        ({"sr": ResizeSR(drop_one=True)}, ContractError, "returned shape"),
    ],
    ids=["detector", "sr", "writer", "writer-behind-slow-sr", "slow-sr", "sr-wrong-rows"],
)
def test_a_failing_stage_makes_run_raise_promptly(parts: dict[str, Any], error: type,
                                                  stage_text: str) -> None:
    pipeline, _ = make(**parts)
    source = EndlessSource()  # endless: only the failure can end this run
    result, elapsed = run_with_deadline(pipeline, source)
    assert isinstance(result, error), result
    assert stage_text in str(result)
    assert source.stopped.is_set(), "the source was not told to stop"
    assert elapsed < DEADLINE_S


def test_stop_flushes_everything_in_flight() -> None:
    # requests wait in line: neither the batch size nor the deadline is reached before stop
    pipeline, sink = make(settings={"sr": {"batch_size": 64, "max_wait_ms": 5000}})
    source = EndlessSource()
    threading.Timer(0.5, pipeline.stop).start()
    requests: list[SaveRequest] = []
    emit = pipeline._analyzer.emit  # count what the analysis stage asks for

    def counting(message: Any) -> object:
        if isinstance(message, SaveRequest):
            requests.append(message)
        return emit(message)

    pipeline._analyzer.emit = counting
    stats, _ = run_with_deadline(pipeline, source)
    assert not isinstance(stats, BaseException), stats
    assert stats.stopped and source.stopped.is_set()
    assert requests and [s.enhanced.face for s in sink.of(Saved)] == [r.face for r in requests]
    assert stats.analysis.frames == source.yielded > 0
    ends = sink.of(TrackEnd)
    assert ends, "the open track was not ended at stop"
    saved_tracks = {s.enhanced.face.track_id for s in sink.of(Saved)}
    assert saved_tracks <= {e.summary.track_id for e in ends}
    # every face row of every track reached the writer, and the last message says so
    rows = sum(len(e.rows) for e in ends) + sum(len(u.rows) for u in sink.of(FaceRows))
    assert rows == stats.analysis.faces == source.yielded
    assert ends[-1].rows_final_before is None


def test_results_are_paired_with_their_requests() -> None:
    """Mixed sides and pass-through faces in one batch: each result is its own request's."""
    from cctv_sr.engine.analysis import Analyzer

    cfg = RunConfig()
    analyzer = Analyzer(cfg, OneFaceDetector(), lambda m: None)  # type: ignore[arg-type]
    image = np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8)
    faces = []
    for i, side in enumerate([48, 20, 100, 48, 20]):  # -> LR 32, 16, straight to 128, ...
        kps = (ARCFACE_112 * (side / 112) + 5)[None]
        dets = FaceDetections(np.array([[5, 5, 5 + side, 5 + side]]), np.array([0.9]), kps)
        frame = Frame("cam0", i, i, Fraction(1, 25), image)
        faces.append(analyzer.align(frame, dets, 0, track_id=i, t=i / 25))
    batch = [SaveRequest(faces[0]), FaceRows("cam0", ()), EmbedRequest(faces[1]),
             SaveRequest(faces[2]), SaveRequest(faces[3]), SaveRequest(faces[4])]
    out = Accelerator(ResizeSR(), 128).run(batch)  # type: ignore[arg-type]
    assert [type(m).__name__ for m in out] == ["Saved", "FaceRows", "Saved", "Saved",
                                               "Saved"]  # no embedder: no Embedded result
    for msg, face in zip([out[0], *out[2:]], [faces[0], faces[2], faces[3], faces[4]],
                         strict=True):
        assert isinstance(msg, Saved) and msg.enhanced.face is face
        want = cv2.resize(face.crop, (128, 128)) if face.crop.shape[0] < 128 else face.crop
        np.testing.assert_array_equal(msg.enhanced.sr, want)


def test_batcher_flushes_at_batch_size() -> None:
    b = Batcher(batch_size=3, max_wait_s=1.0)
    face_free = FaceRows("cam0", ())
    assert b.add(face_free, now=0.0) is True  # nothing else waits: pass it on now
    assert b.take() == [face_free] and b.timeout(now=0.0) is None
    assert b.add(EmbedRequest(None), now=0.0) is False  # type: ignore[arg-type]
    assert b.add(EmbedRequest(None), now=0.1) is False  # type: ignore[arg-type]
    assert b.add(face_free, now=0.1) is False  # waits behind the requests; does not count
    assert b.add(EmbedRequest(None), now=0.2) is True  # type: ignore[arg-type]
    taken = b.take()
    assert len(taken) == 4 and taken[2] is face_free and len(b) == 0
    assert b.timeout(now=5.0) is None


def test_batcher_deadline_counts_from_the_oldest_request() -> None:
    b = Batcher(batch_size=100, max_wait_s=0.05)
    b.add(EmbedRequest(None), now=10.0)  # type: ignore[arg-type]
    assert b.timeout(now=10.0) == pytest.approx(0.05)
    # a steady trickle must not push the deadline back
    b.add(EmbedRequest(None), now=10.04)  # type: ignore[arg-type]
    assert b.timeout(now=10.04) == pytest.approx(0.01)
    assert b.timeout(now=10.2) == 0.0
    # a message arriving after the deadline makes the batch due at once, even in a busy queue
    assert b.add(EmbedRequest(None), now=10.2) is True  # type: ignore[arg-type]
    b.take()
    assert b.timeout(now=10.2) is None


def test_batcher_deadline_flushes_in_the_running_pipeline() -> None:
    """With a huge batch size, results still arrive: the deadline, not the size, flushed."""
    pipeline, sink = make(settings={"sr": {"batch_size": 1000, "max_wait_ms": 20},
                                    "detector": {"batch_size": 1}})
    source = EndlessSource(pause_after=10)  # at most 10 requests: the size is never reached
    got = wait_for(pipeline, source, lambda: sink.of(Saved))
    assert got, "no batch ran before the end although requests waited past the deadline"


def wait_for(pipeline: Pipeline, source: EndlessSource, seen: Any) -> Any:
    """Run the pipeline until ``seen()`` is truthy (or the deadline); then stop it and check
    that run() returned cleanly. Returns what ``seen()`` gave before the stop."""
    th, outcome = start_run(pipeline, source)
    t_end = time.monotonic() + DEADLINE_S
    while not seen() and time.monotonic() < t_end:
        time.sleep(0.02)
    got = seen()
    pipeline.stop()
    th.join(DEADLINE_S)
    assert not th.is_alive() and "error" not in outcome, outcome
    return got


class FaceThenNothing(OneFaceDetector):
    """Fake: a face in the first 5 frames, then empty frames (the person left)."""

    calls = 0

    def detect(self, images: Sequence[np.ndarray]) -> list[FaceDetections]:
        self.calls += 1
        if self.calls <= 5:
            return super().detect(images)
        return [FaceDetections.empty() for _ in images]


def test_a_track_end_does_not_wait_for_the_next_face() -> None:
    """Once a person has left, their track reaches the writer while the camera keeps sending
    empty frames: no later request is needed to push it out of the batcher."""
    # every request runs at once (batch size 1); the deadline is far away, so only the rule
    # "nothing else waits: pass it on" can deliver the track end before stop()
    pipeline, sink = make(detector=FaceThenNothing(),
                          settings={"sr": {"batch_size": 1, "max_wait_ms": 60000},
                                    "detector": {"batch_size": 1},
                                    "tracker": {"max_lost_s": 0.2}})
    source = EndlessSource()  # endless empty frames after the face
    ends = wait_for(pipeline, source, lambda: sink.of(TrackEnd))
    assert ends and ends[0].summary.n_faces == 5


@pytest.mark.parametrize(("batch_size", "wait"), [(0, 1.0), (1, -1.0)])
def test_batcher_rejects_bad_settings(batch_size: int, wait: float) -> None:
    with pytest.raises(ContractError):
        Batcher(batch_size, wait)


def test_stream_time_going_back_ends_the_tracks_instead_of_failing() -> None:
    """A live stream's clock reset (pts going back): the stream's tracks end there, as at a
    shot cut, and the windows, smoothing and book start afresh (no ContractError)."""
    from cctv_sr.engine.analysis import Analyzer
    from cctv_sr.records import TrackEnd

    out: list = []
    cfg = RunConfig(scan=replace(RunConfig().scan, mode="exhaustive"))
    analyzer = Analyzer(cfg, OneFaceDetector(), out.append)  # type: ignore[arg-type]
    image = np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8)
    pts = [*range(0, 10), *range(0, 10)]  # the clock restarts after ten frames
    analyzer.process([Frame("cam0", i, p, Fraction(1, 25), image) for i, p in enumerate(pts)])
    analyzer.finish()
    ends = [m for m in out if isinstance(m, TrackEnd)]
    assert len(ends) == 2  # one track before the reset, one after
    assert ends[0].summary.last_frame == 9 and ends[1].summary.first_frame == 10
