"""``eval detect``: the synthetic scene, its ground truth and the scoring, on real files."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np

from cctv_sr.config import RunConfig
from cctv_sr.data.scene import SceneSpec, SceneTruth, make_scene
from cctv_sr.data.synth import head_patches
from cctv_sr.evaluate.detect_eval import run_config, score

SPEC = SceneSpec(width=640, height=360, fps=10.0, seconds=2.0, widths=(24, 40),
                 people_per_width=2, seed=1, blur_sigma=0.6)


def _scene(tmp_path: Path, group_photo: np.ndarray) -> tuple[Path, SceneTruth]:
    patches = head_patches(group_photo)
    clip = tmp_path / "scene.mp4"
    return clip, make_scene(SPEC, clip, patches=patches[:4], face_frac=1 / 1.8)


def test_scene_clip_and_truth_agree(tmp_path: Path, group_photo: np.ndarray) -> None:
    clip, truth = _scene(tmp_path, group_photo)
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(stream)) == SPEC.frames == len(truth.frames)
    again = SceneTruth.from_json(json.loads(clip.with_suffix(".json").read_text()))
    assert again == truth
    for frame in truth.frames:
        for _, width, (x0, y0, x1, y1) in frame:
            assert abs((x1 - x0) - width) < 1e-3 and 0 <= x0 and x1 <= SPEC.width
            assert abs((y1 - y0) - 1.15 * width) < 1e-3


def test_scoring_ground_truth_as_rows_is_perfect_and_empty_rows_find_nothing(
        tmp_path: Path, group_photo: np.ndarray) -> None:
    _, truth = _scene(tmp_path, group_photo)
    rows = [{"frame": i, "box": list(b), "detected": True, "track_id": pid}
            for i, frame in enumerate(truth.frames) for pid, _, b in frame]
    perfect = score(truth, rows)
    assert all(r.frame_recall == 1.0 and r.people_found == r.people == 2 for r in perfect.rows)
    assert perfect.false_per_frame == 0.0
    carried = [{**r, "detected": False} for r in rows]
    only_carried = score(truth, carried)
    assert all(r.frame_recall == 1.0 and r.detected_recall == 0.0 for r in only_carried.rows)
    assert all(r.people_found == 0 for r in only_carried.rows)
    nothing = score(truth, [])
    assert all(r.frame_recall == 0.0 for r in nothing.rows)
    shifted = [{**r, "box": [v + 200 for v in r["box"]]} for r in rows]
    assert score(truth, shifted).false_per_frame > 1.0


def test_the_default_pipeline_finds_the_scene_faces(tmp_path: Path,
                                                    group_photo: np.ndarray) -> None:
    clip, truth = _scene(tmp_path, group_photo)
    result = run_config(clip, "default", RunConfig(), truth)
    assert result.score is not None and result.ratio > 0
    by_width = {r.width: r for r in result.score.rows}
    assert by_width[40].frame_recall > 0.5 and by_width[40].people_found >= 1
