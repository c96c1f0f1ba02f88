"""Reproductions of the claims of a lecture on parameter-efficient fine-tuning (PEFT).

Layout: `bench.claims` (the registry as data per claim family, its changelog `history.toml`, the verdict
engine `bench.claims.engine` and the report cells `bench.claims.writers`), `bench.schema` (one result schema),
`bench.report` (regenerates the README tables from stored results), `bench.methods` (PEFT methods), `bench.numerics` (number formats and
quantizers), `bench.data` (the synthetic world and tasks), `bench.ladder` (pretrained rungs),
`bench.train` (the one training loop). Reproductions live in `reproductions/`.
"""

__version__ = "0.1.0"


class BenchError(Exception):
    """An error caused by the user's input; the CLI prints it as one line and exits 2."""
