"""Cohort normalisation and the margin rule (cctv_sr/identity/normalise.py) on literal scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cctv_sr.errors import ConfigError
from cctv_sr.evaluate.normalise import (
    MIN_STD,
    fused,
    margin_gap,
    normalise,
    normalise_batch,
    passes_margin,
)


def test_one_probe_by_hand() -> None:
    # top-1 is index 1 (0.8); the other watchlist scores are 0.2, 0.5, 0.2 -> mean 0.3,
    # population std sqrt(((0.1)^2 * 2 + 0.2^2) / 3) = sqrt(0.02)
    r = normalise(np.array([0.2, 0.8, 0.5, 0.2]), top_k=2)
    assert (r.best, r.cohort_size) == (1, 3)
    assert r.raw == pytest.approx(0.8) and r.second == pytest.approx(0.5)
    assert r.margin == pytest.approx(0.3) and r.margin_cohort == pytest.approx(0.3)
    assert r.cohort_mean == pytest.approx(0.3)
    assert r.cohort_std == pytest.approx(math.sqrt(0.02))
    assert r.tnorm == pytest.approx(0.5 / math.sqrt(0.02))
    assert r.gap == pytest.approx(0.8 - (0.5 + 0.2) / 2)  # mean of the 2 best others
    assert fused(r) == pytest.approx(2 * 0.8 - 0.5)


def test_explicit_cohort_joins_and_can_beat_the_top1() -> None:
    scores, cohort = np.array([0.6, 0.1, 0.3]), np.array([0.7, 0.2])
    r = normalise(scores, cohort)
    assert r.best == 0 and r.cohort_size == 4  # 0.1, 0.3 + 0.7, 0.2
    assert r.cohort_mean == pytest.approx(np.mean([0.1, 0.3, 0.7, 0.2]))
    assert r.margin == pytest.approx(0.3)
    assert r.margin_cohort == pytest.approx(-0.1)  # a known non-watchlist face scores higher
    only = normalise(scores, cohort, use_watchlist=False)
    assert only.cohort_size == 2 and only.cohort_mean == pytest.approx(0.45)
    assert only.tnorm == pytest.approx((0.6 - 0.45) / 0.25)


def test_adaptive_tnorm_uses_the_top_k() -> None:
    s = np.array([0.9, 0.5, 0.4, 0.0, -0.1])
    r = normalise(s, tnorm_top_k=2)
    assert r.cohort_mean == pytest.approx(0.45) and r.cohort_std == pytest.approx(0.05)
    assert r.tnorm == pytest.approx((0.9 - 0.45) / 0.05)


def test_batch_matches_single_and_ties_go_low() -> None:
    rng = np.random.default_rng(0)
    s, c = rng.uniform(-0.2, 0.9, (6, 9)), rng.uniform(-0.2, 0.9, (6, 4))
    b = normalise_batch(s, c)
    assert len(b) == 6
    for i in range(6):
        assert b.probe(i) == normalise(s[i], c[i])
    tie = normalise(np.array([0.5, 0.5, 0.1]))
    assert tie.best == 0 and tie.margin == 0.0


def test_degenerate_cohorts() -> None:
    flat = normalise(np.array([0.9, 0.2, 0.2, 0.2]))
    assert flat.cohort_std == MIN_STD and flat.tnorm == pytest.approx(0.7 / MIN_STD)
    one = normalise(np.array([0.4]), np.array([0.1, 0.2]))  # one person + a cohort works
    assert one.second == -math.inf and one.margin == math.inf
    assert one.margin_cohort == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="cohort score"):
        normalise(np.array([0.4, 0.3]))  # one other watchlist score: too few
    with pytest.raises(ConfigError, match="empty watchlist"):
        normalise_batch(np.zeros((2, 0)))
    with pytest.raises(ConfigError, match="non-finite"):
        normalise(np.array([0.4, math.nan, 0.1]))
    with pytest.raises(ConfigError, match="probes"):
        normalise_batch(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ConfigError):
        normalise(np.zeros((2, 3)))


def test_margin_gap_and_rule() -> None:
    margins = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert margin_gap(margins, 0.9) == pytest.approx(0.1)  # sorted[floor(0.1 * 10)] = sorted[1]
    assert np.mean(margins >= margin_gap(margins, 0.9)) == pytest.approx(0.9)
    assert margin_gap(margins, 1.0) == pytest.approx(0.05)
    assert math.isnan(margin_gap(np.array([]), 0.9))
    with pytest.raises(ConfigError):
        margin_gap(margins, 0.0)
    out = passes_margin(np.array([0.8, 0.7, 0.6]), np.array([0.2, 0.05, 0.1]), 0.1)
    np.testing.assert_array_equal(out, [0.8, -math.inf, 0.6])
