"""cctv-sr: turn CCTV footage into identifiable faces.

Enhanced (super-resolved) faces are aids to identification, never evidence: a super-resolution
model can produce a sharp face that belongs to someone else. Every output says so.
"""

from __future__ import annotations

__version__ = "0.1.0"

EVIDENCE_NOTE = (
    "Enhanced face crops are machine-generated aids to identification, not evidence. "
    "Super-resolution can invent detail; confirm any identification on the original footage."
)
