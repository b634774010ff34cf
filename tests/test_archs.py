"""The project's architectures (cctv_sr/archs/): shapes, sizes and costs as documented, the
registry rows, config checks, the global skips, and VGG19's torchvision layout (CPU, seconds).

Every default config runs one forward at batch 1; its parameter count and MACs must equal the
numbers written in its class docstring (read from the docstring, so the two cannot drift).
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cctv_sr.archs import ARCHS, arch_class, build_arch, config_class
from cctv_sr.archs.ipunet import IpuNet, IpuNetConfig
from cctv_sr.archs.lrhead import LrHead, LrHeadConfig
from cctv_sr.archs.lrmfn import LrMfn, LrMfnConfig
from cctv_sr.archs.lrnet import LrNet, LrNetConfig
from cctv_sr.archs.profile import count_macs, count_params, time_forward
from cctv_sr.archs.srgan import (
    SrganConfig,
    SrganDiscriminator,
    SrganDiscriminatorConfig,
    SrganGenerator,
)
from cctv_sr.archs.vgg import LAYER_INDEX, Vgg19Features, Vgg19FeaturesConfig
from cctv_sr.errors import ConfigError, ContractError, ModelError
from cctv_sr.models import registry

# registry name -> (class, default input shape at batch 1, output shape at batch 1)
DEFAULTS: dict[str, tuple[type[nn.Module], tuple[int, ...], tuple[int, ...]]] = {
    "srgan": (SrganGenerator, (1, 3, 32, 32), (1, 3, 128, 128)),
    "srgan_d": (SrganDiscriminator, (1, 3, 128, 128), (1,)),
    "ipunet": (IpuNet, (1, 3, 16, 16), (1, 3, 128, 128)),
    "lrnet": (LrNet, (1, 3, 16, 16), (1, 3, 128, 128)),
    "vgg19_features": (Vgg19Features, (1, 3, 128, 128), (1, 512, 4, 4)),
    "lrhead": (LrHead, (1, 3, 16, 16), (1, 128)),
    "lrmfn": (LrMfn, (1, 3, 16, 16), (1, 128)),
}

# VGG19's torchvision ``features`` (configuration 64,64,M,128,128,M,256x4,M,512x4,M,512x4,M):
# convs at these Sequential indices, (in, out) channels each, 3x3 kernels with bias
VGG19_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256),
               (12, 256, 256), (14, 256, 256), (16, 256, 256), (19, 256, 512), (21, 512, 512),
               (23, 512, 512), (25, 512, 512), (28, 512, 512), (30, 512, 512), (32, 512, 512),
               (34, 512, 512)]
VGG19_KEYS = [pair for i, cin, cout in VGG19_CONVS
              for pair in ((f"features.{i}.weight", (cout, cin, 3, 3)),
                           (f"features.{i}.bias", (cout,)))]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def documented(cls: type, what: str) -> float:
    """The number before ``parameters`` or ``M MACs`` in the class docstring's size line."""
    pattern = r"([\d,]+) parameters" if what == "params" else r"([\d,.]+) M MACs"
    found = re.search(pattern, cls.__doc__ or "")
    assert found, f"{cls.__name__} docstring has no '{what}' figure"
    return float(found.group(1).replace(",", ""))


# ------------------------------------------------------------------------ default configs


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_default_config_forward_matches_its_docstring(name: str) -> None:
    cls, in_shape, out_shape = DEFAULTS[name]
    torch.manual_seed(0)
    net = build_arch(name).eval()
    assert type(net) is cls
    with torch.no_grad():
        out = net(torch.rand(in_shape))
    assert out.shape == out_shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert count_params(net) == documented(cls, "params")
    assert round(count_macs(net, in_shape) / 1e6, 1) == documented(cls, "macs")


# ------------------------------------------------------------------------ smaller configs


