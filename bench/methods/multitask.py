"""Multi-task serving: one frozen model, many tasks' trained parts, each example of a batch with its own task.

Two methods, inference only (no dropout, no gradients into the task parts):

- `multi_lora(base, {"sum": lora_model_a, "qa": "out/qa_adapter", ...})`: several named LoRA adapters
  (Hu et al. 2021, https://arxiv.org/abs/2106.09685) in the same target layers; example b gets
      y_b = W x_b + s_k B_k A_k x_b,   k = the adapter named for row b,
  and the name "__base__" gives the frozen model alone. Semantics of peft's mixed-batch inference
  (`model(**batch, adapter_names=[...])`, one name per example, see
  https://huggingface.co/docs/peft/developer_guides/lora#inference-with-different-lora-adapters-in-the-same-batch);
  ours is written from scratch. Adapters may differ in rank and scaling; they must target the same modules.
- `prompt_bank(base, {"sum": prompt (n, d) or a prompt model, ...})`: a bank of soft prompts of one length n
  (Lester et al. 2021, https://arxiv.org/abs/2104.08691); example b gets its task's prompt prepended, with
  bench.methods.prompt's positions (left padding changes nothing) and `.logits` of the original T positions.

Both take the per-example choice as `adapter_names=[name per row]` or `task_ids=` (B,) ints (the adapter's
index in the order given; -1 = "__base__" for LoRA), in forward() and generate(). A mixed batch gives each
row what the row's single adapter / prompt gives (max |logit diff| ~1e-6, tested against
bench.methods.lora / prompt and peft).

Speed (LoRA): the per-example choice is resolved once per forward, not per layer, and each layer then runs
one of two layouts (`strategy`):
- "stacked": all K adapters' A's as one (sum r_k, in) matrix and B's as one (out, sum r_k): h = x A_cat^T
  (B, T, R), multiplied by a per-row (B, 1, R) mask holding s_k on the row's own adapter's columns and 0
  elsewhere, then h B_cat^T. Two plain matmuls whatever the mix; costs K times one adapter's low-rank work,
  negligible while R = sum r_k is small next to the layer width.
- "grouped": rows grouped by adapter, each group's two small matmuls on its rows (slices when the batch
  is sorted by task, else gathered rows), added back in place. Cost independent of K; peft's layout.
"auto" picks stacked when R <= `stack_max_rank` (64). What NOT to do (the old P4 code, measured slower): gather
per-example A and B, (B, r, in) and (B, out, r), and run batched einsums: it copies K-fold weights for every
row in every layer and runs B tiny matmuls instead of one large one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from bench.methods.common import batch_size, freeze, need, virtual_then_real_positions
from bench.methods.lora import PEFT_PREFIX, Conv1D, in_out, lora_layers
from bench.methods.wrapper import MethodWrapper

BASE = "__base__"                 # peft's name for "no adapter" in adapter_names
STRATEGIES = ("auto", "stacked", "grouped")


# ============================================================================================ routing

def task_ids_from(names: Sequence[str], adapter_names: Sequence[str] | None, task_ids, batch: int,
                  allow_base: bool, device) -> torch.Tensor:
    """(B,) long tensor of adapter indices (-1 = base) from exactly one of adapter_names / task_ids."""
    need((adapter_names is None) != (task_ids is None),
         "pass exactly one of adapter_names (a name per example) and task_ids (an index per example)")
    if adapter_names is not None:
        need(not isinstance(adapter_names, str), "adapter_names must be a list with one name per example, "
                                                 f"got the string {adapter_names!r}")
        index = {n: i for i, n in enumerate(names)}
        if allow_base:
            index[BASE] = -1
        bad = sorted({a for a in adapter_names if a not in index})
        need(not bad, f"unknown adapter name(s) {', '.join(map(repr, bad))}; known: {', '.join(index)}")
        ids = torch.tensor([index[a] for a in adapter_names], dtype=torch.long, device=device)
    else:
        ids = torch.as_tensor(task_ids, dtype=torch.long, device=device).reshape(-1)
        lo = -1 if allow_base else 0
        need(bool(((ids >= lo) & (ids < len(names))).all()),
             f"task_ids must lie in [{lo}, {len(names)}), got {ids.tolist()[:8]}")
    need(ids.shape[0] == batch, f"{ids.shape[0]} adapter choices for a batch of {batch} examples")
    return ids


class Route:
    """The batch's per-example adapter choice, resolved once per forward and shared by every layer."""

    def __init__(self, ids: torch.Tensor):
        self.ids = ids                                                    # (B,), -1 = base
        self.masks: dict = {}                                             # layout key -> (B, R) scales
        self._groups = None

    @property
    def groups(self) -> list:
        """[(adapter, rows)], rows a slice when the adapter's rows are contiguous (a sorted batch), else indices;
        computed on first use (only the grouped layout needs it)."""
        if self._groups is None:
            ids_l, groups = self.ids.tolist(), []
            for k in sorted(set(ids_l) - {-1}):
                rows = [i for i, v in enumerate(ids_l) if v == k]
                contiguous = rows == list(range(rows[0], rows[-1] + 1))
                groups.append((k, slice(rows[0], rows[-1] + 1) if contiguous
                               else torch.tensor(rows, device=self.ids.device)))
            self._groups = groups
        return self._groups

    def mask(self, layer: MultiLoraLayer) -> torch.Tensor:
        key = layer.layout_key
        if key not in self.masks:                                         # (B, R): s_k on row b's own columns
            hit = self.ids.unsqueeze(1) == layer.col_adapter.unsqueeze(0)
            self.masks[key] = hit.to(layer.col_scale.dtype) * layer.col_scale.unsqueeze(0)
        return self.masks[key]


