"""``cctv-sr eval identify``: degradation, metrics, set selection, the whole benchmark on a tiny
tree cut from the insightface group photo (docs/EVAL.md sections 1 and 2)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED

from cctv_sr.cli.eval import add_eval_parser, run_eval
from cctv_sr.config import SRConfig
from cctv_sr.data.degrade import burst, degrade, jitter_matrix, make_probes, seed_of
from cctv_sr.data.lfw import build_set, load_dataset, scan_tree, select_probe_identities
from cctv_sr.data.synth import T1_FACE_BOXES
from cctv_sr.errors import ConfigError
from cctv_sr.evaluate import IdentifyConfig, format_report, run_identify
from cctv_sr.evaluate.methods import (
    create_method,
    default_sr_name,
    method_names,
    parse_methods,
    select_frames,
)
from cctv_sr.evaluate.metrics import genuine_impostor, rank1, tar_at_far, threshold_at_far
from cctv_sr.evaluate.oracle import nearest_centre


def _crop(seed: int = 0) -> np.ndarray:
    """A smooth 128 'face' with detail at several scales (random fields blurred)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (128, 128, 3)).astype(np.uint8)
    return cv2.addWeighted(cv2.GaussianBlur(base, (0, 0), 6), 0.7,
                           cv2.GaussianBlur(base, (0, 0), 1.5), 0.3, 0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cctv-sr")
    add_eval_parser(p.add_subparsers(dest="command", required=True))
    return p


# --------------------------------------------------------------------------------- degrade


@pytest.mark.parametrize("size", [16, 24, 32])
def test_degrade_deterministic_per_file_name(size: int) -> None:
    crop = _crop()
    a = degrade(crop, size, seed_of("Jane_Doe_0002.jpg"))
    b = degrade(crop.copy(), size, seed_of("Jane_Doe_0002.jpg"))
    c = degrade(crop, size, seed_of("Jane_Doe_0003.jpg"))
    assert a.shape == (size, size, 3) and a.dtype == np.uint8
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()  # own noise per file
    # the degradation is mild enough to keep the picture: close to a plain area resize
    plain = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    assert np.abs(a.astype(float) - plain).mean() < 12


def test_seed_of_is_stable() -> None:
    assert seed_of("x.jpg") == seed_of("x.jpg") != seed_of("y.jpg")
    assert 0 <= seed_of("x.jpg") < 2**64
    # --seed N draws another set; seed 0 is the benchmark's fixed set, unchanged
    assert seed_of("x.jpg", 0) == seed_of("x.jpg") != seed_of("x.jpg", 1) != seed_of("x.jpg", 2)
    crops = np.stack([_crop(0)])
    assert not np.array_equal(make_probes(crops, ["x.jpg"], 16, seed=1),
                              make_probes(crops, ["x.jpg"], 16))


def test_burst_frames_own_jitter_shared_seed() -> None:
    crop = _crop(1)
    seed = seed_of("John_Roe_0004.jpg")
    frames = burst(crop, 16, seed, 5)
    assert frames.shape == (5, 16, 16, 3) and frames.dtype == np.uint8
    assert burst(crop, 16, seed, 5).tobytes() == frames.tobytes()  # same seed, same burst
    assert burst(crop, 16, seed_of("other.jpg"), 5).tobytes() != frames.tobytes()
    for i in range(5):
        for j in range(i + 1, 5):
            assert not np.array_equal(frames[i], frames[j])
    # every frame is still the same face: near the still probe of that crop
    still = degrade(crop, 16, seed)
    assert all(np.abs(f.astype(float) - still).mean() < 15 for f in frames)


def test_jitter_bounds() -> None:
    # 0.5 LR pixel at s=16 is 4 HR pixels on the 128 crop; rotation about the centre.
    m = jitter_matrix(128, 16, 0.5, -0.5, 0.0)
    np.testing.assert_allclose(m, [[1, 0, 4], [0, 1, -4]], atol=1e-9)
    r = jitter_matrix(128, 16, 0.0, 0.0, 2.0)
    centre = r @ np.array([63.5, 63.5, 1.0])
    np.testing.assert_allclose(centre, [63.5, 63.5], atol=1e-9)


def test_make_probes_shapes() -> None:
    crops = np.stack([_crop(0), _crop(1)])
    names = ["a.jpg", "b.jpg"]
    assert make_probes(crops, names, 24).shape == (2, 24, 24, 3)
    assert make_probes(crops, names, 16, frames=5).shape == (2, 5, 16, 16, 3)
    assert make_probes(crops[:0], [], 16).shape == (0, 16, 16, 3)
    np.testing.assert_array_equal(make_probes(crops, names, 24)[1],
                                  degrade(crops[1], 24, seed_of("b.jpg")))
    with pytest.raises(ConfigError):
        degrade(crops[0], 200, 0)
    with pytest.raises(ConfigError):
        make_probes(crops, ["a.jpg"], 16)


# --------------------------------------------------------------------------------- metrics

SCORES = np.array([[0.9, 0.2, 0.1],
                   [0.3, 0.8, 0.4],
                   [0.5, 0.6, 0.1],
                   [0.2, 0.1, 0.7]])
LABELS = np.array([0, 1, 0, 2])


def test_rank1_by_hand() -> None:
    # argmax per row: 0, 1, 1, 2 -> probes 0, 1 and 3 are right.
    assert rank1(SCORES, LABELS) == pytest.approx(0.75)
    assert rank1(SCORES, np.array([1, 0, 2, 1])) == 0.0
    assert math.isnan(rank1(np.zeros((0, 3)), np.zeros(0, int)))


def test_tar_at_far_by_hand() -> None:
    genuine, impostor = genuine_impostor(SCORES, LABELS)
    np.testing.assert_allclose(genuine, [0.9, 0.8, 0.5, 0.7])
    # impostors: each probe against every OTHER gallery identity, 4 x 2 of them
    np.testing.assert_allclose(sorted(impostor, reverse=True),
                               [0.6, 0.4, 0.3, 0.2, 0.2, 0.1, 0.1, 0.1])
    # FAR 1e-2 of 8 impostors: floor(0.08) = 0 may pass -> threshold = the top impostor 0.6;
    # genuine above 0.6: 0.9, 0.8, 0.7 -> 3 of 4
    assert threshold_at_far(impostor, 1e-2) == pytest.approx(0.6)
    assert tar_at_far(SCORES, LABELS, 1e-2) == pytest.approx(0.75)
    # FAR 0.25: 2 impostors may pass -> threshold = the third largest, 0.3 -> all genuine pass
    assert threshold_at_far(impostor, 0.25) == pytest.approx(0.3)
    assert tar_at_far(SCORES, LABELS, 0.25) == pytest.approx(1.0)
    # FAR 0.5: 4 may pass; the 5th largest is 0.2 (tied): 3 impostors lie above it (<= 4)
    assert threshold_at_far(impostor, 0.5) == pytest.approx(0.2)
    assert np.mean(impostor > 0.2) <= 0.5


def test_tar_at_far_many_impostors() -> None:
    # 1 probe per identity over 101 identities: 101 * 100 impostors; FAR 1e-2 lets the
    # top floor(101) = 101 impostors through. Impostors 0..10099 / 10100, genuine at 0.995.
    n = 101
    scores = np.zeros((n, n))
    values = iter(np.arange(n * (n - 1)) / (n * (n - 1)))
    for i in range(n):
        for j in range(n):
            scores[i, j] = 0.995 if i == j else next(values)
    labels = np.arange(n)
    _, imp = genuine_impostor(scores, labels)
    thr = threshold_at_far(imp, 1e-2)
    assert np.sum(imp > thr) == 101
    assert tar_at_far(scores, labels, 1e-2) == 1.0  # 0.995 > thr (about 0.99)
    scores[np.arange(50), np.arange(50)] = 0.0  # 50 genuine pairs now fail
    assert tar_at_far(scores, labels, 1e-2) == pytest.approx(51 / 101)


# --------------------------------------------------------------------------------- dataset


def _tree(root: Path, counts: dict[str, int]) -> None:
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for k in range(n, 0, -1):  # created out of order on purpose
            (root / name / f"{name}_{k:04d}.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not an identity")


def test_dataset_rules(tmp_path: Path) -> None:
    _tree(tmp_path, {"Ann": 1, "Bob": 2, "Cid": 12, "Dee": 3, "Eve": 5})
    (tmp_path / "Bob" / "readme.txt").write_text("not an image")
    ids = scan_tree(tmp_path)
    assert [i.name for i in ids] == ["Bob", "Cid", "Dee", "Eve"]  # >= 2 images
    cid = ids[1]
    assert len(cid.images) == 10  # at most 10, the first 10 by file name
    assert [p.name for p in cid.images] == [f"Cid_{k:04d}.jpg" for k in range(1, 11)]
    ds = load_dataset(tmp_path)
    assert [g.path.name for g in ds.gallery] == ["Bob_0001.jpg", "Cid_0001.jpg", "Dee_0001.jpg",
                                                 "Eve_0001.jpg"]
    assert len(ds.probes) == ds.total_probes == 1 + 9 + 2 + 4
    assert all(p.path.name != ds.gallery[p.identity].path.name for p in ds.probes)


def test_max_probes_keeps_whole_identities_and_full_gallery(tmp_path: Path) -> None:
    counts = {f"P{i:02d}": 2 + i % 5 for i in range(30)}
    _tree(tmp_path, counts)
    ids = scan_tree(tmp_path)
    full = build_set(tmp_path, ids)
    for n in (1, 7, 20, 40):
        ds = load_dataset(tmp_path, max_probes=n)
        assert len(ds.gallery) == 30  # the gallery always keeps every identity
        assert ds.gallery == full.gallery
        assert len(ds.probes) >= n
        chosen = {p.name for p in ds.probes}
        for name in chosen:  # whole identities: every probe of a chosen identity is in
            assert sum(p.name == name for p in ds.probes) == counts[name] - 1
        # the last identity taken was needed to reach n
        assert len(ds.probes) - (max(counts[c] for c in chosen) - 1) < n
        assert load_dataset(tmp_path, max_probes=n) == ds  # deterministic
    assert select_probe_identities(ids, 7) <= select_probe_identities(ids, 20)
    assert len(load_dataset(tmp_path, max_probes=10_000).probes) == full.total_probes


def test_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        scan_tree(tmp_path / "missing")
    with pytest.raises(ConfigError, match=">= 2 images"):
        scan_tree(tmp_path)
    _tree(tmp_path / "x", {"Solo": 1})
    with pytest.raises(ConfigError):
        scan_tree(tmp_path / "x")


# --------------------------------------------------------------------------------- methods


def test_methods_registry() -> None:
    assert {"hr", "bicubic", "espcn", "fsrcnn", "lapsrn", "lapsrn_x8", "default"} <= set(
        method_names())
    assert parse_methods("hr, bicubic,hr") == ["hr", "bicubic"]
    with pytest.raises(ConfigError, match="did you mean 'bicubic'"):
        parse_methods("bicubik")
    with pytest.raises(ConfigError):
        parse_methods(" , ")
    assert default_sr_name() == SRConfig().name


def test_methods_restore_shapes() -> None:
    gt = np.stack([_crop(0), _crop(1)])
    probes = make_probes(gt, ["a.jpg", "b.jpg"], 16, frames=5)
    hr, bic, dflt = create_method("hr"), create_method("bicubic"), create_method("default")
    assert hr.frames == bic.frames == 1
    centre = select_frames(bic, probes)
    np.testing.assert_array_equal(centre, probes[:, 2])
    np.testing.assert_array_equal(hr.restore(centre, gt), gt)
    out = bic.restore(centre, gt)
    assert out.shape == (2, 128, 128, 3) and out.dtype == np.uint8
    assert dflt.restore(centre, gt).shape == (2, 128, 128, 3)

    class Multi:
        frames = 5

    assert select_frames(Multi(), probes).shape == (2, 5, 16, 16, 3)  # type: ignore[arg-type]
    stills = make_probes(gt, ["a.jpg", "b.jpg"], 16)
    assert select_frames(Multi(), stills).shape == (2, 1, 16, 16, 3)  # type: ignore[arg-type]


def test_nearest_centre() -> None:
    boxes = np.array([[0, 0, 50, 50], [100, 100, 150, 150], [200, 0, 250, 40]], np.float32)
    assert nearest_centre(boxes, (250, 250, 3)) == 1
    assert nearest_centre(np.zeros((0, 4), np.float32), (250, 250, 3)) is None


# --------------------------------------------------------------------------------- CLI errors


def test_cli_errors(tmp_path: Path) -> None:
    p = _parser()
    with pytest.raises(ConfigError, match="not a directory"):
        run_eval(p.parse_args(["eval", "identify", "--data", str(tmp_path / "nope")]))
    with pytest.raises(ConfigError, match=">= 2 images"):
        run_eval(p.parse_args(["eval", "identify", "--data", str(tmp_path)]))
    _tree(tmp_path / "t", {"A": 2, "B": 2})
    with pytest.raises(ConfigError, match="unknown method 'sharpen'"):
        run_eval(p.parse_args(["eval", "identify", "--data", str(tmp_path / "t"),
                               "--methods", "hr,sharpen"]))
    with pytest.raises(ConfigError, match="unknown embedder 'facenet'"):
        run_eval(p.parse_args(["eval", "identify", "--data", str(tmp_path / "t"),
                               "--embedder", "facenet"]))
    with pytest.raises(ConfigError, match="--sizes"):
        run_eval(p.parse_args(["eval", "identify", "--data", str(tmp_path / "t"),
                               "--sizes", "2"]))
    args = p.parse_args(["eval", "identify", "--data", "x", "--burst"])
    assert args.burst == 5 and args.sizes == (16, 24, 32) and args.workers == 0


# --------------------------------------------------------------------------- end to end


def _pick_embedder(monkeypatch: pytest.MonkeyPatch) -> str:
    """The default embedder (MobileFaceNet, shipped); ../shared's models add the YuNet oracle."""
    models = SHARED / "models"
    if models.is_dir():
        monkeypatch.setenv("CCTV_SR_MODELS", str(models))
    return "mobilefacenet"


def _group_tree(root: Path, photo: np.ndarray) -> None:
    """6 people x 3 'LFW' images (250x250, face ~115 px in the centre), each its own framing:
    small shifts, scales and a mirror image."""
    variants = [(0.0, 0.0, 1.0, False), (0.05, -0.04, 1.08, False), (-0.04, 0.03, 0.93, True)]
    pad = 400
    padded = cv2.copyMakeBorder(photo, pad, pad, pad, pad, cv2.BORDER_REFLECT101)
    for i, (x, y, w, h) in enumerate(T1_FACE_BOXES):
        name = f"Person_{chr(ord('A') + i)}"
        (root / name).mkdir(parents=True)
        for k, (dx, dy, scale, flip) in enumerate(variants, start=1):
            side = 2.2 * w * scale
            cx, cy = x + w / 2 + dx * side + pad, y + h / 2 + dy * side + pad
            x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
            crop = padded[y0:y0 + int(round(side)), x0:x0 + int(round(side))]
            img = cv2.resize(crop, (250, 250), interpolation=cv2.INTER_AREA)
            if flip:
                img = cv2.flip(img, 1)
            cv2.imwrite(str(root / name / f"{name}_{k:04d}.jpg"), img,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])


