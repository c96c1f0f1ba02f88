"""The measurement recipe: lr search, then rung by rung the zero-shot baselines and the sweep (+ P2's low-data run
on the largest rung, P3's ablations on the ablation rungs), then P4 and the derived metrics.

Every run is a job (reproductions.scale.jobs) handed to one `bench.jobs.JobRunner` as it is planned; the jobs run
in this process or in `workers` spawned ones, and their rows are replayed into the Recorder in plan order.
"""

from __future__ import annotations

from dataclasses import asdict

from bench import BenchError
from bench import ladder as L
from bench.jobs import JobRunner, RowBuffer, job_workers, threads_per_worker
from bench.methods import make_config
from bench.repro import RunContext
from bench.schema import Recorder
from bench.train import num_threads
from reproductions.scale.derive import DERIVED_MEASURED, derive, runs_frame
from reproductions.scale.fitting import choose, read_cache, search_cache_dir, search_key, write_cache
from reproductions.scale.jobs import Job, do_job, job_env, label
from reproductions.scale.models import (Rung, count_params, fingerprint, load_rung, method_kwargs, n_positions,
                                        resolve_rungs, virtual_tokens)
from reproductions.scale.p4 import run_p4, trained_parts
from reproductions.scale.settings import CLAIMS, GROUP, Settings, ablation_configs, grid, settings_for


