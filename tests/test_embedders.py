"""Face embedders: batching, shapes, normalisation, identity sanity on real faces, errors.

dlib and mobilefacenet need no shared files (their weights ship in ``face_recognition_models``
and in the package); mobilefacenet_onnx reads ``../shared/models/mobilefacenet/MobileFaceNet.onnx``
and skips without it. No
InsightFace ArcFace file is available here, so the ``arcface`` adapter is tested on a tiny
random-weight ONNX model written into a tmp dir at test time (purely to exercise the
batching / shape / normalisation code paths) and on the MobileFaceNet file (a real model with
a fixed batch of 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import shared_path

from cctv_sr.config import DetectorConfig, EmbedderConfig
from cctv_sr.data.synth import T1_FACE_BOXES
from cctv_sr.detect import create_detector
from cctv_sr.embed import EMBEDDERS, FaceEmbedder, create_embedder
from cctv_sr.errors import BackendUnavailableError, ConfigError, ContractError, ModelError
from cctv_sr.face.align import similarity_to_template, warp_face

MOBILEFACENET = "models/mobilefacenet/MobileFaceNet.onnx"
_CACHE: dict[str, FaceEmbedder] = {}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the user's model dirs or cache, and none downloads from the internet."""
    monkeypatch.delenv("CCTV_SR_MODELS", raising=False)
    monkeypatch.setenv("CCTV_SR_OFFLINE", "1")
    monkeypatch.setenv("CCTV_SR_CACHE", str(tmp_path / "cache"))


def make(name: str) -> FaceEmbedder:
    """A real embedder (cached). ``arcface`` runs the MobileFaceNet ONNX file through the
    generic InsightFace adapter (no ArcFace weights here); the two ONNX ones skip when
    ../shared is absent."""
    if name not in _CACHE:
        path = None
        if name in ("arcface", "mobilefacenet_onnx"):
            pytest.importorskip("onnxruntime")
            path = shared_path(MOBILEFACENET)
        cfg = EmbedderConfig(name=name, batch_size=4, model_path=str(path) if path else "")
        _CACHE[name] = create_embedder(cfg)
    return _CACHE[name]


def check_unit_rows(out: np.ndarray, n: int, dim: int) -> None:
    assert out.shape == (n, dim) and out.dtype == np.float32
    if n:
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def t1_crops(group_photo: np.ndarray) -> dict[int, np.ndarray]:
    """The six faces of t1 aligned at side 128 (and 112), in T1_FACE_BOXES order, from MTCNN
    landmarks; key: side -> (6, side, side, 3) BGR."""
    found = create_detector(DetectorConfig(name="mtcnn", score_thresh=0.9)).detect([group_photo])[0]
    centres = found.xyxy.reshape(-1, 2, 2).mean(1)
    kps = []
    for x, y, w, h in T1_FACE_BOXES:
        dist = np.linalg.norm(centres - [x + w / 2, y + h / 2], axis=1)
        assert dist.min() < 0.3 * w, "MTCNN missed a t1 face"
        kps.append(found.kps[int(dist.argmin())])
    return {side: np.stack([warp_face(group_photo, similarity_to_template(k, side), side)
                            for k in kps]) for side in (112, 128)}


# ---------------------------------------------------------------------------- real models


@pytest.mark.parametrize("name", ["dlib", "mobilefacenet", "mobilefacenet_onnx", "arcface"])
def test_shapes_dtypes_and_sides(name: str, t1_crops: dict[int, np.ndarray]) -> None:
    emb = make(name)
    assert emb.name == name and emb.dim == 128 and emb.version and emb.model_files
    for n in (0, 1, 3):
        check_unit_rows(emb.embed(t1_crops[128][:n]), n, emb.dim)
    check_unit_rows(emb.embed(np.zeros((0, 112, 112, 3), np.uint8)), 0, emb.dim)
    a, b = emb.embed(t1_crops[112][:3]), emb.embed(t1_crops[128][:3])
    assert np.diag(emb.similarity(a, b)).min() > 0.98
    # batching by cfg.batch_size (4) must not change results
    np.testing.assert_allclose(emb.embed(t1_crops[128])[:3], b, atol=1e-4)


