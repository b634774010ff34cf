"""The run report: ``OUTDIR/report.html``, one static offline page about a run's results.

:func:`write_report` reads OUTDIR (:mod:`~cctv_sr.report.load`, into the records of
:mod:`~cctv_sr.report.model`) and renders it (:mod:`~cctv_sr.report.html`, with the
timelines of :mod:`~cctv_sr.report.timeline` and the page's own style and script,
:mod:`~cctv_sr.report.assets`).
"""

from cctv_sr.report.html import write_report
from cctv_sr.report.load import load_report

__all__ = ["load_report", "write_report"]
