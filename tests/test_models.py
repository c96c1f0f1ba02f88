from types import SimpleNamespace

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from bench import BenchError
from bench.data.tokenizer import train_tokenizer
from bench.models import load_model, n_positions, vocab_size


def test_load_a_local_checkpoint(tmp_path):
    tok = train_tokenizer(["a b c d e f g"], vocab_size=64)
    torch.manual_seed(0)
    m = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=16, n_embd=16, n_layer=1, n_head=2)).eval()
    m.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    m2, tok2 = load_model(str(tmp_path))
    ids = torch.tensor([tok("a b c")["input_ids"]])
    assert torch.allclose(m(ids).logits, m2(ids).logits)
    assert tok2.decode(ids[0].tolist()) == "a b c" and not m2.training


def test_positions_and_vocab_read_from_the_model():
    m = GPT2LMHeadModel(GPT2Config(vocab_size=37, n_positions=24, n_embd=8, n_layer=1, n_head=2))
    assert n_positions(m) == 24 and vocab_size(m) == 37
    rotary = SimpleNamespace(config=SimpleNamespace(model_type="llama"))    # names no position table
    assert n_positions(rotary) == 1 << 20


def test_missing_folder_is_one_line_error(tmp_path):
    with pytest.raises(BenchError) as e:
        load_model(str(tmp_path / "nope"))
    assert "does not exist" in str(e.value) and "\n" not in str(e.value)


def test_offline_hub_id_fails_fast_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BenchError) as e:
        load_model("bench-test/no-such-model")
    msg = str(e.value)
    assert "'bench-test/no-such-model'" in msg and "--model <local folder>" in msg and "\n" not in msg


def test_offline_detection_without_the_env_var(monkeypatch):
    import bench.models
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(bench.models.socket, "create_connection",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("no network")))
    with pytest.raises(BenchError, match="hub cannot be reached"):
        load_model("bench-test/no-such-model")
