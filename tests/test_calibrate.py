"""`eval calibrate` on a tiny LFW-style tree made from the group photo (six people, two
photos each: the face and a shifted, flipped copy)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED

from cctv_sr.data.synth import head_patches
from cctv_sr.evaluate.calibrate import calibrate, pair_scores


def test_pair_scores_counts_every_unordered_pair() -> None:
    emb = np.eye(4, dtype=np.float32)
    labels = np.array([0, 0, 1, 2])
    genuine, impostor = pair_scores(emb, labels)
    assert genuine.tolist() == [0.0] and len(impostor) == 5


@pytest.fixture()
def tiny_tree(tmp_path: Path, group_photo, monkeypatch) -> Path:
    monkeypatch.setenv("CCTV_SR_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "lfw"
    for i, head in enumerate(head_patches(group_photo, margin=2.4)):
        person = root / f"Person_{i}"
        person.mkdir(parents=True)
        canvas = cv2.resize(head, (250, 250), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(person / f"Person_{i}_0001.jpg"), canvas)
        shifted = np.roll(cv2.flip(canvas, 1), (6, -4), axis=(0, 1))
        cv2.imwrite(str(person / f"Person_{i}_0002.jpg"), shifted)
    return root


def test_calibrate_on_a_tiny_tree(tiny_tree: Path, monkeypatch) -> None:
    name = "mobilefacenet"  # shipped in the package; ../shared only adds the YuNet oracle
    if (SHARED / "models").is_dir():
        monkeypatch.setenv("CCTV_SR_MODELS", str(SHARED / "models"))
    c = calibrate(tiny_tree, name, quiet=True)
    assert c.identities == 6 and c.images == 12
    assert c.genuine_pairs == 6 and c.impostor_pairs == 60
    assert c.threshold_far_1e2 <= c.threshold_far_1e3
    assert c.tar_at_far_1e2 >= 5 / 6  # flipped copies of one face are the same person
    assert "threshold_far_1e-3" in c.manifest_snippet()


def test_calibrate_command(tiny_tree: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from cctv_sr.cli import main

    name = "mobilefacenet"  # shipped in the package; ../shared only adds the YuNet oracle
    if (SHARED / "models").is_dir():
        monkeypatch.setenv("CCTV_SR_MODELS", str(SHARED / "models"))
    out = tmp_path / "cal.json"
    assert main(["eval", "calibrate", "--data", str(tiny_tree), "--embedder", name, "--quiet",
                 "--json", str(out)]) == 0
    assert "threshold_far_1e-2 = " in capsys.readouterr().out
    assert out.is_file()


# ------------------------------------------------------------------ --sizes / --fars (the tail)

from cctv_sr.errors import ConfigError  # noqa: E402
from cctv_sr.evaluate.calibrate import degraded_pair_scores  # noqa: E402
from cctv_sr.evaluate.calibrate_tail import (  # noqa: E402
    MIN_TAIL,
    Tail,
    far_for_fpir,
    format_tail,
    interpolated_threshold,
    parse_fars,
    parse_sizes,
    tail_threshold,
)
from cctv_sr.evaluate.metrics import threshold_at_far  # noqa: E402


def test_far_for_fpir_is_the_watchlist_formula() -> None:
    # 1 - (1 - 0.01) ** (1 / N), written out
    assert far_for_fpir(0.01, 1) == pytest.approx(0.01, rel=1e-12)
    assert far_for_fpir(0.01, 10) == pytest.approx(1.00453e-3, rel=1e-5)
    assert far_for_fpir(0.01, 100) == pytest.approx(1.004983e-4, rel=1e-5)
    assert far_for_fpir(0.01, 1000) == pytest.approx(1.005029e-5, rel=1e-5)
    # and back: 426 pairs at FAR 1e-3 name 1 - 0.999 ** 426 = 34.7% of strangers
    assert 1 - (1 - 1e-3) ** 426 == pytest.approx(0.347, abs=1e-3)
    with pytest.raises(ConfigError):
        far_for_fpir(0.01, 0)


# 1000 impostor scores 0.999, 0.998, ..., 0.000 (s_k = (999 - k) / 1000) and 4 genuine
IMPOSTOR = (np.arange(1000) / 1000.0)[::-1].copy()
GENUINE = np.array([0.995, 0.985, 0.5, 0.1])


def test_tail_threshold_matches_threshold_at_far_on_a_literal_table() -> None:
    desc = np.sort(IMPOSTOR)[::-1]
    for far, want in [(1e-2, 0.989), (2e-2, 0.979), (1e-3, 0.998), (1e-4, 0.999), (1.0, -np.inf)]:
        assert tail_threshold(desc, far) == pytest.approx(want)
        assert tail_threshold(desc, far) == threshold_at_far(IMPOSTOR, far)
    # between order statistics: f * n = 10.5 -> halfway between s_10 and s_11
    assert interpolated_threshold(desc, 10.5e-3) == pytest.approx(0.9885)
    assert interpolated_threshold(desc, 1e-2) == pytest.approx(0.989)


def test_the_resolution_rule_on_a_literal_table() -> None:
    tail = Tail.of(GENUINE, IMPOSTOR)
    assert MIN_TAIL == 10 and tail.finest_far == pytest.approx(1e-2)
    r = tail.row("16", 1e-2)  # k = 10 impostors above 0.989: resolved
    assert r.resolved and r.above == 10 and r.threshold == pytest.approx(0.989)
    assert r.tar == 0.25 and r.threshold_lower_bound is None  # only 0.995 reaches 0.989
    r = tail.row("16", 9e-3)  # k = 9: not resolved; the bound is s_10
    assert not r.resolved and r.above == 9 and r.threshold is None and r.tar is None
    assert r.threshold_lower_bound == pytest.approx(0.989) and r.tar_upper_bound == 0.25
    r = tail.row("16", 1e-5)
    assert not r.resolved and r.above == 0 and r.impostor_pairs == 1000
    w = tail.watchlist_row("16", 10)  # FAR 1.0045e-3: k = 1
    assert not w.resolved and w.threshold is None and w.far == pytest.approx(1.00453e-3, 1e-5)
    w = Tail.of(GENUINE, np.tile(IMPOSTOR, 100)).watchlist_row("16", 10)  # n = 1e5, k = 100
    assert w.resolved and w.threshold == pytest.approx(0.998, abs=1e-3)
    text = format_tail([tail.row("16", 1e-2), r], [w], "bicubic")
    assert "not resolved (>= 0.9890)" in text and "0.9890" in text and "N=10" in text
    # too few impostors for any bound
    assert Tail.of(GENUINE, IMPOSTOR[:5]).row("hr", 1e-2).threshold_lower_bound is None


def test_degraded_pairs_exclude_the_probe_s_own_image() -> None:
    emb = np.eye(3, dtype=np.float32)
    genuine, impostor = degraded_pair_scores(emb, emb, np.array([0, 0, 1]))
    assert genuine.tolist() == [0.0, 0.0] and len(impostor) == 4  # 2 x (0,1 vs 2) + (2 vs 0,1)


def test_size_and_far_lists() -> None:
    assert parse_sizes("hr, 16,24,16") == ("hr", "16", "24")
    assert parse_fars("1e-3,1e-2,1e-3") == (1e-2, 1e-3)
    for bad in ("", "hr,3", "x"):
        with pytest.raises(ConfigError):
            parse_sizes(bad)
    for bad in ("", "0", "1e-2,x"):
        with pytest.raises(ConfigError):
            parse_fars(bad)


def test_calibrate_sizes_command(tiny_tree: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import json

    from cctv_sr.cli import main

    name = "mobilefacenet"  # shipped in the package; ../shared only adds the YuNet oracle
    if (SHARED / "models").is_dir():
        monkeypatch.setenv("CCTV_SR_MODELS", str(SHARED / "models"))
    out = tmp_path / "tail.json"
    assert main(["eval", "calibrate", "--data", str(tiny_tree), "--embedder", name, "--quiet",
                 "--sizes", "hr,16", "--fars", "1e-1,1e-2", "--workers", "1",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "threshold_far_1e-2 = " in text and "not resolved" in text and "16 px" in text
    data = json.loads(out.read_text())
    rows = {(r["size"], r["far"]): r for r in data["rows"]}
    assert set(rows) == {("hr", 0.1), ("hr", 0.01), ("16", 0.1), ("16", 0.01)}
    assert rows[("hr", 0.1)]["impostor_pairs"] == 60 and rows[("hr", 0.1)]["genuine_pairs"] == 6
    assert rows[("16", 0.1)]["impostor_pairs"] == 120 and rows[("16", 0.1)]["genuine_pairs"] == 12
    assert rows[("16", 0.1)]["resolved"] and rows[("16", 0.1)]["above"] == 12
    assert not rows[("16", 0.01)]["resolved"] and rows[("16", 0.01)]["threshold"] is None
    assert rows[("hr", 0.01)]["threshold_lower_bound"] is not None
    assert len(data["watchlist"]) == 6 and data["hr"]["impostor_pairs"] == 60
    assert data["restore"] == "bicubic"


def test_calibrate_sizes_with_the_shipped_lr_head(tiny_tree: Path, tmp_path: Path,
                                                  monkeypatch, capsys) -> None:
    """`--method lrhead=lrmfn.pt`: the 16 px rows are the LR head's vectors of the degraded
    probes against MobileFaceNet's HR vectors (the same pairs as bicubic's, other scores); a
    head in another space than --embedder is refused."""
    import json

    from cctv_sr.cli import main

    if (SHARED / "models").is_dir():
        monkeypatch.setenv("CCTV_SR_MODELS", str(SHARED / "models"))
    head = Path(__file__).resolve().parents[1] / "cctv_sr" / "models" / "weights" / "lrmfn.pt"
    out = {}
    for label, extra in (("bicubic", []), ("head", ["--method", f"lrhead={head}"])):
        path = tmp_path / f"{label}.json"
        assert main(["eval", "calibrate", "--data", str(tiny_tree), "--embedder",
                     "mobilefacenet", "--quiet", "--sizes", "16", "--fars", "1e-1",
                     "--workers", "1", "--json", str(path), *extra]) == 0
        out[label] = json.loads(path.read_text())
    capsys.readouterr()
    assert out["head"]["restore"] == f"lrhead={head}" and out["bicubic"]["restore"] == "bicubic"
    a, b = out["bicubic"]["rows"][0], out["head"]["rows"][0]
    assert (a["impostor_pairs"], a["genuine_pairs"]) == (b["impostor_pairs"], b["genuine_pairs"])
    assert a["threshold"] != b["threshold"]
    assert main(["eval", "calibrate", "--data", str(tiny_tree), "--embedder", "dlib", "--quiet",
                 "--sizes", "16", "--method", f"lrhead={head}"]) == 1
    assert "embeds into the mobilefacenet space" in capsys.readouterr().err
