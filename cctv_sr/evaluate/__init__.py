"""Benchmarks that anyone can rerun (docs/EVAL.md): ``cctv-sr eval identify`` for now.

Modules: :mod:`~cctv_sr.evaluate.identify` (the benchmark), :mod:`~cctv_sr.evaluate.oracle`
(ground-truth alignment and its cache), :mod:`~cctv_sr.evaluate.workers` (the process pool),
:mod:`~cctv_sr.evaluate.report` (the text table), :mod:`~cctv_sr.evaluate.metrics`,
:mod:`~cctv_sr.evaluate.methods`, :mod:`~cctv_sr.evaluate.openset` (the watchlist figures of
``--open-set``), :mod:`~cctv_sr.evaluate.det_plot` (its DET picture),
:mod:`~cctv_sr.evaluate.calibrate` and :mod:`~cctv_sr.evaluate.bench`.

Example::

    from cctv_sr.evaluate import IdentifyConfig, run_identify

    result = run_identify(IdentifyConfig(data=Path("lfw_dev"), methods=("hr", "bicubic")))
    print(format_report(result))
"""

from __future__ import annotations

from cctv_sr.evaluate.identify import IdentifyConfig, IdentifyResult, IdentifyRow, run_identify
from cctv_sr.evaluate.report import format_report, format_table

__all__ = [
    "IdentifyConfig",
    "IdentifyResult",
    "IdentifyRow",
    "format_report",
    "format_table",
    "run_identify",
]
