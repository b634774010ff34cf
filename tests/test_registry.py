"""The one backend registry and ModelSpec: one table, one build path, typed specs."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from cctv_sr.config import DetectorConfig, EmbedderConfig, SRConfig
from cctv_sr.detect import DETECTORS
from cctv_sr.embed import EMBEDDERS
from cctv_sr.errors import BackendUnavailableError, ConfigError, ContractError, ModelError
from cctv_sr.identity.setup import calibrated_thresholds
from cctv_sr.models import registry
from cctv_sr.models.manifest import get_manifest, load_manifests, parse_manifest
from cctv_sr.models.spec import SPEC_KEYS, ModelSpec
from cctv_sr.sr import SR_BACKENDS, create_super_resolver

TASK_OF_KIND = {"detector": "detect", "sr": "sr", "embedder": "embed", "head": "embed"}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CCTV_SR_MODELS", raising=False)
    monkeypatch.setenv("CCTV_SR_OFFLINE", "1")
    monkeypatch.setenv("CCTV_SR_CACHE", str(tmp_path / "cache"))


# ------------------------------------------------------------------------------ the table


def test_family_tables_are_views_of_the_one_table() -> None:
    assert dict(DETECTORS) == {b.name: b.target for b in registry.entries("detector")}
    assert dict(SR_BACKENDS) == {b.name: b.target for b in registry.entries("sr")}
    assert dict(EMBEDDERS) == {b.name: b.target for b in registry.entries("embedder")}
    assert set(registry.KINDS) == {"detector", "sr", "embedder", "head", "arch"}


@pytest.mark.parametrize("entry", registry.BACKENDS, ids=lambda b: f"{b.kind}:{b.name}")
def test_default_manifests_exist_and_fit_their_kind(entry: registry.Backend) -> None:
    manifest = registry.default_manifest(entry.kind, entry.name)
    if entry.manifest is None:
        assert manifest is None
        return
    assert manifest is not None and manifest.task == TASK_OF_KIND[entry.kind]
    # a row is named after its backend, its arch, or (a variant such as lrmfn_t5) its manifest
    assert entry.name in (manifest.backend, manifest.model_spec().arch, manifest.name) or \
        manifest.backend == "opencv_sr"


def test_import_is_lazy() -> None:
    code = ("import sys, cctv_sr.detect, cctv_sr.sr, cctv_sr.embed, cctv_sr.models.registry; "
            "print(sorted(m for m in sys.modules if m.split('.')[-1] in "
            "('yunet', 'scrfd', 'mtcnn', 'opencv_sr', 'bicubic', 'dlib_resnet', 'onnx_arcface')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("kind", "name", "pattern"),
    [
        ("detector", "yunett", r"^detector\.name: unknown detector 'yunett' \(did you mean "
                               r"'yunet'\? known: mtcnn, yunet, scrfd\)$"),
        ("sr", "espnc", r"^sr\.name: unknown super-resolver 'espnc' \(did you mean 'espcn'\?"),
        ("embedder", "insightface", r"^embedder\.name: unknown embedder 'insightface' "
                                    r"\(known: dlib"),
        ("arch", "srgann", r"^arch\.name: unknown model architecture 'srgann' "
                           r"\(did you mean 'srgan'\?"),
    ],
)
def test_unknown_names_suggest_and_name_the_setting(kind: str, name: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        registry.lookup(kind, name)


def test_unknown_kind() -> None:
    with pytest.raises(ConfigError, match="unknown kind 'detectors'"):
        registry.names("detectors")


# ------------------------------------------------------------------------------ building


@dataclass(frozen=True)
class _ArchConfig:
    name: str = "toy"
    model_path: str = ""


class _ToyArch:
    """Stands in for a project architecture: built like every backend, (cfg, path)."""

    name = "toy"

    def __init__(self, cfg: _ArchConfig, model_path: Path | None) -> None:
        self.cfg, self.model_path = cfg, model_path
        self.model_files = () if model_path is None else (model_path,)


def test_arch_kind_builds_like_every_backend(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_table", dict(registry._table))  # leave the real one be
    registry.register(registry.Backend("arch", "toy", f"{__name__}:_ToyArch"))
    weights = tmp_path / "toy.pt"
    weights.write_bytes(b"w")
    built = registry.build("arch", _ArchConfig(model_path=str(weights)), _ToyArch)
    assert built.model_path == weights and "toy" in registry.names("arch")
    assert registry.build("arch", _ArchConfig(), _ToyArch).model_path is None
    registry.register(registry.Backend("arch", "toy", f"{__name__}:_ToyArch"))  # same row: ok
    with pytest.raises(ConfigError, match="already registered"):
        registry.register(registry.Backend("arch", "toy", f"{__name__}:_ArchConfig"))
    with pytest.raises(ContractError, match="is not a"):
        registry.load_class("arch", "toy", int)


def test_explicit_model_path_wins_for_every_kind(tmp_path: Path) -> None:
    missing = tmp_path / "absent.bin"
    for cfg, kind in ((DetectorConfig(name="yunet", model_path=str(missing)), "detector"),
                      (SRConfig(name="espcn", model_path=str(missing)), "sr"),
                      (EmbedderConfig(name="dlib", model_path=str(missing)), "embedder")):
        with pytest.raises(ModelError, match=r"absent\.bin: model file not found"):
            registry.resolve_weights(kind, cfg)


def test_default_weights_resolve_through_the_manifest() -> None:
    with pytest.raises(ModelError, match="ESPCN_x4.pb for model 'espcn_x4'.*CCTV_SR_OFFLINE"):
        create_super_resolver(SRConfig(name="espcn"))
    assert registry.resolve_weights("sr", SRConfig(name="bicubic")) is None
    assert registry.resolve_weights("detector", DetectorConfig(name="mtcnn")) is None


def test_missing_dependency_comes_before_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(BackendUnavailableError, match="onnxruntime"):
        registry.build("embedder", EmbedderConfig(name="arcface"), object)


def test_calibrated_thresholds_come_from_the_default_manifest() -> None:
    dlib = get_manifest("dlib")
    t = calibrated_thresholds("dlib")
    assert (t.far_1e2, t.far_1e3) == (dlib.spec_value("threshold_far_1e-2"),
                                      dlib.spec_value("threshold_far_1e-3"))
    with pytest.raises(ModelError, match="arcface_r50.*no calibrated thresholds"):
        calibrated_thresholds("arcface")


# ------------------------------------------------------------------------------ ModelSpec


def test_specs_of_shipped_manifests() -> None:
    espcn = get_manifest("espcn_x4").model_spec()
    assert (espcn.arch, espcn.scale, espcn.colour, espcn.window) == ("espcn", 4, "bgr", 1)
    assert espcn.license == "Apache-2.0"
    mfn = get_manifest("mobilefacenet").model_spec()
    assert (mfn.input_sides, mfn.colour) == ((112,), "rgb")
    assert get_manifest("mtcnn").model_spec().arch == "mtcnn"  # no [spec]: the manifest name
    for manifest in load_manifests().values():
        spec = manifest.model_spec()
        assert ModelSpec.from_mapping(spec.to_mapping()) == spec
        assert set(spec.to_mapping()) == set(SPEC_KEYS)
    # keys the spec does not type stay readable
    assert get_manifest("dlib").spec_value("embedding_dim") == 128


def test_spec_from_string_metadata() -> None:
    """ONNX metadata holds only strings: the same spec reads back from them."""
    spec = ModelSpec("face_x4", scale=4, input_sides=(16, 32), window=5, colour="rgb",
                     value_range="0-1 float", license="MIT")
    strings = {k: ",".join(map(str, v)) if isinstance(v, list) else str(v)
               for k, v in spec.to_mapping().items()}
    assert ModelSpec.from_mapping({**strings, "producer": "cctv-sr"}) == spec


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({}, "arch"),
        ({"arch": "a", "scale": 0}, "scale"),
        ({"arch": "a", "scale": True}, "scale"),
        ({"arch": "a", "scale": "four"}, "scale"),
        ({"arch": "a", "window": 0}, "window"),
        ({"arch": "a", "input_sides": [16, -1]}, "input_sides"),
        ({"arch": "a", "colour": "yuv"}, "colour"),
    ],
)
def test_bad_spec_names_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ModelError, match=f"'{key}'"):
        ModelSpec.from_mapping(data)


def test_bad_spec_in_a_manifest_fails_when_read() -> None:
    data: dict[str, object] = {
        "name": "toy", "task": "sr", "backend": "b", "version": "1", "license": "MIT",
        "description": "d", "default_file": "a.bin", "files": [{"name": "a.bin", "source": "s"}],
        "spec": {"arch": "toy", "scale": 0},
    }
    with pytest.raises(ModelError, match=r"^bad\.toml: field 'spec'.*'scale'"):
        parse_manifest(data, "bad.toml")
    data["spec"] = {"arch": "toy", "scale": 2, "input_sides": [16, 32]}
    assert parse_manifest(data, "ok.toml").model_spec().input_sides == (16, 32)