@pytest.mark.parametrize("name", ["dlib", "mobilefacenet", "mobilefacenet_onnx", "arcface"])
def test_identity_sanity_on_group_photo(name: str, t1_crops: dict[int, np.ndarray]) -> None:
    """Each face's horizontally flipped crop finds its own original first (rank-1 6/6), and
    every different-person similarity sits clearly below every same-person one."""
    emb = make(name)
    crops = t1_crops[128]
    originals, flipped = emb.embed(crops), emb.embed(np.ascontiguousarray(crops[:, :, ::-1]))
    sims = emb.similarity(flipped, originals)
    assert (sims.argmax(1) == np.arange(6)).all(), sims.round(3)
    same = np.diag(sims)
    cross = emb.similarity(originals, originals)[~np.eye(6, dtype=bool)]
    # measured: dlib same >= 0.98 vs different <= 0.92 (its cosines are compressed, see
    # cctv_sr.embed.dlib_resnet); MobileFaceNet same >= 0.84 vs different <= 0.20
    margin = {"dlib": 0.03, "mobilefacenet": 0.4, "mobilefacenet_onnx": 0.4, "arcface": 0.4}[name]
    assert same.min() - cross.max() > margin, (same.round(3), cross.max())


def test_dlib_fixed_chip_transform_on_portrait(portrait_photo: np.ndarray) -> None:
    """Our fixed transform vs dlib's own alignment (HOG box, 5-point shape predictor,
    get_face_chip) on the portrait, re-aligned our way (MTCNN landmarks -> template at 128).

    The two alignments use different landmarks (eye corners + nose base vs the ArcFace five),
    so the best transform varies per face: over 286 LFW faces, the per-face map deviates from
    the mean by a median of 5.5 chip px (this turned face sits about 2.5 sd below the mean scale).
    Bounds are this face's measured values plus slack, and the fixed transform must beat a
    plain resize of the crop by a wide margin.
    """
    import dlib

    from cctv_sr.embed.dlib_resnet import CHIP_PADDING, CHIP_SIZE, DlibEmbedder, shape_predictor

    emb = make("dlib")
    assert isinstance(emb, DlibEmbedder)
    pad = 56
    big = cv2.copyMakeBorder(portrait_photo, pad, pad, pad, pad, cv2.BORDER_REFLECT101)
    rgb = cv2.cvtColor(big, cv2.COLOR_BGR2RGB)
    rects = dlib.get_frontal_face_detector()(rgb, 1)
    centre = np.array(big.shape[1::-1]) / 2
    rect = min(rects, key=lambda r: np.linalg.norm([r.center().x, r.center().y] - centre))
    predictor = shape_predictor()
    theirs = dlib.get_face_chip(rgb, predictor(rgb, rect), size=CHIP_SIZE, padding=CHIP_PADDING)

    found = create_detector(DetectorConfig(name="mtcnn", score_thresh=0.9)).detect([big])[0]
    middle = np.linalg.norm(found.xyxy.reshape(-1, 2, 2).mean(1) - centre, axis=1).argmin()
    crop = warp_face(big, similarity_to_template(found.kps[middle], 128), 128)
    ours = emb.chips(crop[None])[0]
    naive = cv2.cvtColor(cv2.resize(crop, (CHIP_SIZE, CHIP_SIZE)), cv2.COLOR_BGR2RGB)

    def mad(x: np.ndarray) -> float:
        return float(np.abs(x.astype(np.float32) - theirs.astype(np.float32)).mean())

    raw = emb.descriptors_of_chips(np.stack([theirs, ours, naive]))
    dist_ours, dist_naive = np.linalg.norm(raw[1:] - raw[0], axis=1)
    assert mad(ours) < 18.0 and mad(ours) < 0.6 * mad(naive), (mad(ours), mad(naive))
    assert dist_ours < 0.22 and dist_ours < 0.6 * dist_naive, (dist_ours, dist_naive)


def test_dlib_matches_dlibs_own_alignment_on_group_photo(
    group_photo: np.ndarray, t1_crops: dict[int, np.ndarray]
) -> None:
    """Descriptors of our chips (canonical crop + fixed transform) find the same person among
    descriptors of dlib's own chips of t1 (rank-1 6/6), within dlib's 0.6 L2 threshold."""
    import dlib

    from cctv_sr.embed.dlib_resnet import shape_predictor

    emb = make("dlib")
    rgb = cv2.cvtColor(group_photo, cv2.COLOR_BGR2RGB)
    predictor = shape_predictor()
    rects = dlib.get_frontal_face_detector()(rgb, 1)
    chips = []
    for x, y, w, h in T1_FACE_BOXES:
        cx, cy = x + w / 2, y + h / 2
        rect = min(rects, key=lambda r: np.hypot(r.center().x - cx, r.center().y - cy))
        chips.append(dlib.get_face_chip(rgb, predictor(rgb, rect), size=150, padding=0.25))
    theirs = emb.descriptors_of_chips(np.stack(chips))
    ours = emb.descriptors(t1_crops[128])
    dist = np.linalg.norm(ours[:, None] - theirs[None], axis=2)
    assert (dist.argmin(1) == np.arange(6)).all(), dist.round(3)
    assert np.diag(dist).max() < 0.6, np.diag(dist).round(3)