def run(ctx: RunContext) -> Recorder:
    """The scale group's run (see the package doc); BenchError on bad input before anything trains."""
    s = settings_for(ctx)
    seeds = tuple(ctx.seeds)
    if not seeds:
        raise BenchError("scale: needs at least one seed (three for a verdict)")
    names = resolve_rungs(ctx, s)
    sizes = {n: count_params(n, ctx.profile.ladder) for n in names}
    names = sorted(names, key=lambda n: sizes[n])
    alias = {"smallest": names[0], "middle": names[len(names) // 2], "largest": names[-1]}
    for r in s.ablation_rungs:
        if r not in alias and r not in names:
            raise BenchError(f"scale: ablation rung {r!r} is neither smallest/middle/largest nor in the sweep "
                             f"({', '.join(names)})")
    abl_rungs = {alias.get(r, r) for r in s.ablation_rungs}
    search_rung = s.search_rung or names[len(names) // 2]
    if search_rung not in names:
        raise BenchError(f"scale: search rung {search_rung!r} is not in the sweep ({', '.join(names)})")
    threads, workers = threads_per_worker(), job_workers(s.workers)
    rec = ctx.recorder(GROUP, CLAIMS)
    with num_threads(threads), JobRunner(job_env, (ctx, s, list(s.methods)), workers) as runner:
        Sweep(ctx, s, seeds, names, sizes, abl_rungs, search_rung, rec, runner).run()
    rec.notes.update({"threads": threads, "workers": workers, "rungs": names, "seeds": list(seeds),
                      "settings": asdict(s), "search_rung": search_rung, "ablation_rungs": sorted(abl_rungs)})
    return rec


def _cost(rc_params: int, task: str, steps: int, batch: int, virt: int, eval_rows: int) -> float:
    """Relative cost of one run (for the progress bar's ETA): tokens x parameters, training + evaluation."""
    tokens = 8 if task == "knowledge" else 45
    train = 3 * steps * batch * (tokens + virt)
    ev = eval_rows * (tokens + virt) if task == "knowledge" else eval_rows * 40 * (tokens + virt)
    return (train + ev) * rc_params / 1e9


class Sweep:
    """One run's plan and state: the jobs submitted so far (`order`: a RowBuffer made here or a job's index, in
    the order results.csv gets them), the chosen learning rates, the notes, and the progress bar."""

    def __init__(self, ctx: RunContext, s: Settings, seeds: tuple, names: list, sizes: dict, abl_rungs: set,
                 search_rung: str, rec: Recorder, runner: JobRunner):
        self.ctx, self.s, self.seeds, self.names, self.sizes = ctx, s, seeds, names, sizes
        self.abl_rungs, self.search_rung, self.rec, self.runner = abl_rungs, search_rung, rec, runner
        fixed = dict((ctx.options or {}).get("lrs", {}))
        self.methods = list(s.methods)
        self.to_search = [(m, t) for m in self.methods for t in s.tasks if m not in fixed]
        self.chosen: dict[tuple[str, str], float] = {(m, t): v for m, v in fixed.items() for t in s.tasks}
        self.steps_of = {"knowledge": (s.k_steps, s.k_batch), "d2t": (s.d_steps, s.d_batch)}
        self.eval_rows = {"knowledge": 400, "d2t": s.d_eval_rows}
        self.virt = virtual_tokens(s, self.methods)
        self.notes: list[str] = []
        self.search_notes: dict[str, str] = {}
        self.order: list = []
        self.keep: dict = {}       # (method, task) -> job index whose trained part P4 reuses
        self.done_label = " (running in %d processes)" % runner.workers if runner.workers > 1 else ""
        self.bar = None

    def run(self) -> None:
        total = round(sum(self.cost(n, t) for n, t in self.planned()), 3)
        self.bar = self.ctx.progress(total=total, desc=GROUP, unit="",
                                     bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")
        if self.to_search:
            self.search_lrs()
        for n in self.names:
            rc = load_rung(n, self.ctx, self.s, self.methods)
            self.notes += rc.notes
            buf = RowBuffer()
            buf.add("-", "rung_params", rc.params, unit="params", model=rc.name, scale="exact")
            self.order.append(buf)
            for t in self.s.tasks:
                if t in rc.data:
                    self.order.append(self.runner.submit(do_job, Job("zeroshot", n, t)))
                    self.main_fits(rc, t)
            if self.low_data_on(n, rc.data):
                self.low_data(rc)
            if self.ablations_on(n, rc.data):
                self.ablations(rc)
        self.drain()
        for item in self.order:
            (item if isinstance(item, RowBuffer) else self.runner.result(item)[0]).replay(self.rec)
        if self.s.p4:              # in this process once the jobs are done (it times the two batch layouts)
            self.bar.set_postfix_str(f"{rc.name} P4 mixed-task batches")
            kept = {k: self.runner.result(i)[1] for k, i in self.keep.items()}
            run_p4(self.rec, rc, self.s, trained_parts(rc, self.s, kept), self.seeds[0])
        self.bar.close()
        self.derived()

    # ---------------------------------------------------------------- the plan and the progress bar
    def low_data_on(self, n: str, tasks) -> bool:
        return n == self.names[-1] and "d2t" in tasks and {"full", "prefix"} <= set(self.methods)

    def ablations_on(self, n: str, tasks) -> bool:
        return n in self.abl_rungs and "knowledge" in tasks and "prompt" in self.methods

    def planned(self) -> list[tuple[str, str]]:
        """(rung, task) of every run the plan holds, for one progress bar with a cost-weighted ETA."""
        out = [(self.search_rung, t) for m, t in self.to_search for _ in grid(self.s, m)]
        for n in self.names:
            out += [(n, t) for t in self.s.tasks for _ in self.methods for _ in self.seeds]
            if self.low_data_on(n, self.s.tasks):
                out += [(n, "d2t")] * (len(self.s.low_data_sizes) * 2 * len(self.seeds))
            if self.ablations_on(n, self.s.tasks):
                out += [(n, "knowledge")] * (len(ablation_configs(self.s)) * len(self.seeds))
        return out

    def cost(self, n: str, t: str) -> float:
        return _cost(self.sizes[n], t, *self.steps_of[t], self.virt, self.eval_rows[t])

    def tick(self, name: str, task: str, text: str) -> None:
        self.bar.set_postfix_str(text, refresh=False)
        self.bar.update(round(self.cost(name, task), 3))

    def drain(self) -> None:
        """Run (or wait for) every submitted job, advancing the bar as each finishes."""
        for i, _ in self.runner.as_completed(before=lambda j: self.bar.set_postfix_str(label(j))):
            job = self.runner.jobs[i]
            if job.kind != "zeroshot":
                self.tick(job.rung, job.task, "done: " + label(job) + self.done_label)

    def skip_once(self, msg: str, n: str, task: str) -> None:
        if msg not in self.notes:
            self.notes.append(msg)
        self.tick(n, task, "skipped")

    def lr_for(self, m: str, t: str) -> float:
        if (m, t) not in self.chosen:   # the search rung could not run this task: the grid's middle value
            g = grid(self.s, m)
            self.chosen[(m, t)] = g[len(g) // 2]
            self.notes.append(f"no lr search for {m}/{t}: used {self.chosen[(m, t)]:g}")
        return self.chosen[(m, t)]

    # ---------------------------------------------------------------- 1. learning-rate search (cached)
    def search_lrs(self) -> None:
        """Per (method, task) the lr grid on the search rung with the first seed, selected on validation people;
        cached per (model, method, task, grid, settings) under $BENCH_CACHE/scale/. Every grid point is a row."""
        rc = load_rung(self.search_rung, self.ctx, self.s, self.methods)
        fp = fingerprint(self.search_rung, self.ctx.profile.ladder)
        todo = []   # (m, t, path, [job index per lr] or cached points)
        for m, t in self.to_search:
            if t not in rc.data:
                continue
            kw = method_kwargs(m, self.s, rc)
            path = search_cache_dir() / f"lr-{m}-{t}-{search_key(fp, m, t, kw, self.s, rc.world.fingerprint())}.json"
            points = read_cache(path)
            self.search_notes[f"{m}/{t}"] = "cached" if points else "searched"
            if points is None:
                steps, batch = self.steps_of[t]
                todo.append((m, t, path, [self.runner.submit(do_job, Job("search", self.search_rung, t, m, kw, lr,
                                                                         self.seeds[0], steps, batch))
                                          for lr in grid(self.s, m)]))
            else:
                todo.append((m, t, path, points))
                for _ in grid(self.s, m):
                    self.tick(self.search_rung, t, f"lr search {t} {m} (cached)")
        self.drain()
        for m, t, path, got in todo:
            if got and isinstance(got[0], int):
                got = [self.runner.result(i) for i in got]
                write_cache(path, got)
            self.chosen[(m, t)] = choose(got, t)
            self.record_search(rc, m, t, got)

    def record_search(self, rc: Rung, m: str, t: str, points: list[dict]) -> None:
        best = self.chosen[(m, t)]
        steps, batch = self.steps_of[t]
        for pt in points:
            p = {"phase": "search", "task": t, "lr": pt["lr"], "steps": steps, "batch": batch, "seed": self.seeds[0],
                 "grid": ",".join(f"{x:g}" for x in grid(self.s, m))}
            for metric in ("val_accuracy", "val_loss"):
                if metric in pt:
                    self.rec.add("-", f"lr_search_{metric}", pt[metric],
                                 unit="accuracy" if "acc" in metric else "nats/token", model=self.search_rung,
                                 data=rc.names[t], method=m, seed=self.seeds[0], scale=rc.scale, params=p,
                                 info={"selected": pt["lr"] == best})

    # ---------------------------------------------------------------- 2. the sweep, low data, ablations
    def main_fits(self, rc: Rung, t: str) -> None:
        """Every method x seed on (rung, task); methods that do not fit the rung are skipped with a note."""
        n, (steps, batch) = rc.name, self.steps_of[t]
        for m in self.methods:
            kw = method_kwargs(m, self.s, rc)
            try:
                make_config(m, **kw).validate(rc.model)
            except BenchError as e:
                self.notes.append(f"{m} skipped on {n}: {e}")
                for _ in self.seeds:
                    self.tick(n, t, f"{n} {t} {m} skipped")
                continue
            for seed in self.seeds:
                stash = n == self.names[-1] and seed == self.seeds[0] and m in ("prompt", "lora")
                i = self.runner.submit(do_job, Job("fit", n, t, m, kw, self.lr_for(m, t), seed, steps, batch,
                                                   extra={"phase": "main"}, keep=stash))
                self.order.append(i)
                if stash:
                    self.keep[(m, t)] = i

    def low_data(self, rc: Rung) -> None:
        """P2's low-data run (Li & Liang Sec. 6.3): prefix vs full FT on d2t with few training rows, same steps."""
        n, n_train = rc.name, len(rc.data["d2t"]["train"])
        for size in self.s.low_data_sizes:
            for m in ("full", "prefix"):
                for seed in self.seeds:
                    if size > n_train:
                        self.skip_once(f"low-data size {size} > {n_train} training rows: skipped", n, "d2t")
                        continue
                    self.order.append(self.runner.submit(do_job, Job(
                        "fit", n, "d2t", m, method_kwargs(m, self.s, rc), self.lr_for(m, "d2t"), seed,
                        self.s.d_steps, self.s.d_batch, low_data=size, extra={"phase": "lowdata", "size": size},
                        claim="P2")))

    def ablations(self, rc: Rung) -> None:
        """P3's ablations (knowledge): prompt length with class-label init, init at the main length."""
        n, (steps, batch) = rc.name, self.steps_of["knowledge"]
        room = n_positions(rc.model) - max(len(p) for p in rc.data["knowledge"]["test"]["prompt_ids"]) - 1
        for length, init in ablation_configs(self.s):
            for seed in self.seeds:
                if length > room:
                    self.skip_once(f"ablation length {length} does not fit {n}'s positions: skipped", n, "knowledge")
                    continue
                self.order.append(self.runner.submit(do_job, Job(
                    "fit", n, "knowledge", "prompt", method_kwargs("prompt", self.s, rc, n=length, init=init),
                    self.lr_for("prompt", "knowledge"), seed, steps, batch, extra={"phase": "ablation"}, claim="P3")))

    # ---------------------------------------------------------------- 3. derived metrics for the registry's checks
    def derived(self) -> None:
        scale = "toy" if all(r in L.SPECS for r in self.names) else "paper"
        for claim, metric, value, p, model in derive(runs_frame(self.rec.frame())):
            unit = ("rank correlation" if "spearman" in metric else "ratio" if "over_" in metric
                    else "%" if metric.endswith("_pct") else "metric points (0-1)")
            info = {k: p.pop(k) for k in DERIVED_MEASURED if k in p}
            self.rec.add(claim, metric, value, unit=unit, model=model, data=p.get("task", "-"), method="-",
                         scale=scale, params=p, info=info)
        self.rec.notes.update({"lr_search": self.search_notes,
                               "chosen_lrs": {f"{m}/{t}": v for (m, t), v in self.chosen.items()},
                               "notes": self.notes})
