"""The sweep's models and data: which rungs, one loaded `Rung` with its two tasks, and the method settings.

A rung is a ladder name (scale "toy") or a user checkpoint (folder or cached hub id, scale "paper"). Its tasks are
tokenised by its own tokenizer; d2t rows longer than the positions the methods' virtual tokens leave are dropped
(with a note), and the knowledge task is skipped (with a note) for tokenizers that split its one-token answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from huggingface_hub import try_to_load_from_cache
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM

from bench import BenchError
from bench import ladder as L
from bench.data.tasks import data_to_text_task, knowledge_task, next_month_task
from bench.data.world import ATTRIBUTE_NAMES, ATTRIBUTES, build_world
from bench.methods.common import dims
from bench.methods.presets import preset
from bench.models import load_model, n_positions
from bench.repro import RunContext
from reproductions.scale.settings import Settings


def resolve_rungs(ctx: RunContext, s: Settings) -> list[str]:
    """The sweep's model names: --model's list, else the settings' rungs, else the profile's ladder;
    "smallest" / "largest" name the ladder's ends. BenchError on an empty or repeated list."""
    if ctx.model:
        names = [m.strip() for m in ctx.model.split(",") if m.strip()]
        if not names:
            raise BenchError(f"--model got no model names: {ctx.model!r}")
    else:
        names = list(s.rungs) if s.rungs else L.rung_names(ctx.profile.ladder)
    ladder = L.rung_names(ctx.profile.ladder)
    names = [ladder[0] if n == "smallest" else ladder[-1] if n == "largest" else n for n in names]
    if len(set(names)) != len(names):
        raise BenchError(f"scale: a model is listed twice: {names}")
    return names


def _folder(spec: str, ladder: str) -> Path | None:
    """The folder holding `spec`'s config: a (built) rung, a local folder, or the hub cache's copy; else None."""
    if spec in L.SPECS:
        return L.ensure_rung(spec)
    p = Path(spec).expanduser()
    if p.is_dir():
        return p
    try:
        hit = try_to_load_from_cache(spec, "config.json")
        return Path(hit).parent if isinstance(hit, str) else None
    except Exception:  # noqa: BLE001 - not a hub id either: load_model below says why
        return None


def count_params(spec: str, ladder: str) -> int:
    """Total parameters (tied tensors once) from the config on the meta device: no weights are loaded."""
    folder = _folder(spec, ladder)
    if folder is None:
        model, _ = load_model(spec, ladder)                     # raises the one-line BenchError
        return sum(p.numel() for p in model.parameters())
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    return sum(p.numel() for p in model.parameters())


def fingerprint(spec: str, ladder: str) -> str:
    """What identifies the weights, for the search cache: a rung's weights sha256, a folder's files, or the name."""
    folder = _folder(spec, ladder)
    if spec in L.SPECS and folder is not None:
        return json.loads((folder / "manifest.json").read_text())["weights_sha256"]
    if folder is not None:
        files = sorted(p for p in folder.iterdir() if p.is_file())
        return hashlib.sha256(json.dumps([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files])
                              .encode()).hexdigest()[:24]
    return spec


@dataclass
class Rung:
    """One model of the sweep with its tasks, tokenised by its own tokenizer."""
    name: str
    model: nn.Module
    tok: object
    world: object
    params: int
    scale: str
    data: dict = field(default_factory=dict)   # task -> dict of rows / datasets (see load_rung)
    names: dict = field(default_factory=dict)  # task -> the `data` column of its rows
    label_ids: list = field(default_factory=list)
    max_new: int = 0
    notes: list = field(default_factory=list)


def virtual_tokens(s: Settings, methods) -> int:
    """The most positions any main-sweep method puts in front of the input (prefix, prompt, P-tuning)."""
    n = [s.prefix_len if m == "prefix" else s.prompt_len for m in methods if m in ("prefix", "prompt", "ptuning")]
    return max(n, default=0)


def load_rung(name: str, ctx: RunContext, s: Settings, methods) -> Rung:
    """Load the model `name` and build the settings' tasks for it (see the module doc)."""
    model, tok = load_model(name, ctx.profile.ladder)
    world = L.load_world(name) if name in L.SPECS else build_world(ctx.profile.ladder)
    rc = Rung(name, model.eval(), tok, world, sum(p.numel() for p in model.parameters()),
              "toy" if name in L.SPECS else "paper")
    wname = f"world-{world.profile}-seed{world.seed}"
    if "knowledge" in s.tasks:
        _add_knowledge(rc, wname)
    if not rc.label_ids:              # class-label init needs the values' ids: first token of each value word
        rc.label_ids = _interleave([[tok(" " + v, add_special_tokens=False)["input_ids"][0] for v in vals]
                                    for vals in ATTRIBUTES.values()])
    if "d2t" in s.tasks:
        _add_d2t(rc, ctx, s, methods, wname)
    if "nextmonth" in s.tasks:
        _add_next_month(rc, s, wname)
    return rc


