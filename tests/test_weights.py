"""Model manifests and weight resolution: parsing, hashes, search order, real local downloads,
and the ``cctv-sr models`` catalogue."""

from __future__ import annotations

import argparse
import hashlib
import http.server
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import shared_path

from cctv_sr.cli.models import COLUMNS, format_table, run_models
from cctv_sr.errors import ModelError
from cctv_sr.models.catalog import describe_models, fetch_model
from cctv_sr.models.manifest import (
    ModelFile,
    ModelManifest,
    get_manifest,
    load_manifest_file,
    load_manifests,
    parse_manifest,
)
from cctv_sr.models.resolve import cache_root, model_cache_dir, resolve_file, sha256_file

PAYLOAD = b"cctv-sr test weights\n" * 100
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
COMMIT_URL = re.compile(
    r"^https://(github\.com/[^/]+/[^/]+/raw|media\.githubusercontent\.com/media/[^/]+/[^/]+)"
    r"/[0-9a-f]{40}/"
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test sees the user's model dirs or cache, and none downloads from the internet."""
    monkeypatch.delenv("CCTV_SR_MODELS", raising=False)
    monkeypatch.setenv("CCTV_SR_OFFLINE", "1")
    cache = tmp_path / "cache"
    monkeypatch.setenv("CCTV_SR_CACHE", str(cache))
    return cache


def _manifest(url: str = "", sha: str = PAYLOAD_SHA, **file_fields: object) -> ModelManifest:
    entry = ModelFile(name="toy.bin", sha256=sha, size=len(PAYLOAD), url=url,
                      source="made by the test")
    entry = replace(entry, **file_fields)
    return ModelManifest(name="toy", task="sr", backend="test", version="1", license="MIT",
                         description="test model", default_file="toy.bin", files=(entry,))


def _write(path: Path, data: bytes = PAYLOAD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------ shipped manifests


def test_every_shipped_manifest_parses() -> None:
    manifests = load_manifests()
    expected = {"mtcnn", "yunet_2023mar", "yunet_n", "scrfd_500m", "scrfd_2.5g", "scrfd_10g",
                "espcn_x4", "fsrcnn_x4", "lapsrn_x4", "lapsrn_x8", "mobilefacenet", "dlib",
                "arcface_r50"}
    assert expected <= set(manifests)
    backends = {m.backend for m in manifests.values()}
    assert {"mtcnn", "yunet", "scrfd", "opencv_sr", "dlib", "arcface", "mobilefacenet"} <= backends
    for m in manifests.values():
        assert m.license and m.description and m.version
        assert m.file().name == m.default_file
        for f in m.files:
            if f.url:
                assert COMMIT_URL.match(f.url), f.url
                assert f.sha256 and f.size
            assert f.url or f.package or f.source


def test_licences_as_documented() -> None:
    for name in ("scrfd_500m", "scrfd_2.5g", "scrfd_10g", "arcface_r50"):
        assert "non-commercial research only" in get_manifest(name).license
    assert "research-grade" in get_manifest("mobilefacenet").license
    assert get_manifest("mtcnn").license == "MIT"
    assert get_manifest("yunet_n").license == "Apache-2.0"
    assert get_manifest("dlib").license.startswith("CC0")
    for name in ("espcn_x4", "fsrcnn_x4", "lapsrn_x4", "lapsrn_x8"):
        m = get_manifest(name)
        assert m.license == "Apache-2.0" and m.task == "sr"
        assert m.spec_value("scale") == int(name[-1])


def test_unverifiable_files_have_no_download() -> None:
    entry = get_manifest("scrfd_10g").file()
    assert entry.name == "det_10g.onnx" and not entry.sha256 and not entry.url
    assert "buffalo_l.zip" in entry.source


def _shared_index() -> dict[str, Path]:
    root = shared_path("models")
    return {p.name: p for p in root.rglob("*") if p.is_file()}


_VERIFIABLE = sorted(
    (m.name, f.name) for m in load_manifests().values() for f in m.files
    if f.sha256 and not f.package
)


@pytest.mark.shared
@pytest.mark.parametrize(("manifest_name", "file_name"), _VERIFIABLE)
def test_manifest_hash_matches_shared(manifest_name: str, file_name: str) -> None:
    index = _shared_index()
    if file_name not in index:
        pytest.skip(f"{file_name} not in ../shared/models")
    entry = get_manifest(manifest_name).file(file_name)
    path = index[file_name]
    assert sha256_file(path) == entry.sha256, path
    assert path.stat().st_size == entry.size, path


def test_package_files_resolve_without_import() -> None:
    if importlib.util.find_spec("mtcnn") is None:
        pytest.skip("mtcnn package not installed")
    was_imported = "mtcnn" in sys.modules
    for name in ("pnet.lz4", "rnet.lz4", "onet.lz4"):
        path = resolve_file("mtcnn", name, allow_download=False)
        assert path.parts[-3:] == ("assets", "weights", name)
        assert sha256_file(path) == get_manifest("mtcnn").file(name).sha256
    assert was_imported or "mtcnn" not in sys.modules


def test_weights_shipped_in_the_package_resolve_and_match() -> None:
    """Every file the project ships in cctv_sr/models/weights resolves offline to its sha256,
    and every .pt there has a manifest and a model card (mobilefacenet's is README.md)."""
    weights = Path(__file__).resolve().parents[1] / "cctv_sr" / "models" / "weights"
    listed = set()
    for m in load_manifests().values():
        for entry in m.files:
            if entry.package == "cctv_sr":
                listed.add(Path(entry.package_path).name)
                path = resolve_file(m.name, entry.name, allow_download=False)
                assert sha256_file(path) == entry.sha256 and path.stat().st_size == entry.size
    shipped = {p.name for p in weights.glob("*.pt")}
    assert shipped and shipped <= listed
    for name in shipped - {"mobilefacenet.pt"}:
        assert (weights / name).with_suffix(".md").is_file(), name


def test_dlib_package_files_resolve() -> None:
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models not installed")
    for entry in get_manifest("dlib").files:
        path = resolve_file("dlib", entry.name, allow_download=False)
        assert path.name == entry.name and sha256_file(path) == entry.sha256


@pytest.mark.shared
def test_models_env_flat_and_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    flat = shared_path("models/yunet_2023mar")
    monkeypatch.setenv("CCTV_SR_MODELS", str(flat))
    assert resolve_file("yunet_2023mar") == flat / "face_detection_yunet_2023mar.onnx"
    assert resolve_file("yunet_2023mar", "yunet_s_dynamic.onnx").parent == flat
    monkeypatch.setenv("CCTV_SR_MODELS", str(flat.parent))
    assert resolve_file("yunet_2023mar") == flat / "face_detection_yunet_2023mar.onnx"


def test_describe_and_fetch_without_network() -> None:
    rows = {r.name: r for r in describe_models()}
    assert set(rows) == set(load_manifests())
    assert rows["scrfd_10g"].location.startswith("not found (supply it yourself")
    assert rows["espcn_x4"].location == "not found (downloads on first use)"
    if importlib.util.find_spec("mtcnn") is not None:
        assert rows["mtcnn"].location.endswith("pnet.lz4")
        assert [p.name for p in fetch_model("mtcnn")] == ["pnet.lz4", "rnet.lz4", "onet.lz4"]
    with pytest.raises(ModelError, match="buffalo_l.zip"):
        fetch_model("scrfd_10g")


# ------------------------------------------------------------------------------ validation


def test_unknown_model_suggests() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'yunet_2023': did you mean"):
        get_manifest("yunet_2023")
    with pytest.raises(ModelError, match=r"no file 'nope.onnx'.*face_detection_yunet"):
        get_manifest("yunet_2023mar").file("nope.onnx")


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"task": "classify"}, "task"),
        ({"licence": "MIT"}, "licence"),
        ({"default_file": "other.bin"}, "default_file"),
        ({"files": []}, "files"),
        ({"files": [{"name": "a.bin", "sha256": "xyz", "source": "s"}]}, "sha256"),
        ({"files": [{"name": "a.bin", "url": "https://x/a.bin"}]}, "sha256"),
        ({"files": [{"name": "a.bin", "sha256": PAYLOAD_SHA, "size": -1, "source": "s"}]},
         "size"),
    ],
)
def test_bad_manifest_names_file_and_field(patch: dict[str, object], field: str) -> None:
    data: dict[str, object] = {
        "name": "toy", "task": "sr", "backend": "b", "version": "1", "license": "MIT",
        "description": "d", "default_file": "a.bin",
        "files": [{"name": "a.bin", "sha256": PAYLOAD_SHA, "source": "s"}],
    }
    data.update(patch)
    with pytest.raises(ModelError, match=rf"^bad\.toml.*'{field}'"):
        parse_manifest(data, "bad.toml")


