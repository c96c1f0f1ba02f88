"""Corpus BLEU (Papineni et al. 2002, https://aclanthology.org/P02-1040/), a local `evaluate` module.

Whitespace tokenization (our texts are space-separated words), n-grams up to `max_order`, clipped counts
against the union of each example's references, geometric mean of the n-gram precisions, brevity penalty
exp(1 - r/c) where r is the sum over examples of the reference length closest to the prediction's.
`smooth=True` adds 1 to numerator and denominator of every order (Lin & Och 2004), as the hub's `bleu`.
Scores are in [0, 1].

    m = evaluate.load("bench/metrics/bleu")
    m.compute(predictions=["a b c d"], references=[["a b c d"]])   # {'bleu': 1.0, ...}
"""

import math
from collections import Counter

import datasets
import evaluate


def _ngrams(words, n):
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def corpus_bleu(predictions, references, max_order=4, smooth=False):
    match, possible = [0] * max_order, [0] * max_order
    pred_len = ref_len = 0
    for pred, refs in zip(predictions, references):
        p = pred.split()
        rs = [r.split() for r in refs]
        pred_len += len(p)
        ref_len += min((abs(len(r) - len(p)), len(r)) for r in rs)[1]   # closest length, shorter on ties
        for n in range(1, max_order + 1):
            best = Counter()
            for r in rs:
                best |= _ngrams(r, n)                                   # max count per n-gram over refs
            got = _ngrams(p, n)
            match[n - 1] += sum(min(c, best[g]) for g, c in got.items())
            possible[n - 1] += max(len(p) - n + 1, 0)
    if smooth:
        prec = [(m + 1) / (q + 1) for m, q in zip(match, possible)]
    else:
        prec = [m / q if q > 0 else 0.0 for m, q in zip(match, possible)]
    geo = math.exp(sum(math.log(x) for x in prec) / max_order) if min(prec) > 0 else 0.0
    ratio = pred_len / ref_len if ref_len else 0.0
    bp = 1.0 if ratio > 1.0 else (math.exp(1 - 1 / ratio) if ratio > 0 else 0.0)
    return {"bleu": geo * bp, "precisions": prec, "brevity_penalty": bp, "length_ratio": ratio,
            "translation_length": pred_len, "reference_length": ref_len}


class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Corpus BLEU over whitespace tokens, up to 4-grams, with brevity penalty.",
            citation="Papineni et al. 2002, BLEU: a Method for Automatic Evaluation of Machine Translation.",
            inputs_description="predictions: list of str; references: list of lists of str; max_order; smooth",
            features=[datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Sequence(datasets.Value("string"))}),
                      datasets.Features({"predictions": datasets.Value("string"),
                                         "references": datasets.Value("string")})],
        )

    def _compute(self, predictions, references, max_order=4, smooth=False):
        references = [[r] if isinstance(r, str) else list(r) for r in references]
        return corpus_bleu(predictions, references, max_order=max_order, smooth=smooth)
