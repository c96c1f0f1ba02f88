"""reproductions/lora/knowledge.py and tuning.py: the permuted-answer null's data, the full-FT lr search."""

from collections import Counter

import math

import datasets

from bench.schema import Recorder
from reproductions.lora import tuning
from reproductions.lora.knowledge import shuffled_answers
from reproductions.lora.settings import SETTINGS


def _rows(n=30):
    out = []
    for i in range(n):
        attr = ("city", "job")[i % 2]
        label = (i // 2) % 3
        out.append({"attribute": attr, "label": label, "answer": f"{attr}{label}", "candidate_ids": [10, 11, 12],
                    "prompt_ids": [1, 2, i], "input_ids": [1, 2, i, 10 + label], "labels": [-100, -100, -100, 10 + label]})
    return datasets.Dataset.from_list(out)


def test_shuffled_answers_permute_within_each_attribute():
    ds = _rows()
    sh = shuffled_answers(ds, seed=0)
    assert sh["prompt_ids"] == ds["prompt_ids"]
    for attr in ("city", "job"):
        a = [r for r in ds if r["attribute"] == attr]
        b = [r for r in sh if r["attribute"] == attr]
        assert Counter(r["answer"] for r in a) == Counter(r["answer"] for r in b)
        assert [r["label"] for r in a] != [r["label"] for r in b]
    for r in sh:
        assert r["input_ids"][-1] == r["labels"][-1] == r["candidate_ids"][r["label"]]
        assert r["answer"].endswith(str(r["label"]))
    assert shuffled_answers(ds, seed=0).to_list() == sh.to_list()     # fixed seed, same null


class _FakeRunner:
    """Scores a search point by a peaked function of log4(lr) with its optimum at `best`."""

    def __init__(self, best):
        self.best, self.calls = best, []

    def map(self, fn, jobs, **_):
        self.calls.append([j.lr for j in jobs])
        return [{"acc": 1.0 / (1.0 + abs(math.log(j.lr / self.best, 4))), "final_loss": 0.1,
                 "steps": 5} for j in jobs]


def _search(best, **over):
    s = SETTINGS["smoke"].__class__(**{**SETTINGS["smoke"].__dict__, **over})
    rec = Recorder(group="lora", profile="smoke", out_dir=None, claims=["L4"])
    env = {"s": s, "name": "m", "task": {"validation": [0] * 7}}
    runner = _FakeRunner(best)
    lr = tuning.search_full_lr(runner, rec, env, seed=0)
    return lr, rec, runner


def test_search_extends_until_the_pick_is_interior():
    lr, rec, runner = _search(best=2e-3 * 16)            # two grid factors above the top of (1.25e-4, 5e-4, 2e-3)
    assert runner.calls == [[1.25e-4, 5e-4, 2e-3], [8e-3], [3.2e-2], [1.28e-1]]
    assert abs(lr - 3.2e-2) < 1e-12
    rows = {r["metric"]: r for r in rec.rows}
    assert rows["l4_full_lr_tuned"]["value"] == 1.0
    assert '"lr"' not in rows["l4_full_lr_tuned"]["params"]


def test_search_at_its_extension_budget_is_not_tuned():
    lr, rec, runner = _search(best=10.0, lr_search_extensions=1)
    assert len(runner.calls) == 2 and abs(lr - 8e-3) < 1e-12
    assert [r["value"] for r in rec.rows if r["metric"] == "l4_full_lr_tuned"] == [0.0]
