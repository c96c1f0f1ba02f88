from bench import BenchError
from bench.data.world import ATTRIBUTE_NAMES, TEMPLATES, build_world

import pytest


def test_world_is_deterministic_for_a_seed():
    a, b, c = build_world("smoke", seed=0), build_world("smoke", seed=0), build_world("smoke", seed=1)
    assert a.corpus("train", epoch=3) == b.corpus("train", epoch=3)
    assert a.corpus("validation") == b.corpus("validation")
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert a.corpus("train", epoch=0) != a.corpus("train", epoch=1)   # fresh paraphrases per epoch


def test_people_unique_and_split():
    w = build_world("cpu")
    assert len({p.first for p in w.people}) == len(w.people)            # first name identifies a person
    sizes = {s: len(w.split_people(s)) for s in ("train", "validation", "test")}
    assert sum(sizes.values()) == len(w.people) and min(sizes.values()) > 0


def test_test_people_appear_only_in_biographies():
    w = build_world("smoke")
    docs = w.corpus("train", epoch=0)
    qa_or_table = [d for d in docs if d.startswith("Q:") or d.startswith("name :")]
    assert qa_or_table
    held_out = [p for p in w.people if p.split != "train"]
    for p in held_out:
        assert not any(p.name in d for d in qa_or_table), p.name
        assert any(p.name in d for d in docs)                          # but they are in pretraining
    made_up = {d.split(" | ")[0][len("name : "):].split()[0] for d in qa_or_table if d.startswith("name :")}
    assert made_up & set(w.extra_names)                                 # tables of made-up people (copying)
    assert not made_up & {p.first for p in held_out}


def test_biographies_state_the_true_facts():
    w = build_world("smoke")
    docs = w.corpus("train", epoch=2)
    p = w.people[0]
    bio = next(d for d in docs if d.startswith(p.name) or f"of {p.name}" in d.split(" . ")[0])
    for a in ATTRIBUTE_NAMES:
        assert p.attrs[a] in bio.split()
    # cloze prefixes are unambiguous: no two attributes share a template prefix
    prefixes = {t.split(" {v}")[0]: a for a, ts in TEMPLATES.items() for t in ts}
    assert len(prefixes) == sum(len(ts) for ts in TEMPLATES.values())


def test_bad_profile_is_a_bench_error():
    with pytest.raises(BenchError, match="unknown world profile"):
        build_world("huge")
