"""``cctv-sr eval identify --open-set`` (docs/EVAL.md 1b): the open-set metrics on literal score
tables, the watchlist split rule, the DET picture, and one end-to-end run on the tiny tree of
tests/test_eval_identify.py."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_eval_identify import _group_tree, _parser, _pick_embedder

from cctv_sr.cli.eval import run_eval
from cctv_sr.errors import ConfigError
from cctv_sr.evaluate import IdentifyConfig, run_identify
from cctv_sr.evaluate.det_plot import DetPlot, DetSeries, det_paths, det_plots, render_det
from cctv_sr.evaluate.metrics import (
    det_curve,
    fnir_at,
    fnir_at_fpir,
    fpir_at,
    open_set_scores,
    threshold_at_fpir,
)
from cctv_sr.evaluate.openset import (
    FPIR_TARGETS,
    RULES,
    calibrate_rule,
    finish_open_set,
    is_calibration,
    is_cohort,
    is_stranger,
    open_set_row,
    rule_figures,
    rule_values,
    split_norm,
    split_watchlist,
)

# 4 listed probes (labels 0..2) and 4 strangers (-1) against a watchlist of 3 identities.
SCORES = np.array([[0.9, 0.2, 0.1],    # listed 0: own top-1, hit 0.9
                   [0.3, 0.8, 0.4],    # listed 1: hit 0.8
                   [0.5, 0.6, 0.1],    # listed 0: identity 1 on top -> never matched
                   [0.2, 0.1, 0.7],    # listed 2: hit 0.7
                   [0.85, 0.1, 0.2],   # stranger: best 0.85
                   [0.3, 0.75, 0.2],   # stranger: best 0.75
                   [0.1, 0.2, 0.6],    # stranger: best 0.6
                   [0.4, 0.5, 0.3]])   # stranger: best 0.5
LABELS = np.array([0, 1, 0, 2, -1, -1, -1, -1])


def test_open_set_scores_by_hand() -> None:
    s = open_set_scores(SCORES, LABELS)
    np.testing.assert_allclose(s.stranger_best, [0.85, 0.75, 0.6, 0.5])
    np.testing.assert_allclose(s.listed_hit, [0.9, 0.8, -math.inf, 0.7])


@pytest.mark.parametrize(("t", "fpir", "fnir"), [
    (0.95, 0.0, 1.0),     # nobody named
    (0.9, 0.0, 0.75),     # a listed score equal to t is matched (>= t)
    (0.85, 0.25, 0.75),   # a stranger score equal to t is named
    (0.75, 0.5, 0.5),
    (0.7, 0.5, 0.25),
    (0.5, 1.0, 0.25),     # listed probe 2 stays missed: its own identity is not top-1
    (-1.0, 1.0, 0.25),
])
def test_fpir_fnir_at_threshold_by_hand(t: float, fpir: float, fnir: float) -> None:
    s = open_set_scores(SCORES, LABELS)
    assert fpir_at(s.stranger_best, t) == pytest.approx(fpir)
    assert fnir_at(s.listed_hit, t) == pytest.approx(fnir)


@pytest.mark.parametrize(("target", "above", "fpir", "fnir"), [
    (1e-3, 0.85, 0.0, 0.75),  # k = 0: just above the top stranger
    (1e-2, 0.85, 0.0, 0.75),
    (0.25, 0.75, 0.25, 0.5),  # k = 1: one stranger (0.85) may pass
    (0.5, 0.6, 0.5, 0.25),    # k = 2
    (0.7, 0.6, 0.5, 0.25),    # floor(2.8) = 2
])
def test_threshold_at_fpir_by_hand(target: float, above: float, fpir: float,
                                   fnir: float) -> None:
    s = open_set_scores(SCORES, LABELS)
    t = threshold_at_fpir(s.stranger_best, target)
    assert t > above and t == np.nextafter(above, math.inf)
    assert fpir_at(s.stranger_best, t) == pytest.approx(fpir) and fpir <= target
    assert fnir_at_fpir(s, target) == pytest.approx(fnir)
    assert threshold_at_fpir(s.stranger_best, 1.0) == -math.inf  # every stranger may pass
    assert fnir_at_fpir(s, 1.0) == pytest.approx(0.25)


def test_ties_are_left_unnamed() -> None:
    # three strangers tied at 0.8: a target of 1 in 4 cannot name one of them without naming
    # all three, so none is named (FPIR 0 <= 0.25, never above the target)
    stranger = np.array([0.8, 0.8, 0.8, 0.5])
    t = threshold_at_fpir(stranger, 0.25)
    assert t > 0.8 and fpir_at(stranger, t) == 0.0
    assert fnir_at(np.array([0.8, 0.9]), t) == 0.5  # a listed 0.8 is not matched above 0.8
    assert fpir_at(stranger, 0.8) == 0.75  # at exactly 0.8 all three tied strangers reach it
    assert fpir_at(stranger, threshold_at_fpir(stranger, 0.75)) == 0.75  # k = 3: above 0.5


def test_det_curve_by_hand() -> None:
    det = det_curve(open_set_scores(SCORES, LABELS))
    np.testing.assert_allclose(det.thresholds, [math.inf, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5])
    np.testing.assert_allclose(det.fpir, [0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 1])
    np.testing.assert_allclose(det.fnir, [1, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25, 0.25])


def test_no_strangers_no_listed_empty_gallery() -> None:
    listed_only = open_set_scores(SCORES[:4], LABELS[:4])
    assert listed_only.stranger_best.size == 0
    assert math.isnan(fpir_at(listed_only.stranger_best, 0.5))
    assert math.isnan(threshold_at_fpir(listed_only.stranger_best, 1e-2))
    assert math.isnan(fnir_at_fpir(listed_only, 1e-2))  # no threshold can be read off
    assert fnir_at(listed_only.listed_hit, 0.75) == 0.5  # FNIR at a fixed t is still defined
    assert det_curve(listed_only).fpir.size == 0
    strangers_only = open_set_scores(SCORES[4:], LABELS[4:])
    assert math.isnan(fnir_at(strangers_only.listed_hit, 0.5))
    assert math.isnan(fnir_at_fpir(strangers_only, 1e-2))
    assert fpir_at(strangers_only.stranger_best, 0.8) == 0.25
    empty = open_set_scores(np.zeros((3, 0)), np.array([-1, -1, -1]))  # nobody on the list
    assert fpir_at(empty.stranger_best, 0.0) == fpir_at(empty.stranger_best, -math.inf) == 0.0
    with pytest.raises(ConfigError, match="stranger"):
        open_set_scores(SCORES, np.array([0, 1, 0, 2, -1, -1, -1, -2]))
    with pytest.raises(ConfigError):
        threshold_at_fpir(np.array([0.5]), 1.5)


# ------------------------------------------------------------------------------------ split


@pytest.mark.parametrize("name", ["Person_A", "Person_B", "Person_C", "Person_D", "Person_E",
                                  "Person_F", "AJ_Lamas", "Zoe", "", "Jos\u00e9_Mar\u00eda"])
def test_split_rule(name: str) -> None:
    last = hashlib.sha256(name.encode("utf-8")).hexdigest()[-1]
    assert is_stranger(name) == (int(last, 16) % 2 == 0)


def test_split_rule_literals() -> None:
    # sha256 hex digests end in: Person_A 1, Person_B c, Person_C 6, Person_D 5, Person_E a
    assert [is_stranger(f"Person_{c}") for c in "ABCDE"] == [False, True, True, False, True]


def test_split_watchlist() -> None:
    names = ["Person_A", "Person_B", "Person_C", "Person_D"]  # B, C are strangers
    sp = split_watchlist(names, np.array([0, 1, 1, 2, 3, 3, 3]))
    np.testing.assert_array_equal(sp.columns, [0, 3])
    np.testing.assert_array_equal(sp.labels, [0, -1, -1, -1, 1, 1, 1])
    assert sp.counts() == {"watchlist_identities": 2, "listed_identities": 2,
                           "stranger_identities": 2, "listed_probes": 4, "stranger_probes": 3}


# ----------------------------------------------------------------------------- score rules

# Person_A..H: sha256 hex digits [-3:] 171 f0c 9b6 1d5 88a 37b 928 1b0. Watchlist (odd [-1]):
# A, D, F; calibration ([-2] in 0-7): A, B, F, G; explicit cohort (stranger, [-3] in 0-7): H.
NAMES = [f"Person_{c}" for c in "ABCDEFGH"]
#                    A     B    C    D     E    F     G    H
RULE_SCORES = np.array([[0.9, 0.0, 0.0, 0.3, 0.0, 0.1, 0.0, 0.2],    # A listed, calibration
                        [0.2, 0.0, 0.0, 0.7, 0.0, 0.6, 0.0, 0.8],    # D listed, test
                        [0.4, 0.0, 0.0, 0.5, 0.0, 0.45, 0.0, 0.0],   # F listed: D on top
                        [0.6, 0.0, 0.0, 0.1, 0.0, 0.2, 0.0, 0.3],    # C stranger, test
                        [0.5, 0.0, 0.0, 0.2, 0.0, 0.1, 0.0, 0.0],    # B stranger, calibration
                        [0.1, 0.0, 0.0, 0.2, 0.0, 0.3, 0.0, 0.9],    # H stranger, in the cohort
                        [0.3, 0.0, 0.0, 0.35, 0.0, 0.2, 0.0, 0.1]])  # E stranger, test
RULE_LABELS = np.array([0, 3, 5, 2, 1, 7, 4])


def test_norm_split_rules() -> None:
    for n in NAMES + ["", "Jos\u00e9"]:
        h = hashlib.sha256(n.encode("utf-8")).hexdigest()
        assert is_calibration(n) == (h[-2] in "01234567")
        assert is_cohort(n) == (is_stranger(n) and h[-3] in "01234567")
    ns = split_norm(NAMES, RULE_LABELS)
    np.testing.assert_array_equal(ns.cohort_columns, [7])
    np.testing.assert_array_equal(ns.calibration, [1, 0, 1, 0, 1, 0, 0])
    np.testing.assert_array_equal(ns.cohort_probe, [0, 0, 0, 0, 0, 1, 0])
    assert ns.counts(split_watchlist(NAMES, RULE_LABELS).labels) == {
        "cohort_identities": 1, "calibration_listed_probes": 2,
        "calibration_stranger_probes": 1, "test_listed_probes": 1, "test_stranger_probes": 3,
        "test_stranger_probes_c": 2}


def test_rule_values_by_hand() -> None:
    split = split_watchlist(NAMES, RULE_LABELS)
    rv = rule_values(RULE_SCORES, split, split_norm(NAMES, RULE_LABELS))
    v = rv.values
    np.testing.assert_allclose(v["raw"], [0.9, 0.7, 0.5, 0.6, 0.5, 0.3, 0.35])
    np.testing.assert_array_equal(rv.hit, [1, 1, 0, 0, 0, 0, 0])
    assert v["tnorm"][0] == pytest.approx((0.9 - 0.2) / 0.1)  # others 0.3, 0.1
    assert v["gap"][0] == pytest.approx(0.9 - 0.2)
    assert v["fused"][0] == pytest.approx(2 * 0.9 - 0.3)
    assert v["tnorm_wc"][0] == pytest.approx(0.7 / np.std([0.3, 0.1, 0.2]))
    assert rv.margins["margin"][0] == pytest.approx(0.6)
    assert rv.margins["margin_c"][1] == pytest.approx(-0.1)  # the cohort face H beats D
    assert np.isnan(v["tnorm_c"]).all()  # one cohort template: too few for T-norm
    for rule in ("raw_c", "tnorm_wc", "margin_c"):  # the cohort identity's probe is left out
        assert np.isnan(v[rule][5]) and not np.isnan(v[rule][6])


def test_calibrate_on_one_half_measure_on_the_other() -> None:
    split, ns = split_watchlist(NAMES, RULE_LABELS), split_norm(NAMES, RULE_LABELS)
    rv = rule_values(RULE_SCORES, split, ns)
    raw = calibrate_rule(rv, "raw", ns, "hr")
    assert raw.threshold == np.nextafter(0.5, 1) and np.isnan(raw.gap)  # above stranger B
    fig = rule_figures(rv, "raw", ns, raw)
    assert fig.fpir_cal == pytest.approx(1 / 3) and fig.fnir_cal == 0.0  # C named; D found
    margin = calibrate_rule(rv, "margin", ns, "hr")
    assert margin.gap == pytest.approx(0.6)  # the one calibration hit (A) has margin 0.6
    fig = rule_figures(rv, "margin", ns, margin)
    assert (fig.fpir_cal, fig.fnir_cal) == (0.0, 1.0)  # D's margin 0.1 < g: not named
    rows = [open_set_row(m, 16, "dlib", RULE_SCORES, split, 0.5, ns) for m in ("hr", "bicubic")]
    res = finish_open_set(split, {"dlib": 0.5}, rows, ns)
    assert set(res.calibration["dlib"]) == set(RULES)
    assert res.calibration["dlib"]["raw"] == raw
    out = res.rows[1].to_json()["rules"]
    assert set(out) == set(RULES) and out["raw"]["fpir_cal"] == pytest.approx(1 / 3, abs=1e-6)
    assert out["tnorm_c"]["fpir_cal"] is None  # undefined: no probe scored
    top = res.to_json()["rules"]
    assert top["calibrated"]["dlib"]["margin"]["gap"] == pytest.approx(0.6)
    assert finish_open_set(split, {}, rows, None).rows[0].rules == {}


# ------------------------------------------------------------------------------------- DET


def test_render_det_and_paths(tmp_path: Path) -> None:
    det = det_curve(open_set_scores(SCORES, LABELS))
    plot = DetPlot("DET", "4 listed / 4 strangers", (
        DetSeries("hr s=16", det.fpir, det.fnir, (0.25, 0.5)),
        DetSeries("bicubic s=16", det.fpir, np.minimum(1, det.fnir + 0.1), None)), 1e-2)
    img = render_det(plot)
    assert img.shape == (760, 1100, 3) and img.dtype == np.uint8
    assert (img < 250).any(axis=2).mean() > 0.01  # axes, text and lines were drawn
    colours = {tuple(int(v) for v in px) for px in img.reshape(-1, 3)[::7]}
    assert (180, 119, 31) in colours and (14, 127, 255) in colours  # both lines
    assert det_paths(tmp_path / "x.png", ["dlib", "mobilefacenet"]) == {
        "dlib": tmp_path / "x_dlib.png", "mobilefacenet": tmp_path / "x_mobilefacenet.png"}
    assert det_paths(tmp_path / "x", ["dlib"])["dlib"].name == "x_dlib.png"


# ------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_identify_open_set_end_to_end(tmp_path: Path, group_photo: np.ndarray,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    embedder = _pick_embedder(monkeypatch)
    monkeypatch.setenv("CCTV_SR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CCTV_SR_OFFLINE", "1")
    root = tmp_path / "faces"
    _group_tree(root, group_photo)  # Person_A..F; B, C, E are strangers
    out = tmp_path / "out" / "eval.json"
    args = _parser().parse_args([
        "eval", "identify", "--data", str(root), "--methods", "hr,bicubic", "--sizes", "16,32",
        "--embedder", embedder, "--workers", "1", "--open-set", "--json", str(out), "--quiet"])
    assert run_eval(args) == 0
    printed = capsys.readouterr().out
    assert "open set, " in printed and "FNIR@0.01" in printed and "FPIR@t" in printed
    assert "watchlist: 3 of 6 gallery identities" in printed
    png = tmp_path / "out" / f"eval_det_{embedder}.png"
    assert f"DET curve ({embedder}): {png}" in printed

    data = json.loads(out.read_text())
    assert data["open_set"] is True and data["identities"] == 6 and data["probes"] == 12
    assert (data["watchlist_identities"], data["listed_identities"],
            data["stranger_identities"], data["listed_probes"],
            data["stranger_probes"]) == (3, 3, 3, 6, 6)
    assert data["fpir_targets"] == list(FPIR_TARGETS)
    shipped = data["thresholds_shipped"][embedder]
    assert -1.0 <= shipped <= 1.0
    assert len(data["rows"]) == 2 * 2
    for row in data["rows"]:
        assert {"method", "size", "embedder", "rank1", "tar_at_far_1e-2", "fnir_at_fpir_1e-2",
                "fnir_at_fpir_1e-3", "fpir_shipped", "fnir_shipped", "threshold_shipped",
                "threshold_at_fpir_1e-2", "threshold_at_fpir_1e-3", "rules"} == set(row)
        assert set(row["rules"]) == set(RULES)
        assert row["threshold_shipped"] == shipped
        for key in ("fnir_at_fpir_1e-2", "fnir_at_fpir_1e-3", "fpir_shipped", "fnir_shipped"):
            assert 0.0 <= row[key] <= 1.0
        # 6 strangers: FPIR 1e-2 is not resolved, its threshold is above every stranger
        assert row["fnir_at_fpir_1e-2"] == row["fnir_at_fpir_1e-3"]
    by_key = {(r["method"], r["size"]): r for r in data["rows"]}
    assert by_key[("hr", 16)]["fnir_shipped"] == by_key[("hr", 32)]["fnir_shipped"]

    # the closed-set figures do not change with --open-set
    closed = run_identify(IdentifyConfig(data=root, methods=("hr", "bicubic"), sizes=(16, 32),
                                         embedders=(embedder,), workers=1, quiet=True))
    assert closed.open_set is None
    assert [r.to_json() for r in closed.rows] == [
        {k: r[k] for k in ("method", "size", "embedder", "rank1", "tar_at_far_1e-2")}
        for r in data["rows"]]

    opened = run_identify(IdentifyConfig(data=root, methods=("hr", "bicubic"), sizes=(16, 32),
                                         embedders=(embedder,), workers=1, quiet=True,
                                         open_set=True))
    assert [r.to_json() for r in opened.rows] == [r.to_json() for r in closed.rows]
    assert opened.to_json()["rows"] == data["rows"]
    labels = [s.label for s in det_plots(opened)[embedder].series]
    assert labels == ["hr (every s)", "bicubic s=16", "bicubic s=32"]  # hr: one line

    image = cv2.imread(str(png))
    assert image is not None and image.shape == (760, 1100, 3)
    assert png.stat().st_size > 10_000
    assert (image < 250).any(axis=2).mean() > 0.01
