"""The report's timelines: one inline SVG per camera, one bar per track over stream seconds,
coloured by the person it was matched to, with the run's events of that camera as ticks.

Bars are packed into lanes (a track takes the first lane free at its start), so a busy
camera stays a compact picture; past :data:`MAX_LANES` lanes bars share lanes. Each bar
carries ``data-k``, the index of its card, so the page's script can jump to the card and dim
bars the filters hide. Every string from the files is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

from cctv_sr.report.model import (
    MATCHED,
    NO_MATCH,
    NOT_MATCHABLE,
    NOT_SCORED,
    Event,
    StreamData,
    Track,
)

MAX_LANES = 40
LANE_H, LANE_GAP, AXIS_H = 9, 3, 22  # pixels
MARGIN = 0.5  # percent of the width either side
MIN_BAR = 0.15  # percent: the narrowest bar

# colours of tracks that name nobody, and the palette people get in sorted-name order
STATE_COLOURS = {NO_MATCH: "#7d8796", NOT_MATCHABLE: "#4a505c", NOT_SCORED: "#5f7fa6"}
STATE_LABELS = {NO_MATCH: "no match", NOT_MATCHABLE: "not matchable", NOT_SCORED: "not scored"}
PALETTE = ("#f2a03d", "#4fc1a6", "#e36d8c", "#8fb5ff", "#c9d45c", "#b78cf2", "#f07b52",
           "#5ed0e6", "#e8c15a", "#9ad07b", "#ef93d0", "#77a1e0")


def person_colours(people: Sequence[str]) -> dict[str, str]:
    """A colour per matched person (the palette repeats past its length)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(people)}


def track_colour(track: Track, colours: Mapping[str, str]) -> str:
    if track.state == MATCHED and track.match is not None and track.match.decision:
        return colours.get(track.match.decision, PALETTE[0])
    return STATE_COLOURS[track.state]


def track_span(track: Track, fps: float | None) -> tuple[float, float] | None:
    """A track's (start, end) in stream seconds; from frames and fps when seconds are
    missing; ``None`` when neither is known."""
    start, end = track.first_seconds, track.last_seconds
    if (start is None or end is None) and fps and fps > 0:
        if track.first_frame is not None and track.last_frame is not None:
            start, end = track.first_frame / fps, track.last_frame / fps
    if start is None or end is None:
        return None
    return start, max(start, end)


def _lanes(spans: Sequence[tuple[float, float]], pad: float) -> list[int]:
    """A lane per span (spans sorted by start): the first lane whose last bar has ended."""
    ends: list[float] = []
    out = []
    for start, end in spans:
        for lane, last in enumerate(ends):
            if last + pad <= start:
                ends[lane] = end
                out.append(lane)
                break
        else:
            if len(ends) < MAX_LANES:
                ends.append(end)
                out.append(len(ends) - 1)
            else:  # full: the lane that frees first
                lane = min(range(len(ends)), key=ends.__getitem__)
                ends[lane] = max(ends[lane], end)
                out.append(lane)
    return out


def _step(span: float) -> float:
    """A round tick step giving about 8 ticks over ``span`` seconds."""
    raw = max(span / 8.0, 1e-3)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def clock(seconds: float) -> str:
    """Stream seconds as m:ss.s (h:mm:ss past an hour)."""
    s = max(0.0, seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h >= 1:
        return f"{int(h)}:{int(m):02d}:{int(sec):02d}"
    return f"{int(m)}:{sec:04.1f}"


def timeline_svg(stream: StreamData, index: Mapping[tuple[str, int], int],
                 colours: Mapping[str, str], events: Sequence[Event] = ()) -> str:
    """The SVG of one camera (``index``: card index of each (stream, track_id))."""
    rows = sorted(((sp, t) for t in stream.tracks
                   if (sp := track_span(t, stream.fps)) is not None), key=lambda r: r[0])
    marks = [e for e in events if e.seconds is not None]
    end = max([sp[1] for sp, _ in rows] + [e.seconds or 0.0 for e in marks] + [1.0])
    scale = (100.0 - 2 * MARGIN) / end  # percent of the width per second
    lanes = _lanes([sp for sp, _ in rows], pad=0.3 / scale)
    n_lanes = max(lanes, default=0) + 1
    height = AXIS_H + n_lanes * (LANE_H + LANE_GAP) + 4
    parts = [f'<svg class="timeline" width="100%" height="{height}" role="img" '
             f'aria-label="timeline of {escape(stream.stream)}">']
    step = _step(end)
    tick = 0.0
    while tick <= end + 1e-9:
        x = MARGIN + tick * scale
        anchor, dx = ("end", -3) if x > 95 else ("start", 3)
        parts.append(f'<line class="tick" x1="{x:.2f}%" x2="{x:.2f}%" y1="{AXIS_H - 6}" '
                     f'y2="{height}"/><text class="tlabel" x="{x:.2f}%" dx="{dx}" y="12" '
                     f'text-anchor="{anchor}">{escape(clock(tick))}</text>')
        tick += step
    for ev in marks:
        x = MARGIN + (ev.seconds or 0.0) * scale
        label = f"{ev.event} at {clock(ev.seconds or 0.0)}" + (f" ({ev.utc})" if ev.utc else "")
        parts.append(f'<line class="event" x1="{x:.2f}%" x2="{x:.2f}%" y1="{AXIS_H - 6}" '
                     f'y2="{height}"><title>{escape(label)}</title></line>')
    for ((start, stop), t), lane in zip(rows, lanes):
        x = MARGIN + start * scale
        w = max(MIN_BAR, (stop - start) * scale)
        y = AXIS_H + lane * (LANE_H + LANE_GAP)
        who = STATE_LABELS.get(t.state, "")
        if t.match is not None and t.match.decision:
            who = t.match.decision
        title = (f"{t.stream} track {t.track_id}: {clock(start)}-{clock(stop)}, "
                 f"{t.n_faces} faces, {who}")
        parts.append(f'<rect class="bar" data-k="{index[(t.stream, t.track_id)]}" '
                     f'x="{x:.2f}%" y="{y}" width="{w:.2f}%" height="{LANE_H}" rx="2" '
                     f'fill="{track_colour(t, colours)}"><title>{escape(title)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def legend_html(colours: Mapping[str, str], states: Sequence[str]) -> str:
    """The colour key: each matched person, then the states present."""
    items = [(c, name) for name, c in colours.items()]
    items += [(STATE_COLOURS[s], STATE_LABELS[s]) for s in states if s in STATE_COLOURS]
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{c}"></i>{escape(label)}</span>' for c, label in items
    ) + "</div>"
