"""Atomic writes: a file is either the old version or the complete new one, never half-written."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks). OSError when it cannot be read."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_folder(folder: str | Path, exclude: tuple[str, ...] = ("manifest.json",)) -> dict[str, str]:
    """{relative posix path: sha256} of every file under `folder` (recursively) but `exclude`: what a cached
    artifact's manifest records, so that a damaged, missing or extra file is seen. OSError when unreadable."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).as_posix() not in exclude}


def folder_matches(folder: str | Path, files: dict | None, exclude: tuple[str, ...] = ("manifest.json",)) -> bool:
    """True when `folder` holds exactly the files of a manifest's `files` map, byte for byte (False when a file
    is missing, extra, different or unreadable, or when `files` is empty or not a map)."""
    if not isinstance(files, dict) or not files:
        return False
    try:
        return hash_folder(folder, exclude) == files
    except OSError:
        return False


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)`, then rename tmp_path over `path`. On any error, `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_savefig(path: str | Path, fig) -> Path:
    """Save a matplotlib figure atomically (PNG), with fixed metadata so reruns give the same bytes."""
    return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight",
                                                     metadata={"Software": None}))


# ---------------------------------------------------------------- result folders, replaced as a whole
# A run writes into a hidden staging folder beside its result folder (`.<name>.staging-XXXX`, with the
# writer's pid inside); when complete, the old folder is renamed aside (`.<name>.previous-XXXX`), the
# staging folder renamed into place, and the old one removed. Two renames, so a reader sees the old folder
# or the new one, never a mix. A kill between the renames leaves no folder; `clean_stale` puts the
# previous one back. Staging folders of dead writers are removed by the next run.
STAGING, PREVIOUS = ".staging-", ".previous-"
PID_FILE = ".writer-pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_alive(folder: Path) -> bool:
    try:
        return _alive(int((folder / PID_FILE).read_text().strip()))
    except (OSError, ValueError):
        return False


def clean_stale(out: Path) -> list[Path]:
    """Remove staging folders of `out` left by killed runs, and restore `out` from a previous copy when a
    kill fell between the two renames. Returns what was removed or restored."""
    import shutil
    out = Path(out)
    done = []
    if not out.parent.is_dir():
        return done
    for p in sorted(out.parent.glob(f".{out.name}{STAGING}*")):
        if p.is_dir() and not _writer_alive(p):
            shutil.rmtree(p, ignore_errors=True)
            done.append(p)
    for p in sorted(out.parent.glob(f".{out.name}{PREVIOUS}*")):
        if not p.is_dir():
            continue
        if not out.exists():
            os.rename(p, out)
        else:
            shutil.rmtree(p, ignore_errors=True)
        done.append(p)
    return done


def new_staging(out: Path) -> Path:
    """A fresh staging folder beside `out` (same disk, so the final rename is atomic), marked with our pid."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}{STAGING}", dir=out.parent))
    (staging / PID_FILE).write_text(str(os.getpid()))
    return staging


def publish(staging: Path, out: Path) -> Path:
    """Replace the folder `out` by the complete folder `staging` as a whole (see above)."""
    import shutil
    staging, out = Path(staging), Path(out)
    (staging / PID_FILE).unlink(missing_ok=True)
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder normal permissions
    previous = None
    if out.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{out.name}{PREVIOUS}", dir=out.parent))
        os.rmdir(previous)
        os.rename(out, previous)
    os.rename(staging, out)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
    return out