def _add_next_month(rc: Rung, s: Settings, wname: str) -> None:
    """nextmonth (issue 14: a task the frozen model cannot do): "<name> celebrates a birthday in May . new month :"
    -> "June", made-up people. Its hand-written prompt (prompt design, as GPT-3's few-shot prompts in Lester et al.
    Fig. 1): `n_shots` worked examples from the training rows (distinct stated months), each ended by " .", then
    the cue, on the frozen model."""
    try:
        dd = next_month_task(rc.world, rc.tok, fmt="sentence", people="made_up", per_person=s.n_per_person)
    except BenchError as e:
        rc.notes.append(f"next-month task skipped for {rc.name}: {e}")
        return
    test = dd["test"]
    demos, seen = [], set()
    dot = rc.tok(" .", add_special_tokens=False)["input_ids"]
    for r in dd["train"]:
        if len(seen) < s.n_shots and r["stated"] not in seen:
            seen.add(r["stated"])
            demos += r["input_ids"] + dot
    room = n_positions(rc.model) - 1
    hand = test.map(lambda r: {"prompt_ids": (demos + r["prompt_ids"])[-room:]})
    rc.data["nextmonth"] = _classification(dd, test, hand) | {"hand_prompt": f"{len(seen)} worked examples + cue"}
    rc.names["nextmonth"] = f"nextmonth(sentence, made-up people, {s.n_per_person}/person, {wname})"


def _classification(dd, test, handwritten) -> dict:
    """A single-token-answer task's parts: training rows, validation and test sets, the hand-written prompt's
    test set, chance accuracy."""
    return {"train": dd["train"].select_columns(["input_ids", "labels"]).to_list(), "val": dd["validation"],
            "test": test, "handwritten": handwritten,
            "chance": float(np.mean([1 / len(c) for c in test["candidates"]]))}


def _add_knowledge(rc: Rung, wname: str) -> None:
    """knowledge: the table form to tune and score, the hand-written (discrete) form for the zero-shot baseline."""
    try:
        dd = knowledge_task(rc.world, rc.tok, attributes="all", fmt="table")
        hw = knowledge_task(rc.world, rc.tok, attributes="all", fmt="discrete")["test"]
    except BenchError as e:       # e.g. a BPE tokenizer splits a candidate value: no single-token answers
        rc.notes.append(f"knowledge task skipped for {rc.name}: {e}")
        return
    test = dd["test"]
    rc.data["knowledge"] = _classification(dd, test, hw)
    rc.names["knowledge"] = f"knowledge(table, 5 attributes, {wname})"
    cand = {a: ids for a, ids in zip(test["attribute"], test["candidate_ids"])}
    rc.label_ids = _interleave([cand[a] for a in ATTRIBUTE_NAMES if a in cand])


def _add_d2t(rc: Rung, ctx: RunContext, s: Settings, methods, wname: str) -> None:
    """d2t: the world's (or the user's E2E) rows that fit the positions, one test row per test person."""
    room = n_positions(rc.model) - virtual_tokens(s, methods)
    user = (ctx.options or {}).get("d2t_data") or os.environ.get("BENCH_SCALE_D2T")
    dd = d2t_from_disk(user, rc.tok) if user else data_to_text_task(rc.world, rc.tok, per_person=s.per_person, seed=0)
    fits = lambda ds: ds.select([i for i, r in enumerate(ds["input_ids"]) if len(r) <= room])  # noqa: E731
    train, val, test = fits(dd["train"]), fits(dd["validation"]), fits(dd["test"])
    if min(len(train), len(val), len(test)) == 0:
        raise BenchError(f"scale: no d2t rows fit {rc.name}'s {n_positions(rc.model)} positions with "
                         f"{virtual_tokens(s, methods)} virtual tokens")
    seen, first = set(), []
    for i, e in enumerate(test["entity"]):           # one row per test person
        if e not in seen and len(first) < s.d_eval_rows:
            seen.add(e)
            first.append(i)
    longest = max(len(p) for p in test.select(first)["prompt_ids"])
    rc.max_new = max(1, min(s.max_new_tokens, room - longest))
    val = val.select(range(min(s.d_val_rows, len(val))))
    rc.data["d2t"] = {"train": train.select_columns(["input_ids", "labels"]).to_list(),
                      "val": val.select_columns(["input_ids", "labels"]).to_list(),
                      "test": test.select(first), "test_full": test}
    rc.names["d2t"] = f"d2t({Path(user).name})" if user else f"d2t({s.per_person}/person, {wname})"
    if len(train) < len(dd["train"]):
        rc.notes.append(f"{rc.name}: {len(dd['train']) - len(train)} of {len(dd['train'])} d2t training rows "
                        f"dropped (longer than {room} positions)")


