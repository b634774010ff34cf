"""Config loading: TOML files, --set overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cctv_sr.config import ConfigError, RunConfig, load_config

# run configs; pipelines/train_*.toml are training recipes (tests/test_train.py loads them)
PIPELINES = sorted(p for p in (Path(__file__).resolve().parents[1] / "pipelines").glob("*.toml")
                   if not p.name.startswith("train_"))


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_shipped_pipelines_load(path: Path) -> None:
    assert isinstance(load_config(path), RunConfig)


def test_cpu_default_toml_is_the_default() -> None:
    path = next(p for p in PIPELINES if p.name == "cpu_default.toml")
    assert load_config(path) == RunConfig()


@pytest.mark.parametrize(
    ("override", "check"),
    [
        ("detector.name=yunet", lambda c: c.detector.name == "yunet"),
        ("source.stride=3", lambda c: c.source.stride == 3),
        ("source.max_fps=2.5", lambda c: c.source.max_fps == 2.5),
        ("output.save_all_crops=true", lambda c: c.output.save_all_crops is True),
        ("align.lr_sizes=16,32,64", lambda c: c.align.lr_sizes == (16, 32, 64)),
    ],
)
def test_overrides(override: str, check) -> None:
    assert check(load_config(None, [override]))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("detecter.name=yunet", "did you mean 'detector'"),
        ("detector.nmae=yunet", "did you mean 'name'"),
        ("source.stride=two", "expected an integer"),
        ("source.stride=0", "source.stride must be >= 1"),
        ("output.save_all_crops=maybe", "expected true/false"),
        ("detector", "expected KEY=VALUE"),
        ("align.lr_sizes=48", "multiple"),
    ],
)
def test_bad_overrides(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[detector\nname=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    table = tmp_path / "table.toml"
    table.write_text("detector = 3\n")
    with pytest.raises(ConfigError, match="expected a table"):
        load_config(table)


def test_head_section(tmp_path: Path) -> None:
    assert RunConfig().head.name == "lrmfn"  # the shipped head (skipped for other galleries)
    path = tmp_path / "head.toml"
    path.write_text('[head]\nname = "checkpoint"\nmodel_path = "runs/lrhead/last.pt"\n'
                    'batch_size = 16\ndevice = "cuda"\n')
    head = load_config(path).head
    assert (head.name, head.model_path, head.batch_size, head.device) == (
        "checkpoint", "runs/lrhead/last.pt", 16, "cuda")
    assert load_config(None, ["head.batch_size=8"]).head.batch_size == 8
    path.write_text('[head]\nname = "checkpoint"\nmodle_path = "x.pt"\n')
    with pytest.raises(ConfigError, match="head: unknown key 'modle_path'.*did you mean"):
        load_config(path)
    with pytest.raises(ConfigError, match="head.batch_size must be >= 1"):
        load_config(None, ["head.batch_size=0"])
    with pytest.raises(ConfigError, match="head.name is 'none'"):
        load_config(None, ["head.name=none", "head.model_path=x.pt"])
    assert load_config(None, ["head.name=none"]).head.name == "none"  # off
    with pytest.raises(ConfigError, match=r"head.name: unknown LR identity head 'lrmf' "
                                          r"\(did you mean 'lrmfn'\? known: none, checkpoint"):
        load_config(None, ["head.name=lrmf"])


def test_device_flag_moves_every_model() -> None:
    """`--device` of run / bench: the detector, SR, embedder and LR head all move."""
    import argparse

    from cctv_sr.cli.settings import add_settings, run_config

    p = argparse.ArgumentParser()
    add_settings(p)
    p.add_argument("footage")  # run and bench each add their own
    cfg = run_config(p.parse_args(["clip.mp4", "--device", "cuda:1"]))
    assert {cfg.detector.device, cfg.sr.device, cfg.embedder.device, cfg.head.device} == {
        "cuda:1"}
    cfg = run_config(p.parse_args(["clip.mp4"]))
    assert cfg.head.device == cfg.embedder.device == "cpu"


def test_detector_runtime_setting() -> None:
    assert RunConfig().detector.runtime == "auto"
    assert load_config(None, ["detector.runtime=opencv"]).detector.runtime == "opencv"
    with pytest.raises(ConfigError, match="detector.runtime must be auto, onnxruntime or opencv"):
        load_config(None, ["detector.runtime=tensorrt"])
