import pytest

from bench import BenchError
from bench.data.tasks import IGNORE, data_to_text_task, knowledge_task, label_words, made_up_people, prompt_text
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
