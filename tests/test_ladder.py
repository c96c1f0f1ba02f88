import json

import pytest
import torch

from bench import BenchError
from bench.fileio import sha256_file
from bench.ladder import LADDERS, ensure_rung, get_spec, load_rung, rung_names
from bench.ladder.cache import is_valid
from bench.ladder.report import pretrain_ladder
from bench.schema import read_results


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, monkeypatch_module):
    cache = tmp_path_factory.mktemp("bench_cache")
    out = tmp_path_factory.mktemp("ladder_results")
    monkeypatch_module.setenv("BENCH_CACHE", str(cache))
    monkeypatch_module.setenv("BENCH_THREADS", "1")
    evals = pretrain_ladder("smoke", out_dir=out, progress=False)
    return cache, out, evals


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_ladders_defined():
    assert set(LADDERS) >= {"smoke", "cpu", "gpu"} and len(rung_names("smoke")) >= 2
    cpu = [get_spec(n) for n in rung_names("cpu")]
    ne = [s.non_embedding_params() for s in cpu]
    assert len(cpu) >= 5 and ne == sorted(ne) and ne[-1] / ne[0] >= 30
    assert len({s.tokens for s in cpu}) == 1                              # equal tokens per rung
    with pytest.raises(BenchError, match="unknown ladder"):
        rung_names("tpu")


@pytest.mark.parametrize("name", ["smoke-a", *rung_names("cpu")])
def test_non_embedding_param_formula(name):
    from bench.data.tokenizer import train_tokenizer
    from bench.ladder.build import model_config
    from transformers import GPT2LMHeadModel
    spec = get_spec(name)
    with torch.device("meta"):
        m = GPT2LMHeadModel(model_config(spec, train_tokenizer(["a b"], 8)))
    emb = m.transformer.wte.weight.numel() + m.transformer.wpe.weight.numel()
    assert sum(p.numel() for p in m.parameters()) - emb == spec.non_embedding_params()


def test_pretrain_report_and_trend(smoke):
    cache, out, evals = smoke
    for n in rung_names("smoke"):
        assert is_valid(cache / "ladder" / n, get_spec(n))
    df = read_results(out)
    assert set(df["model"]) == {"smoke-a", "smoke-b", "random-init"}
    for f in ("report.md", "loss_curves.png", "ppl_vs_params.png", "timings.csv", "meta.json"):
        assert (out / f).exists()
    # pretraining learned something, and the bigger rung more
    assert evals["smoke-a"]["heldout_ppl"] < evals["random-init"]["heldout_ppl"] / 5
    assert evals["smoke-b"]["heldout_ppl"] < evals["smoke-a"]["heldout_ppl"]


def test_cache_reuse_and_load(smoke):
    cache, _, _ = smoke
    folder = cache / "ladder" / "smoke-b"
    before = (folder / "model.safetensors").stat().st_mtime_ns
    assert ensure_rung("smoke-b") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == before   # reused, not rebuilt
    model, tok = load_rung("smoke-b")
    assert not model.training and model.config.vocab_size == len(tok)
    assert model.config.resid_pdrop == model.config.attn_pdrop == model.config.embd_pdrop == 0.0


def test_corrupt_or_interrupted_rung_is_rebuilt(smoke):
    cache, _, evals = smoke
    folder = cache / "ladder" / "smoke-a"
    spec = get_spec("smoke-a")
    w = folder / "model.safetensors"
    good = sha256_file(w)
    data = bytearray(w.read_bytes())
    data[-100] ^= 0xFF                                                    # flip one byte of the weights
    w.write_bytes(bytes(data))
    assert not is_valid(folder, spec)
    ensure_rung("smoke-a", progress=False)
    assert is_valid(folder, spec)
    assert sha256_file(w) == good                                         # deterministic rebuild
    # an interrupted build (no manifest yet) never looks valid
    (folder / "manifest.json").unlink()
    assert not is_valid(folder, spec)
    # a manifest of another spec is stale
    man = {"spec_hash": "0" * 24, "weights_file": "model.safetensors", "weights_sha256": good}
    (folder / "manifest.json").write_text(json.dumps(man))
    assert not is_valid(folder, spec)


def test_every_file_of_a_cached_rung_is_verified(smoke, tmp_path):
    """Each file of a rung in turn: a flipped byte, truncation, deletion make the rung invalid, as does an added
    file or an old manifest without the per-file map; a damaged file beside the weights (here the tokenizer) is
    rebuilt by the next load, which then works."""
    import shutil
    cache, _, _ = smoke
    folder = cache / "ladder" / "smoke-b"
    spec = get_spec("smoke-b")
    ensure_rung("smoke-b", progress=False)
    backup = tmp_path / "backup"
    shutil.copytree(folder, backup)
    man = json.loads((folder / "manifest.json").read_text())
    files = sorted(man["files"])
    assert {"model.safetensors", "config.json", "tokenizer.json", "eval.json", "train_log.json"} <= set(files)
    damages = {
        "flip": lambda p: p.write_bytes(bytes([p.read_bytes()[0] ^ 0x01]) + p.read_bytes()[1:]),
        "truncate": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        "delete": lambda p: p.unlink(),
    }
    for name in files:
        for how, damage in damages.items():
            damage(folder / name)
            assert not is_valid(folder, spec), (name, how)
            shutil.copy2(backup / name, folder / name)
            assert is_valid(folder, spec), (name, how)
    (folder / "extra.bin").write_bytes(b"x")
    assert not is_valid(folder, spec)
    (folder / "extra.bin").unlink()
    old = {k: v for k, v in man.items() if k != "files"}                # a manifest that hashed the weights only
    (folder / "manifest.json").write_text(json.dumps(old))
    assert not is_valid(folder, spec)
    shutil.copy2(backup / "manifest.json", folder / "manifest.json")
    (folder / "tokenizer.json").write_text("{ not json")
    model, tok = load_rung("smoke-b", progress=False)                  # rebuilt, not a traceback
    assert is_valid(folder, spec) and len(tok) == model.config.vocab_size
    assert sha256_file(folder / "model.safetensors") == man["weights_sha256"]