@pytest.mark.slow
def test_identify_end_to_end(tmp_path: Path, group_photo: np.ndarray,
                             monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    embedder = _pick_embedder(monkeypatch)
    monkeypatch.setenv("CCTV_SR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CCTV_SR_OFFLINE", "1")
    root = tmp_path / "faces"
    _group_tree(root, group_photo)
    out = tmp_path / "eval.json"
    args = _parser().parse_args([
        "eval", "identify", "--data", str(root), "--methods", "hr,bicubic", "--sizes", "16,32",
        "--embedder", embedder, "--workers", "2", "--json", str(out), "--quiet"])
    assert run_eval(args) == 0
    printed = capsys.readouterr().out
    assert "6 identities in the gallery, 12 probes" in printed
    assert "images without a face" in printed and "oracle alignment:" in printed

    data = json.loads(out.read_text())
    assert {"rows", "identities", "probes", "seconds"} <= set(data)
    assert data["identities"] == 6 and data["probes"] == 12 and data["no_face"] == 0
    assert data["detector"] in ("yunet", "mtcnn")
    assert len(data["rows"]) == 2 * 2  # methods x sizes x 1 embedder
    for row in data["rows"]:
        assert set(row) == {"method", "size", "embedder", "rank1", "tar_at_far_1e-2"}
        assert row["embedder"] == embedder and 0.0 <= row["rank1"] <= 1.0
    rank = {(r["method"], r["size"]): r["rank1"] for r in data["rows"]}
    assert rank[("hr", 16)] == rank[("hr", 32)] >= 0.8
    assert rank[("hr", 16)] >= rank[("bicubic", 16)]
    assert list((tmp_path / "cache" / "eval").glob("aligned-*.npz"))

    # In-process, from the alignment cache: the same figures (probes do not depend on how the
    # work was split), and bursts run too.
    cfg = IdentifyConfig(data=root, methods=("hr", "bicubic"), sizes=(16, 32),
                         embedders=(embedder,), workers=1, quiet=True)
    again = run_identify(cfg)
    assert [r.to_json() for r in again.rows] == data["rows"]
    bursts = run_identify(IdentifyConfig(data=root, methods=("bicubic",), sizes=(16,),
                                         embedders=(embedder,), workers=1, burst=3, quiet=True))
    assert bursts.burst == 3 and len(bursts.rows) == 1
    assert "bursts of 3 frames" in format_report(bursts)


# ------------------------------------------------------------------ lrhead=CKPT (embeddings)


@pytest.fixture(scope="module")
def head_ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-step lrhead checkpoint and a 2-step lrnet one, trained by cctv_sr.train on the
    synthetic trainset of tests/test_train.py (teacher: the shipped MobileFaceNet)."""
    from test_train import tiny, write_trainset

    from cctv_sr.train import recipe_from_mapping, train

    root = tmp_path_factory.mktemp("heads")
    trainset = write_trainset(root / "trainset.npz")
    mp = pytest.MonkeyPatch()
    mp.setenv("CCTV_SR_CACHE", str(root / "cache"))
    try:
        out = {}
        for arch in ("lrhead", "lrnet"):
            train(recipe_from_mapping(tiny(arch, trainset, root / arch, run={"steps": 2})),
                  quiet=True)
            out[arch] = root / arch / "last.pt"
    finally:
        mp.undo()
    return out


def test_lrhead_method_embeds_probes(head_ckpts: dict[str, Path]) -> None:
    from cctv_sr.errors import ModelError
    from cctv_sr.evaluate.methods import EmbeddingMethod

    name = f"lrhead={head_ckpts['lrhead']}"
    assert parse_methods(f"hr,{name},{name}") == ["hr", name]
    m = create_method(name)
    assert isinstance(m, EmbeddingMethod) and m.space == "mobilefacenet" and m.frames == 1
    gt = np.stack([_crop(0), _crop(1), _crop(2)])
    names = ["a.jpg", "b.jpg", "c.jpg"]
    stills = make_probes(gt, names, 16)
    emb = m.embed_probes(select_frames(m, stills))
    assert emb.shape == (3, 128) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    bursts = make_probes(gt, names, 16, frames=5)  # window 1: the centre frame
    np.testing.assert_array_equal(m.embed_probes(select_frames(m, bursts)),
                                  m.embed_probes(bursts[:, 2]))
    assert m.embed_probes(stills[:0]).shape == (0, 128)
    assert "mobilefacenet" in m.describe(16)

    with pytest.raises(ConfigError, match="no such checkpoint"):
        parse_methods("lrhead=/nonexistent/last.pt")
    with pytest.raises(ModelError, match="checkpoint of 'lrnet', not of an LR identity head"):
        create_method(f"lrhead={head_ckpts['lrnet']}")
    with pytest.raises(ModelError, match="not an SR architecture"):
        create_method(f"trained={head_ckpts['lrhead']}")


@pytest.mark.slow
def test_identify_scores_lrhead_in_its_space_only(
        tmp_path: Path, group_photo: np.ndarray, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], head_ckpts: dict[str, Path]) -> None:
    embedder = _pick_embedder(monkeypatch)
    monkeypatch.setenv("CCTV_SR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CCTV_SR_OFFLINE", "1")
    root = tmp_path / "faces"
    _group_tree(root, group_photo)
    head = f"lrhead={head_ckpts['lrhead']}"
    out = tmp_path / "eval.json"
    args = _parser().parse_args([
        "eval", "identify", "--data", str(root), "--methods", f"bicubic,{head}", "--sizes",
        "16,24", "--embedder", embedder, "--workers", "2", "--open-set", "--json", str(out),
        "--quiet"])
    assert run_eval(args) == 0
    assert "LR probe -> embedding in the mobilefacenet space" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["method_spaces"] == {head: "mobilefacenet"}
    rows = {(r["method"], r["size"]): r for r in data["rows"]}
    for s in (16, 24):
        r = rows[(head, s)]
        assert 0.0 <= r["rank1"] <= 1.0 and 0.0 <= r["tar_at_far_1e-2"] <= 1.0
        assert r["fnir_at_fpir_1e-2"] is not None and r["fpir_shipped"] is not None

    # In-process with dlib too: the head's dlib rows are not applicable (NaN / null / '-'),
    # its mobilefacenet rows are the pool's figures.
    res = run_identify(IdentifyConfig(data=root, methods=("bicubic", head), sizes=(16, 24),
                                      embedders=(embedder, "dlib"), workers=1, quiet=True,
                                      open_set=True))
    for s in (16, 24):
        mfn, dl = res.row(head, s, embedder), res.row(head, s, "dlib")
        assert mfn.to_json()["rank1"] == rows[(head, s)]["rank1"]
        assert math.isnan(dl.rank1) and math.isnan(dl.tar_at_far_1e_2)
        assert dl.to_json()["rank1"] is None and dl.to_json()["tar_at_far_1e-2"] is None
        assert not math.isnan(res.row("bicubic", s, "dlib").rank1)
        assert res.open_set is not None
        assert all(v is None for k, v in res.open_set.row(head, s, "dlib").to_json().items())
    line = next(x for x in format_report(res).splitlines() if x.startswith(head))
    assert line.count(" -") == 2 * 2  # r1 and TAR under dlib at both sizes
    from cctv_sr.evaluate.det_plot import det_plots

    plots = det_plots(res)
    assert not any(sr.label.startswith(head) for sr in plots["dlib"].series)
    assert any(sr.label.startswith(head) for sr in plots[embedder].series)
