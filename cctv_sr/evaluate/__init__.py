"""Benchmarks that anyone can rerun (EVAL.md): ``cctv-sr eval identify`` for now.

Example::

    from cctv_sr.evaluate import IdentifyConfig, run_identify

    result = run_identify(IdentifyConfig(data=Path("lfw_dev"), methods=("hr", "bicubic")))
    print(format_report(result))
"""

from __future__ import annotations

from cctv_sr.evaluate.identify import (
    IdentifyConfig,
    IdentifyResult,
    IdentifyRow,
    format_report,
    format_table,
    run_identify,
)

__all__ = [
    "IdentifyConfig",
    "IdentifyResult",
    "IdentifyRow",
    "format_report",
    "format_table",
    "run_identify",
]
