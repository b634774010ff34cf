"""``python -m cctv_sr.cli``: the same as the ``cctv-sr`` command."""

from __future__ import annotations

import sys

from cctv_sr.cli.main import main

sys.exit(main())
