"""Face tracking: Kalman motion, assignment, per-track bookkeeping."""
