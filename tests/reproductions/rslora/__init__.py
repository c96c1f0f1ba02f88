"""Tests of reproductions/rslora/ (claim L7), one file per module."""
