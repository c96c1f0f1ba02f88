"""The embedded model ladder: GPT-2-style causal LMs pretrained here, on the synthetic world's corpus.

Every toy-scale claim is measured over a ladder of sizes (the lecture's claims are about how methods behave
as models grow). No hub weights are needed: each rung is built from a `transformers` GPT2Config and
pretrained by `bench.train.train` on `bench.data.world`'s corpus, with EQUAL tokens per rung within a
ladder, so size is the only thing that varies.

Cache: `$BENCH_CACHE` or `~/.cache/bench`, one folder per rung under `ladder/<name>/` with config.json,
model.safetensors, tokenizer files, train_log.json, eval.json and manifest.json. The manifest (sha256 of every
file of the rung + hash of the spec, the world and the code version) is written last and atomically: a rung
counts as built only when its manifest matches, so an interrupted build, or any damaged, missing or added file,
means a rebuild.
A file lock makes concurrent `ensure_rung` calls build once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from bench import BenchError
from bench.fileio import (atomic_savefig, atomic_write_json, atomic_write_text, folder_matches, hash_folder,  # noqa: F401
                          sha256_file)

LADDER_VERSION = 1   # bump when pretraining code changes what a rung contains (invalidates caches)
ATTRS = ("city", "month", "university", "field", "employer")


@dataclass(frozen=True)
class RungSpec:
    name: str
    n_embd: int
    n_layer: int
    n_head: int
    tokens: int                  # pretraining token budget (equal within a ladder)
    batch_size: int = 32         # sequences per step
    seq_len: int = 128
    lr: float = 2e-3             # peak lr; cosine to 10%, warmup `warmup` steps
    warmup: int = 50
    world: str = "cpu"           # bench.data.world profile
    world_seed: int = 0
    seed: int = 0                # init + batch order
    vocab_cap: int = 2048

    def non_embedding_params(self) -> int:
        """Transformer-block + final-norm parameters (GPT-2: 12 d^2 + 13 d per layer, + 2 d)."""
        d = self.n_embd
        return self.n_layer * (12 * d * d + 13 * d) + 2 * d

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def _rung(name, d, L, H, tokens, world, **kw) -> RungSpec:
    return RungSpec(name=name, n_embd=d, n_layer=L, n_head=H, tokens=tokens, world=world, **kw)


LADDERS: dict[str, list[RungSpec]] = {
    # Tests and CI: two tiny rungs on a 60-person world, seconds each.
    "smoke": [
        _rung("smoke-a", 32, 2, 2, 120_000, "smoke", batch_size=16, seq_len=64, lr=3e-3, warmup=10),
        _rung("smoke-b", 64, 2, 2, 120_000, "smoke", batch_size=16, seq_len=64, lr=3e-3, warmup=10),
    ],
    # The default: five rungs spanning ~40x in non-embedding parameters, equal tokens (1.2M, ~75 epochs of a
    # 160-person world), batch 8 x 128: knowledge storage needs optimizer steps as much as tokens (a pilot with
    # batch 16 stored half as much). Built here in ~45 min on 2 cores shared with other jobs (1 thread each).
    "cpu": [
        _rung("cpu-0.1m", 48, 4, 3, 1_200_000, "cpu", batch_size=8, lr=3e-3),
        _rung("cpu-0.3m", 64, 6, 4, 1_200_000, "cpu", batch_size=8, lr=3e-3),
        _rung("cpu-1m", 128, 5, 4, 1_200_000, "cpu", batch_size=8, lr=2e-3),
        _rung("cpu-2.5m", 160, 8, 5, 1_200_000, "cpu", batch_size=8, lr=2e-3),
        _rung("cpu-5m", 256, 6, 8, 1_200_000, "cpu", batch_size=8, lr=1.5e-3),
    ],
    # For a future GPU session (specs only; not built or tested here).
    "gpu": [
        _rung("gpu-3m", 192, 7, 6, 40_000_000, "gpu", batch_size=64, lr=1.5e-3, warmup=200),
        _rung("gpu-10m", 320, 8, 8, 40_000_000, "gpu", batch_size=64, lr=1e-3, warmup=200),
        _rung("gpu-30m", 512, 10, 8, 40_000_000, "gpu", batch_size=64, lr=8e-4, warmup=200),
        _rung("gpu-85m", 768, 12, 12, 40_000_000, "gpu", batch_size=64, lr=6e-4, warmup=200),
        _rung("gpu-300m", 1024, 24, 16, 40_000_000, "gpu", batch_size=64, lr=3e-4, warmup=200),
    ],
}
SPECS = {s.name: s for rungs in LADDERS.values() for s in rungs}
# A second pretraining run of a rung (issue 14: how much of a trend one pretraining run could fake): the same spec
# but its init and batch order from seed 1, named "<rung>-s1". Not part of any ladder; built on first use.
REPLICAS = {f"{s.name}-s1": replace(s, name=f"{s.name}-s1", seed=1) for rungs in LADDERS.values() for s in rungs}
SPECS.update(REPLICAS)


def rung_names(ladder: str) -> list[str]:
    if ladder not in LADDERS:
        raise BenchError(f"unknown ladder {ladder!r}; choose one of {', '.join(LADDERS)}")
    return [s.name for s in LADDERS[ladder]]


def get_spec(name: str) -> RungSpec:
    if name not in SPECS:
        raise BenchError(f"unknown ladder rung {name!r}; rungs: {', '.join(SPECS)}")
    return SPECS[name]


def cache_root(cache_dir: str | Path | None = None) -> Path:
    root = cache_dir or os.environ.get("BENCH_CACHE") or Path.home() / ".cache" / "bench"
    return Path(root).expanduser() / "ladder"


# ---------------------------------------------------------------- building blocks

def build_world_and_tokenizer(spec: RungSpec):
    from bench.data.tokenizer import train_tokenizer
    from bench.data.world import build_world
    world = build_world(spec.world, seed=spec.world_seed)
    return world, train_tokenizer(world.tokenizer_texts(), vocab_size=spec.vocab_cap)


def model_config(spec: RungSpec, tokenizer):
    from transformers import GPT2Config
    return GPT2Config(vocab_size=len(tokenizer), n_positions=spec.seq_len, n_embd=spec.n_embd,
                      n_layer=spec.n_layer, n_head=spec.n_head, resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0,  # dropout's RNG costs ~35% of a small model's forward on CPU
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)


def init_model(spec: RungSpec, tokenizer, seed: int | None = None):
    """A randomly initialised rung (fp32)."""
    from transformers import GPT2LMHeadModel
    torch.manual_seed(spec.seed if seed is None else seed)
    model = GPT2LMHeadModel(model_config(spec, tokenizer)).float()
    model.loss_type = "ForCausalLM"   # what transformers infers anyway; saying it silences a warning
    return model


def _quiet_hf(progress: bool):
    """Hide transformers' per-file progress bars (weights loading / writing) unless progress is wanted."""
    from transformers.utils import logging as hf_logging
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


