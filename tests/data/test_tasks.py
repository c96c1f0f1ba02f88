import pytest

from bench import BenchError
from bench.data.tasks import (IGNORE, data_to_text_task, knowledge_task, label_words, made_up_people, next_month,
                              next_month_task, prompt_text)
from bench.data.tokenizer import train_tokenizer
from bench.data.world import build_world


@pytest.fixture(scope="module")
def wt():
    w = build_world("smoke")
    return w, train_tokenizer(w.tokenizer_texts())


def _entities(ds):
    return set(ds["entity"])


@pytest.mark.parametrize("fmt", ["qa", "cloze", "discrete", "table"])
def test_knowledge_task_split_by_entity(wt, fmt):
    w, tok = wt
    dd = knowledge_task(w, tok, attributes="all", fmt=fmt)
    tr, va, te = (_entities(dd[s]) for s in ("train", "validation", "test"))
    assert tr and va and te and not (tr & va) and not (tr & te) and not (va & te)
    assert te == {p.id for p in w.split_people("test")}
    row = dd["test"][0]
    assert len(row["candidate_ids"]) == len(row["candidates"]) == len(label_words(row["attribute"]))
    assert row["candidates"][row["label"]] == row["answer"]
    assert row["input_ids"] == row["prompt_ids"] + [row["candidate_ids"][row["label"]]]
    assert row["labels"][:-1] == [IGNORE] * len(row["prompt_ids"]) and row["labels"][-1] == row["input_ids"][-1]
    assert tok.decode(row["prompt_ids"]) == row["prompt"]


def test_prompt_formats(wt):
    assert prompt_text("city", "qa") == "Q: where was {n} born ? A:"
    assert prompt_text("city", "cloze") == "{n} was born in"
    assert prompt_text("city", "discrete") != prompt_text("city", "cloze")
    w, tok = wt
    with pytest.raises(BenchError, match="exactly one attribute"):
        knowledge_task(w, tok, attributes="all", fmt="bare")
    with pytest.raises(BenchError, match="unknown attribute"):
        knowledge_task(w, tok, attributes="shoe size")


def test_data_to_text_task(wt):
    w, tok = wt
    dd = data_to_text_task(w, tok, per_person=2)
    assert not (_entities(dd["train"]) & _entities(dd["test"]))
    assert len(dd["test"]) == 2 * len(made_up_people(w, "test"))
    world_names = {p.name.split()[0] for p in w.people}
    assert not {t.split()[2] for t in list(dd["train"]["table"]) + list(dd["test"]["table"])} & world_names
    for row in dd["test"].select(range(5)):
        assert all(v in row["reference"].split() for v in row["values"])  # the answer is in the input
        assert all(v in row["table"].split() for v in row["values"])
        assert row["input_ids"][-1] == tok.eos_token_id
        n = len(row["prompt_ids"])
        assert row["labels"][:n] == [IGNORE] * n and tok.decode(row["labels"][n:-1]) == row["reference"]


# ---------------------------------------------------------------- next_month_task (issue 14's adaptation task)

def test_next_month_mapping():
    assert next_month("January") == "February" and next_month("December") == "January"
    assert sorted(next_month(m) for m in label_words("month")) == sorted(label_words("month"))   # a bijection


@pytest.mark.parametrize("fmt,people", [("sentence", "made_up"), ("table", "made_up"), ("sentence", "world"),
                                        ("table", "world")])
def test_next_month_task_rows(wt, fmt, people):
    w, tok = wt
    dd = next_month_task(w, tok, fmt=fmt, people=people, per_person=3)
    tr, va, te = (_entities(dd[s]) for s in ("train", "validation", "test"))
    assert tr and va and te and not (tr & va) and not (tr & te) and not (va & te)          # split by person
    names = {s: set(dd[s]["name"]) for s in dd}
    assert not (names["train"] & names["test"]) and not (names["validation"] & names["test"])
    group = (lambda s: w.split_people(s)) if people == "world" else (lambda s: made_up_people(w, s))
    for s in ("train", "validation", "test"):
        assert _entities(dd[s]) == {p.id for p in group(s)} and len(dd[s]) == 3 * len(group(s))
    months = label_words("month")
    for row in dd["test"]:
        assert row["candidates"] == months and row["answer"] == next_month(row["stated"]) != row["stated"]
        assert row["candidates"][row["label"]] == row["answer"]
        assert len(row["candidate_ids"]) == 12 and len(set(row["candidate_ids"])) == 12   # one token per month
        assert [tok.decode([i]) for i in row["candidate_ids"]] == months
        assert tok.unk_token_id not in row["input_ids"]
        assert row["input_ids"] == row["prompt_ids"] + [row["candidate_ids"][row["label"]]]
        assert row["labels"] == [IGNORE] * len(row["prompt_ids"]) + [row["input_ids"][-1]]
        assert tok.decode(row["prompt_ids"]) == row["prompt"] and row["prompt"].endswith("new month :")
        words = row["prompt"].split()
        assert row["stated"] in words and row["answer"] not in words         # to be computed, not copied
        assert row["name"] in row["prompt"]                                 # the source is in the input
    if people == "world":          # the person's own month, as pretraining states it
        own = {p.id: p.attrs["month"] for p in w.people}
        assert all(own[e] == m for e, m in zip(dd["test"]["entity"], dd["test"]["stated"]))
    else:                          # a name's rows state different months: the name never predicts the answer
        by_name = {}
        for e, m in zip(dd["train"]["entity"], dd["train"]["stated"]):
            by_name.setdefault(e, []).append(m)
        assert all(len(set(ms)) == len(ms) for ms in by_name.values())


def test_next_month_task_is_deterministic(wt):
    w, tok = wt
    a, b = next_month_task(w, tok), next_month_task(w, tok)
    for s in a:
        assert a[s].to_list() == b[s].to_list()
    assert next_month_task(w, tok, seed=1)["train"]["prompt"] != a["train"]["prompt"]


def test_next_month_task_errors(wt):
    w, tok = wt
    for kw in (dict(fmt="qa"), dict(people="everyone"), dict(per_person=0)):
        with pytest.raises(BenchError):
            next_month_task(w, tok, **kw)
