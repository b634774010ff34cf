"""Temporal fusion along tracks: robust window fusion (sr/fuse.py), the temporal stage that
holds requests until their windows are complete (engine/temporal.py), and the accelerator's
use of windows (T > 1 SR models, fused single-frame models, T > 1 LR heads)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from cctv_sr.config import SRConfig, TemporalConfig
from cctv_sr.engine.accelerator import Accelerator
from cctv_sr.engine.temporal import TemporalStage, window_frames
from cctv_sr.errors import ContractError
from cctv_sr.records import (
    AlignedFace,
    EmbedRequest,
    FaceRows,
    Quality,
    SaveRequest,
    TrackEnd,
    TrackSummary,
    TrackWindow,
)
from cctv_sr.sr.bicubic import BicubicSR
from cctv_sr.sr.fuse import fuse_windows

FPS = 25


def _face(frame: int, track: int = 1, side: int = 16, crop: np.ndarray | None = None,
          stream: str = "s0") -> AlignedFace:
    q = Quality(size_px=16.0, size=0.3, sharpness=0.5, frontal=0.8, det_score=0.9, score=0.5)
    if crop is None:
        crop = np.full((side, side, 3), frame % 256, np.uint8)
    return AlignedFace(stream, track, frame, frame, Fraction(1, FPS), 0,
                       np.array([0, 0, 16, 16], np.float32), np.zeros((5, 2), np.float32),
                       crop, np.eye(2, 3, dtype=np.float32), q)


def _end(track: int, stream: str = "s0") -> TrackEnd:
    s = TrackSummary(stream, track, 0, 0, 0.0, 0.0, 1, 0, 0.5, None)
    return TrackEnd(s, (), ())


# fusion --------------------------------------------------------------------------------------
def test_fusion_averages_noise_where_frames_agree_and_keeps_the_centre_where_they_differ():
    rng = np.random.default_rng(0)
    clean = rng.integers(40, 200, (1, 1, 24, 24, 3)).astype(np.float32)
    noisy = clean + rng.normal(0, 6, (1, 5, 24, 24, 3))
    noisy[0, 4, :8] = 255.0  # something else passed in front of the face in one frame
    crops = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    fused = fuse_windows(crops, np.ones((1, 5), bool), sigma=12.0).astype(np.float32)
    centre = crops[0, 2].astype(np.float32)
    err_fused = np.abs(fused[0, 8:] - clean[0, 0, 8:]).mean()
    err_centre = np.abs(centre[8:] - clean[0, 0, 8:]).mean()
    assert err_fused < 0.65 * err_centre  # 5 frames of noise averaged (1/sqrt(5) ideally)
    # the occluded rows: the outlier frame gets (almost) no weight, no ghost of it
    assert np.abs(fused[0, :8] - clean[0, 0, :8]).mean() < 1.1 * np.abs(
        centre[:8] - clean[0, 0, :8]).mean()


def test_fusion_ignores_invalid_slots_and_passes_single_frames():
    crops = np.zeros((2, 3, 8, 8, 3), np.uint8)
    crops[:, 1] = 100
    crops[:, 0] = 104  # close enough to be averaged in, but invalid in window 0
    crops[:, 2] = 100
    valid = np.array([[False, True, True], [True, True, True]])
    fused = fuse_windows(crops, valid)
    assert (fused[0] == 100).all() and (fused[1] > 100).all()
    assert (fuse_windows(crops[:, 1:2], valid[:, 1:2]) == 100).all()
    with pytest.raises(ContractError):
        fuse_windows(crops, valid[:, :2])


# the temporal stage --------------------------------------------------------------------------
def _stage(frames: int = 5) -> tuple[TemporalStage, list]:
    out: list = []
    stage = TemporalStage(TemporalConfig(frames=frames), out.append, frames)
    stage.set_period("s0", 1 / FPS)
    return stage, out


def test_requests_wait_for_their_windows_and_order_is_kept():
    stage, out = _stage()
    faces = [_face(f) for f in range(3)]
    stage.add_face(faces[0])
    stage.send(SaveRequest(faces[0]))
    stage.send(FaceRows("s0", (), 1))
    stage.tick("s0", 0.0)
    assert out == []  # face 0 wants the track's next two faces; the rows wait behind it
    stage.add_face(faces[1])
    stage.tick("s0", 1 / FPS)
    assert out == []
    stage.add_face(faces[2])
    stage.tick("s0", 2 / FPS)
    # the save left with its window, and the rows behind it only after it
    assert [type(m).__name__ for m in out] == ["SaveRequest", "FaceRows"]
    win = out[0].window
    assert win is not None and win.valid.tolist() == [False, False, True, True, True]
    assert [int(c[0, 0, 0]) for c in win.crops] == [0, 0, 0, 1, 2]


def test_a_track_end_releases_its_waiting_requests_before_the_buffer_lets_go():
    stage, out = _stage()
    faces = [_face(f) for f in range(3)]
    for f in faces:
        stage.add_face(f)
    stage.send(EmbedRequest(faces[2]))
    assert out == []
    stage.send(_end(1))
    assert [type(m).__name__ for m in out] == ["EmbedRequest", "TrackEnd"]
    assert out[0].window.valid.tolist() == [True, True, True, False, False]
    assert len(stage._buffer) == 0


def test_stream_time_bounds_the_wait_and_flush_empties_the_outbox():
    stage, out = _stage()
    face = _face(0)
    stage.add_face(face)
    stage.send(SaveRequest(face))
    stage.tick("s0", 0.4)
    assert out == []  # the track may still be detected again within temporal.max_wait_s
    stage.tick("s0", 0.5)
    assert len(out) == 1 and out[0].window.valid.tolist() == [False, False, True, False, False]
    other = _face(10, track=2)
    stage.add_face(other)
    stage.send(SaveRequest(other))
    stage.flush()
    assert len(out) == 2 and len(stage) == 0


def test_single_frame_mode_attaches_nothing_and_never_waits():
    stage, out = _stage(frames=1)
    face = _face(0)
    stage.add_face(face)
    stage.send(SaveRequest(face))
    assert len(out) == 1 and out[0].window is None


def test_window_frames_covers_every_model():
    assert window_frames(TemporalConfig(frames=1), 5, 5) == 1
    assert window_frames(TemporalConfig(frames=3), 1, 5) == 5
    assert window_frames(TemporalConfig(frames=5), 1, 1) == 5


# the accelerator with windows ---------------------------------------------------------------
def _window(side: int = 16, t: int = 5, seed: int = 0) -> TrackWindow:
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 255, (t, side, side, 3), np.uint8)
    valid = np.array([False] + [True] * (t - 1))
    return TrackWindow(_face(t // 2, crop=crops[t // 2]), crops, valid)


def test_a_single_frame_model_gets_the_fused_window():
    acc = Accelerator(BicubicSR(SRConfig()), 128, temporal=TemporalConfig(frames=5))
    w = _window()
    [e] = acc.enhance([w])
    want = BicubicSR(SRConfig()).upscale(fuse_windows(w.crops[None], w.valid[None]), 128)[0]
    assert np.array_equal(e.sr, want) and e.frames == 4 and e.sr_method.endswith("+fused5")
    single = Accelerator(BicubicSR(SRConfig()), 128, temporal=TemporalConfig(frames=1))
    [s] = single.enhance([w])
    assert s.frames == 1 and np.array_equal(s.sr, BicubicSR(SRConfig()).upscale(
        w.centre.crop[None], 128)[0])


def test_a_window_model_takes_the_centre_slots_of_the_window(tmp_path, monkeypatch,
                                                             one_torch_thread):
    import torch
    from test_train import TINY, tiny, write_trainset

    from cctv_sr.sr.trained import TrainedSR
    from cctv_sr.train import load_checkpoint, recipe_from_mapping, train

    monkeypatch.setenv("CCTV_SR_CACHE", str(tmp_path / "cache"))
    data = tiny("lrnet", write_trainset(tmp_path / "trainset.npz"), tmp_path / "run",
                run={"steps": 1, "val_every": 1, "ckpt_every": 1})
    data["arch"]["config"] = {**TINY["lrnet"], "in_frames": 3}
    train(recipe_from_mapping(data), quiet=True)  # a real (1-step) T = 3 checkpoint
    path = tmp_path / "run" / "last.pt"
    net, _ = load_checkpoint(path)
    sr = TrainedSR(SRConfig(name="trained"), path)
    assert sr.window == 3
    acc = Accelerator(sr, 128, temporal=TemporalConfig(frames=5))
    w = _window(t=5)
    [e] = acc.enhance([w])
    x = torch.from_numpy(w.crops[1:4].copy()).permute(0, 3, 1, 2).reshape(1, 9, 16, 16)
    with torch.inference_mode():
        want = net(x.float() / 255).clamp(0, 1).mul(255).round().to(torch.uint8)
    assert np.array_equal(e.sr, want[0].permute(1, 2, 0).numpy())
    assert e.frames == 3 and e.sr_method.endswith("+window3")


def test_frames_between_detections_are_aligned_from_interpolated_landmarks():
    """A track detected at frames 0 and 4 and carried in 1-3: the carried frames become window
    slots, warped from the frame at the landmarks interpolated between the two detections."""
    from cctv_sr.face.align import ARCFACE_112, similarity_to_template, warp_face

    stage, out = _stage()
    frames = [np.full((120, 160, 3), 10 * i, np.uint8) for i in range(5)]
    for i, img in enumerate(frames):  # a bright square that moves 2 px a frame
        img[40:80, 40 + 2 * i:80 + 2 * i] = 200

    def detected(i: int) -> AlignedFace:
        kps = (ARCFACE_112 * (40 / 112) + np.array([40 + 2 * i, 40])).astype(np.float32)
        M = similarity_to_template(kps, 16)
        box = np.array([40 + 2 * i, 40, 80 + 2 * i, 80], np.float32)
        return AlignedFace("s0", 1, i, i, Fraction(1, FPS), 0, box, kps,
                           warp_face(frames[i], M, 16), M, _face(i).quality)

    first = detected(0)
    stage.add_face(first)
    for i in (1, 2, 3):
        stage.hold("s0", 1, i, i, Fraction(1, FPS), i / FPS, frames[i],
                   np.array([40 + 2 * i, 40, 80 + 2 * i, 80], np.float32))
    last = detected(4)
    stage.add_face(last)
    assert stage.stats.between == 3
    stage.send(SaveRequest(last))
    stage.flush()
    win = out[0].window
    assert win.valid.tolist() == [True, True, True, False, False]
    for slot, i in ((0, 2), (1, 3)):  # each slot is its own frame, aligned like a detection
        want = detected(i).crop.astype(int)
        assert np.abs(win.crops[slot].astype(int) - want).max() <= 2
    # a track seen again after more than temporal.max_wait_s: nothing is interpolated
    stage2, _ = _stage()
    stage2.add_face(first)
    stage2.hold("s0", 1, 1, 1, Fraction(1, FPS), 0.3, frames[1], first.xyxy)
    late = AlignedFace("s0", 1, 20, 20, Fraction(1, FPS), 0, first.xyxy, first.kps,
                       first.crop, first.M, first.quality)
    stage2.add_face(late)
    assert stage2.stats.between == 0