def test_load_manifest_file_reports_toml_errors(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("name = [", encoding="utf-8")
    with pytest.raises(ModelError, match="broken.toml: not valid TOML"):
        load_manifest_file(path)


# ------------------------------------------------------------------------------ resolution order


def test_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = importlib.util.find_spec("email")
    assert spec is not None and spec.submodule_search_locations
    pkg_file = Path(list(spec.submodule_search_locations)[0]) / "__init__.py"
    m = _manifest(sha=sha256_file(pkg_file), package="email", package_path="__init__.py")
    data = pkg_file.read_bytes()
    explicit = _write(tmp_path / "mine" / "whatever.bin", b"user weights")
    models = tmp_path / "models"
    in_models = _write(models / "toy" / "toy.bin", data)
    in_cache = _write(model_cache_dir() / "toy" / "toy.bin", data)
    monkeypatch.setenv("CCTV_SR_MODELS", str(models))

    assert resolve_file(m, explicit=explicit) == explicit
    assert resolve_file(m, explicit="") == in_models
    in_models.unlink()
    flat = _write(models / "toy.bin", data)
    assert resolve_file(m) == flat
    monkeypatch.delenv("CCTV_SR_MODELS")
    assert resolve_file(m) == pkg_file
    assert resolve_file(replace(m, files=(replace(m.files[0], package=""),))) == in_cache


def test_cache_env_is_the_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cctv_sr.evaluate.oracle import eval_cache_dir

    monkeypatch.delenv("CCTV_SR_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "cctv-sr"
    assert model_cache_dir() == tmp_path / "xdg" / "cctv-sr" / "models"
    assert eval_cache_dir() == tmp_path / "xdg" / "cctv-sr" / "eval"
    monkeypatch.setenv("CCTV_SR_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    assert model_cache_dir() == tmp_path / "c" / "models"
    assert eval_cache_dir() == tmp_path / "c" / "eval"


def test_explicit_missing_and_foreign(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "nope.pb"
    with pytest.raises(ModelError, match=re.escape(str(missing))):
        resolve_file(_manifest(), explicit=missing)
    own = _write(tmp_path / "own.bin", b"different weights")
    with caplog.at_level(logging.INFO, logger="cctv_sr.models.resolve"):
        assert resolve_file(_manifest(), explicit=own) == own
    assert "sha256 differs" in caplog.text


@pytest.mark.parametrize("where", ["models", "cache"])
def test_mismatching_local_file_is_rejected(
    where: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = b"corrupt"
    if where == "models":
        monkeypatch.setenv("CCTV_SR_MODELS", str(tmp_path / "models"))
        _write(tmp_path / "models" / "toy.bin", bad)
    else:
        _write(model_cache_dir() / "toy" / "toy.bin", bad)
    with pytest.raises(ModelError) as info:
        resolve_file(_manifest())
    assert PAYLOAD_SHA in str(info.value)
    assert hashlib.sha256(bad).hexdigest() in str(info.value)


def test_models_env_must_be_a_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CCTV_SR_MODELS", str(tmp_path / "absent"))
    with pytest.raises(ModelError, match="CCTV_SR_MODELS is not a directory"):
        resolve_file(_manifest())


def test_offline_error_is_one_helpful_line() -> None:
    entry = get_manifest("espcn_x4").file()
    for kwargs in ({}, {"allow_download": False}):
        with pytest.raises(ModelError) as info:
            resolve_file("espcn_x4", **kwargs)
        text = str(info.value)
        assert "\n" not in text
        assert entry.name in text and entry.url in text
        assert "CCTV_SR_MODELS" in text and "model_path" in text


def test_no_url_error_says_where_to_get_it() -> None:
    with pytest.raises(ModelError) as info:
        resolve_file("scrfd_10g", allow_download=True)
    text = str(info.value)
    assert "det_10g.onnx" in text and "buffalo_l.zip" in text and "CCTV_SR_MODELS" in text


def test_sha256_file_recomputes_after_change(tmp_path: Path) -> None:
    path = _write(tmp_path / "f.bin")
    assert sha256_file(path) == PAYLOAD_SHA
    path.write_bytes(b"changed!")
    os.utime(path, ns=(1, 1))
    assert sha256_file(path) == hashlib.sha256(b"changed!").hexdigest()


# ------------------------------------------------------------------------------ real downloads


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt: str, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on 127.0.0.1 (free port) serving a temp folder."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(_QuietHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[misc]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _leftovers(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


def test_download_success(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    _write(root / "toy.bin")
    m = _manifest(url=f"{base}/toy.bin")
    path = resolve_file(m, allow_download=True, progress=False)
    assert path == model_cache_dir() / "toy" / "toy.bin"
    assert path.read_bytes() == PAYLOAD and sha256_file(path) == PAYLOAD_SHA
    assert [p.name for p in _leftovers(model_cache_dir() / "toy")] == ["toy.bin"]
    (root / "toy.bin").unlink()  # a second call is served from the cache
    assert resolve_file(m, allow_download=True, progress=False) == path


def test_download_env_offline_blocks(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    _write(root / "toy.bin")
    with pytest.raises(ModelError, match="CCTV_SR_OFFLINE"):
        resolve_file(_manifest(url=f"{base}/toy.bin"), progress=False)


def test_download_sha_mismatch_leaves_nothing(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    _write(root / "toy.bin", b"tampered")
    with pytest.raises(ModelError) as info:
        resolve_file(_manifest(url=f"{base}/toy.bin"), allow_download=True, progress=False)
    assert PAYLOAD_SHA in str(info.value)
    assert hashlib.sha256(b"tampered").hexdigest() in str(info.value)
    assert [p for p in _leftovers(model_cache_dir()) if p.is_file()] == []


def test_download_404(http_root: tuple[str, Path]) -> None:
    base, _ = http_root
    url = f"{base}/missing.bin"
    with pytest.raises(ModelError) as info:
        resolve_file(_manifest(url=url), allow_download=True, progress=False)
    text = str(info.value)
    assert url in text and "404" in text and "CCTV_SR_MODELS" in text and "\n" not in text
    assert "toy.bin" in text and "'toy'" in text  # the file and the model it is for
    assert [p for p in _leftovers(model_cache_dir()) if p.is_file()] == []


class _BrokenHandler(_QuietHandler):
    """``/cut``: promises the whole payload, sends 10 bytes and closes; ``/drop``: closes
    without answering."""

    def do_GET(self) -> None:
        if self.path == "/cut":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:10])
            self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(2)


@pytest.fixture
def broken_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BrokenHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("path", ["/cut", "/drop"])
def test_download_cut_short_names_the_file(broken_server: str, path: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CCTV_SR_OFFLINE")
    m = _manifest(url=f"{broken_server}{path}")
    with pytest.raises(ModelError) as info:
        fetch_model(m, progress=False)  # the `cctv-sr models fetch` path
    text = str(info.value)
    assert "toy.bin" in text and "'toy'" in text and path in text and "\n" not in text
    assert [p for p in _leftovers(model_cache_dir()) if p.is_file()] == []


# ------------------------------------------------------------------------------ models list


def test_models_list_rows_say_how_to_use_each_model() -> None:
    rows = {r.name: r for r in describe_models()}
    assert [u.cli for u in rows["yunet_2023mar"].serves] == ["--detector yunet"]
    assert [u.cli for u in rows["mtcnn"].serves] == ["--detector mtcnn"]
    assert [u.cli for u in rows["lapsrn_x8"].serves] == ["--sr lapsrn_x8"]
    assert [u.cli for u in rows["dlib"].serves] == ["--embedder dlib"]
    other = rows["yunet_n"].serves
    assert [(u.backend, u.default) for u in other] == [("yunet", False)]
    assert other[0].cli == "--detector yunet --detector-model yunet_n_dynamic.onnx"
    assert {u.backend for u in rows["scrfd_10g"].serves} == {"scrfd"}
    # the project's own weights: the backend that loads each, never its arch.name row (a
    # network, not a use of the file)
    assert [u.cli for u in rows["lrmfn"].serves] == ["--set head.name=lrmfn"]
    assert [u.cli for u in rows["lrnet"].serves] == ["--sr lrnet"]
    assert [u.cli for u in rows["ipunet"].serves] == ["--sr ipunet"]
    assert [u.cli for u in rows["srgan"].serves] == ["--sr srgan"]
    assert not any(u.kind == "arch" for r in rows.values() for u in r.serves)
    # the burst head fuses 5 frames; cctv-sr run embeds one crop at a time, so no run use
    assert rows["lrmfn_t5"].serves == ()
    assert all(r.serves for name, r in rows.items() if name != "lrmfn_t5")


def test_models_list_table_has_a_header_and_whole_words() -> None:
    rows = describe_models()
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["MODEL", "TASK", "USE", "WITH", "LICENCE", "FILE"]
    start = lines[0].index("LICENCE")
    width = dict(COLUMNS)["LICENCE"]
    licences: dict[str, list[str]] = {}
    model = ""
    for line in lines[1:]:
        model = line[:start].split()[0] if line[:1].strip() else model
        licences.setdefault(model, []).append(line[start:start + width].strip())
    assert set(licences) == {r.name for r in rows}
    for r in rows:  # each licence in full, wrapped between words
        assert " ".join(p for p in licences[r.name] if p) == " ".join(r.license.split())


def test_models_list_json_has_the_same_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_models(argparse.Namespace(models_cmd="list", json=True)) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    yunet = rows["yunet_2023mar"]
    assert yunet["license"] == get_manifest("yunet_2023mar").license
    assert yunet["license_url"].startswith("https://")
    assert yunet["serves"] == [{"kind": "detector", "backend": "yunet", "default": True,
                                "cli": "--detector yunet"}]


def test_models_list_into_a_closed_pipe_is_quiet() -> None:
    code = "import sys; from cctv_sr.cli.main import main; sys.exit(main(['models', 'list']))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head -0`: gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err
