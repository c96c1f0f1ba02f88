import math

import pytest

from bench import BenchError
from bench.metrics import load


def test_accuracy():
    assert load("accuracy").compute(predictions=[1, 0, 2, 2], references=[1, 1, 2, 0])["accuracy"] == 0.5


def test_exact_match():
    em = load("exact_match")
    assert em.compute(predictions=["a b", "a c"], references=["a  b ", "a b"])["exact_match"] == 0.5
    assert em.compute(predictions=["A b"], references=["a b"], ignore_case=True)["exact_match"] == 1.0


def test_bleu_known_values():
    bleu = load("bleu")
    assert bleu.compute(predictions=["a b c d e"], references=[["a b c d e"]])["bleu"] == pytest.approx(1.0)
    assert bleu.compute(predictions=["x y z w"], references=[["a b c d"]])["bleu"] == 0.0
    # hand count: 1-grams 5/6, 2-grams 3/5, 3-grams 1/4, 4-grams 0/3; same length -> BP 1
    pred, ref = "the cat sat on the mat", "the cat is on the mat"
    out = bleu.compute(predictions=[pred], references=[[ref]])
    assert out["precisions"] == pytest.approx([5 / 6, 3 / 5, 1 / 4, 0.0]) and out["bleu"] == 0.0
    smooth = bleu.compute(predictions=[pred], references=[[ref]], smooth=True)["bleu"]
    assert smooth == pytest.approx((6 / 7 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25)
    # brevity penalty: a correct but short prediction
    short = bleu.compute(predictions=["a b c d"], references=[["a b c d e f g h"]])
    assert short["brevity_penalty"] == pytest.approx(math.exp(1 - 8 / 4))
    # multiple references: clipped against the best count per n-gram
    two = bleu.compute(predictions=["a b c d"], references=[["a b x y", "z b c d"]])
    assert two["precisions"][0] == pytest.approx(1.0)


def test_unknown_metric():
    with pytest.raises(BenchError, match="unknown metric"):
        load("rouge")