class _RouteHolder:
    route: Route | None = None


# ============================================================================================ LoRA

class MultiLoraLayer(nn.Module):
    """A frozen Linear/Conv1D plus K LoRA adapters (A_k (r_k, in), B_k (out, r_k), scaling s_k), all buffers.
    Row b of the input gets adapter route.ids[b] (-1: none); see the module doc for the two layouts."""

    def __init__(self, base: nn.Module, As: list[torch.Tensor], Bs: list[torch.Tensor], scalings: list[float],
                 holder: _RouteHolder, strategy: str = "auto", stack_max_rank: int = 64):
        super().__init__()
        self.base, self.holder = base, holder
        self.ranks = tuple(int(a.shape[0]) for a in As)
        self.scalings = tuple(float(s) for s in scalings)
        w = base.weight
        self.register_buffer("A_cat", torch.cat(As).to(w.device, w.dtype))                  # (R, in)
        self.register_buffer("B_cat", torch.cat(Bs, dim=1).to(w.device, w.dtype).contiguous())  # (out, R)
        offs = [0]
        for r in self.ranks:
            offs.append(offs[-1] + r)
        self.offsets = tuple(offs)                                        # adapter k: columns offs[k]:offs[k+1]
        self.register_buffer("col_adapter", torch.repeat_interleave(
            torch.arange(len(As), device=w.device), torch.tensor(self.ranks, device=w.device)), persistent=False)
        self.register_buffer("col_scale", torch.repeat_interleave(
            torch.tensor(self.scalings, dtype=w.dtype, device=w.device), torch.tensor(self.ranks, device=w.device)),
            persistent=False)                                             # (R,)
        self.layout_key = (self.ranks, self.scalings, w.dtype, str(w.device))
        self.stacked = strategy == "stacked" or (strategy == "auto" and offs[-1] <= stack_max_rank)
        # per-adapter views for the grouped layout (no copies)
        self._A = [self.A_cat[offs[k]:offs[k + 1]] for k in range(len(As))]              # (r_k, in)
        self._B = [self.B_cat[:, offs[k]:offs[k + 1]] for k in range(len(As))]           # (out, r_k)

    @property
    def weight(self):
        return self.base.weight

    def _apply(self, fn, *args, **kwargs):                                # .to() / .half(): refresh the views
        out = super()._apply(fn, *args, **kwargs)
        o = self.offsets
        self._A = [self.A_cat[o[k]:o[k + 1]] for k in range(len(self.ranks))]
        self._B = [self.B_cat[:, o[k]:o[k + 1]] for k in range(len(self.ranks))]
        self.layout_key = (self.ranks, self.scalings, self.A_cat.dtype, str(self.A_cat.device))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:                   # x (B, ..., in)
        route = self.holder.route
        need(route is not None, "MultiLoraLayer: call the multi-LoRA model with adapter_names= or task_ids=")
        need(route.ids.shape[0] == x.shape[0], f"MultiLoraLayer: {route.ids.shape[0]} adapter choices for a "
                                               f"batch of {x.shape[0]}")
        out = self.base(x)                                                # (B, ..., out)
        if self.stacked:
            m = route.mask(self).to(x.dtype)                              # (B, R)
            h = nn.functional.linear(x, self.A_cat)                       # (B, ..., R)
            h = h * m.view(m.shape[0], *([1] * (x.dim() - 2)), m.shape[1])
            return out + nn.functional.linear(h, self.B_cat)              # (B, ..., out)
        for k, rows in route.groups:                                      # grouped: each adapter on its rows
            h = nn.functional.linear(x[rows], self._A[k]) * self.scalings[k]   # (n_k, ..., r_k)
            out[rows] += nn.functional.linear(h, self._B[k])
        return out

    def extra_repr(self) -> str:
        return f"ranks={self.ranks}, scalings={self.scalings}, layout={'stacked' if self.stacked else 'grouped'}"


