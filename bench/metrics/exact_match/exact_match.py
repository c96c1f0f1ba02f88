"""Exact match: the share of predicted strings equal to their reference after optional normalisation
(a local `evaluate` module).

    evaluate.load("bench/metrics/exact_match").compute(predictions=["a b"], references=["a  b "])
    # {'exact_match': 1.0}  (whitespace is always collapsed)
"""

import datasets
import evaluate


class ExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Share of predictions equal to the reference (whitespace collapsed).",
            citation="",
            inputs_description="predictions, references: lists of str; ignore_case: bool",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, ignore_case=False):
        def norm(s):
            s = " ".join(s.split())
            return s.lower() if ignore_case else s
        if not predictions:
            return {"exact_match": float("nan")}
        return {"exact_match": sum(norm(p) == norm(r) for p, r in zip(predictions, references)) / len(predictions)}