def heldout_rows(world, tokenizer) -> list[dict]:
    """One fresh biography per person (the validation corpus), each as its own sequence after an eos."""
    eos = tokenizer.eos_token_id
    enc = tokenizer(world.corpus("validation"), add_special_tokens=False)["input_ids"]
    return [{"input_ids": [eos] + ids} for ids in enc]


def heldout_ppl(model, world, tokenizer, batch_size: int = 64) -> float:
    from bench.train import perplexity
    rows = heldout_rows(world, tokenizer)
    return perplexity(model, [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)])


def knowledge_probes(model, world, tokenizer) -> dict:
    """Zero-shot accuracy over all attributes: cloze ('{n} was born in') and QA ('Q: where was {n} born ? A:')
    on test people (seen in pretraining only in biographies), and QA on train people (seen as QA pairs)."""
    from bench.data.tasks import knowledge_task
    from bench.train import evaluate_classification
    out = {}
    for fmt in ("cloze", "qa"):
        dd = knowledge_task(world, tokenizer, attributes="all", fmt=fmt)
        out[f"{fmt}_acc_test"] = evaluate_classification(model, dd["test"])
        if fmt == "qa":
            out["qa_acc_train"] = evaluate_classification(model, dd["train"])
        if fmt == "cloze":
            out["chance"] = float(sum(1 / len(c) for c in dd["test"]["candidates"]) / len(dd["test"]))
    return out


