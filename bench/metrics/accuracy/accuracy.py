"""Accuracy: the share of predictions equal to their reference (a local `evaluate` module).

    evaluate.load("bench/metrics/accuracy").compute(predictions=[1, 0], references=[1, 1])  # {'accuracy': 0.5}
"""

import datasets
import evaluate


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Share of predictions equal to the reference.",
            citation="",
            inputs_description="predictions, references: lists of ints; sample_weight: optional list of floats",
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, sample_weight=None):
        if not predictions:
            return {"accuracy": float("nan")}
        w = sample_weight or [1.0] * len(predictions)
        hit = sum(wi for p, r, wi in zip(predictions, references, w) if p == r)
        return {"accuracy": float(hit / sum(w))}
