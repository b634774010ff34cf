"""Text report of ``cctv-sr eval identify`` (docs/EVAL.md section 1).

:func:`format_table` lays the figures out as in the reference table of docs/EVAL.md: one
line per method, one column group per probe size, rank-1 and TAR per embedder, in %; a figure
that is undefined or not applicable (an embedding method under another embedder) is ``-``.
:func:`format_report` adds the counts and the provenance lines under it, and with the open set
(docs/EVAL.md 1b) the table of :func:`format_open_set` after them.

Example::

    result = run_identify(IdentifyConfig(data=Path("lfw_dev")))
    print(format_report(result))
"""

from __future__ import annotations

import math

from cctv_sr.data.degrade import HR_SIDE
from cctv_sr.evaluate.identify import FAR, IdentifyResult
from cctv_sr.evaluate.methods import DEFAULT, default_sr_name
from cctv_sr.evaluate.openset import (
    CAL_FPIR,
    FPIR_TARGETS,
    MARGIN_KEEP,
    RULES,
    SHIPPED_SOURCE,
    OpenSetResult,
)

EMBEDDER_LABELS = {"mobilefacenet": "MFN", "dlib": "dlib", "arcface": "ArcF"}

__all__ = ["EMBEDDER_LABELS", "format_open_set", "format_report", "format_rules",
           "format_table"]


def format_table(result: IdentifyResult) -> str:
    """Rows = methods; columns = size x metric x embedder, in %."""
    cols = [(s, metric, e) for s in result.sizes for metric in ("r1", "TAR")
            for e in result.embedders]
    labels = [f"{metric} {EMBEDDER_LABELS.get(e, e[:5])}" for _, metric, e in cols]
    width = max(7, *(len(lab) + 2 for lab in labels))
    name_w = max(8, *(len(m) for m in result.methods)) + 1
    group = len(result.embedders) * 2
    lines = []
    head1 = " " * name_w
    for s in result.sizes:
        head1 += f"| s={s}".ljust(width * group + 2)
    lines.append(head1.rstrip())
    head2 = "method".ljust(name_w)
    for i, lab in enumerate(labels):
        head2 += ("| " if i % group == 0 else "") + lab.rjust(width)
    lines.append(head2)
    for m in result.methods:
        line = m.ljust(name_w)
        for i, (s, metric, e) in enumerate(cols):
            r = result.row(m, s, e)
            v = r.rank1 if metric == "r1" else r.tar_at_far_1e_2
            cell = "-" if v is None or math.isnan(v) else f"{100 * v:.1f}"
            line += ("| " if i % group == 0 else "") + cell.rjust(width)
        lines.append(line)
    return "\n".join(lines)


def _pct(v: float) -> str:
    return "-" if v is None or math.isnan(v) else f"{100 * v:.1f}"


def _open_block(result: IdentifyResult, ores: OpenSetResult, embedder: str) -> list[str]:
    """One embedder's open-set table: rows = methods, columns = size x figure."""
    figures = [f"FNIR@{f:g}" for f in FPIR_TARGETS] + ["FPIR@t", "FNIR@t"]
    width = max(8, *(len(f) + 2 for f in figures))
    name_w = max(8, *(len(m) for m in result.methods)) + 1
    t = ores.shipped.get(embedder, math.nan)
    shipped = "none (no calibrated threshold)" if math.isnan(t) else f"{t:.4f} ({SHIPPED_SOURCE})"
    lines = [f"open set, {EMBEDDER_LABELS.get(embedder, embedder)}={embedder}: shipped "
             f"threshold t = {shipped}, in %"]
    by_size = {s: r.threshold_shipped for s in result.sizes for r in ores.rows
               if (r.embedder, r.size, r.method) == (embedder, s, "bicubic")}
    if any(not math.isnan(v) and abs(v - t) > 1e-6 for v in by_size.values()):
        lines.append("  t of faces of s px: " + ", ".join(
            f"s={s}: {v:.4f}" for s, v in by_size.items()) + " (hr rows use the t above)")
    head1 = " " * name_w
    for s in result.sizes:
        head1 += f"| s={s}".ljust(width * len(figures) + 2)
    lines.append(head1.rstrip())
    lines.append("method".ljust(name_w) + "".join(
        f"| {''.join(f.rjust(width) for f in figures)}" for _ in result.sizes))
    for m in result.methods:
        line = m.ljust(name_w)
        for s in result.sizes:
            r = ores.row(m, s, embedder)
            cells = [*r.fnir_at_fpir, r.fpir_shipped, r.fnir_shipped]
            line += "| " + "".join(_pct(v).rjust(width) for v in cells)
        lines.append(line)
    return lines


