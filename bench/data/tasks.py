"""Downstream tasks on the world, split BY PERSON: the world's train people are the fine-tuning data, its
validation people select hyper-parameters, and its test people are scored. Test people appear in
pretraining (biographies only) but never in fine-tuning data.

- `knowledge_task`: ask for an attribute of a person (the LAMA / SuperGLUE analogue). Scored by accuracy of
  the argmax of the next-token logits at the answer position, restricted to the candidate answers
  (every candidate is one token). The answer is NOT in the input: it measures stored knowledge.
- `data_to_text_task`: an attribute table in, one sentence out (the E2E analogue, Li & Liang 2021), about
  made-up people whose facts exist only in the table. The answer IS in the input (a skill: copy and
  verbalise), so fine-tuning can generalise to new people. (With world people as the subjects, fine-tuning
  on people the model already knows taught recall instead of copying: attribute match fell to ~20%.)
  Scored by BLEU, exact match and attribute match.
- `next_month_task`: the person's birth month is stated in the input (a biography sentence, or the attribute
  table), and the answer is the month AFTER it (December -> January): a new output mapping that the corpus never
  shows, so the frozen model cannot do it (it answers the stated month), while the answer's source is in the
  input, so fine-tuning can generalise to test people at every rung, even one that stored few facts (the
  adaptation task of issue 14, Lester et al. 2021's "model tuning vs prompt tuning" question). Scored like
  `knowledge_task` (argmax over the 12 months at the answer position; chance 1/12).

Rows carry text and token ids: `prompt_ids` (what the model sees), `input_ids` / `labels` (prompt + answer,
loss only on the answer, for `bench.train.train`).
"""

from __future__ import annotations

import random

import datasets

from bench import BenchError
from bench.data.world import (ATTRIBUTE_NAMES, ATTRIBUTES, DISCRETE_PROMPTS, QUESTIONS, TEMPLATES, Person, World,
                              table_text)

IGNORE = -100
MADE_UP_ID0 = 100_000   # entity ids of the data-to-text task's made-up people (world people are 0..n-1)
FORMATS = ("qa", "cloze", "discrete", "table", "bare")
# The target style of data-to-text: one clause per attribute, joined into one sentence.
CLAUSES = {"city": "was born in {v}", "month": "has a birthday in {v}", "university": "studied at {v}",
           "field": "majored in {v}", "employer": "works for {v}"}


def prompt_text(attribute: str, fmt: str = "qa") -> str:
    """The input template for one attribute, with `{n}` for the person's full name.

    qa: the QA form that pretraining shows for train people ("Q: where was {n} born ? A:");
    cloze: the first biography template up to the value ("{n} was born in");
    discrete: a hand-written English prompt that is not in the corpus (P-tuning's baseline);
    table: the attribute-table form ("name : {n} | city :");
    bare: only the name, so a learned prompt must say what is asked (one attribute per task).
    """
    _check_attr(attribute)
    if fmt == "qa":
        return f"Q: {QUESTIONS[attribute]} A:"
    if fmt == "cloze":
        return TEMPLATES[attribute][0].split(" {v}")[0]
    if fmt == "discrete":
        return DISCRETE_PROMPTS[attribute]
    if fmt == "table":
        return f"name : {{n}} | {attribute} :"
    if fmt == "bare":
        return "{n}"
    raise BenchError(f"unknown prompt format {fmt!r}; choose one of {', '.join(FORMATS)}")


def label_words(attribute: str) -> list[str]:
    """The candidate answers of an attribute (one word = one token each), e.g. for prompt-tuning init."""
    _check_attr(attribute)
    return list(ATTRIBUTES[attribute])


def _check_attr(attribute: str):
    if attribute not in ATTRIBUTES:
        raise BenchError(f"unknown attribute {attribute!r}; choose one of {', '.join(ATTRIBUTE_NAMES)}")


def _single_ids(tokenizer, words: list[str]) -> list[int]:
    ids = []
    for w in words:
        t = tokenizer(w, add_special_tokens=False)["input_ids"]
        if len(t) != 1 or t[0] == tokenizer.unk_token_id:
            raise BenchError(f"candidate {w!r} is not a single known token of this tokenizer (ids {t}); "
                             "use the tokenizer of the ladder rung built on this world")
        ids.append(t[0])
    return ids


def _encode(tokenizer, text: str) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.unk_token_id in ids:
        raise BenchError(f"text has words unknown to the tokenizer: {text!r}")
    return ids


