"""Tests of reproductions/precision/ (claims M1-M3), one file per module."""
