"""Tests of reproductions/real/ (MiniLM + Rotten Tomatoes), one file per module; skipped without the model and
data packages (tox -e py installs them)."""
