"""Q5's natural-outlier series: do outlier features grow on their own as a model trains and as it grows?

The ladder's rungs carry no outliers on their linear layers' inputs (max |x| 3.2-4.5, issue 15). Dettmers et al. 2022
(Sec. 4, Fig. 3) see them emerge smoothly as perplexity falls and as models grow; Bondarenko et al. 2023 ("Quantizable
Transformers") trace them to attention heads that learn to do nothing by attending to a token that carries no
information (a delimiter, or the beginning of the sequence). The ladder's sequences are cut from one token stream at
arbitrary points: the <eos> between documents sits somewhere inside them, never at a fixed place.

The series: every rung of the profile's ladder pretrained again as `bench.ladder` does (spec, init seed, token
budget, lr schedule) except that each sequence opens with <bos>; the chunks are one token shorter, so the row count,
the batch permutation and the step count differ slightly (cpu: 9,449 rows / 1,181 steps vs 9,375 / 1,171). Before
the first step (reported, not judged) and at CHECKPOINTS (fractions of the steps) the run takes the census of the LayerNorm outputs that feed a Linear (`bench.numerics.ln_census`) and the
held-out perplexity, both on BOS-opened held-out blocks; after the last step, the KL of absmax and LLM.int8() to FP32
(do the outliers that grew hurt plain int8?). Q5's series parts are decided on these rows (`bench.claims`).

A rung's series is cached as one JSON file (BENCH_CACHE/natural-outliers/<rung>.json, keyed by the spec, the world,
the eval settings, the constants below, torch's version and the source of the code it runs); the weights are not
kept, each checkpoint's sha256 is recorded.
"""

from __future__ import annotations

import copy
import hashlib
import json
import statistics
import time
from pathlib import Path

import torch

from bench.data.world import build_world
from bench.fileio import atomic_write_json
from bench.jobs import JobRunner, job_workers
from bench.ladder import cache_root, get_spec, rung_names
from bench.ladder.build import build_world_and_tokenizer, init_model, pretrain_config, pretraining_rows
from bench.numerics.degradation import kl_to_reference, reference_logprobs
from bench.numerics.int8_linear import quantize_model
from bench.numerics.ln_census import excess_kurtosis, ln_census
from bench.schema import Recorder
from bench.stats import spearman
from bench.train import perplexity, train

from .models import heldout_batches
from .settings import THRESHOLD, Settings

SERIES_VERSION = 2                       # bump when what a series computes changes (invalidates the cache)
CHECKPOINTS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
KL_METHODS = ("absmax", "llm_int8")
MEASURE = "kurtosis_median"              # the census number Q5's series parts are decided on
LOSS_WINDOW = 20                         # training loss at a checkpoint: mean of the last steps


def bos_rows(world, tokenizer, spec) -> list[dict]:
    """The ladder's pretraining chunks (`bench.ladder.build.pretraining_rows`) one token shorter, each opened by <bos>:
    rows {"input_ids": [bos, ...seq_len - 1 tokens]}, ~spec.tokens tokens in all."""
    bos = tokenizer.bos_token_id
    return [{"input_ids": [bos] + r["input_ids"]}
            for r in pretraining_rows(world, tokenizer, spec.tokens, spec.seq_len - 1)]


def bos_blocks(world, tokenizer, seq_len: int, batch_size: int, max_batches: int) -> list[torch.Tensor]:
    """The int8 harness's held-out blocks (`models.heldout_batches`) one token shorter, each opened by <bos>:
    LongTensors (B, seq_len)."""
    blocks = heldout_batches(world, tokenizer, seq_len - 1, batch_size, max_batches)
    return [torch.cat([torch.full((b.shape[0], 1), tokenizer.bos_token_id, dtype=torch.long), b], 1) for b in blocks]


def checkpoint_steps(steps: int, fractions=CHECKPOINTS) -> list[int]:
    """Step counts (1..steps) at which the census is taken: round(fraction * steps), distinct, ascending."""
    return sorted({min(steps, max(1, round(f * steps))) for f in fractions})


