"""The pretraining report of a ladder (`bench pretrain`): results.csv / timings.csv (group "ladder"), report.md
and two figures."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from bench import BenchError
from bench.fileio import atomic_savefig, atomic_write_text
from bench.ladder.build import build_world_and_tokenizer, init_model
from bench.ladder.cache import ensure_rung
from bench.ladder.probes import heldout_ppl, knowledge_probes
from bench.ladder.specs import get_spec, rung_names
from bench.paths import PATHS
from bench.schema import Recorder


def pretrain_ladder(ladder: str, cache_dir=None, force: bool = False, out_dir: Path | None = None,
                    progress: bool = True):
    """Build every rung of `ladder` (reusing valid caches unless force) and write the pretraining report:
    results.csv / timings.csv (group "ladder"), report.md, loss_curves.png, ppl_vs_params.png."""
    names = rung_names(ladder)
    out_dir = Path(out_dir or PATHS.ladder_results)
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
    import matplotlib   # here, not at import: only the report draws (matplotlib is slow to import)
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
