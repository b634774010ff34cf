"""Stream time and events, unit by unit: io/live.py Timeline / Thinning, io/events.py EventLog."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from cctv_sr.errors import OutputError
from cctv_sr.io.events import EventLog, OutageEnd, OutageStart
from cctv_sr.io.live import StreamClock, Thinning, Timeline

TB = Fraction(1, 90000)


def seconds(timeline: Timeline, pts: int | None, now: float) -> float:
    out = timeline.place(pts, TB, now)
    assert out is not None
    return float(out * TB)


def test_live_time_never_goes_back_within_a_session() -> None:
    """A camera whose pts jump back (an encoder reset) without a reconnect: stream time
    goes on from the wall clock instead."""
    tl = Timeline(TB, live=True)
    got = [seconds(tl, p, 100.0 + 0.04 * k) for k, p in enumerate([0, 3600, 7200, 10800])]
    got.append(seconds(tl, 10800 - 450000, 100.2))
    got.append(seconds(tl, 10800 - 450000 + 3600, 100.24))
    assert got == sorted(got) and len(set(got)) == len(got)
    assert got[-1] - got[-2] == pytest.approx(0.04, abs=1e-4)


def test_live_time_goes_on_across_sessions_by_the_wall_clock() -> None:
    tl = Timeline(TB, live=True)
    first = [seconds(tl, None if k == 0 else 3600 * k, 10.0 + 0.04 * k) for k in range(5)]
    tl.new_session()  # reopened 3 s later, its pts start again near 0
    again = [seconds(tl, 123 + 3600 * k, 13.16 + 0.04 * k) for k in range(3)]
    assert first[0] == 0.0
    assert again[0] - first[-1] == pytest.approx(3.0, abs=1e-3)
    assert again == sorted(again)


def test_file_time_counts_from_its_first_frame() -> None:
    tl = Timeline(Fraction(1, 25), live=False)
    assert [tl.place(p, Fraction(1, 25), 0.0) for p in (35, 36, 37)] == [0, 1, 2]


def test_clock_and_thinning() -> None:
    clock = StreamClock()
    assert clock.utc(1.0) is None
    clock.set_live(1_800_000_000.0)
    clock.set_live(5.0)  # set once
    assert clock.utc(1.5) == "2027-01-15T08:00:01.500Z"
    thin = Thinning(stride=2, max_fps=5.0)
    kept = [i for i in range(50) if thin.wanted(i, i, Fraction(1, 25), 25.0)]
    assert kept == list(range(0, 50, 6))  # even frames, at least 0.2 s apart


def test_event_log_counts_what_is_on_disk_and_reports_a_failed_write(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    first = log.emit(OutageStart("cam0", "the stream ended", 4.0, 100), 1.0)
    log.emit(OutageEnd("cam0", 2.5, 3, 61, 6.5), 2.0)
    lines = [json.loads(x) for x in log.path.read_text().splitlines()]
    assert [x["event"] for x in lines] == ["outage_start", "outage_end"]
    assert lines[0]["event_id"] == first and first.endswith("-000001")
    assert log.counts.outages == 1 and log.counts.frames_lost == 61
    assert EventLog(tmp_path / "..").run_id != log.run_id  # ids unique across runs
    log.close()


def test_event_log_on_a_full_disk(tmp_path: Path) -> None:
    """/dev/full: every write fails with ENOSPC, as on a full disk."""
    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("/dev/full not available")
    (tmp_path / "events.jsonl").symlink_to(full)
    log = EventLog(tmp_path)
    with pytest.raises(OutputError, match="No space left"):
        log.emit(OutageStart("cam0", "x", 9.0, 200), 3.0)
    assert log.counts.outages == 0  # not counted: not on disk
    with pytest.raises(OutputError, match="No space left"):
        log.close()  # the run learns of it when it closes its outputs
