"""Per-track crop buffers and T-frame windows (track/buffer.py), and landmark smoothing in
stream time (track/smooth.py)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from cctv_sr.errors import ContractError
from cctv_sr.records import AlignedFace, Quality
from cctv_sr.track.buffer import TrackBuffer, window_of
from cctv_sr.track.smooth import OneEuro, SmoothConfig, TrackSmoother

FPS = 25
FRAME_S = 1.0 / FPS


def _face(frame: int, track: int = 1, side: int = 16, stream: str = "s0") -> AlignedFace:
    q = Quality(size_px=16.0, size=0.3, sharpness=0.5, frontal=0.8, det_score=0.9, score=0.5)
    crop = np.full((side, side, 3), frame % 256, np.uint8)  # the frame number, as pixels
    return AlignedFace(stream, track, frame, frame, Fraction(1, FPS), 0,
                       np.array([0, 0, 16, 16], np.float32), np.zeros((5, 2), np.float32),
                       crop, np.eye(2, 3, dtype=np.float32), q)


def _slots(window) -> list[int]:
    return [int(c[0, 0, 0]) for c in window.crops]


STEP_S = 1.5 * FRAME_S  # a slot k frames from the centre takes a face within k * STEP_S
WAIT_S = 0.5  # a window waits at most this long for the faces after its centre


@pytest.mark.parametrize("frames_held, centre, want_slots, want_valid", [
    # every frame there: the window is frames c-2 .. c+2
    (range(0, 10), 5, [3, 4, 5, 6, 7], [1, 1, 1, 1, 1]),
    # frame 6 missing (a dropped frame, or one the detector did not look at): the track's
    # next face, frame 7, is 2 frames from the centre, beyond slot +1's bound (1.5 frames) but
    # frame 8 is within slot +2's (3 frames)
    ([0, 1, 2, 3, 4, 5, 7, 8], 5, [3, 4, 5, 5, 8], [1, 1, 1, 0, 1]),
    # the detector every other frame (step 2.5 frames allows it): neighbours fill the window
    ([0, 2, 4, 6, 8, 10], 4, [0, 2, 4, 6, 8], [1, 1, 1, 1, 1]),
    # a long gap after the centre: frame 9 is too far for slot +1 (> 1.5 frames) or +2 (> 3)
    ([0, 1, 2, 3, 4, 5, 9, 10], 5, [3, 4, 5, 5, 5], [1, 1, 1, 0, 0]),
    # the track's first frame: nothing before it
    (range(0, 6), 0, [0, 0, 0, 1, 2], [0, 0, 1, 1, 1]),
    # its last frame: nothing after
    (range(0, 6), 5, [3, 4, 5, 5, 5], [1, 1, 1, 0, 0]),
])
def test_windows_of_the_tracks_neighbours(frames_held, centre, want_slots, want_valid) -> None:
    buf = TrackBuffer(frames=5, capacity=16)
    faces = {f: _face(f) for f in frames_held}
    for f in frames_held:
        buf.add(faces[f])
    win = buf.window(faces[centre], 2.5 * FRAME_S if centre == 4 else STEP_S)
    assert _slots(win) == want_slots
    assert win.valid.astype(int).tolist() == want_valid
    assert win.centre is faces[centre]
    assert win.crops.shape == (5, 16, 16, 3)


def test_window_takes_crops_of_the_centres_side_only() -> None:
    faces = [_face(0), _face(1, side=32), _face(2), _face(3), _face(4)]
    win = window_of(faces, faces[2], 5, 2 * FRAME_S)
    # the 32 px frame 1 is skipped: frame 0 is the 16 px face before frame 2 (2 frames, within
    # slot -1's bound); nothing fills slot -2, padded from its nearest valid neighbour
    assert win.valid.tolist() == [False, True, True, True, True]
    assert _slots(win) == [0, 0, 2, 3, 4]


def test_ready_waits_for_the_frames_after_the_centre() -> None:
    buf = TrackBuffer(frames=5)
    faces = [_face(f) for f in range(12)]
    for f in faces[:5]:
        buf.add(f)
    assert buf.ready(faces[2], WAIT_S)  # frames 3 and 4 are in
    assert not buf.ready(faces[3], WAIT_S)  # frame 5 is not yet
    buf.add(faces[5])
    assert buf.ready(faces[3], WAIT_S)
    assert not buf.ready(faces[4], WAIT_S)
    # no face since frame 5, but stream time is WAIT_S past frame 4: it waits no longer
    assert not buf.ready(faces[4], WAIT_S, now=4 * FRAME_S + 0.4)
    assert buf.ready(faces[4], WAIT_S, now=4 * FRAME_S + WAIT_S)
    assert TrackBuffer(frames=1).ready(faces[7], WAIT_S)


def test_capacity_tracks_and_eviction() -> None:
    buf = TrackBuffer(frames=3, capacity=4)
    for f in range(10):
        buf.add(_face(f, track=1))
        buf.add(_face(f, track=2, stream="s1"))
    assert buf.held("s0", 1) == 4 and buf.held("s1", 2) == 4 and len(buf) == 2
    old = _face(2)  # fell out of the ring: its window holds itself only
    win = buf.window(old, STEP_S)
    assert win.valid.tolist() == [False, True, False]
    buf.end("s0", 1)
    assert buf.held("s0", 1) == 0 and len(buf) == 1


@pytest.mark.parametrize("kwargs", [{"frames": 4}, {"frames": 0}, {"frames": 5, "capacity": 3}])
def test_bad_buffers_are_refused(kwargs) -> None:
    with pytest.raises(ContractError):
        TrackBuffer(**kwargs)


def test_faces_must_come_in_time_order() -> None:
    buf = TrackBuffer(frames=3)
    buf.add(_face(5))
    with pytest.raises(ContractError, match="after"):
        buf.add(_face(4))


def _jitter(fps: float, seconds: float, speed_px_s: float, noise_px: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fps)) / fps
    truth = np.stack([100 + speed_px_s * t, 50 + 0 * t], 1)
    return t, truth, truth + rng.normal(0, noise_px, truth.shape)


def _run(f: OneEuro, t, noisy, size=20.0) -> np.ndarray:
    return np.stack([f.update(float(ti), xi, size) for ti, xi in zip(t, noisy)])


@pytest.mark.parametrize("fps", [10, 25, 30])
def test_still_face_jitter_is_removed_at_any_frame_rate(fps: int) -> None:
    t, truth, noisy = _jitter(fps, 6.0, 0.0, 1.0)
    out = _run(OneEuro(), t, noisy)  # the defaults
    settle = fps  # after the first second
    raw = np.abs(noisy - truth)[settle:].mean()
    smooth = np.abs(out - truth)[settle:].mean()
    assert smooth < 0.65 * raw, (raw, smooth)
    step_raw = np.abs(np.diff(noisy[settle:], axis=0)).mean()
    step_smooth = np.abs(np.diff(out[settle:], axis=0)).mean()
    assert step_smooth < 0.45 * step_raw, (step_raw, step_smooth)  # frame-to-frame jitter


def test_moving_face_is_followed_with_little_lag() -> None:
    t, truth, noisy = _jitter(25, 4.0, 120.0, 1.0)  # 6 face widths a second
    fast = _run(OneEuro(), t, noisy)
    stiff = _run(OneEuro(min_cutoff_hz=1.0, beta=0.0), t, noisy)
    lag_fast = np.abs(fast - truth)[25:, 0].mean()
    lag_stiff = np.abs(stiff - truth)[25:, 0].mean()
    assert lag_fast < 0.5 * lag_stiff, (lag_fast, lag_stiff)  # speed opens the filter
    assert lag_fast < 3.0  # px: 15% of the 20 px face, so crops stay aligned


def test_a_gap_starts_afresh_and_time_must_not_go_back() -> None:
    f = OneEuro(max_gap_s=0.5)
    f.update(0.0, np.array([0.0]))
    f.update(0.04, np.array([0.0]))
    assert f.update(2.0, np.array([50.0]))[0] == 50.0  # after a gap: the new sample itself
    assert f.update(2.0, np.array([60.0]))[0] == 50.0  # same time: the last value
    with pytest.raises(ContractError, match="back"):
        f.update(1.0, np.array([0.0]))
    with pytest.raises(ContractError, match="shape"):
        f.update(3.0, np.zeros(2))


def test_track_smoother_keeps_one_filter_per_track() -> None:
    sm = TrackSmoother(SmoothConfig(min_cutoff_hz=0.5))
    box = np.array([0, 0, 20, 20], np.float32)
    kps = np.zeros((5, 2), np.float32)
    sm.update(1, 0.0, box, kps)
    sm.update(2, 0.0, box + 100, kps + 100)
    b, k = sm.update(1, 0.04, box + 2, kps + 2)
    assert 0 < b[0] < 2 and 0 < k[0, 0] < 2 and b.dtype == np.float32 and k.shape == (5, 2)
    b2, _ = sm.update(2, 0.04, box + 100, kps + 100)
    assert b2[0] == pytest.approx(100)  # track 2 is not pulled by track 1
    sm.end(1)
    assert len(sm) == 1
    with pytest.raises(ContractError):
        SmoothConfig(beta=-1)


def test_faces_without_pts_take_their_time_from_the_frame_rate() -> None:
    """A file without timestamps: frame index / fps, the analysis stage's rule, so a window
    of consecutive frames is whole (frame index as seconds would make every slot a gap)."""
    from dataclasses import replace

    buf = TrackBuffer(frames=5, fps={"s0": FPS})
    faces = [replace(_face(f), pts=None) for f in range(6)]
    for f in faces:
        buf.add(f)
    win = buf.window(faces[2], STEP_S)
    assert win.valid.all() and _slots(win) == [0, 1, 2, 3, 4]
    assert buf.time(faces[5]) == pytest.approx(5 / FPS)