def _adapter_weights(name: str, source) -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    """module path -> (A (r, in), B (out, r), scaling) of one adapter: a model with our LoRA applied, or a
    folder in peft's format (ours or peft's)."""
    if isinstance(source, (str, Path)):
        from safetensors.torch import load_file

        from bench.methods.lora import config_from_peft
        path = Path(source)
        need((path / "adapter_config.json").exists(), f"multi_lora: adapter {name!r}: {path} has no "
                                                      "adapter_config.json")
        cfg = config_from_peft(path)
        sd = load_file(str(path / "adapter_model.safetensors"))
        out: dict[str, list] = {}
        for key, t in sd.items():
            stem = key[len(PEFT_PREFIX):] if key.startswith(PEFT_PREFIX) else key
            for ab in ("lora_A", "lora_B"):
                for suffix in (f".{ab}.weight", f".{ab}.default.weight"):
                    if stem.endswith(suffix):
                        out.setdefault(stem[:-len(suffix)], [None, None])[ab == "lora_B"] = t
        need(bool(out), f"multi_lora: adapter {name!r}: {path} holds no LoRA weights")
        need(all(a is not None and b is not None for a, b in out.values()),
             f"multi_lora: adapter {name!r}: {path} lacks A or B for some layer")
        return {k: (a, b, cfg.scaling()) for k, (a, b) in out.items()}
    layers = lora_layers(source)
    need(bool(layers), f"multi_lora: adapter {name!r} is neither a model with LoRA applied nor a LoRA folder")
    variant = getattr(getattr(source, "bench_method", None), "name", "lora")
    need(variant in ("lora",), f"multi_lora: adapter {name!r} is {variant}; only plain LoRA adapters add up "
                               f"per example (DoRA renormalises the weight, PiSSA and QLoRA change the base)")
    merged = [n for n, m in layers if m.merged]
    need(not merged, f"multi_lora: adapter {name!r} is merged ({merged[:1]}); unmerge it first")
    return {n: (m.lora_A.weight.detach(), m.lora_B.weight.detach(), m.scaling) for n, m in layers}