def d2t_from_disk(path, tok) -> datasets.DatasetDict:
    """A user's data-to-text set (paper scale: E2E) instead of the world's: a `datasets` DatasetDict saved with
    save_to_disk, splits train / validation / test, E2E's columns `meaning_representation` ("name[The Vaults],
    eatType[pub]") and `human_reference`. Li & Liang's format: "<mr> ||" then " <reference>" + eos; `values`
    (for attribute match) are the bracketed values; rows with the same MR share an `entity`."""
    folder = Path(path).expanduser()
    try:
        dd = datasets.load_from_disk(str(folder))
    except (OSError, ValueError, FileNotFoundError) as e:
        raise BenchError(f"scale: cannot read a data-to-text set from {str(folder)!r}: {e}") from None
    need = {"train", "validation", "test"}
    if not isinstance(dd, datasets.DatasetDict) or not need <= set(dd):
        raise BenchError(f"scale: {folder} must hold a DatasetDict with splits {sorted(need)}")
    eos = tok.eos_token_id
    out, ids = {}, {}
    for split in sorted(need):
        cols = set(dd[split].column_names)
        if not {"meaning_representation", "human_reference"} <= cols:
            raise BenchError(f"scale: {folder}/{split} needs the columns meaning_representation and human_reference "
                             f"(E2E's), has {sorted(cols)}")
        rows = []
        for mr, ref in zip(dd[split]["meaning_representation"], dd[split]["human_reference"]):
            pids = tok(f"{mr} ||", add_special_tokens=False)["input_ids"]
            rids = tok(f" {ref}", add_special_tokens=False)["input_ids"]
            rows.append({"entity": ids.setdefault(mr, len(ids)), "table": mr, "prompt": f"{mr} ||",
                         "reference": ref, "values": re.findall(r"\[([^\]]*)\]", mr) or [ref.split()[0]],
                         "prompt_ids": pids, "input_ids": pids + rids + [eos], "labels": [-100] * len(pids) + rids + [eos]})
        out[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(out)


def _interleave(lists) -> list[int]:
    """[a0, b0, c0, a1, b1, ...] without repeats: every attribute's values get the first prompt slots."""
    out = []
    for i in range(max((len(x) for x in lists), default=0)):
        for x in lists:
            if i < len(x) and x[i] not in out:
                out.append(x[i])
    return out


def method_kwargs(method: str, s: Settings, rc: Rung, n: int | None = None, init: str | None = None) -> dict:
    """make_config kwargs of `method` on this rung: the suite's preset (bench.methods.presets) with this group's
    sizes on top: LoRA r capped at the width d; adapters of size d / adapter_ratio; prefix length with the MLP
    reparameterisation; prompt length `n` and `init` (class-label init gets the rung's label ids); P-tuning's
    encoder. Full FT and BitFit take the preset as it is."""
    d = dims(rc.model)["hidden"]
    if method == "lora":
        over = dict(r=min(s.lora_r, d), alpha=s.lora_alpha)
    elif method == "adapters":
        over = dict(size=max(1, d // s.adapter_ratio))
    elif method == "prefix":
        over = dict(num_virtual_tokens=s.prefix_len, reparam=True, reparam_hidden=s.prefix_hidden)
    elif method == "prompt":
        init = init or s.prompt_init
        over = dict(num_virtual_tokens=n or s.prompt_len, init=init)
        if init in ("labels", "text"):
            over["init_token_ids"] = tuple(rc.label_ids)
    elif method == "ptuning":
        over = dict(num_virtual_tokens=s.prompt_len, encoder=s.ptuning_encoder)
    else:
        over = {}
    return preset(method, **over)[1]


def describe(kw: dict) -> dict:
    """The method settings worth a column (not the label ids)."""
    return {k: v for k, v in kw.items() if k != "init_token_ids"}
