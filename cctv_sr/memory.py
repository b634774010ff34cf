"""Keep a long run's memory flat: glibc malloc's mmap threshold, fixed at start.

glibc raises its mmap threshold each time an mmap'd block (over 128 KiB) is freed, so from
then on frame and tensor buffers of 128 KiB to 32 MiB come from the heap, and every new mix of
sizes (the first tracks, a reconnect, new crop sizes) pushes the heap's high-water mark up
while the freed memory is kept, not returned. A live run's RSS then rises in steps for many
minutes (docs/SOAK.md: +40 MB in 3 minutes of a soak, with Python objects and malloc's own
in-use figure flat). Fixing the threshold at 128 KiB (``mallopt(M_MMAP_THRESHOLD)``, which
also stops the sliding) serves large buffers from mmap and gives them back when freed.

:func:`tune_malloc` is called by ``cctv-sr run`` when an input is a live stream, not for
files: every large buffer then costs an mmap and page faults, which made a 1080p file run
35% slower (measured side by side with ``cctv-sr bench``: 21-24 against 35-37 frames/s
end-to-end, decode-only 127 against 165 frames/s), while a live run is paced by its camera.
``CCTV_SR_MALLOC_TUNE=0`` leaves malloc as it is (as do non-glibc platforms).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
THRESHOLD = 128 * 1024


def tune_malloc() -> bool:
    """Fix glibc's mmap threshold; True when it was set."""
    if os.environ.get("CCTV_SR_MALLOC_TUNE", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        done = bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    log.debug("malloc mmap threshold fixed at %d bytes: %s", THRESHOLD, done)
    return done
