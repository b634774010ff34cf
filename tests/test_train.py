"""`cctv-sr train`: recipe, loop, CSV, checkpoints, exact resume, val measures (CPU, seconds).

The training set here is synthetic: smooth random colour fields with a little texture (no
faces; nothing is read from ../shared), written in the trainset cache format (raw codec).
The nets are tiny configs; MobileFaceNet is the shipped one.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from heads import write_trainset  # the synthetic trainset, shared with the head tests

from cctv_sr.cli.main import main as cli_main
from cctv_sr.errors import ConfigError
from cctv_sr.train import load_checkpoint, load_recipe, recipe_from_mapping, train
from cctv_sr.train.checkpoint import FORMAT
from cctv_sr.train.loop import lr_at
from cctv_sr.train.recipe import OptimConfig, recipe_to_mapping
from cctv_sr.train.validate import psnr, ssim

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "lrnet": {"channels": 8, "blocks": 1, "up_channels": 8},
    "lrhead": {"stem_channels": 8, "stages": [[16, 1, 2], [16, 1, 2]], "head_channels": 32,
               "in_side": 16},
    "srgan": {"blocks": 1, "channels": 8},
    "ipunet": {"base_channels": 4, "max_channels": 8, "depth": 3},
    "lrmfn": {},  # MobileFaceNet's own size (it starts from the shipped weights)
}


@pytest.fixture(scope="module")
def trainset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trainset(tmp_path_factory.mktemp("ts") / "trainset.npz")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCTV_SR_CACHE", str(tmp_path / "cache"))


def tiny(arch: str, trainset: Path, out: Path, **sections: dict[str, object]) -> dict:
    data = {
        "arch": {"name": arch, "config": TINY[arch]},
        "data": {"trainset": str(trainset), "val_fraction": 0.3, "val_faces": 10,
                 "val_sides": [12, 16]},
        "loss": {"identity_weight": 0.1} if arch not in ("lrhead", "lrmfn") else {},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "run": {"steps": 6, "batch_size": 4, "val_every": 3, "ckpt_every": 3, "log_every": 1,
                "ema_decay": 0.9, "out_dir": str(out), "threads": 1, "prefetch": 0},
    }
    for key, extra in sections.items():
        data[key] = {**data.get(key, {}), **extra}
    return data


def test_lrnet_run_writes_csv_checkpoints_and_pictures(trainset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = train(recipe_from_mapping(tiny("lrnet", trainset, out)), quiet=True)
    assert result.step == 6 and result.checkpoint == out / "ckpt_0000006.pt"
    with (out / "train.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"step", "time", "lr", "total", "pixel", "identity", "degrade_s"} <= set(rows[0])
    assert all(np.isfinite(float(r["total"])) for r in rows)
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["format"] == FORMAT and ckpt["step"] == 6 and ckpt["arch"] == "lrnet"
    assert ckpt["spec"]["colour"] == "bgr" and ckpt["spec"]["window"] == 1
    assert ckpt["spec"]["scale"] == 4 and ckpt["arch_config"]["channels"] == 8
    for key in ("model", "ema", "optimizer", "scheduler", "rng", "recipe", "metrics"):
        assert key in ckpt
    assert recipe_from_mapping(ckpt["recipe"]) == recipe_from_mapping(tiny("lrnet", trainset,
                                                                           out))
    for key in ("psnr", "ssim", "id_cos", "rank1", "psnr_bicubic", "id_cos_bicubic", "psnr@12"):
        assert key in result.metrics and np.isfinite(result.metrics[key])
    assert (out / "ckpt_0000003.pt").is_file()
    assert sorted(p.name for p in (out / "val").iterdir()) == ["step_0000003.png",
                                                               "step_0000006.png"]
    picture = cv2.imread(str(out / "val" / "step_0000006.png"))
    assert picture.shape == (8 * 128, 3 * 128, 3)
    with (out / "val.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [3, 6]
    net, spec = load_checkpoint(out / "last.pt")
    assert not net.training and spec.arch == "lrnet"
    assert torch.equal(net.state_dict()["head.weight"], ckpt["ema"]["head.weight"])
    assert net(torch.rand(2, 3, 16, 16)).shape == (2, 3, 128, 128)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(recipe_from_mapping(tiny("lrnet", trainset, out)), quiet=True)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_resume_is_exact(trainset: Path, tmp_path: Path, prefetch: int) -> None:
    """6 steps straight == 3 steps, stop, resume, 3 steps (weights, EMA, logged losses)."""
    straight = tmp_path / "straight"
    split = tmp_path / "split"
    extra = {"run": {"prefetch": prefetch}, "loss": {"perceptual_weight": 0.1}}
    train(recipe_from_mapping(tiny("ipunet", trainset, straight, **extra)), quiet=True)
    recipe = recipe_from_mapping(tiny("ipunet", trainset, split, **extra))
    first = train(recipe, stop_after=3, quiet=True)
    assert first.step == 3
    second = train(recipe, resume=True, quiet=True)
    assert second.step == 6
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(split / "last.pt", weights_only=True)
    for part in ("model", "ema"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)
    assert a["rng"]["numpy"] == b["rng"]["numpy"]

    def losses(d: Path) -> list[tuple[str, ...]]:
        with (d / "train.csv").open() as f:
            return [(r["step"], r["total"], r["pixel"]) for r in csv.DictReader(f)]

    assert losses(straight) == losses(split)


def test_lrhead_distillation(trainset: Path, tmp_path: Path, caplog) -> None:
    out = tmp_path / "head"
    data = tiny("lrhead", trainset, out, data={"teacher_cache": str(tmp_path / "teacher")})
    result = train(recipe_from_mapping(data), quiet=True)
    assert {"cos_teacher", "rank1", "cos_teacher@16", "rank1@12"} <= set(result.metrics)
    assert -1.0 <= result.metrics["cos_teacher"] <= 1.0
    assert 0.0 <= result.metrics["rank1"] <= 1.0
    cached = list((tmp_path / "teacher").glob("*.npy"))
    assert len(cached) == 1 and np.load(cached[0]).shape == (40, 128)
    with (out / "train.csv").open() as f:
        assert {"cosine", "relation"} <= set(next(csv.DictReader(f)))
    net, spec = load_checkpoint(out / "last.pt")
    assert spec.scale == 1 and net(torch.rand(3, 3, 20, 20)).shape == (3, 128)
    assert not (out / "val").exists()  # no SR picture for an embedding head
    caplog.set_level(logging.INFO, logger="cctv_sr.train.sampler")
    train(recipe_from_mapping(tiny("lrhead", trainset, tmp_path / "again",
                                   data={"teacher_cache": str(tmp_path / "teacher")},
                                   run={"steps": 2})), quiet=True)
    assert any("teacher embeddings from" in r.getMessage() for r in caplog.records)


def test_lrmfn_starts_from_the_teacher(trainset: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """arch.init = "teacher": before any step LR-MFN is bicubic + MobileFaceNet, so its first
    val cos_teacher equals the bicubic baseline's id_cos; a resumed run does not re-init."""
    from cctv_sr.archs.lrmfn import LrMfn

    inits: list[int] = []
    real_init = LrMfn.init_from

    def counted(self: LrMfn, state: dict[str, torch.Tensor]) -> None:
        inits.append(1)
        real_init(self, state)

    monkeypatch.setattr(LrMfn, "init_from", counted)
    out = tmp_path / "mfn"
    data = tiny("lrmfn", trainset, out, data={"teacher_cache": str(tmp_path / "teacher")},
                optim={"lr": 1e-12, "warmup_steps": 0},
                run={"steps": 1, "val_every": 1, "ckpt_every": 1, "ema_decay": 0.0})
    data["arch"]["init"] = "teacher"
    result = train(recipe_from_mapping(data), quiet=True)
    assert len(inits) == 1  # a fresh run starts from the teacher
    # lr ~ 0; only the BatchNorm running statistics moved (train mode, one batch of 4)
    assert abs(result.metrics["cos_teacher"] - result.metrics["id_cos_bicubic"]) < 0.05
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["recipe"]["arch"]["init"] == "teacher" and ckpt["spec"]["scale"] == 1
    resumed = dict(data, run={**data["run"], "steps": 2})
    inits.clear()
    again = train(recipe_from_mapping(resumed), resume=True, quiet=True)
    assert again.step == 2 and inits == []  # resumed from its own weights, never re-initialised
    # a T = 3 head starts from this T = 1 run (its first layer spread over the frames)
    three = tiny("lrmfn", trainset, tmp_path / "mfn3",
                 data={"teacher_cache": str(tmp_path / "teacher")}, run={"steps": 1})
    three["arch"].update(init=str(out / "last.pt"), config={"in_frames": 3})
    assert train(recipe_from_mapping(three), quiet=True).step == 1 and len(inits) == 1
    with pytest.raises(ConfigError, match="only lrmfn"):
        recipe_from_mapping({"arch": {"name": "lrnet", "init": "teacher"}})
    with pytest.raises(ConfigError, match="arch.init must be '', 'teacher' or a checkpoint"):
        recipe_from_mapping({"arch": {"name": "lrmfn", "init": "imagenet"}})