def _rules_block(ores: OpenSetResult, embedder: str) -> list[str]:
    """One embedder's score-rule table: rows = rules, columns = (method, s) x figure, on the
    test half; the calibrated thresholds / gaps first."""
    rows = [r for r in ores.rows if r.embedder == embedder and r.rules]
    hr_size = next((r.size for r in rows if r.method == "hr"), None)
    cols = [r for r in rows if r.method != "hr" or r.size == hr_size]  # hr: one column
    if not cols:
        return []
    cals = ores.calibration.get(embedder, {})
    where = "the calibration half of the hr probes" if cals else "each row's calibration half"
    lines = [f"score rules, {EMBEDDER_LABELS.get(embedder, embedder)}: FNIR@{FPIR_TARGETS[0]:g}"
             f" and FPIR/FNIR at the threshold calibrated for FPIR {CAL_FPIR:g} on {where}; "
             f"test half, in %"]
    if cals:
        lines.append("calibrated: " + ", ".join(
            f"{rule} t={c.threshold:.4f}" + ("" if math.isnan(c.gap) else f" g={c.gap:.4f}")
            for rule, c in cals.items()))
    w = 7
    head1 = " " * 9 + "".join(
        f"| {'hr' if r.method == 'hr' else f'{r.method} s={r.size}'}".ljust(3 * w + 2)
        for r in cols)
    head2 = "rule".ljust(9) + "".join(
        "| " + "".join(f.rjust(w) for f in (f"F@{FPIR_TARGETS[0]:g}", "FPIR@t", "FNIR@t"))
        for _ in cols)
    lines += [head1.rstrip(), head2]
    for rule in RULES:
        line = rule.ljust(9)
        for r in cols:
            fig = r.rules[rule]
            line += "| " + "".join(_pct(v).rjust(w) for v in (fig.fnir_at_fpir[0], fig.fpir_cal,
                                                            fig.fnir_cal))
        lines.append(line)
    return lines


def format_rules(result: IdentifyResult) -> str:
    """The score-rule tables (one per embedder) and the split counts; empty without them."""
    ores = result.open_set
    if ores is None or ores.norm_split is None:
        return ""
    out: list[str] = []
    for e in result.embedders:
        out += _rules_block(ores, e) + [""]
    c = ores.norm_split.counts(ores.split.labels)
    out += [f"rules: {'; '.join(f'{k}: {v}' for k, v in RULES.items())}",
            f"margin gap g: the margin {MARGIN_KEEP:.0%} of the calibration half's listed "
            f"top-1 hits reach; explicit cohort: {c['cohort_identities']} stranger "
            f"identities' gallery templates",
            f"calibration half: {c['calibration_listed_probes']} listed / "
            f"{c['calibration_stranger_probes']} stranger probes; test half: "
            f"{c['test_listed_probes']} listed / {c['test_stranger_probes']} stranger probes "
            f"({c['test_stranger_probes_c']} for the *_c rules)"]
    return "\n".join(out)


def format_open_set(result: IdentifyResult) -> str:
    """The open-set tables (one per embedder) and their counts; empty without the open set."""
    ores = result.open_set
    if ores is None:
        return ""
    out: list[str] = []
    for e in result.embedders:
        out += _open_block(result, ores, e) + [""]
    sp = ores.split
    out += [f"watchlist: {sp.watchlist_identities} of {result.identities} gallery identities "
            f"(those whose sha256(name) ends in an odd hex digit); listed probes "
            f"{sp.listed_probes} ({sp.listed_identities} identities), stranger probes "
            f"{sp.stranger_probes} ({sp.stranger_identities} identities)",
            "FNIR@f: listed probes missed at the threshold naming at most a share f of the "
            "strangers; FPIR@t / FNIR@t at the shipped threshold t; named = best score >= t"]
    coarse = [f"{f:g}" for f in FPIR_TARGETS if sp.stranger_probes * f < 1]
    if sp.stranger_probes and coarse:
        out.append(f"with {sp.stranger_probes} stranger probes FPIR {', '.join(coarse)} is not "
                   f"resolved: its threshold is just above the top stranger score (FPIR 0)")
    return "\n".join(out)


def format_report(result: IdentifyResult) -> str:
    """The table plus the counts and provenance lines."""
    mode = f"bursts of {result.burst} frames" if result.burst else "stills"
    if result.seed:
        mode += f" (degradation seed {result.seed}, not the fixed set)"
    out = [format_table(result), "",
           f"rank-1 and TAR at FAR={FAR:g} in %; {mode}; embedders: "
           + ", ".join(f"{EMBEDDER_LABELS.get(e, e)}={e}" for e in result.embedders),
           f"{result.identities} identities in the gallery, {result.probes} probes "
           f"({result.probe_identities} identities; {result.total_probes} probes before "
           f"--max-probes)",
           f"{result.no_face} images without a face (excluded)"
           + (f"; {result.dropped_identities} identities left out (gallery image without a "
              f"face)" if result.dropped_identities else ""),
           f"oracle alignment: {result.detector} landmarks -> ArcFace template at {HR_SIDE}",
           f"{result.seconds:.1f} s with {result.workers} worker(s)"]
    if DEFAULT in result.methods:
        out.append(f"default = {default_sr_name()} (the SR of `cctv-sr run`)")
    for m, space in result.method_spaces.items():
        out.append(f"{m}: LR probe -> embedding in the {space} space (no image); scored "
                   f"against the {space} gallery only, '-' = not applicable")
    if result.open_set is not None:
        out += ["", format_open_set(result)]
        rules = format_rules(result)
        if rules:
            out += ["", rules]
    return "\n".join(out)