@torch.no_grad()
def measure(model, blocks: list[torch.Tensor]) -> dict:
    """Held-out perplexity and the LayerNorm-output census of `model` on BOS-opened `blocks` (B, T): the census
    summary (`LNCensus.summary`), the median kurtosis without the BOS position, and per LayerNorm its kurtosis and
    top dims."""
    census, states = ln_census(model, blocks)
    T = blocks[0].shape[1]
    no_bos = [excess_kurtosis(X.view(-1, T, X.shape[-1])[:, 1:]) for X in states]   # (N, T-1, D) each
    return {"heldout_ppl": perplexity(model, blocks), **census.summary(),
            "kurtosis_median_excl_bos": statistics.median(no_bos),
            "layers": [{"name": n, "kurtosis": l["kurtosis"], "top_dims": l["top_dims"], "top_abs": l["top_abs"]}
                       for n, l in zip(census.names, census.layers)]}


def _weights_sha256(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def _code_hash() -> str:
    """sha256 of the source a series runs: this file, training, the census, the int8 layers, the ladder, the held-out
    blocks (a change there makes every cached series stale)."""
    import bench.ladder.build, bench.ladder.probes, bench.ladder.specs   # noqa: E401
    import bench.numerics.int8_linear, bench.numerics.ln_census, bench.train   # noqa: E401
    from . import models
    h = hashlib.sha256()
    for mod in (bench.ladder.specs, bench.ladder.build, bench.ladder.probes, bench.numerics.int8_linear,
                bench.numerics.ln_census, bench.train, models):
        h.update(Path(mod.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def _cache_file(name: str, s: Settings):
    spec = get_spec(name)
    key = json.dumps({"spec": spec.hash(), "world": build_world(spec.world, seed=spec.world_seed).fingerprint(),
                      "version": SERIES_VERSION, "checkpoints": CHECKPOINTS, "seq_len": s.seq_len,
                      "batch_size": s.batch_size, "eval_batches": s.eval_batches, "threshold": THRESHOLD,
                      "kl_methods": KL_METHODS, "loss_window": LOSS_WINDOW, "torch": torch.__version__,
                      "code": _code_hash()}, sort_keys=True)
    return cache_root().parent / "natural-outliers" / f"{name}.json", hashlib.sha256(key.encode()).hexdigest()[:24]


def grow(job: tuple[str, Settings]) -> dict:
    """Pretrain rung `name` with <bos>-opened sequences, measuring at every checkpoint; the cached result when its
    key matches. -> {"rung", "steps", "tokens_per_step", "init": measure() before the first step, "checkpoints":
    [measure() + step, tokens, train_loss, weights_sha256], "kl": {method: KL per token at the end},
    "weights_sha256" (the last), "wall_s", "built" (local time)}."""
    name, s = job
    path, key = _cache_file(name, s)
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached
    except (OSError, ValueError):
        pass
    t0 = time.perf_counter()
    spec = get_spec(name)
    world, tok = build_world_and_tokenizer(spec)
    rows = bos_rows(world, tok, spec)
    blocks = bos_blocks(world, tok, min(s.seq_len, spec.seq_len), s.batch_size, s.eval_batches)
    steps = max(1, len(rows) // spec.batch_size)
    at = set(checkpoint_steps(steps))
    model = init_model(spec, tok)
    init = {"step": 0, "tokens": 0, "train_loss": None, **measure(model, blocks),
            "weights_sha256": _weights_sha256(model)}
    losses, points = [], []

    def on_step(step, m, loss):
        losses.append(float(loss))
        if step + 1 in at:
            points.append({"step": step + 1, "tokens": (step + 1) * spec.batch_size * spec.seq_len,
                           "train_loss": sum(losses[-LOSS_WINDOW:]) / len(losses[-LOSS_WINDOW:]), **measure(m, blocks),
                           "weights_sha256": _weights_sha256(m)})

    train(model, rows, pretrain_config(spec, steps, desc=f"{name}+bos"), on_step=on_step)
    model.eval()
    ref = reference_logprobs(model, blocks)
    kl = {m: kl_to_reference(ref, quantize_model(copy.deepcopy(model), method=m, threshold=THRESHOLD), blocks)
          ["kl_per_token"] for m in KL_METHODS}
    out = {"key": key, "rung": name, "steps": steps, "tokens_per_step": spec.batch_size * spec.seq_len,
           "init": init, "checkpoints": points, "kl": kl, "weights_sha256": points[-1]["weights_sha256"],
           "wall_s": round(time.perf_counter() - t0, 1), "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_json(path, out)
    return out


def _setup() -> dict:
    return {}


def natural_rows(rec: Recorder, ladder: str, s: Settings, progress=None) -> list[dict]:
    """Grow the series for every rung of `ladder` (s.natural_workers processes) and record its rows under Q5:
    per checkpoint (and step 0, reported only) the perplexity, training loss and census (`natural_*`, the
    checkpoint's weights' sha256 in info), per rung the KL at the end, and the
    rows the rule reads (Spearman's rho of the measure with perplexity and with parameters, the rung count, each
    rung's last-over-first perplexity). Returns the series (for the report)."""
    names = rung_names(ladder)
    with JobRunner(setup=_setup, workers=job_workers(s.natural_workers)) as runner:
        series = runner.map(grow, [(n, s) for n in names], progress=progress, desc="natural-outlier series")
    spec0 = get_spec(names[0])
    data = f"world-{spec0.world}-seed{spec0.world_seed}-heldout-bos"
    for r in series:
        spec = get_spec(r["rung"])
        kw = dict(model=f"{r['rung']}+bos", data=data, seed=spec.seed)
        info = {"weights_sha256": r["weights_sha256"]}
        for c in [r["init"], *r["checkpoints"]]:
            p = {"series": "bos", "step": c["step"], "of_steps": r["steps"], "tokens": c["tokens"]}
            info_c = {"weights_sha256": c["weights_sha256"]}
            rec.add("Q5", "natural_heldout_ppl", c["heldout_ppl"], unit="ppl", params=p, info=info_c, **kw)
            if c["step"]:
                rec.add("Q5", "natural_train_loss", c["train_loss"], unit="nats/token", params=p, info=info_c, **kw)
            for k in ("kurtosis_median", "kurtosis_median_excl_bos", "kurtosis_max", "max_abs", "share_layers_ge6",
                      "share_positions_ge6", "layers_affected", "positions_affected", "n_outlier_dims"):
                unit = ("excess kurtosis" if "kurtosis" in k else "share" if "share" in k or "affected" in k
                        else "count" if k.startswith("n_") else "value")
                top = {l["name"]: l["top_dims"] for l in c["layers"]} if k == "max_abs" else {}
                rec.add("Q5", f"natural_lncensus_{k}", c[k], unit=unit, params=p, info={**info_c, **top}, **kw)
        for meth, v in r["kl"].items():
            rec.add("Q5", "natural_kl_per_token", v, unit="nats/token", method=meth,
                    params={"series": "bos", "threshold": THRESHOLD, "tokens": r["checkpoints"][-1]["tokens"]},
                    info=info, **kw)
        first, last = r["checkpoints"][0], r["checkpoints"][-1]
        rec.add("Q5", "natural_ppl_last_over_first_checkpoint", last["heldout_ppl"] / first["heldout_ppl"],
                unit="ratio", params={"series": "bos", "first_step": first["step"], "last_step": last["step"]},
                info=info, **kw)
        rec.add("-", "natural_pretrain_wall_s", r["wall_s"], unit="s", params={"series": "bos"},
                info={"built": r["built"]}, timing=True, **kw)
    points = [(c[MEASURE], c["heldout_ppl"]) for r in series for c in r["checkpoints"]]
    finals = [(r["checkpoints"][-1][MEASURE], get_spec(r["rung"]).non_embedding_params()) for r in series]
    kw = dict(model=f"ladder-{ladder}+bos", data=data, seed=spec0.seed, unit="rank correlation")
    rec.add("Q5", "natural_spearman_kurtosis_vs_ppl", spearman(*zip(*points)),
            params={"series": "bos", "measure": MEASURE, "n_points": len(points)}, **kw)
    rec.add("Q5", "natural_spearman_kurtosis_vs_params", spearman(*zip(*finals)),
            params={"series": "bos", "measure": MEASURE, "n_rungs": len(finals), "checkpoint": "last"}, **kw)
    rec.add("Q5", "natural_n_rungs", len(series), **{**kw, "unit": "count"}, params={"series": "bos"})
    return series