def test_arch_init_from_another_run(trainset: Path, tmp_path: Path) -> None:
    """arch.init = CKPT: a run starts from another run's EMA weights (SRGAN's adversarial
    phase from its pixel-loss phase); another arch or config is refused."""
    first = train(recipe_from_mapping(tiny("lrnet", trainset, tmp_path / "a")), quiet=True)
    start = torch.load(first.checkpoint, weights_only=True)["ema"]
    data = tiny("lrnet", trainset, tmp_path / "b", optim={"lr": 1e-12, "warmup_steps": 0},
                run={"steps": 1, "val_every": 1, "ckpt_every": 1, "ema_decay": 0.0})
    data["arch"]["init"] = str(first.checkpoint)
    train(recipe_from_mapping(data), quiet=True)
    got = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    for key, value in start.items():
        assert torch.allclose(got[key].float(), value.float(), atol=1e-6), key
    other = tiny("lrnet", trainset, tmp_path / "c")
    other["arch"]["config"] = {**other["arch"]["config"], "channels": 4}
    other["arch"]["init"] = str(first.checkpoint)
    with pytest.raises(ConfigError, match="arch.init .*a checkpoint of lrnet"):
        train(recipe_from_mapping(other), quiet=True)
    # a T = 3 lrnet starts from the T = 1 run (LrNet.init_from spreads its first layer)
    frames = tiny("lrnet", trainset, tmp_path / "d", optim={"lr": 1e-12, "warmup_steps": 0},
                  run={"steps": 1, "val_every": 1, "ckpt_every": 1, "ema_decay": 0.0})
    frames["arch"]["config"] = {**frames["arch"]["config"], "in_frames": 3}
    frames["arch"]["init"] = str(first.checkpoint)
    train(recipe_from_mapping(frames), quiet=True)
    got = torch.load(tmp_path / "d" / "last.pt", weights_only=True)["model"]
    assert got["head.weight"].shape[1] == 9
    assert torch.allclose(got["head.weight"].float().reshape(got["head.weight"].shape[0], 3, 3,
                                                             3, 3).sum(1),
                          start["head.weight"].float(), atol=1e-5)


