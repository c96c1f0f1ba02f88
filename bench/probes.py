"""Memory probes shared by the harnesses: bytes autograd saves for backward, and process RSS.

`SavedTensors` counts what a forward pass keeps for backward (torch.autograd.graph.saved_tensors_hooks), each
storage once, leaving out storages the caller names (the parameters: they are resident anyway). Under autocast
the 16-bit weight copies are new storages, so they count. RSS helpers read /proc on Linux.
"""

from __future__ import annotations

import ctypes
import gc
import os
import re
import resource
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterable

import torch


def storage_key(t: torch.Tensor) -> tuple[tuple[str, int], int]:
    """((device type, storage pointer), storage bytes): two views of one storage share the key."""
    s = t.untyped_storage()
    return (t.device.type, s.data_ptr()), s.nbytes()


def unique_bytes(tensors: Iterable[torch.Tensor | None], exclude=frozenset()) -> int:
    """Bytes of the distinct storages behind `tensors` (None and meta tensors skipped), minus keys in exclude."""
    seen = {}
    for t in tensors:
        if t is None or t.device.type == "meta":
            continue
        key, n = storage_key(t)
        if key not in exclude:
            seen[key] = n
    return int(sum(seen.values()))


class SavedTensors:
    """Context manager: `.bytes` = distinct storages saved for backward inside it, minus `exclude`'s.

        with SavedTensors(exclude=model.parameters()) as saved:
            loss = model(ids, labels=ids).loss
        saved.bytes
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()):
        self.exclude = {storage_key(t)[0] for t in exclude}
        self.seen: dict = {}
        self.bytes = 0

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        if t.device.type != "meta":
            key, n = storage_key(t)
            if key not in self.exclude:
                self.seen[key] = n
        return t

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)
        self.bytes = int(sum(self.seen.values()))


def rss_bytes(peak: bool = False) -> int:
    """Resident set size of this process (VmRSS), or its peak since the last `reset_peak_rss` (VmHWM)."""
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"{'VmHWM' if peak else 'VmRSS'}:\s+(\d+) kB", f.read())
        return int(m.group(1)) * 1024
    except (OSError, AttributeError):  # not Linux: ru_maxrss (kB on Linux, bytes on macOS), never reset
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r if sys.platform == "darwin" else r * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux: write 5 to /proc/self/clear_refs). False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def trim() -> None:
    """Collect garbage and hand freed heap pages back to the OS, so later RSS growth is new memory."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


class PeakRSS:
    """Samples the process RSS every `interval` seconds in a thread; `.peak` is the largest value seen (bytes).
    A sampler, not the kernel's mark: use it where the mark cannot be reset."""

    def __init__(self, interval: float = 1e-3):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def __enter__(self):
        self.peak = rss_bytes()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_bytes())


@contextmanager
def quiet_native_stderr():
    """Silence file descriptor 2 for the block: torch's profiler (kineto) prints `profiler_start` /
    `profiler_stop` lines from C++ on every use, with no setting to turn them off. Python exceptions still
    propagate (and print after the block)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)