def test_srgan_small_config_any_side_and_frames() -> None:
    net = SrganGenerator(SrganConfig(blocks=2, channels=16, scale=2, in_frames=3)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 9, 20, 20))
    assert out.shape == (2, 3, 40, 40) and torch.isfinite(out).all()
    disc = SrganDiscriminator(SrganDiscriminatorConfig(channels=8, max_channels=32, dense=16,
                                                       pool_side=2)).eval()
    with torch.no_grad():
        for side in (40, 128):
            logits = disc(torch.rand(2, 3, side, side))
            assert logits.shape == (2,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("side", [12, 23, 40])
def test_ipunet_takes_any_lr_side(side: int) -> None:
    cfg = IpuNetConfig(in_frames=2, out_side=64, base_channels=8, max_channels=32, depth=4)
    net = IpuNet(cfg).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 6, side, side))
    assert out.shape == (2, 3, 64, 64) and torch.isfinite(out).all()
    assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == cfg.dropout_blocks


@pytest.mark.parametrize("side", [12, 32, 40])
def test_lrnet_window_any_side_to_128(side: int) -> None:
    net = LrNet(LrNetConfig(in_frames=3, channels=16, blocks=2, up_channels=8)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 9, side, side))
    assert out.shape == (2, 3, 128, 128) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_lrnet_temporal_net_starts_from_the_single_frame_one() -> None:
    torch.manual_seed(0)
    cfg = dict(channels=16, blocks=2, up_channels=8)
    one = LrNet(LrNetConfig(in_frames=1, **cfg)).eval()
    x = torch.rand(2, 3, 20, 20)
    with torch.no_grad():
        want = one(x)
        for frames in (3, 5):
            net = LrNet(LrNetConfig(in_frames=frames, **cfg))
            net.init_from(one.state_dict())
            assert torch.allclose(net.eval()(x.repeat(1, frames, 1, 1)), want, atol=1e-5)
        back = LrNet(LrNetConfig(in_frames=1, **cfg))
        back.init_from(net.state_dict())  # and a T = 5 net gives a T = 1 one
        assert torch.allclose(back.eval()(x), want, atol=1e-5)
    with pytest.raises(ModelError, match="not an LrNet state dict"):
        LrNet(LrNetConfig(in_frames=5, **cfg)).init_from({"head.weight": torch.zeros(16, 4, 3, 3)})
    with pytest.raises(ModelError, match="of this config"):
        LrNet(LrNetConfig(in_frames=5, channels=8, blocks=2, up_channels=8)).init_from(
            one.state_dict())


def test_lrhead_window_and_normalisation() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 9, 20, 20)
    head = LrHead(LrHeadConfig(in_frames=3)).eval()
    raw = LrHead(LrHeadConfig(in_frames=3, l2_normalize=False)).eval()
    raw.load_state_dict(head.state_dict())
    with torch.no_grad():
        emb, vec = head(x), raw(x)
    assert emb.shape == (4, 128) and torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.allclose(emb, F.normalize(vec, dim=1), atol=1e-6)
    assert LrHeadConfig(in_side=48).final_side == 6


def test_lrmfn_starts_as_its_teacher_for_any_window() -> None:
    """Initialised from a MobileFaceNet state dict, LR-MFN is bicubic + that MobileFaceNet
    (BGR -> RGB, ImageNet normalisation); a T = 3 window of one crop gives the same vector."""
    from cctv_sr.embed.mobilefacenet_net import MobileFaceNet

    torch.manual_seed(0)
    teacher = MobileFaceNet().eval()
    x = torch.rand(2, 3, 20, 20)
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    up = F.interpolate(x, size=(112, 112), mode="bicubic", align_corners=False)
    with torch.no_grad():
        want = F.normalize(teacher((up.flip(1) - mean) / std), dim=1)
        for frames in (1, 3):
            head = LrMfn(LrMfnConfig(in_frames=frames))
            head.init_from(teacher.state_dict())
            got = head.eval()(x.repeat(1, frames, 1, 1))
            assert torch.allclose(got, want, atol=1e-5), frames
        # a trained LR-MFN of another window length (keys net.*) starts a T = 5 one the same way
        for source in (1, 3):
            trained = LrMfn(LrMfnConfig(in_frames=source))
            trained.init_from(teacher.state_dict())
            five = LrMfn(LrMfnConfig(in_frames=5))
            five.init_from(trained.state_dict())
            assert torch.allclose(five.eval()(x.repeat(1, 5, 1, 1)), want, atol=1e-5), source
    with pytest.raises(ModelError, match="not a MobileFaceNet state dict"):
        LrMfn().init_from({"conv1.0.weight": torch.zeros(64, 3, 3, 3)})
    with pytest.raises(ModelError, match="not a MobileFaceNet state dict"):  # 4 channels
        LrMfn(LrMfnConfig(in_frames=5)).init_from({"conv1.0.weight": torch.zeros(64, 4, 3, 3)})
    with pytest.raises(ConfigError, match="in_side"):
        LrMfnConfig(in_side=96)


