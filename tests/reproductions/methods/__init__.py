"""Tests of reproductions/methods/ (the performance benchmark of bench.methods), one file per module; no timing
runs are judged."""
