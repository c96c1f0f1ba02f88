"""Local `evaluate` metric modules (hub metrics cannot be fetched on these machines).

`load("bleu")` -> evaluate.load("<this folder>/bleu"); modules: accuracy, bleu, exact_match.
"""

from pathlib import Path

from bench import BenchError

METRICS_DIR = Path(__file__).resolve().parent
NAMES = ("accuracy", "bleu", "exact_match")
_CACHE = {}


def load(name: str):
    if name not in NAMES:
        raise BenchError(f"unknown metric {name!r}; local metrics: {', '.join(NAMES)}")
    if name not in _CACHE:
        import evaluate
        _CACHE[name] = evaluate.load(str(METRICS_DIR / name))
    return _CACHE[name]