def test_training_step_gives_finite_gradients() -> None:
    torch.manual_seed(0)
    nets = (LrNet(LrNetConfig(channels=8, blocks=1, up_channels=4)),
            IpuNet(IpuNetConfig(out_side=32, base_channels=4, depth=3)),
            LrHead(LrHeadConfig(stages=((16, 1, 2), (32, 1, 2)), head_channels=32)))
    for net in nets:
        net.train()
        net(torch.rand(2, 3, 14, 14)).square().mean().backward()
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)


# ------------------------------------------------------------------------ global skips


def _zero_(module: nn.Module) -> None:
    for p in module.parameters():
        nn.init.zeros_(p)


def test_lrnet_global_skip_is_bicubic_of_the_centre_frame() -> None:
    net = LrNet(LrNetConfig(in_frames=3, channels=8, blocks=1, up_channels=4)).eval()
    _zero_(net)
    x = torch.rand(2, 9, 18, 18)
    expected = F.interpolate(x[:, 3:6], size=(128, 128), mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(net(x), expected, atol=1e-6)


def test_ipunet_global_skip_is_bicubic_of_the_centre_frame() -> None:
    net = IpuNet(IpuNetConfig(in_frames=3, out_side=32, base_channels=4, depth=3)).eval()
    _zero_(net.out)
    x = torch.rand(2, 9, 16, 16)
    expected = F.interpolate(x[:, 3:6], size=(32, 32), mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(net(x), expected, atol=1e-6)


# ------------------------------------------------------------------------ VGG19


def test_vgg19_loads_a_torchvision_state_dict_strictly() -> None:
    net = Vgg19Features()
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == VGG19_KEYS
    state = {k: torch.zeros(shape) for k, shape in VGG19_KEYS}
    state["features.34.bias"] = torch.randn(512)
    classifier = {"classifier.0.weight": torch.zeros(4096, 25088)[:1]}  # dropped on load
    net.load_torchvision_state_dict({**state, **classifier})
    assert torch.equal(net.state_dict()["features.34.bias"], state["features.34.bias"])
    net.load_state_dict(state, strict=True)
    assert count_params(net) == 20_024_384


def test_vgg19_named_activations() -> None:
    assert LAYER_INDEX["relu2_2"] == 8 and LAYER_INDEX["relu5_4"] == 35
    assert LAYER_INDEX["pool5"] == 36 and LAYER_INDEX["conv3_1"] == 10
    torch.manual_seed(0)
    net = Vgg19Features(Vgg19FeaturesConfig(bgr_input=False, normalize=False)).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        acts = net.activations(x, ["relu5_4", "conv2_2", "relu2_2"])
        assert list(acts) == ["relu5_4", "conv2_2", "relu2_2"]
        assert acts["relu2_2"].shape == (1, 128, 16, 16) and acts["relu5_4"].shape == (1, 512, 2, 2)
        assert torch.equal(acts["conv2_2"], net.features[:8](x))  # not overwritten by relu2_2
        assert torch.equal(acts["relu2_2"], F.relu(acts["conv2_2"]))
    with pytest.raises(ConfigError, match="unknown layer"):
        net.activations(x, ["relu6_1"])


def test_vgg19_input_handling() -> None:
    torch.manual_seed(0)
    bgr = torch.rand(1, 3, 32, 32)
    plain = Vgg19Features(Vgg19FeaturesConfig(bgr_input=False, normalize=False)).eval()
    project = Vgg19Features().eval()
    project.load_state_dict(plain.state_dict())
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(project(bgr), plain((bgr.flip(1) - mean) / std), atol=1e-5)


# ------------------------------------------------------------------------ registry, configs


def test_registry_rows_and_build_arch() -> None:
    assert list(ARCHS) == list(DEFAULTS) == registry.names("arch")
    for name, (cls, _, _) in DEFAULTS.items():
        assert arch_class(name) is cls and cls.config_class is config_class(name)  # type: ignore[attr-defined]
    small = SrganConfig(blocks=1, channels=8)
    assert build_arch("srgan", small).config is small
    with pytest.raises(ConfigError, match="takes a LrNetConfig, got SrganConfig"):
        build_arch("lrnet", small)
    with pytest.raises(ConfigError, match="did you mean 'lrnet'"):
        build_arch("lrnett")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: SrganConfig(scale=3), r"srgan\.scale must be 2, 4 or 8"),
        (lambda: SrganConfig(blocks=0), r"srgan\.blocks must be >= 1"),
        (lambda: SrganDiscriminatorConfig(channels=64, max_channels=32), "max_channels"),
        (lambda: IpuNetConfig(out_side=100), r"multiple of 2\*\*depth = 32"),
        (lambda: IpuNetConfig(dropout=1.5), r"ipunet\.dropout must be \[0\.0, 1\.0\]"),
        (lambda: IpuNetConfig(dropout_blocks=6), "dropout_blocks"),
        (lambda: LrNetConfig(in_frames=0), r"lrnet\.in_frames must be >= 1"),
        (lambda: LrNetConfig(res_scale=2.0), "res_scale"),
        (lambda: LrHeadConfig(in_side=30), "divisible by 8"),
        (lambda: LrHeadConfig(stages=((64, 1, 3),)), "stride 1 or 2"),
        (lambda: LrHeadConfig(stages=()), "must not be empty"),
    ],
)
def test_bad_configs_raise_config_error(make: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make()  # type: ignore[operator]


def test_wrong_input_raises_contract_error() -> None:
    net = LrNet(LrNetConfig(in_frames=3, channels=8, blocks=1, up_channels=4))
    with pytest.raises(ContractError, match=r"lrnet: input must be float \(N, 9, H, W\)"):
        net(torch.rand(1, 3, 16, 16))
    with pytest.raises(ContractError, match="lrhead"):
        LrHead()(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))


# ------------------------------------------------------------------------ profile helpers


def test_count_macs_and_params_of_known_layers() -> None:
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)  # out 8x5x5, 2 in per group
    assert count_macs(conv, (3, 4, 10, 10)) == 8 * 5 * 5 * 2 * 9
    deconv = nn.ConvTranspose2d(4, 6, 4, 2, padding=1)  # every input meets 6*16 weights
    assert count_macs(deconv, (2, 4, 5, 5)) == 4 * 5 * 5 * 6 * 16
    linear = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert count_macs(linear, (7, 3, 2, 2)) == 60
    net = nn.Sequential(conv, nn.BatchNorm2d(8)).train()
    net[1].requires_grad_(False)
    assert count_params(net) == 8 * 2 * 9 + 8
    assert count_params(net, trainable_only=False) == 8 * 2 * 9 + 8 + 16
    count_macs(net, (1, 4, 10, 10))
    assert net.training  # restored
    with pytest.raises(ConfigError, match="input_shape"):
        count_macs(net, (0, 4, 10, 10))
    assert time_forward(conv, torch.rand(1, 4, 10, 10), repeats=2, warmup=0) > 0
