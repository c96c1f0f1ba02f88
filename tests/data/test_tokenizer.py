from transformers import PreTrainedTokenizerFast

from bench.data.tokenizer import train_tokenizer
from bench.data.world import build_world


def test_round_trip_and_specials(tmp_path):
    w = build_world("smoke")
    tok = train_tokenizer(w.tokenizer_texts(), vocab_size=2048)
    assert (tok.pad_token_id, tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2, 3)
    assert len(tok) < 400                                                 # small vocabulary (smoke world)
    for text in w.corpus("train", epoch=1)[:50] + w.corpus("validation")[:10]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == text
    tok.save_pretrained(tmp_path)
    again = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    text = w.corpus("validation")[0]
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again.eos_token == "<eos>" and again.pad_token_id == 0


def test_vocab_cap_maps_rare_words_to_unk():
    tok = train_tokenizer(["a a a b b c"], vocab_size=6)                  # 4 specials + a + b
    assert tok("c")["input_ids"] == [tok.unk_token_id]