def test_srgan_adversarial_and_perceptual_warning(trainset: Path, tmp_path: Path,
                                                  caplog) -> None:
    data = tiny("srgan", trainset, tmp_path / "gan",
                loss={"perceptual_weight": 0.1, "adversarial_weight": 1e-3,
                      "discriminator": {"channels": 4, "max_channels": 8, "blocks": 2,
                                        "dense": 8}},
                run={"steps": 2, "val_every": 2, "ckpt_every": 2})
    with caplog.at_level(logging.WARNING, logger="cctv_sr.train"):
        result = train(recipe_from_mapping(data), quiet=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "MobileFaceNet intermediate features" in warnings[0]
    ckpt = torch.load(result.checkpoint, weights_only=True)
    assert ckpt["disc"] is not None and ckpt["disc_optimizer"] is not None
    assert ckpt["spec"]["input_sides"] == [32]
    with (tmp_path / "gan" / "train.csv").open() as f:
        assert {"perceptual", "adversarial", "disc"} <= set(next(csv.DictReader(f)))


def test_shipped_recipes_load() -> None:
    for name in ("lrnet", "lrhead", "lrmfn", "srgan", "ipunet"):
        recipe = load_recipe(REPO / "pipelines" / f"train_{name}.toml", ["run.steps=7"])
        assert recipe.arch == name and recipe.run.steps == 7
        assert recipe_from_mapping(recipe_to_mapping(recipe)) == recipe
    burst = load_recipe(REPO / "pipelines" / "train_lrnet_burst.toml")
    assert burst.arch == "lrnet" and burst.arch_config.in_frames == 5 and burst.frames == 5
    assert (REPO / burst.arch_init).is_file()  # starts from the shipped single-frame net
    recipe = load_recipe(REPO / "pipelines" / "train_lrnet.toml",
                         ["arch.config.channels=16", "data.degrade.side_range=12,20"])
    assert recipe.arch_config.channels == 16 and recipe.data.degrade.side_range == (12, 20)


def test_recipe_errors() -> None:
    with pytest.raises(ConfigError, match="did you mean"):
        recipe_from_mapping({"arch": {"name": "lrnet"}, "run": {"stepz": 3}})
    with pytest.raises(ConfigError, match="not trainable"):
        recipe_from_mapping({"arch": {"name": "srgan_d"}})
    with pytest.raises(ConfigError, match="in_frames"):
        recipe_from_mapping({"arch": {"name": "lrnet", "config": {"in_frames": 3}},
                             "data": {"in_frames": 5}})
    with pytest.raises(ConfigError, match="channels"):
        recipe_from_mapping({"arch": {"name": "lrnet", "config": {"channels": 0}}})


def test_schedule_and_metrics() -> None:
    cfg = OptimConfig(lr=1.0, warmup_steps=2, min_lr_ratio=0.1)
    assert [round(lr_at(cfg, s, 12), 4) for s in (0, 1, 2)] == [0.5, 1.0, 1.0]
    assert lr_at(cfg, 11, 12) == pytest.approx(0.1)
    step = OptimConfig(lr=1.0, schedule="step", step_size=3, gamma=0.5)
    assert [lr_at(step, s, 10) for s in (0, 2, 3, 6)] == [1.0, 1.0, 0.5, 0.25]
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(ssim(x, x), torch.ones(2)) and float(psnr(x, x)[0]) == 100.0
    rng = np.random.default_rng(0)
    a = cv2.resize(rng.uniform(0, 1, (8, 8)).astype(np.float32), (64, 64),
                   interpolation=cv2.INTER_CUBIC).clip(0, 1)
    b = (a + rng.normal(0, 0.05, a.shape)).clip(0, 1).astype(np.float32)

    def blur(t: np.ndarray) -> np.ndarray:  # the 11x11 sigma 1.5 window, valid part only
        return cv2.GaussianBlur(t, (11, 11), 1.5)[5:-5, 5:-5]

    mu_a, mu_b = blur(a), blur(b)
    va, vb, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    ref = ((2 * mu_a * mu_b + 1e-4) * (2 * cov + 9e-4) /
           ((mu_a**2 + mu_b**2 + 1e-4) * (va + vb + 9e-4))).mean()
    got = ssim(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])
    assert float(got[0]) == pytest.approx(float(ref), abs=1e-5) and float(ref) < 0.95
    mse = float(((a - b) ** 2).mean())
    assert float(psnr(torch.from_numpy(a)[None], torch.from_numpy(b)[None])[0]) == \
        pytest.approx(-10 * np.log10(mse), abs=1e-3)


