"""The SR training set (cctv_sr.data.trainset): exclusion rules, the plan, split, a real build."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path

from cctv_sr.data.trainset import (
    SOURCES,
    SourceItem,
    TrainSet,
    TrainSetInfo,
    build_trainset,
    check_exclusions,
    clip_allowed,
    is_holdout_identity,
    lfw_allowed,
    load_trainset,
    plan_sources,
)
from cctv_sr.data.trainset_build import check_items
from cctv_sr.errors import ConfigError, ContractError


def _name(holdout: bool) -> str:
    """A made-up identity name on the requested side of the data README's split."""
    for i in itertools.count():
        name = f"Fake_Person_{i}"
        if (hashlib.sha256(name.encode()).hexdigest()[0] in "01234567") == holdout:
            return name
    raise AssertionError  # pragma: no cover


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


@pytest.fixture()
def fake_tree(tmp_path: Path) -> Path:
    """Empty files with the shared tree's naming conventions (the rules are about names)."""
    data = tmp_path / "shared" / "data"
    for f in ("1_0_0_2017.jpg.chip.jpg", "30_1_2_2017.jpg.chip.jpg", "notes.txt"):
        _touch(data / "faces" / "utkface" / f)
    single, single_holdout, multi = _name(False), _name(True), _name(False) + "_B"
    _touch(data / "faces" / "lfw_dev" / single / f"{single}_0001.jpg")
    _touch(data / "faces" / "lfw_dev" / single_holdout / f"{single_holdout}_0001.jpg")
    for n in (1, 2):
        _touch(data / "faces" / "lfw_dev" / multi / f"{multi}_{n:04d}.jpg")
    for clip in ("liveportrait_driving_d0", "liveportrait_source_s13", "sadtalker_hdtf_WDA_X_000",
                 "video_retalking_3", "some_other_clip"):
        _touch(data / "videos" / "talking_heads" / f"{clip}.mp4")
    return tmp_path / "shared"


def test_name_rules() -> None:
    assert clip_allowed("liveportrait_driving_d11")
    for dev in ("sadtalker_hdtf_WDA_KatieHill_000", "video_retalking_1", "random_clip"):
        assert not clip_allowed(dev)
    dev_name, holdout_name = _name(False), _name(True)
    assert is_holdout_identity(holdout_name) and not is_holdout_identity(dev_name)
    assert lfw_allowed(dev_name, 1)
    assert not lfw_allowed(dev_name, 2) and not lfw_allowed(dev_name, 10)
    assert not lfw_allowed(holdout_name, 1)


def test_plan_applies_the_exclusions(fake_tree: Path) -> None:
    for root in (fake_tree, fake_tree / "data"):  # the shared folder or its data/ folder
        plan = plan_sources(root)
        kinds = {k: sorted(i.group for i in plan.items if i.kind == k) for k in SOURCES}
        assert kinds["utkface"] == ["1_0_0_2017.jpg.chip.jpg", "30_1_2_2017.jpg.chip.jpg"]
        assert kinds["clip"] == ["liveportrait_driving_d0", "liveportrait_source_s13"]
        assert kinds["lfw"] == [_name(False)]
        assert sorted(plan.excluded_clips) == ["sadtalker_hdtf_WDA_X_000", "some_other_clip",
                                               "video_retalking_3"]
        assert plan.excluded_lfw_identities == 2  # two images, and a HOLDOUT name
    with pytest.raises(ConfigError):
        plan_sources(fake_tree / "data" / "faces" / "utkface")


def test_shards_refuse_excluded_items(fake_tree: Path) -> None:
    data = fake_tree / "data"
    clip = data / "videos" / "talking_heads" / "video_retalking_3.mp4"
    with pytest.raises(ContractError):
        check_items((SourceItem("clip", clip, "x", "video_retalking_3"),))
    multi = _name(False) + "_B"
    img = data / "faces" / "lfw_dev" / multi / f"{multi}_0001.jpg"
    with pytest.raises(ContractError):
        check_items((SourceItem("lfw", img, "y", multi),))
    ok = data / "faces" / "lfw_dev" / _name(False) / f"{_name(False)}_0001.jpg"
    check_items((SourceItem("lfw", ok, "z", _name(False)),))


def test_check_exclusions_on_a_loaded_set() -> None:
    names = ("liveportrait_driving_d0", "sadtalker_hdtf_WDA_X_000")
    source = np.array([SOURCES.index("clip")] * 2, np.int8)
    with pytest.raises(ContractError):
        check_exclusions(names, source, np.array([0, 1]))
    check_exclusions(names, source, np.array([0, 0]))
    with pytest.raises(ContractError):
        check_exclusions((_name(True),), np.array([SOURCES.index("lfw")], np.int8),
                         np.array([0]))


def test_split_is_by_group_and_deterministic() -> None:
    names = tuple(f"g{i}" for i in range(200))
    group = np.repeat(np.arange(200, dtype=np.int32), 3)
    info = TrainSetInfo(Path("x.npz"), 1, len(group), {}, 200, "d", "", "a", "raw", {}, {}, {},
                        "k", 0.0, 0)
    ts = TrainSet(np.zeros((len(group), 1, 1, 3), np.uint8), group, names,
                  np.zeros(len(group), np.int8), np.zeros(len(group), np.float32),
                  np.full(len(group), -1, np.int32), info)
    tr, va = ts.split(0.2, seed=3)
    assert len(tr) + len(va) == len(group) and 0.1 < len(va) / len(group) < 0.3
    assert not set(group[tr]) & set(group[va])
    tr2, va2 = ts.split(0.2, seed=3)
    assert np.array_equal(va, va2)
    assert not np.array_equal(va, ts.split(0.2, seed=4)[1])
    with pytest.raises(ConfigError):
        ts.split(1.0)


@pytest.mark.shared
def test_tiny_real_build(tmp_path: Path) -> None:
    shared = shared_path("data/faces/utkface").parents[2]
    shared_path("data/faces/lfw_dev")
    shared_path("data/videos/talking_heads")
    out = tmp_path / "cache" / "ts.npz"
    info = build_trainset(shared, out, limit_per_source=3, max_per_clip=2, stride=15,
                          quiet=True)
    assert info.path == out and out.is_file() and not out.with_name("ts.npz.parts").exists()
    assert info.counts["utkface"] >= 2 and info.counts["lfw"] >= 2
    assert 1 <= info.counts["clip"] <= 6
    assert info.excluded["dev_clips"] == 7 and info.excluded["lfw_identities"] > 0
    ts = load_trainset(out)
    assert ts.crops.shape == (info.count, 128, 128, 3) and ts.crops.dtype == np.uint8
    assert ts.crops.std() > 10  # real faces, not empty crops
    clip_groups = {ts.group_names[g] for g in ts.group[ts.source == SOURCES.index("clip")]}
    assert all(g.startswith("liveportrait_") for g in clip_groups)
    assert (ts.frame[ts.source == SOURCES.index("clip")] >= 0).all()
    again = build_trainset(shared, out, limit_per_source=3, max_per_clip=2, stride=15,
                           quiet=True)
    assert again.build_key == info.build_key and again.seconds == info.seconds  # reused