def test_arcface_adapter_on_mobilefacenet_file(t1_crops: dict[int, np.ndarray]) -> None:
    """The generic adapter reads a fixed batch of 1 and D=128 from a real model, and its
    (x-127.5)/127.5 input gives nearly MobileFaceNet's own (ImageNet-normalised) embeddings."""
    arc = make("arcface")
    assert (arc.dim, arc.fixed_batch, arc.input_side) == (128, 1, 112)  # type: ignore[attr-defined]
    assert "user file for arcface_r50" in arc.version
    out = arc.embed(t1_crops[128][:3])
    check_unit_rows(out, 3, 128)
    assert np.diag(arc.similarity(out, make("mobilefacenet").embed(t1_crops[128][:3]))).min() > 0.9


def test_torch_and_onnx_mobilefacenet_agree(t1_crops: dict[int, np.ndarray]) -> None:
    """The default (PyTorch, shipped weights, batched, batch norms folded) gives the ONNX
    export's embeddings: measured cosine >= 0.99999 on t1's faces."""
    torch_out = make("mobilefacenet").embed(t1_crops[128])
    onnx_out = make("mobilefacenet_onnx").embed(t1_crops[128])
    assert np.sum(torch_out * onnx_out, axis=1).min() > 0.9999


def test_shipped_mobilefacenet_resolves_from_the_package() -> None:
    """With no $CCTV_SR_MODELS and no cache (the autouse fixture), offline: the default
    embedder's weights come from inside the package, with their licence beside them."""
    emb = make("mobilefacenet")
    (path,) = emb.model_files
    assert path.parent.name == "weights" and path.parent.parent.name == "models"
    assert (path.parent / "LICENSE.MobileFaceNet.txt").is_file()
    assert emb.version.startswith("foamliu/MobileFaceNet@a6cc903 sha256:90a00ba1d8b0")


def test_default_embedder_is_mobilefacenet() -> None:
    assert EmbedderConfig().name == "mobilefacenet"


# ---------------------------------------------------------------------------- tiny ONNX model


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, value: int | bytes | str) -> bytes:
    """One protobuf field: varint for ints, length-delimited for bytes and strings."""
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _tensor(name: str, array: np.ndarray) -> bytes:
    dims = b"".join(_field(1, d) for d in array.shape)
    return dims + _field(2, 1) + _field(8, name) + _field(9, array.astype("<f4").tobytes())


def _value_info(name: str, dims: list[int | str]) -> bytes:
    shape = b"".join(_field(1, _field(1, d) if isinstance(d, int) else _field(2, d))
                     for d in dims)
    return _field(1, name) + _field(2, _field(1, _field(1, 1) + _field(2, shape)))


def _ints_attr(name: str, values: list[int]) -> bytes:
    return _field(1, name) + b"".join(_field(8, v) for v in values) + _field(20, 7)


def write_tiny_model(path: Path, batch: int | None, rng: np.random.Generator) -> tuple:
    """An ONNX file: data (N,3,112,112) -> Conv 8x8/8 (8 ch) -> Flatten -> MatMul -> fc1
    (N,16), random weights; written as raw protobuf (the onnx package is not a dependency)."""
    conv_w = rng.standard_normal((8, 3, 8, 8)).astype(np.float32)
    fc_w = rng.standard_normal((8 * 14 * 14, 16)).astype(np.float32)
    conv = (_field(1, "data") + _field(1, "conv_w") + _field(2, "c") + _field(4, "Conv")
            + _field(5, _ints_attr("kernel_shape", [8, 8]))
            + _field(5, _ints_attr("strides", [8, 8])))
    flat = _field(1, "c") + _field(2, "f") + _field(4, "Flatten")
    matmul = _field(1, "f") + _field(1, "fc_w") + _field(2, "fc1") + _field(4, "MatMul")
    n: int | str = "N" if batch is None else batch
    graph = (_field(1, conv) + _field(1, flat) + _field(1, matmul) + _field(2, "tiny")
             + _field(5, _tensor("conv_w", conv_w)) + _field(5, _tensor("fc_w", fc_w))
             + _field(11, _value_info("data", [n, 3, 112, 112]))
             + _field(12, _value_info("fc1", [n, 16])))
    model = _field(1, 8) + _field(2, "cctv-sr-test") + _field(7, graph) + _field(8, _field(2, 13))
    path.write_bytes(model)
    return conv_w, fc_w


