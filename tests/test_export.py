"""`cctv-sr export`: slim checkpoints, ONNX export with parity and metadata, running exports.

The checkpoints are 2-step runs of tiny configs on the synthetic trainset of
tests/test_train.py (its helpers are imported: pytest puts tests/ on sys.path, as
tests/test_eval_identify.py relies on too); lrmfn is MobileFaceNet's own size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import TINY, tiny, write_trainset

from cctv_sr.cli.main import main as cli_main
from cctv_sr.config import SRConfig
from cctv_sr.errors import ConfigError, ModelError
from cctv_sr.train import load_checkpoint, read_checkpoint, recipe_from_mapping, train
from cctv_sr.train.checkpoint import FORMAT
from cctv_sr.train.export import (
    ONNX_FORMAT,
    PARITY_TOL,
    export_onnx,
    read_onnx_spec,
    slim_checkpoint,
)

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

# name -> (arch, extra arch config, expected ONNX input side)
RUNS = {
    "lrnet": ("lrnet", {}, 32),
    "lrnet_t3": ("lrnet", {"in_frames": 3}, 32),
    "lrhead": ("lrhead", {}, 16),
    "lrmfn": ("lrmfn", {}, 112),
    "ipunet": ("ipunet", {}, 128),  # its first step is bicubic to 128: exact at that side
    "srgan": ("srgan", {}, 32),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> dict[str, Path]:
    """name -> the last.pt of a 2-step run (heads distilled from the shipped MobileFaceNet)."""
    root = tmp_path_factory.mktemp("export")
    trainset = write_trainset(root / "trainset.npz")
    out: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CCTV_SR_CACHE", str(root / "cache"))
        for name, (arch, extra, _) in RUNS.items():
            sections: dict[str, dict[str, object]] = {
                "run": {"steps": 2, "val_every": 2, "ckpt_every": 2}}
            if arch in ("lrhead", "lrmfn"):
                sections["data"] = {"teacher_cache": str(root / "teacher")}
            data = tiny(arch, trainset, root / name, **sections)
            data["arch"]["config"] = {**TINY[arch], **extra}
            train(recipe_from_mapping(data), quiet=True)
            out[name] = root / name / "last.pt"
    return out


@pytest.fixture(scope="module")
def onnx_files(ckpts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """name -> its OnnxExport (exported once for the module)."""
    root = tmp_path_factory.mktemp("onnx")
    return {name: export_onnx(path, root / f"{name}.onnx") for name, path in ckpts.items()}


def _input(name: str, side: int, n: int = 3) -> torch.Tensor:
    frames = int(RUNS[name][1].get("in_frames", 1))
    return torch.rand(n, 3 * frames, side, side, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["lrnet", "lrhead", "lrmfn"])
def test_slim_checkpoint_loads_and_gives_the_same_outputs(ckpts: dict[str, Path],
                                                          tmp_path: Path, name: str) -> None:
    full = ckpts[name]
    slim = slim_checkpoint(full, tmp_path / "slim.pt")
    ckpt = read_checkpoint(slim)
    assert ckpt["format"] == FORMAT and ckpt["slim"] is True
    for gone in ("optimizer", "scheduler", "rng", "disc", "disc_optimizer", "scaler"):
        assert gone not in ckpt
    assert {"train_sides", "elapsed_s", "metrics", "recipe"} <= set(ckpt)
    for key, value in ckpt["ema"].items():
        assert value.is_contiguous() and value.device.type == "cpu"
        assert value.dtype == (torch.float32 if value.is_floating_point() else torch.int64)
        assert torch.equal(value, ckpt["model"][key])
    weights = sum(v.numel() * v.element_size() for v in ckpt["ema"].values())
    size = slim.stat().st_size
    assert size < full.stat().st_size
    assert size < 1.2 * weights + 64_000  # the weights once (model and ema share them)
    a, spec_a = load_checkpoint(full)
    b, spec_b = load_checkpoint(slim)
    assert spec_a == spec_b
    x = _input(name, 20)
    with torch.inference_mode():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("name", ["ipunet", "srgan"])
def test_half_slim_weights_load_into_float32(ckpts: dict[str, Path], tmp_path: Path,
                                             name: str) -> None:
    """--half (the large baselines): float16 tensors in the file, half its size, float32
    parameters once loaded, outputs within float16's rounding of the full file's."""
    full = slim_checkpoint(ckpts[name], tmp_path / "full.pt")
    half = slim_checkpoint(ckpts[name], tmp_path / "half.pt", half=True)
    ckpt = read_checkpoint(half)
    assert ckpt["half"] is True and ckpt["slim"] is True
    assert all(v.dtype == torch.float16 for v in ckpt["ema"].values() if v.is_floating_point())
    assert half.stat().st_size < 0.6 * full.stat().st_size + 64_000
    a, _ = load_checkpoint(full)
    b, _ = load_checkpoint(half)
    assert all(p.dtype == torch.float32 for p in b.parameters())
    x = _input(name, 32)
    with torch.inference_mode():
        ya, yb = a(x), b(x)
    assert not torch.equal(ya, yb) and (ya - yb).abs().max() < 2e-2


@pytest.mark.parametrize("name", list(RUNS))
def test_onnx_export_parity_and_metadata(ckpts: dict[str, Path], onnx_files: dict,
                                         name: str) -> None:
    done = onnx_files[name]
    arch, _, side = RUNS[name]
    assert done.arch == arch and done.input_side == side and done.n_checked == 8
    assert 0.0 <= done.max_abs_diff < PARITY_TOL
    _, spec = load_checkpoint(ckpts[name])
    assert done.spec.input_sides == (side,) and done.spec.window == spec.window
    assert done.spec.scale == spec.scale and done.spec.arch == spec.arch
    read, meta = read_onnx_spec(done.path)
    assert read == done.spec
    assert meta["cctv_sr.format"] == ONNX_FORMAT and meta["cctv_sr.arch"] == arch
    assert meta["cctv_sr.step"] == "2"
    assert json.loads(meta["cctv_sr.arch_config"]) == read_checkpoint(ckpts[name])["arch_config"]
    assert json.loads(meta["cctv_sr.spec"]) == done.spec.to_mapping()


def test_onnx_batch_axis_is_dynamic(ckpts: dict[str, Path], onnx_files: dict) -> None:
    from cctv_sr.models.ort import create_session

    session = create_session(str(onnx_files["lrnet_t3"].path), threads=1)
    net, _ = load_checkpoint(ckpts["lrnet_t3"])
    for n in (1, 5):
        x = _input("lrnet_t3", 32, n)
        got = session.run(["out"], {"lr": x.numpy()})[0]
        with torch.inference_mode():
            assert np.abs(got - net(x).numpy()).max() < PARITY_TOL


def test_export_refuses_bad_sides_and_opsets(ckpts: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="anti-aliased"):
        export_onnx(ckpts["lrnet"], tmp_path / "x.onnx", side=40)
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(ckpts["lrnet"], tmp_path / "x.onnx", opset=9)
    with pytest.raises(ModelError, match="no checkpoint"):
        export_onnx(tmp_path / "missing.pt", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(ConfigError, match="trained on 32 px windows only"):
        export_onnx(ckpts["srgan"], tmp_path / "x.onnx", side=16)  # it would give 64 px
    smaller = export_onnx(ckpts["lrnet"], tmp_path / "s16.onnx", side=16)  # upsampled in-graph
    assert smaller.input_side == 16 and smaller.max_abs_diff < PARITY_TOL


@pytest.mark.parametrize("name", ["lrnet", "lrnet_t3", "ipunet", "srgan"])
def test_trained_sr_runs_onnx_like_the_checkpoint(ckpts: dict[str, Path], onnx_files: dict,
                                                  tmp_path: Path, name: str) -> None:
    from cctv_sr.sr import create_super_resolver

    slim = slim_checkpoint(ckpts[name], tmp_path / "slim.pt")
    crops = np.random.default_rng(3).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    outs = {}
    for kind, path in (("onnx", onnx_files[name].path), ("pt", slim), ("full", ckpts[name])):
        sr = create_super_resolver(SRConfig(name="trained", model_path=str(path),
                                            batch_size=2))
        assert sr.name == f"trained:{RUNS[name][0]}"
        assert sr.window == RUNS[name][1].get("in_frames", 1)
        outs[kind] = sr.upscale(crops, 128)
        assert outs[kind].shape == (5, 128, 128, 3) and outs[kind].dtype == np.uint8
        assert sr.upscale(crops[:, :16, :16], 64).shape == (5, 64, 64, 3)  # other sides too
    assert np.array_equal(outs["pt"], outs["full"])
    diff = np.abs(outs["onnx"].astype(np.int16) - outs["pt"].astype(np.int16)).max()
    assert diff <= 2


def test_trained_sr_refuses_non_sr_and_foreign_onnx(onnx_files: dict, tmp_path: Path) -> None:
    from cctv_sr.sr import create_super_resolver

    with pytest.raises(ModelError, match="ONNX export of 'lrhead', which is not an SR arch"):
        create_super_resolver(SRConfig(name="trained",
                                       model_path=str(onnx_files["lrhead"].path)))
    import onnx
    from onnx import TensorProto, helper

    foreign = tmp_path / "plain.onnx"  # a valid ONNX model without cctv_sr metadata
    shape = ["batch", 3, 8, 8]
    graph = helper.make_graph([helper.make_node("Identity", ["lr"], ["out"])], "plain",
                              [helper.make_tensor_value_info("lr", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
              str(foreign))
    with pytest.raises(ModelError, match="not a cctv_sr ONNX export"):
        read_onnx_spec(foreign)
    with pytest.raises(ModelError, match="not a cctv_sr ONNX export"):
        create_super_resolver(SRConfig(name="trained", model_path=str(foreign)))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load the ONNX model"):
        read_onnx_spec(junk)


def test_lrhead_method_takes_a_slim_checkpoint(ckpts: dict[str, Path], tmp_path: Path) -> None:
    from cctv_sr.evaluate.methods import create_method

    slim = slim_checkpoint(ckpts["lrmfn"], tmp_path / "mfn.pt")
    probes = np.random.default_rng(5).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    a = create_method(f"lrhead={ckpts['lrmfn']}").embed_probes(probes)
    b = create_method(f"lrhead={slim}").embed_probes(probes)
    assert a.shape == (4, 128) and np.array_equal(a, b)


def test_cli_export(ckpts: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "net.onnx"
    assert cli_main(["export", str(ckpts["lrnet"]), "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert out.is_file() and len(line.splitlines()) == 1 and "parity" in line
    assert cli_main(["export", str(ckpts["lrnet"]), "--out", str(tmp_path / "n.pt"),
                     "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "pt" and summary["bytes"] < summary["checkpoint_bytes"]
    assert summary["half"] is False
    assert cli_main(["export", str(ckpts["lrnet"]), "--out", str(tmp_path / "h.pt"), "--half",
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["half"] is True
    assert cli_main(["export", str(ckpts["lrnet"]), "--out", str(tmp_path / "h16.onnx"),
                     "--half"]) == 1
    assert "--half is for slim .pt weights" in capsys.readouterr().err
    assert cli_main(["export", str(ckpts["lrhead"]), "--out", str(tmp_path / "h.bin"),
                     "--format", "onnx", "--opset", "13", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["opset"] == 13 and summary["max_abs_diff"] < PARITY_TOL
    assert read_onnx_spec(tmp_path / "h.bin")[0].arch == "lrhead"
    assert "only SR ONNX files run in cctv-sr run" in summary["note"]
    # an LR head as ONNX: written, but the line says that cctv-sr run loads heads from .pt
    assert cli_main(["export", str(ckpts["lrhead"]), "--out", str(tmp_path / "h.onnx")]) == 0
    line = capsys.readouterr().out.strip()
    assert len(line.splitlines()) == 1 and "heads load from .pt" in line
    # the suffix and --format disagree: one line, nothing written
    for suffix, fmt in ((".onnx", "pt"), (".pt", "onnx")):
        assert cli_main(["export", str(ckpts["lrnet"]), "--out", str(tmp_path / f"x{suffix}"),
                         "--format", fmt]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"--format is {fmt}" in err
        assert not (tmp_path / f"x{suffix}").exists()
    assert cli_main(["export", str(tmp_path / "missing.pt"), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cctv-sr: error:")
    assert "no checkpoint" in err
    assert cli_main(["export", str(ckpts["lrnet"]), "--out", str(tmp_path / "x.bin")]) == 1
    assert "--format" in capsys.readouterr().err
