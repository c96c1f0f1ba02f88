"""The synthetic world (`world`), its word-level tokenizer (`tokenizer`) and the downstream tasks (`tasks`)."""