def reference(crops: np.ndarray, conv_w: np.ndarray, fc_w: np.ndarray) -> np.ndarray:
    """What the tiny model must output for ArcFace preprocessing: RGB, (x - 127.5) / 127.5."""
    x = (crops[..., ::-1].astype(np.float64) - 127.5) / 127.5  # (N, 112, 112, 3) RGB
    patches = x.reshape(len(x), 14, 8, 14, 8, 3)
    conv = np.einsum("nyhxwc,ochw->noyx", patches, conv_w)
    out = conv.reshape(len(x), -1) @ fc_w
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("batch", [None, 1, 2])
def test_arcface_adapter_batching_and_normalisation(tmp_path: Path, batch: int | None) -> None:
    """dynamic batch (chunks of batch_size 2), fixed batch 1 (one by one) and fixed batch 2
    (last run padded) all give the reference embedding of RGB, (x-127.5)/127.5 input."""
    pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.onnx"
    conv_w, fc_w = write_tiny_model(path, batch, rng)
    emb = create_embedder(EmbedderConfig(name="arcface", batch_size=2, model_path=str(path)))
    assert emb.dim == 16 and emb.fixed_batch == batch  # type: ignore[attr-defined]
    crops = rng.integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    for n in (0, 1, 3, 5):
        out = emb.embed(crops[:n])
        check_unit_rows(out, n, 16)
        if n:
            np.testing.assert_allclose(out, reference(crops[:n], conv_w, fc_w), atol=1e-4)
    big = np.stack([cv2.resize(c, (128, 128), interpolation=cv2.INTER_CUBIC) for c in crops])
    assert np.diag(emb.similarity(emb.embed(big), emb.embed(crops))).min() > 0.9


# ---------------------------------------------------------------------------- errors


def test_unknown_embedder_name() -> None:
    with pytest.raises(ConfigError, match="unknown embedder 'facenet'"):
        create_embedder(EmbedderConfig(name="facenet"))
    assert set(EMBEDDERS) == {"dlib", "arcface", "mobilefacenet", "mobilefacenet_onnx"}


@pytest.mark.parametrize("name", sorted(EMBEDDERS))
def test_missing_model_path(name: str, tmp_path: Path) -> None:
    if name in ("arcface", "mobilefacenet_onnx"):
        pytest.importorskip("onnxruntime")
    missing = tmp_path / "nope.bin"
    with pytest.raises(ModelError, match="nope.bin"):
        create_embedder(EmbedderConfig(name=name, model_path=str(missing)))


@pytest.mark.parametrize("name", ["arcface", "mobilefacenet_onnx"])
def test_onnxruntime_missing(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(BackendUnavailableError, match="onnxruntime"):
        create_embedder(EmbedderConfig(name=name))


def test_bad_crops_and_similarity() -> None:
    emb = make("dlib")
    with pytest.raises(ContractError, match="uint8"):
        emb.embed(np.zeros((1, 112, 112, 3), np.float32))
    with pytest.raises(ContractError, match=r"crop\[None\]"):
        emb.embed(np.zeros((112, 112, 3), np.uint8))
    with pytest.raises(ContractError, match="shape"):
        emb.embed(np.zeros((1, 112, 100, 3), np.uint8))
    with pytest.raises(ConfigError, match="150x150"):
        emb.descriptors_of_chips(np.zeros((1, 112, 112, 3), np.uint8))
    assert emb.embed([]).shape == (0, 128)
    a = np.eye(3, dtype=np.float32)
    np.testing.assert_allclose(FaceEmbedder.similarity(a, a[:2]), a[:, :2])
    with pytest.raises(ContractError, match="sizes differ"):
        FaceEmbedder.similarity(a, np.ones((1, 4), np.float32))