def test_cli_train_and_resume(trainset: Path, tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[arch]\nname = "lrnet"\n[arch.config]\nchannels = 8\nblocks = 1\n'
                      f'up_channels = 8\n[data]\ntrainset = "{trainset}"\nval_fraction = 0.3\n'
                      f'val_faces = 4\n[loss]\nidentity_weight = 0.0\n[run]\nsteps = 2\n'
                      f'batch_size = 2\nval_every = 2\nckpt_every = 2\nprefetch = 0\n')
    out = tmp_path / "cli"
    assert cli_main(["train", str(recipe), "--out", str(out), "--quiet"]) == 0
    assert (out / "last.pt").is_file() and "step 2" in capsys.readouterr().out
    assert cli_main(["train", str(recipe), "--out", str(out), "--quiet", "--resume",
                     "--set", "run.steps=3"]) == 0
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 3
    assert cli_main(["train", str(recipe), "--out", str(tmp_path / "none"), "--resume",
                     "--quiet"]) == 1
    # slim ship weights (cctv-sr export) hold no optimizer state: refused, in one line
    from cctv_sr.train.export import slim_checkpoint

    slim = tmp_path / "slim"
    slim_checkpoint(out / "last.pt", slim / "last.pt")
    capsys.readouterr()
    assert cli_main(["train", str(recipe), "--out", str(slim), "--resume", "--quiet",
                     "--set", "run.steps=4"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is slim ship weights, it cannot be resumed" in err
    assert "resume from the run's last.pt" in err


def test_trained_checkpoint_runs_as_sr_backend_and_eval_method(trainset: Path,
                                                               tmp_path: Path) -> None:
    """`--sr trained --sr-model last.pt` and `eval identify --methods trained=last.pt` run the
    EMA weights of a checkpoint; an lrhead checkpoint is refused (it is not SR)."""
    from cctv_sr.config import SRConfig
    from cctv_sr.errors import ModelError
    from cctv_sr.evaluate.methods import create_method, parse_methods
    from cctv_sr.sr import create_super_resolver

    out = tmp_path / "run"
    train(recipe_from_mapping(tiny("lrnet", trainset, out, run={"steps": 2})), quiet=True)
    sr = create_super_resolver(SRConfig(name="trained", model_path=str(out / "last.pt"),
                                        batch_size=3))
    crops = np.random.default_rng(0).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
    up = sr.upscale(crops, 128)
    assert up.shape == (5, 128, 128, 3) and up.dtype == np.uint8
    net, _ = load_checkpoint(out / "last.pt")
    with torch.inference_mode():
        ref = net(torch.from_numpy(crops[:1]).permute(0, 3, 1, 2).float() / 255.0)
    ref8 = ref.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(up[:1], ref8)  # batching by sr.batch_size changes nothing
    assert sr.upscale(crops, 64).shape == (5, 64, 64, 3)
    name = f"trained={out / 'last.pt'}"
    assert parse_methods(f"hr,{name}") == ["hr", name]
    assert create_method(name).restore(crops, np.zeros((5, 128, 128, 3), np.uint8)).shape == (
        5, 128, 128, 3)
    with pytest.raises(ConfigError, match="no such checkpoint"):
        parse_methods("trained=/nonexistent.pt")
    with pytest.raises(ConfigError, match="needs a checkpoint"):
        create_super_resolver(SRConfig(name="trained"))
    head = tmp_path / "head"
    train(recipe_from_mapping(tiny("lrhead", trainset, head, run={"steps": 2})), quiet=True)
    with pytest.raises(ModelError, match="not an SR architecture"):
        create_super_resolver(SRConfig(name="trained", model_path=str(head / "last.pt")))
