"""Pretraining one rung: its world and tokenizer, its GPT-2 config, the corpus chunks, the training config, and the
build itself (weights, tokenizer, logs, eval and a manifest written last into the rung's folder)."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.utils import logging as hf_logging

from bench import BenchError
from bench.data.tokenizer import train_tokenizer
from bench.data.world import build_world
from bench.envinfo import torch_threads
from bench.fileio import atomic_write_json, hash_folder
from bench.ladder.probes import heldout_ppl, knowledge_probes
from bench.ladder.specs import RungSpec, expected_hash
from bench.train import TrainConfig, num_threads, train


def build_world_and_tokenizer(spec: RungSpec):
    world = build_world(spec.world, seed=spec.world_seed)
    return world, train_tokenizer(world.tokenizer_texts(), vocab_size=spec.vocab_cap)


def model_config(spec: RungSpec, tokenizer):
    return GPT2Config(vocab_size=len(tokenizer), n_positions=spec.seq_len, n_embd=spec.n_embd,
                      n_layer=spec.n_layer, n_head=spec.n_head, resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0,  # dropout's RNG costs ~35% of a small model's forward on CPU
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)


def init_model(spec: RungSpec, tokenizer, seed: int | None = None):
    """A randomly initialised rung (fp32)."""
    torch.manual_seed(spec.seed if seed is None else seed)
    model = GPT2LMHeadModel(model_config(spec, tokenizer)).float()
    model.loss_type = "ForCausalLM"   # what transformers infers anyway; saying it silences a warning
    return model


def _quiet_hf(progress: bool):
    """Hide transformers' per-file progress bars (weights loading / writing) unless progress is wanted."""
    if not progress or os.environ.get("BENCH_NO_PROGRESS") == "1":
        hf_logging.disable_progress_bar()


def pretraining_rows(world, tokenizer, tokens: int, seq_len: int) -> list[dict]:
    """Fixed-length chunks of the corpus stream (documents joined by eos), fresh paraphrases every epoch,
    until `tokens` tokens. Returns rows {"input_ids": [...seq_len]}."""
    eos = tokenizer.eos_token_id
    rows, total, epoch = [], 0, 0
    while total < tokens:
        enc = tokenizer(world.corpus("train", epoch=epoch), add_special_tokens=False)["input_ids"]
        stream = [t for doc in enc for t in (doc + [eos])]
        for k in range(0, len(stream) - seq_len + 1, seq_len):
            rows.append({"input_ids": stream[k:k + seq_len]})
            total += seq_len
            if total >= tokens:
                break
        epoch += 1
    return rows


def pretrain_threads() -> int:
    """Torch threads for pretraining: `bench.envinfo.torch_threads()` (fixed, not load-dependent)."""
    return torch_threads()


def pretrain_rung(spec: RungSpec, folder: Path, progress: bool = True) -> dict:
    """Pretrain one rung into `folder` (overwritten), manifest last. Returns the eval dict."""
    _quiet_hf(progress)
    threads = pretrain_threads()
    with num_threads(threads):
        return _pretrain_rung(spec, folder, progress, threads)


def pretrain_config(spec: RungSpec, steps: int, progress: bool = True, desc: str | None = None):
    """The TrainConfig a rung is pretrained with: AdamW at the spec's peak lr, warmup then cosine to 10%, weight
    decay 0.1, gradient clip 1, batch order from the spec's seed."""
    return TrainConfig(lr=spec.lr, steps=steps, batch_size=spec.batch_size, warmup=min(spec.warmup, steps // 5),
                       decay="cosine", min_lr_ratio=0.1, weight_decay=0.1, grad_clip=1.0, seed=spec.seed,
                       device="cpu" if spec.world != "gpu" else "auto", progress=progress, desc=desc or spec.name)


def _pretrain_rung(spec: RungSpec, folder: Path, progress: bool, threads: int | None) -> dict:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    world, tok = build_world_and_tokenizer(spec)
    rows = pretraining_rows(world, tok, spec.tokens, spec.seq_len)
    steps = max(1, len(rows) // spec.batch_size)
    model = init_model(spec, tok)
    cfg = pretrain_config(spec, steps, progress)
    t_data = time.perf_counter() - t0
    res = train(model, rows, cfg)
    if res.diverged_at is not None:
        raise BenchError(f"pretraining of {spec.name} diverged at step {res.diverged_at}; lower its lr in bench/ladder/specs.py")
    model = model.cpu().eval()
    ev = {"heldout_ppl": heldout_ppl(model, world, tok), **knowledge_probes(model, world, tok)}
    wall = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    ev.update({"params": params, "non_embedding_params": spec.non_embedding_params(),
               "vocab_size": len(tok), "tokens": steps * spec.batch_size * spec.seq_len, "steps": steps,
               "pretrain_wall_s": round(wall, 1), "train_wall_s": round(res.wall_s, 1), "data_wall_s": round(t_data, 1),
               "tokens_per_s": steps * spec.batch_size * spec.seq_len / res.wall_s, "step_time_s": res.step_time_s,
               "final_train_loss": res.final["final_loss"], "threads": threads or torch.get_num_threads(),
               "load_average_1m": os.getloadavg()[0], "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    every = max(1, len(res.history) // 400)
    atomic_write_json(folder / "train_log.json", {"spec": asdict(spec), "train_config": asdict(cfg),
                                                   "history": res.history[::every] + res.history[-1:],
                                                   "diverged_at": res.diverged_at})
    atomic_write_json(folder / "eval.json", ev)
    weights = "model.safetensors"
    files = hash_folder(folder)
    atomic_write_json(folder / "manifest.json", {"name": spec.name, "spec_hash": expected_hash(spec),
                                                  "weights_file": weights, "weights_sha256": files[weights],
                                                  "files": files})
    return ev