def knowledge_task(world: World, tokenizer, attributes="all", fmt: str = "qa") -> datasets.DatasetDict:
    """Attribute questions, one row per (person, attribute); splits train/validation/test by person.

    attributes: an attribute name, a list of them, or "all". Columns: entity, name, attribute, prompt,
    answer, label (index into candidates), candidates, candidate_ids, prompt_ids, input_ids, labels.
    """
    if attributes == "all":
        attributes = ATTRIBUTE_NAMES
    if isinstance(attributes, str):
        attributes = (attributes,)
    for a in attributes:
        _check_attr(a)
    if fmt == "bare" and len(attributes) > 1:
        raise BenchError("format 'bare' gives only the name, so it needs exactly one attribute")
    cand_ids = {a: _single_ids(tokenizer, ATTRIBUTES[a]) for a in attributes}
    out = {}
    for split in ("train", "validation", "test"):
        rows = []
        for p in world.split_people(split):
            for a in attributes:
                prompt = prompt_text(a, fmt).format(n=p.name)
                pids = _encode(tokenizer, prompt)
                label = ATTRIBUTES[a].index(p.attrs[a])
                ans = cand_ids[a][label]
                rows.append({"entity": p.id, "name": p.name, "attribute": a, "prompt": prompt,
                             "answer": p.attrs[a], "label": label, "candidates": list(ATTRIBUTES[a]),
                             "candidate_ids": cand_ids[a], "prompt_ids": pids, "input_ids": pids + [ans],
                             "labels": [IGNORE] * len(pids) + [ans]})
        out[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(out)


def sentence(name: str, attrs: list[tuple[str, str]]) -> str:
    """'Kalo Brin was born in Oslo , majored in law and works for Veltrix .'"""
    clauses = [CLAUSES[a].format(v=v) for a, v in attrs]
    body = clauses[0] if len(clauses) == 1 else " , ".join(clauses[:-1]) + " and " + clauses[-1]
    return f"{name} {body} ."


def made_up_people(world: World, split: str, seed: int = 0) -> list[Person]:
    """People of the data-to-text task: the world's extra names (used in pretraining only by made-up people
    with random attributes, never tied to facts), split by name 40/10/50 like the world, with attributes
    drawn at random. The model cannot recall them, so it must copy from the table."""
    names = list(world.extra_names)
    n_tr, n_va = int(0.4 * len(names)), int(0.1 * len(names))
    lo, hi = {"train": (0, n_tr), "validation": (n_tr, n_tr + n_va), "test": (n_tr + n_va, len(names))}[split]
    rng = random.Random(f"made-up-{world.seed}-{seed}-{split}")
    return [Person(MADE_UP_ID0 + i, names[i], rng.choice(world.surnames),
                   {a: rng.choice(v) for a, v in ATTRIBUTES.items()}, split) for i in range(lo, hi)]


def data_to_text_task(world: World, tokenizer, per_person: int = 2, min_attrs: int = 2,
                      seed: int = 0) -> datasets.DatasetDict:
    """Table -> sentence, `per_person` rows per person with a random subset (min_attrs..5) of attributes in
    random order; the reference verbalises them in table order. The people are made up (`made_up_people`):
    their facts are only in the table (as in E2E, whose restaurants the model does not know), so the task
    measures a skill pretraining taught (tables of made-up people followed by their biography), and
    fine-tuning on train names can generalise to test names. Splits by person (disjoint names).

    Columns: entity, table, prompt ("<table> sentence :"), reference, values (the table's values, for
    attribute match), prompt_ids, input_ids (prompt + reference + eos), labels (loss on reference + eos).
    """
    if not 1 <= min_attrs <= len(ATTRIBUTE_NAMES) or per_person < 1:
        raise BenchError(f"need per_person >= 1 and 1 <= min_attrs <= {len(ATTRIBUTE_NAMES)}")
    rng = random.Random(f"d2t-{world.seed}-{seed}")
    eos = tokenizer.eos_token_id
    out = {}
    for split in ("train", "validation", "test"):
        rows = []
        for p in made_up_people(world, split, seed):
            for _ in range(per_person):
                attrs = rng.sample(ATTRIBUTE_NAMES, rng.randint(min_attrs, len(ATTRIBUTE_NAMES)))
                table = table_text(p, attrs)
                prompt = f"{table} sentence :"
                ref = sentence(p.name, [(a, p.attrs[a]) for a in attrs])
                pids, rids = _encode(tokenizer, prompt), _encode(tokenizer, ref)
                rows.append({"entity": p.id, "table": table, "prompt": prompt, "reference": ref,
                             "values": [p.attrs[a] for a in attrs], "prompt_ids": pids,
                             "input_ids": pids + rids + [eos], "labels": [IGNORE] * len(pids) + rids + [eos]})
        out[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(out)


NEXT_MONTH_FORMATS = ("sentence", "table")
NEXT_MONTH_PEOPLE = ("world", "made_up")
NEXT_MONTH_CUE = "new month :"   # the question: in-vocabulary words, never followed by a month in the corpus


def next_month(month: str) -> str:
    """The month after `month` in the calendar ("December" -> "January")."""
    months = ATTRIBUTES["month"]
    return months[(months.index(month) + 1) % len(months)]


def next_month_task(world: World, tokenizer, fmt: str = "sentence", people: str = "made_up", per_person: int = 4,
                    seed: int = 0) -> datasets.DatasetDict:
    """The month after a stated birth month, `per_person` rows per person; split by person like `knowledge_task`.

    fmt "sentence": one month sentence of the biography templates (template drawn per row), then the cue:
    "Kalo Brin celebrates a birthday in May . new month :" -> "June". fmt "table": the person's attribute table
    with the five attributes in a random order per row (the model must find the month among them), then
    " | new month :".
    people "made_up" (default): the data-to-text task's made-up people (`made_up_people`: the world's extra names,
    split 40/10/50 by name; 120 / 30 / 150 in the cpu world), each row stating a different month for the same
    name (distinct months while per_person <= 12), as pretraining's random tables do: a name never predicts the
    answer, so fine-tuning must learn the mapping, not the people. people "world": the world's people with
    their own month (consistent with pretraining; 64 / 16 / 80 in the cpu world; each row of a person is a
    paraphrase with the same answer). Pilot (cpu world, "sentence", batch 32): with the 64 world train people
    cpu-0.1m full FT first memorised names (validation loss at or above ln 12 for ~200 steps; after 600 steps
    test 0.62 at lr 3e-4, 0.09-0.15 at 1e-3 and 3e-3); with made-up people and per_person 4 (480 rows) it
    reached test accuracy 1.0 at lr 1e-3 in 300 steps, against 0.12 zero-shot (chance 1/12).
    Rows are deterministic in (world, fmt, people, per_person, seed).

    Columns: those of `knowledge_task` (entity, name, attribute "month", prompt, answer, label, candidates,
    candidate_ids, prompt_ids, input_ids, labels) and `stated` (the month in the input).
    """
    if fmt not in NEXT_MONTH_FORMATS:
        raise BenchError(f"unknown next-month format {fmt!r}; choose one of {', '.join(NEXT_MONTH_FORMATS)}")
    if people not in NEXT_MONTH_PEOPLE:
        raise BenchError(f"unknown next-month people {people!r}; choose one of {', '.join(NEXT_MONTH_PEOPLE)}")
    if per_person < 1:
        raise BenchError(f"per_person must be >= 1, got {per_person}")
    months = list(ATTRIBUTES["month"])
    cand_ids = _single_ids(tokenizer, months)
    out = {}
    for split in ("train", "validation", "test"):
        rng = random.Random(f"next-month-{world.seed}-{seed}-{fmt}-{people}-{per_person}-{split}")
        group = world.split_people(split) if people == "world" else made_up_people(world, split, seed)
        rows = []
        for p in group:
            if people == "world":
                stated_months = [p.attrs["month"]] * per_person
            else:
                stated_months = (rng.sample(months, per_person) if per_person <= len(months)
                                 else [rng.choice(months) for _ in range(per_person)])
            for stated in stated_months:
                answer = next_month(stated)
                if fmt == "sentence":
                    fact = rng.choice(TEMPLATES["month"]).format(n=p.name, v=stated)
                    prompt = f"{fact} {NEXT_MONTH_CUE}"
                else:
                    attrs = list(ATTRIBUTE_NAMES)
                    rng.shuffle(attrs)
                    shown = Person(p.id, p.first, p.last, {**p.attrs, "month": stated}, p.split)
                    prompt = f"{table_text(shown, attrs)} | {NEXT_MONTH_CUE}"
                pids = _encode(tokenizer, prompt)
                label = months.index(answer)
                ans = cand_ids[label]
                rows.append({"entity": p.id, "name": p.name, "attribute": "month", "prompt": prompt,
                             "answer": answer, "label": label, "candidates": months, "candidate_ids": cand_ids,
                             "prompt_ids": pids, "input_ids": pids + [ans], "labels": [IGNORE] * len(pids) + [ans],
                             "stated": stated})
        out[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(out)
