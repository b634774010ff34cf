"""Track identity aggregation and decisions on small literal vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cctv_sr.errors import ConfigError, ContractError
from cctv_sr.identity.match import Thresholds, TrackEmbeddings, aggregate, match_track

NAMES = ["alice", "bob", "carol"]
GALLERY = np.eye(3, 4, dtype=np.float32)  # three orthogonal templates in 4-d
TH = Thresholds(far_1e2=0.5, far_1e3=0.7)


def unit(*v: float) -> np.ndarray:
    a = np.array(v, np.float32)
    return a / np.linalg.norm(a)


def test_aggregate_weights_by_quality() -> None:
    v = aggregate([unit(1, 0, 0, 0), unit(0, 1, 0, 0)], [3.0, 1.0])
    assert np.linalg.norm(v) == pytest.approx(1.0)
    assert v[0] == pytest.approx(3 * v[1])
    with pytest.raises(ConfigError):
        aggregate([], [])


def test_clear_match_and_unknown() -> None:
    acc = TrackEmbeddings()
    acc.add("f1", 0.9, unit(1, 0.1, 0, 0), unit(1, 0.05, 0, 0))
    acc.add("f1", 0.9, unit(0, 1, 0, 0), unit(0, 1, 0, 0))  # same face again: ignored
    m = match_track(acc, NAMES, GALLERY, TH, top_k=2)
    assert m is not None and m.decision == "alice" and m.n_faces == 1
    assert [c.name for c in m.combined] == ["alice", "bob"] and len(m.lr) == 2
    stranger = TrackEmbeddings()
    stranger.add("f2", 0.5, unit(1, 1, 1, 0), unit(1, 1, 1, 0))
    m = match_track(stranger, NAMES, GALLERY, TH)
    assert m is not None and m.decision is None and m.decision_lr is None


def test_sr_alone_never_decides() -> None:
    """The SR crop is bob, the LR crop only faintly: the combined score (0.725) clears the
    strict threshold, but LR (0.45) misses even the loose one, so there is no match."""
    acc = TrackEmbeddings()
    acc.add("f1", 0.8, unit(0, 0.45, 0, np.sqrt(1 - 0.45**2)), unit(0, 1, 0, 0))
    m = match_track(acc, NAMES, GALLERY, TH)
    assert m is not None
    assert m.combined[0].name == "bob" and m.combined[0].score == pytest.approx(0.725, abs=1e-3)
    assert m.decision_sr == "bob" and m.decision_lr is None and m.decision is None


def test_threshold_override_and_validation() -> None:
    acc = TrackEmbeddings()
    acc.add("f1", 0.8, unit(1, 0.6, 0, 0), unit(1, 0.6, 0, 0))
    assert match_track(acc, NAMES, GALLERY, TH).decision == "alice"  # cos 0.86
    assert match_track(acc, NAMES, GALLERY, TH, threshold=0.9).decision is None
    assert match_track(TrackEmbeddings(), NAMES, GALLERY, TH) is None
    with pytest.raises(ConfigError):
        Thresholds(0.8, 0.5)


WL = Thresholds(0.5, 0.7, ((1e-4, 0.8),))


@pytest.mark.parametrize(
    ("fpir", "people", "threshold", "beyond"),
    [
        (0.01, 1, 0.5, False),  # one person: the per-pair FAR is the FPIR itself
        (0.5, 1, 0.5, False),  # looser than calibrated: clamped to the loosest point
        (0.01, 10, 0.5 + 0.2 * (2 + math.log10(1 - 0.99 ** 0.1)) / -1, False),
        (0.01, 100, 0.7 + 0.1 * (3 + math.log10(1 - 0.99 ** 0.01)) / -1, False),
        (0.01, 10_000, 0.8, True),  # finer than calibrated: the finest point, flagged
    ],
)
def test_watchlist_threshold_follows_the_gallery_size(fpir: float, people: int,
                                                      threshold: float, beyond: bool) -> None:
    chosen = WL.for_watchlist(fpir, people, max_pair_far=1e-2)
    assert chosen.threshold == pytest.approx(threshold, abs=1e-9)
    assert chosen.pair_far == pytest.approx(min(1 - (1 - fpir) ** (1 / people), 1e-2))
    assert chosen.beyond_calibration is beyond
    assert f"against {people} " in chosen.describe()


def test_a_larger_gallery_never_gets_a_looser_threshold() -> None:
    ts = [WL.for_watchlist(0.01, n).threshold for n in (1, 2, 5, 10, 50, 100, 1000, 10**5)]
    assert ts == sorted(ts) and ts[0] < ts[-1]


@pytest.mark.parametrize("people", [1, 2, 5, 10])
def test_small_galleries_are_never_looser_than_far_1e3(people: int) -> None:
    chosen = WL.for_watchlist(0.01, people)
    assert chosen.threshold == pytest.approx(WL.far_1e3) and chosen.pair_far == 1e-3


@pytest.mark.parametrize(("fpir", "people"), [(0.0, 10), (1.0, 10), (0.01, 0)])
def test_watchlist_threshold_rejects_bad_input(fpir: float, people: int) -> None:
    with pytest.raises(ConfigError):
        WL.for_watchlist(fpir, people)


def test_thresholds_must_grow_as_the_far_falls() -> None:
    with pytest.raises(ConfigError):
        Thresholds(0.5, 0.7, ((1e-4, 0.6),))


def test_margin_reason_and_subset() -> None:
    acc = TrackEmbeddings()
    acc.add("f1", 0.9, unit(1, 0.5, 0, 0), unit(1, 0.5, 0, 0))
    acc.add("f2", 0.9, unit(0, 0, 1, 0), unit(0, 0, 1, 0))
    m = match_track(acc.subset({"f1"}), NAMES, GALLERY, TH)
    assert m is not None and m.decision == "alice" and m.reason is None and m.n_faces == 1
    assert m.margin == pytest.approx(1 / np.sqrt(1.25) - 0.5 / np.sqrt(1.25), abs=1e-3)
    m = match_track(acc, NAMES, GALLERY, TH, threshold=0.99)
    assert m is not None and m.decision is None and m.reason.startswith("best ")
    one = match_track(acc, NAMES[:1], GALLERY[:1], TH)
    assert one is not None and one.margin is None


def test_sr_only_reason_names_the_lr_bar() -> None:
    acc = TrackEmbeddings()
    acc.add("f1", 0.8, unit(0, 0.45, 0, np.sqrt(1 - 0.45**2)), unit(0, 1, 0, 0))
    m = match_track(acc, NAMES, GALLERY, TH)
    assert m is not None and m.reason == "LR score 0.450 < 0.500"


def test_far_factor_makes_the_threshold_stricter() -> None:
    th = Thresholds(0.25, 0.34, ((1e-4, 0.40), (1e-5, 0.46)))
    base = th.for_watchlist(0.01, 10)
    strict = th.for_watchlist(0.01, 10, far_factor=0.1)
    assert strict.pair_far == pytest.approx(base.pair_far * 0.1)
    assert strict.threshold > base.threshold
    with pytest.raises(ConfigError):
        th.for_watchlist(0.01, 10, far_factor=0.0)


def test_decision_rule_fixed_or_from_the_gallery() -> None:
    from cctv_sr.identity.match import DecisionRule

    th = Thresholds(0.25, 0.34, ((1e-4, 0.40), (1e-5, 0.46)))
    rule = DecisionRule(th, 0.01, 100)
    assert rule.threshold() == pytest.approx(th.for_watchlist(0.01, 100).threshold)
    assert rule.threshold(0.1) > rule.threshold()
    assert DecisionRule(th, 0.01, 100, fixed=0.5).threshold(0.1) == 0.5


def test_size_thresholds_pick_the_smallest_side_at_or_above_the_face() -> None:
    from cctv_sr.identity.match import DecisionRule

    hr = Thresholds(0.25, 0.34, ((1e-4, 0.40), (1e-5, 0.46)))
    px16 = Thresholds(0.23, 0.30, ((1e-4, 0.36), (1e-5, 0.42)))
    px32 = Thresholds(0.24, 0.31, ((1e-4, 0.38), (1e-5, 0.43)))
    rule = DecisionRule(hr, 0.01, 100, by_size=((16, px16), (32, px32)))
    assert rule.thresholds_for(12) is px16 and rule.thresholds_for(16) is px16
    assert rule.thresholds_for(20) is px32 and rule.thresholds_for(32.0) is px32
    assert rule.thresholds_for(33) is hr and rule.thresholds_for(None) is hr
    assert [rule.size_bucket(s) for s in (10, 20, 40)] == ["16", "32", "hr"]
    assert rule.threshold(size_px=20) == pytest.approx(px32.for_watchlist(0.01, 100).threshold)
    assert rule.threshold(size_px=20) < rule.threshold()
    with pytest.raises(ConfigError):
        DecisionRule(hr, 0.01, 100, by_size=((32, px32), (16, px16)))


def test_shipped_manifest_size_thresholds() -> None:
    from cctv_sr.identity.setup import calibrated_size_thresholds

    sizes = dict(calibrated_size_thresholds("mobilefacenet"))
    assert sorted(sizes) == [16, 24, 32]
    assert all(len(t.points()) == 4 for t in sizes.values())
    assert calibrated_size_thresholds("dlib") == ()  # HR only: every size uses the HR points


# ------------------------------------------------------------------------- with an LR head


def test_the_head_is_the_lr_channel() -> None:
    """The embedder's LR crop misses bob (0.3, below the 0.5 LR bar) and the head finds him
    (0.6): with the head, combined = (head + sr) / 2 = 0.8 >= 0.7 and the head clears the bar,
    so bob is named; without the head the same LR and SR vectors name no one (0.65)."""
    lr, sr, head = unit(0, 0.3, 0, np.sqrt(1 - 0.09)), unit(0, 1, 0, 0), unit(0, 0.6, 0, 0.8)
    acc = TrackEmbeddings()
    acc.add("f1", 0.8, lr, sr, head)
    m = match_track(acc, NAMES, GALLERY, TH)
    assert m is not None and m.decision == "bob" and m.reason is None
    top = m.combined[0]
    assert top.name == "bob" and top.score == pytest.approx(0.8, abs=1e-3)
    assert (top.lr, top.sr, top.head) == pytest.approx((0.3, 1.0, 0.6), abs=1e-3)
    assert m.decision_lr is None and m.decision_sr == "bob" and m.decision_head is None  # 0.6
    assert [c.name for c in m.head][:1] == ["bob"] and m.head[0].head is None
    plain = TrackEmbeddings()
    plain.add("f1", 0.8, lr, sr)
    p = match_track(plain, NAMES, GALLERY, TH)
    assert p is not None and p.decision is None and p.reason == "best 0.650 < 0.700"
    assert p.head == () and p.decision_head is None and p.combined[0].head is None


def test_the_head_bar_replaces_the_embedder_lr_bar() -> None:
    """The embedder's LR crop is bob (0.9), the head only faintly (0.4, below the 0.5 bar):
    combined (0.4 + 1.0) / 2 = 0.7 reaches the threshold, but the head misses its bar, so no
    one is named, although the embedder's LR alone would name bob."""
    acc = TrackEmbeddings()
    acc.add("f1", 0.8, unit(0, 0.9, 0, np.sqrt(1 - 0.81)), unit(0, 1, 0, 0),
            unit(0, 0.4, 0, np.sqrt(1 - 0.16)))
    m = match_track(acc, NAMES, GALLERY, TH)
    assert m is not None and m.combined[0].score == pytest.approx(0.7, abs=1e-3)
    assert m.decision is None and m.reason == "head score 0.400 < 0.500"
    assert m.decision_lr == "bob" and m.decision_head is None
    strong = TrackEmbeddings()
    strong.add("f1", 0.8, unit(0, 0, 1, 0), unit(0, 0.8, 0, 0.6), unit(0, 0.9, 0, np.sqrt(0.19)))
    s = match_track(strong, NAMES, GALLERY, TH)
    assert s is not None and s.decision == "bob" and s.decision_head == "bob"  # head 0.9
    assert s.decision_lr == "carol"  # the embedder's LR crop names someone else entirely


def test_head_vectors_are_all_or_none_and_kept_by_subset() -> None:
    acc = TrackEmbeddings()
    acc.add("f1", 0.9, unit(1, 0, 0, 0), unit(1, 0, 0, 0), unit(0, 1, 0, 0))
    acc.add("f2", 0.9, unit(1, 0, 0, 0), unit(1, 0, 0, 0), unit(0, 0, 1, 0))
    sub = acc.subset({"f2"})
    assert len(sub.head) == 1 and np.array_equal(sub.head[0], unit(0, 0, 1, 0))
    assert acc.subset({"f1"}).subset({"f1"}).head[0][1] == pytest.approx(1.0)
    with pytest.raises(ContractError, match="no head vector"):
        acc.add("f3", 0.9, unit(1, 0, 0, 0), unit(1, 0, 0, 0))
    plain = TrackEmbeddings()
    plain.add("f1", 0.9, unit(1, 0, 0, 0), unit(1, 0, 0, 0))
    assert plain.subset({"f1"}).head == []
    with pytest.raises(ContractError, match="a head vector"):
        plain.add("f2", 0.9, unit(1, 0, 0, 0), unit(1, 0, 0, 0), unit(1, 0, 0, 0))