def _expected_hash(spec: RungSpec) -> str:
    from bench.data.world import build_world
    world_fp = build_world(spec.world, seed=spec.world_seed).fingerprint()
    return hashlib.sha256(f"{spec.hash()}|{world_fp}|v{LADDER_VERSION}".encode()).hexdigest()[:24]


def is_valid(folder: Path, spec: RungSpec) -> bool:
    """True when the manifest exists, matches the spec/world/code hash, and every file of the rung (weights,
    config, tokenizer, logs) is there byte for byte as the manifest's sha256 map says (no file missing or added).
    A manifest without that map (written before manifests hashed every file, or damaged) is not valid: the rung
    is rebuilt."""
    try:
        man = json.loads((folder / "manifest.json").read_text())
        return (isinstance(man, dict) and man.get("spec_hash") == _expected_hash(spec)
                and folder_matches(folder, man.get("files"))
                and man.get("files", {}).get(man.get("weights_file")) == man.get("weights_sha256"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


@contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def pretrain_threads() -> int:
    """Torch threads for pretraining: `bench.envinfo.torch_threads()` (fixed, not load-dependent)."""
    from bench.envinfo import torch_threads
    return torch_threads()


def pretrain_rung(spec: RungSpec, folder: Path, progress: bool = True) -> dict:
    """Pretrain one rung into `folder` (overwritten), manifest last. Returns the eval dict."""
    from bench.train import num_threads
    _quiet_hf(progress)
    threads = pretrain_threads()
    with num_threads(threads):
        return _pretrain_rung(spec, folder, progress, threads)


def pretrain_config(spec: RungSpec, steps: int, progress: bool = True, desc: str | None = None):
    """The TrainConfig a rung is pretrained with: AdamW at the spec's peak lr, warmup then cosine to 10%, weight
    decay 0.1, gradient clip 1, batch order from the spec's seed."""
    from bench.train import TrainConfig
    return TrainConfig(lr=spec.lr, steps=steps, batch_size=spec.batch_size, warmup=min(spec.warmup, steps // 5),
                       decay="cosine", min_lr_ratio=0.1, weight_decay=0.1, grad_clip=1.0, seed=spec.seed,
                       device="cpu" if spec.world != "gpu" else "auto", progress=progress, desc=desc or spec.name)


def _pretrain_rung(spec: RungSpec, folder: Path, progress: bool, threads: int | None) -> dict:
    from bench.train import train
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
        raise BenchError(f"pretraining of {spec.name} diverged at step {res.diverged_at}; lower its lr in bench/ladder.py")
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
    atomic_write_json(folder / "manifest.json", {"name": spec.name, "spec_hash": _expected_hash(spec),
                                                  "weights_file": weights, "weights_sha256": files[weights],
                                                  "files": files})
    return ev


def ensure_rung(name: str, cache_dir=None, progress: bool = True, force: bool = False) -> Path:
    """The folder of a built rung: reused when valid, (re)built when missing, stale or corrupt."""
    spec = get_spec(name)
    folder = cache_root(cache_dir) / name
    with _lock(folder.parent / f".{name}.lock"):
        if force or not is_valid(folder, spec):
            pretrain_rung(spec, folder, progress=progress)
    return folder


def load_rung(name: str, cache_dir=None, progress: bool = True):
    """(model, tokenizer) of a rung, pretraining it first if needed. Model in eval mode, fp32, on CPU."""
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
    folder = ensure_rung(name, cache_dir=cache_dir, progress=progress)
    _quiet_hf(progress)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    model.loss_type = "ForCausalLM"
    return model, PreTrainedTokenizerFast.from_pretrained(folder)


def load_world(name: str):
    """The world a rung was pretrained on (for building tasks with its tokenizer)."""
    from bench.data.world import build_world
    spec = get_spec(name)
    return build_world(spec.world, seed=spec.world_seed)


def rung_eval(name: str, cache_dir=None) -> dict:
    """The rung's stored eval.json (ppl, zero-shot probes, timings), building the rung if needed."""
    return json.loads((ensure_rung(name, cache_dir=cache_dir) / "eval.json").read_text())


# ---------------------------------------------------------------- the pretraining report

def pretrain_ladder(ladder: str, cache_dir=None, force: bool = False, out_dir=Path("results/ladder"),
                    progress: bool = True):
    """Build every rung of `ladder` (reusing valid caches unless force) and write the pretraining report:
    results.csv / timings.csv (group "ladder"), report.md, loss_curves.png, ppl_vs_params.png."""
    from bench.schema import Recorder
    names = rung_names(ladder)
    out_dir = Path(out_dir)
    rec = Recorder(group="ladder", profile=ladder, out_dir=out_dir, claims=[])
    evals, logs = {}, {}
    for name in names:
        t0 = time.perf_counter()
        folder = ensure_rung(name, cache_dir=cache_dir, progress=progress, force=force)
        evals[name] = json.loads((folder / "eval.json").read_text())
        e = evals[name]
        print(f"[ladder] {name}: ready after {time.perf_counter() - t0:.0f} s (built in {e['pretrain_wall_s']:.0f} s): "
              f"held-out ppl {e['heldout_ppl']:.3f}, cloze {e['cloze_acc_test']:.3f}, QA test {e['qa_acc_test']:.3f}",
              file=sys.stderr, flush=True)
        logs[name] = json.loads((folder / "train_log.json").read_text())
    # A randomly initialised smallest rung: the chance reference of the probes.
    spec0 = get_spec(names[0])
    world, tok = build_world_and_tokenizer(spec0)
    rnd = init_model(spec0, tok, seed=1234).eval()
    evals["random-init"] = {"heldout_ppl": heldout_ppl(rnd, world, tok), **knowledge_probes(rnd, world, tok)}
    for name in [*names, "random-init"]:
        ev = evals[name]
        spec = get_spec(names[0] if name == "random-init" else name)
        data = f"world-{spec.world}-seed{spec.world_seed}"
        p = {"n_embd": spec.n_embd, "n_layer": spec.n_layer, "n_head": spec.n_head}
        if name != "random-init":
            p.update({"tokens": ev["tokens"], "batch_size": spec.batch_size, "seq_len": spec.seq_len, "lr": spec.lr})
            for m, u in (("params", "params"), ("non_embedding_params", "params"), ("tokens", "tokens")):
                rec.add("-", m, ev[m], unit=u, model=name, data=data, scale="exact", params=p)
            for m, u in (("pretrain_wall_s", "s"), ("tokens_per_s", "tokens/s"), ("step_time_s", "s")):
                rec.add("-", m, ev[m], unit=u, model=name, data=data, params={**p, "threads": ev["threads"],
                        "load_average_1m": ev["load_average_1m"]}, timing=True)
        rec.add("-", "heldout_ppl", ev["heldout_ppl"], unit="ppl", model=name, data=data, seed=spec.seed, params=p)
        for m in ("cloze_acc_test", "qa_acc_test", "qa_acc_train", "chance"):
            rec.add("-", m, ev[m], unit="accuracy", model=name, data=data, seed=spec.seed, params=p)
    rec.save(extra_meta={"ladder": ladder})
    _report(ladder, names, evals, logs, out_dir)
    return evals


def _report(ladder, names, evals, logs, out_dir: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lines = [f"# Pretraining report: ladder `{ladder}`", "",
             "GPT-2-style causal LMs (dropout 0, fp32, tied embeddings) pretrained on the synthetic world's corpus "
             "(`bench.data.world`), equal tokens per rung. Held-out perplexity: one fresh biography per person. "
             "Zero-shot probes over 5 attributes: cloze ('{name} was born in') and QA on TEST people (who appear in "
             "pretraining only in biographies), QA on TRAIN people (whose QA pairs are in pretraining). "
             "`random-init` is the smallest rung untrained (the chance reference).", "",
             "Wall times were measured when each rung was built, on a shared 2-core machine (other jobs may have "
             "been running: see load_average_1m in timings.csv); they are not benchmarks.", "",
             "| rung | d/L/H | non-emb params | params | tokens | wall s | tok/s | held-out ppl | cloze acc (test) "
             "| QA acc (test) | QA acc (train) | chance |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in [*names, "random-init"]:
        ev = evals[n]
        s = get_spec(names[0] if n == "random-init" else n)
        if n == "random-init":
            lines.append(f"| {n} | {s.n_embd}/{s.n_layer}/{s.n_head} | {s.non_embedding_params():,} | - | 0 | - | - "
                         f"| {ev['heldout_ppl']:.1f} | {ev['cloze_acc_test']:.3f} | {ev['qa_acc_test']:.3f} "
                         f"| {ev['qa_acc_train']:.3f} | {ev['chance']:.3f} |")
            continue
        lines.append(f"| {n} | {s.n_embd}/{s.n_layer}/{s.n_head} | {ev['non_embedding_params']:,} | {ev['params']:,} "
                     f"| {ev['tokens']:,} | {ev['pretrain_wall_s']:.0f} | {ev['tokens_per_s']:.0f} "
                     f"| {ev['heldout_ppl']:.3f} | {ev['cloze_acc_test']:.3f} | {ev['qa_acc_test']:.3f} "
                     f"| {ev['qa_acc_train']:.3f} | {ev['chance']:.3f} |")
    total = sum(evals[n]["pretrain_wall_s"] for n in names)
    lines += ["", f"Total pretraining wall time: {total / 60:.1f} min.", "",
              "![loss curves](loss_curves.png)", "", "![held-out perplexity vs parameters](ppl_vs_params.png)", ""]
    atomic_write_text(out_dir / "report.md", "\n".join(lines))

    fig, ax = plt.subplots(figsize=(6, 4))
    for n in names:
        h = logs[n]["history"]
        tpb = logs[n]["spec"]["batch_size"] * logs[n]["spec"]["seq_len"]
        ax.plot([e["step"] * tpb for e in h], [e["loss"] for e in h], label=n, lw=1)
    ax.set(xlabel="tokens", ylabel="train loss (nats/token)", yscale="log", title=f"pretraining, ladder {ladder}")
    ax.legend(fontsize=8)
    atomic_savefig(out_dir / "loss_curves.png", fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    xs = [evals[n]["non_embedding_params"] for n in names]
    ax.plot(xs, [evals[n]["heldout_ppl"] for n in names], "o-")
    for x, n in zip(xs, names):
        ax.annotate(n, (x, evals[n]["heldout_ppl"]), fontsize=7)
    ax.set(xscale="log", xlabel="non-embedding parameters", ylabel="held-out perplexity",
           title=f"ladder {ladder}")
    atomic_savefig(out_dir / "ppl_vs_params.png", fig)
    plt.close(fig)
    if not all(math.isfinite(evals[n]["heldout_ppl"]) for n in names):
        raise BenchError("a rung has a non-finite held-out perplexity; see " + str(out_dir / "report.md"))
