"""A word-level tokenizer (HF `tokenizers`) trained on the world's texts.

The world's text is words separated by single spaces, so splitting on whitespace and keeping one id per
word gives a few hundred tokens and an exact round trip. A small vocabulary keeps the LM head cheap on
CPU (a 50k vocabulary makes <= 2M-parameter models 7-24x slower; see shared/machine-notes.md).
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from bench import BenchError

SPECIAL = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<bos>", "eos_token": "<eos>"}


def train_tokenizer(texts, vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over `texts` keeping the `vocab_size` most frequent words (specials included).

    Ids: <pad>=0, <unk>=1, <bos>=2, <eos>=3. Nothing is added automatically around a text: callers add
    eos between documents. `decode(encode(t)) == t` for single-space-separated text in the vocabulary.
    """
    if vocab_size < len(SPECIAL) + 1:
        raise BenchError(f"vocab_size must be at least {len(SPECIAL) + 1}, got {vocab_size}")
    tok = Tokenizer(models.WordLevel(unk_token=SPECIAL["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=1,
                                        special_tokens=list(SPECIAL.values()))
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=1 << 20, **SPECIAL)
    fast.padding_side = "right"
    return fast