class MultiLoraModel(MethodWrapper):
    """The base model with MultiLoraLayers; forward/generate take adapter_names= or task_ids= (one per row)."""

    def __init__(self, base: nn.Module, names: list[str], holder: _RouteHolder):
        super().__init__(base)
        self.adapter_names, self.holder = list(names), holder

    def route_for(self, batch: int, adapter_names=None, task_ids=None) -> Route:
        need(not self.training, "multi-LoRA mixed batches are for inference; call .eval() first")
        dev = next(iter(self.base.parameters())).device
        return Route(task_ids_from(self.adapter_names, adapter_names, task_ids, batch, True, dev))

    def _run(self, fn, route: Route, *args, **kwargs):
        self.holder.route = route
        try:
            return fn(*args, **kwargs)
        finally:
            self.holder.route = None

    def forward(self, input_ids=None, *args, adapter_names=None, task_ids=None, **kwargs):
        B = batch_size(input_ids, kwargs.get("inputs_embeds"))
        return self._run(self.base, self.route_for(B, adapter_names, task_ids), input_ids, *args, **kwargs)

    def generate(self, input_ids=None, adapter_names=None, task_ids=None, **kwargs):
        """Generation with one adapter per row (greedy or sampled; beams / num_return_sequences > 1 would
        change the batch size and are refused by the layers)."""
        B = batch_size(input_ids, kwargs.get("inputs_embeds"))
        return self._run(self.base.generate, self.route_for(B, adapter_names, task_ids), input_ids=input_ids,
                         **kwargs)


