"""bench.realmodel: the installed MiniLM package is checked file by file against the pinned wheel's bytes."""

import shutil

import pytest

from bench import BenchError

realmodel = pytest.importorskip("bench.realmodel")
pkg = pytest.importorskip(realmodel.PACKAGE)


def test_every_file_the_loader_reads_is_checked(tmp_path, monkeypatch):
    src = realmodel.Path(pkg.get_model_path())
    copy = tmp_path / "model"
    copy.mkdir()
    for name in realmodel.PACKAGE_SHA256:
        shutil.copy2(src / name, copy / name)
    monkeypatch.setattr(pkg, "get_model_path", lambda: str(copy))
    assert realmodel.model_path() == copy                                   # intact copy: accepted
    for name in realmodel.PACKAGE_SHA256:
        good = (copy / name).read_bytes()
        for damaged in (good[:-1], good[:-1] + bytes([good[-1] ^ 1]), None):
            if damaged is None:
                (copy / name).unlink()
            else:
                (copy / name).write_bytes(damaged)
            with pytest.raises(BenchError) as e:
                realmodel.model_path()
            assert "\n" not in str(e.value) and name in str(e.value) and "reinstall" in str(e.value)
            (copy / name).write_bytes(good)
    assert realmodel.model_path() == copy
