"""The ``cctv-sr`` command line: one module per verb, :func:`main` dispatches."""

from __future__ import annotations

from cctv_sr.cli.main import main

__all__ = ["main"]
