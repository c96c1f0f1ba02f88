"""Tests of reproductions/int8/ (claims Q1-Q6), one file per module."""