def multi_lora(base: nn.Module, adapters: Mapping[str, nn.Module | str | Path], strategy: str = "auto",
               stack_max_rank: int = 64) -> MultiLoraModel:
    """Put the named adapters (models with our LoRA applied, or LoRA folders in peft's format) into `base`
    (modified in place: frozen, its target layers wrapped) and return the serving model, in eval mode.
    Every adapter must target the same modules; ranks and scalings may differ. BenchError, base untouched,
    otherwise."""
    need(isinstance(adapters, Mapping) and len(adapters) > 0, "multi_lora: pass a non-empty {name: adapter} dict")
    need(strategy in STRATEGIES, f"multi_lora: strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    names = list(adapters)
    need(BASE not in names, f"multi_lora: {BASE!r} is reserved for 'no adapter'")
    per = {n: _adapter_weights(n, a) for n, a in adapters.items()}
    layers = list(per[names[0]])
    for n in names[1:]:
        need(sorted(per[n]) == sorted(layers), f"multi_lora: adapter {n!r} targets other modules than "
                                               f"{names[0]!r} ({sorted(set(per[n]) ^ set(layers))[:3]})")
    mods = dict(base.named_modules())
    for lname in layers:
        mod = mods.get(lname)
        need(isinstance(mod, (nn.Linear, Conv1D)), f"multi_lora: {lname} is not a Linear/Conv1D of this model")
        fi, fo = in_out(mod)
        for n in names:
            a, b, _ = per[n][lname]
            need(a.shape[1] == fi and b.shape[0] == fo and a.shape[0] == b.shape[1],
                 f"multi_lora: adapter {n!r} at {lname}: A {tuple(a.shape)}, B {tuple(b.shape)} do not fit "
                 f"{fi} -> {fo}")
    freeze(base)
    holder = _RouteHolder()
    for lname in layers:
        parent, _, child = lname.rpartition(".")
        owner = base.get_submodule(parent) if parent else base
        ws = [per[n][lname] for n in names]
        setattr(owner, child, MultiLoraLayer(getattr(owner, child), [w[0] for w in ws], [w[1] for w in ws],
                                             [w[2] for w in ws], holder, strategy, stack_max_rank))
    return MultiLoraModel(base, names, holder).eval()


# ============================================================================================ prompt bank

class PromptBankModel(MethodWrapper):
    """K soft prompts (K, n, d) of one length over a frozen model; row b gets prompt task_ids[b] prepended."""

    def __init__(self, base: nn.Module, names: list[str], prompts: torch.Tensor):
        super().__init__(base)
        self.adapter_names = list(names)
        self.num_virtual_tokens = prompts.shape[1]
        self.register_buffer("prompts", prompts)                          # (K, n, d)

    def build_inputs(self, input_ids=None, attention_mask=None, inputs_embeds=None, task_ids=None,
                     position_ids=None):
        """As bench.methods.prompt.PromptModel.build_inputs, with a prompt per row."""
        B, n = batch_size(input_ids, inputs_embeds), self.num_virtual_tokens
        if inputs_embeds is None:
            inputs_embeds = self.base.get_input_embeddings()(input_ids)  # (B, T, d)
        P = self.prompts[task_ids].to(inputs_embeds.dtype)                # (B, n, d)
        inputs_embeds = torch.cat([P, inputs_embeds], dim=1)              # (B, n+T, d)
        position_ids = virtual_then_real_positions(self.base, attention_mask, position_ids, n)   # (B, n+T)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask.new_ones(B, n), attention_mask], dim=1)
        return dict(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids)

    def _ids(self, B, adapter_names, task_ids):
        return task_ids_from(self.adapter_names, adapter_names, task_ids, B, False, self.prompts.device)

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, position_ids=None,
                adapter_names=None, task_ids=None, **kwargs):
        B = batch_size(input_ids, inputs_embeds)
        T = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        inputs = self.build_inputs(input_ids, attention_mask, inputs_embeds, self._ids(B, adapter_names, task_ids),
                                   position_ids)
        need("labels" not in kwargs, "prompt bank: serving only (no labels)")
        inputs = {k: v for k, v in inputs.items() if v is not None or k == "attention_mask"}
        out = self.base(**inputs, **kwargs)
        logits = getattr(out, "logits", None)
        if logits is not None and logits.dim() >= 3 and logits.shape[1] == self.num_virtual_tokens + T:
            out.logits = logits[:, self.num_virtual_tokens:]              # (B, T, V)
        return out

    def generate(self, input_ids=None, attention_mask=None, adapter_names=None, task_ids=None, **kwargs):
        """Returns input_ids followed by the new tokens, like the base model's generate."""
        need(input_ids is not None, "generate: pass input_ids")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = self.build_inputs(input_ids, attention_mask,
                                   task_ids=self._ids(input_ids.shape[0], adapter_names, task_ids))
        out = self.base.generate(inputs_embeds=inputs["inputs_embeds"], attention_mask=inputs["attention_mask"],
                                 **kwargs)
        return torch.cat([input_ids.repeat_interleave(out.shape[0] // input_ids.shape[0], 0), out], dim=1)


def _prompt_tensor(name: str, source) -> torch.Tensor:
    if isinstance(source, torch.Tensor):
        need(source.dim() == 2, f"prompt_bank: prompt {name!r} must be (n, d), got {tuple(source.shape)}")
        return source.detach()
    vec = getattr(source, "prompt_vectors", None)
    need(callable(vec), f"prompt_bank: prompt {name!r} is neither an (n, d) tensor nor a prompt model")
    need(getattr(source, "placeholder_token_id", None) is None, f"prompt_bank: {name!r} uses placeholder tokens")
    with torch.no_grad():
        return vec().detach()


def prompt_bank(base: nn.Module, prompts: Mapping[str, torch.Tensor | nn.Module]) -> PromptBankModel:
    """A bank of named soft prompts (tensors (n, d), or prompt / P-tuning models whose prompt is read out)
    over the frozen `base`, in eval mode. All prompts need the same length n and the model's width d."""
    need(isinstance(prompts, Mapping) and len(prompts) > 0, "prompt_bank: pass a non-empty {name: prompt} dict")
    ts = {n: _prompt_tensor(n, p) for n, p in prompts.items()}
    shapes = {tuple(t.shape) for t in ts.values()}
    need(len(shapes) == 1, f"prompt_bank: prompts differ in shape ({sorted(shapes)}); use one length n")
    emb = base.get_input_embeddings()
    need(isinstance(emb, nn.Embedding), f"prompt_bank: cannot find the input embeddings of {type(base).__name__}")
    d = emb.weight.shape[1]
    need(next(iter(shapes))[1] == d, f"prompt_bank: prompts have width {next(iter(shapes))[1]}, the model {d}")
    freeze(base)
    stacked = torch.stack([t.to(emb.weight.device) for t in ts.values()])   # (K, n, d)
    return PromptBankModel(base, list(ts), stacked).eval()


__all__ = ["BASE", "MultiLoraLayer", "MultiLoraModel", "PromptBankModel", "multi_lora", "prompt_bank", "Route"]
