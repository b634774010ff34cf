"""report.html kept current while a live run goes on.

A live run has no end an operator waits for, so :class:`ReportRefresher` rewrites
``OUTDIR/report.html`` every ``output.report_every_s`` seconds from a background thread, from
the files the run has written so far (the loader takes a half-written last line in its
stride, and the page is replaced atomically, so a reader never sees half a page). The run
writes the final report itself after :meth:`ReportRefresher.stop`, which waits for a rewrite
in progress, so two writers never race. A failed rewrite is logged once and retried at the
next interval; it never stops the run.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from cctv_sr.errors import CctvSrError
from cctv_sr.report.html import write_report

log = logging.getLogger(__name__)


class ReportRefresher(threading.Thread):
    """Rewrites ``outdir``'s report.html every ``every_s`` seconds until :meth:`stop`."""

    def __init__(self, outdir: Path, every_s: float) -> None:
        super().__init__(name="cctv-report", daemon=True)
        self.outdir = Path(outdir)
        self.every_s = every_s
        self.written = 0  # rewrites that succeeded
        self._done = threading.Event()
        self._warned = False

    def run(self) -> None:
        while not self._done.wait(self.every_s):
            try:
                write_report(self.outdir)
                self.written += 1
            except CctvSrError as exc:
                if not self._warned:
                    log.warning("report.html not refreshed (retried every %g s): %s",
                                self.every_s, exc)
                    self._warned = True

    def stop(self) -> None:
        """End the thread, after the rewrite in progress (if any) is done."""
        self._done.set()
        if self.is_alive():
            self.join()
