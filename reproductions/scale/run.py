"""The measurement recipe: lr search on the search rungs (its seed-0 runs at the chosen lr are the sweep's), then rung
by rung the zero-shot baselines and the sweep (+ P2's low-data run on the largest rung, P3's ablations on the
ablation rungs), the second pretraining seed of the middle rung, then the derived metrics.

Every run is a job (reproductions.scale.jobs) handed to one `bench.jobs.JobRunner` as it is planned; the jobs run
in this process, in `workers` spawned ones, or on a Dask cluster (bench.jobs executors), and their rows are replayed
into the Recorder in plan order.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict

from bench import BenchError
from bench import ladder as L
from bench.jobs import JobRunner, RowBuffer, job_workers, threads_per_worker
from bench.methods import make_config
from bench.models import n_positions
from bench.repro import RunContext
from bench.schema import Recorder
from bench.timing import timing_params
from bench.train import num_threads
from reproductions.scale import design
from reproductions.scale.derive import DERIVED_MEASURED, derive, runs_frame
from reproductions.scale.fitting import choose
from reproductions.scale.jobs import DriverCache, Job, do_job, job_env, label
from reproductions.scale.models import (Rung, count_params, load_rung, method_kwargs, resolve_rungs,
                                        virtual_tokens)
from reproductions.scale.settings import (CLAIMS, GROUP, TASKS, Settings, ablation_configs, cap_for, grid,
                                         seeds_in, settings_for)


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
    for what, entries in (("caps", s.caps), ("seed_cells", s.seed_cells)):
        bad = [c for c in entries if c[2] not in ("every", "lower", *alias) and c[2] not in names]
        if bad:
            raise BenchError(f"scale: {what} {bad}: rungs must be every, lower, smallest, middle, largest or a rung "
                             f"of the sweep ({', '.join(names)})")

    def pick(what: str, rs) -> list[str]:
        out = [alias.get(r, r) for r in rs]
        bad = [r for r in out if r not in names]
        if bad:
            raise BenchError(f"scale: {what} rung(s) {bad} are neither smallest/middle/largest nor in the sweep "
                             f"({', '.join(names)})")
        return sorted(set(out), key=lambda n: sizes[n])

    places = dict(abl=pick("ablation", s.ablation_rungs), search=pick("search", s.search_rungs),
                  **{t: pick(t, s.task_rungs(t)) if s.task_rungs(t) else list(names) for t in TASKS})
    replica = None
    if s.replica:
        base = pick("replica", [s.replica])[0]
        replica = (base, f"{base}-s1") if f"{base}-s1" in L.SPECS else None
    threads, workers = threads_per_worker(), job_workers(s.workers)
    rec = ctx.recorder(GROUP, CLAIMS)
    design.record(rec, s, len(seeds))        # the plan's power per part (issue 30), before anything trains
    with num_threads(threads), JobRunner(job_env, (ctx, s, list(s.methods)), workers, cache=DriverCache()) as runner:
        sweep = Sweep(ctx, s, seeds, names, sizes, places, replica, rec, runner)
        sweep.run()
    rec.notes.update({"threads": threads, "workers": workers, "rungs": names, "seeds": list(seeds),
                      "settings": asdict(s), "search_rungs": places["search"], "ablation_rungs": places["abl"],
                      "task_rungs": {t: places[t] for t in TASKS}, "d2t_rungs": places["d2t"], "replica": list(replica) if replica else None,
                      "jobs_from_cache": sweep.from_cache})
    return rec


def _cost(rc_params: int, task: str, s: Settings, virt: int, eval_rows: int, cap: int | None = None) -> float:
    """Relative cost of one run (for the progress bar's ETA): tokens x parameters, training (a third of the cap:
    early stopping) + evaluation."""
    tokens = {"knowledge": 8, "d2t": 45, "nextmonth": 12}[task]
    cap, batch, _ = s.with_cap(task, cap).steps(task)
    train = 3 * cap / 3 * batch * (tokens + virt)
    ev = eval_rows * (tokens + virt) * (40 if task == "d2t" else 1)
    return (train + ev) * rc_params / 1e9


class Sweep:
    """One run's plan and state: the jobs submitted so far (`order`: a RowBuffer made here or a job's index, in
    the order results.csv gets them), the chosen learning rates, the notes, and the progress bar."""

    def __init__(self, ctx: RunContext, s: Settings, seeds: tuple, names: list, sizes: dict, places: dict,
                 replica: tuple | None, rec: Recorder, runner: JobRunner):
        self.ctx, self.s, self.seeds, self.names, self.sizes = ctx, s, seeds, names, sizes
        self.places, self.replica, self.rec, self.runner = places, replica, rec, runner
        if replica:
            self.sizes[replica[1]] = sizes[replica[0]]
        self.fixed = dict((ctx.options or {}).get("lrs", {}))
        self.methods = list(s.methods)
        self.chosen: dict[tuple[str, str, str], float] = {}     # (method, task, rung) -> lr
        self.searched: dict[tuple, int] = {}                    # (method, task, rung, lr) -> fit job index
        self.eval_rows = {"knowledge": 400, "d2t": s.d_eval_rows, "nextmonth": 600}
        self.virt = virtual_tokens(s, self.methods)
        self.notes: list[str] = []
        self.order: list = []
        self.from_cache = 0
        self.done_label = " (running in %d processes)" % runner.workers if runner.workers > 1 else ""
        self.bar = None

    def tasks_on(self, n: str) -> list[str]:
        base = self.replica[0] if self.replica and n == self.replica[1] else n
        return [t for t in self.s.tasks if base in self.places[t]]

    def seeds_for(self, t: str, phase: str = "main", m: str = "", n: str = "") -> tuple:
        """The seeds of `t`'s runs in `phase`: the profile's, or for main runs and P3's ablations (which compare
        with the main prompt runs, seed by seed) Settings.seed_counts' count, for main runs of method m on rung n
        Settings.seed_cells' (more seeds continue upwards from the last one; fewer take the first ones)."""
        k = self.s.seed_count(t) if phase in ("main", "ablation") else None
        if phase == "main" and m and n:
            k = seeds_in(self.s, self.names, m, t, n, len(self.seeds))
        if k is None:
            return self.seeds
        return self.seeds[:k] + tuple(range(max(self.seeds) + 1, max(self.seeds) + 1 + k - len(self.seeds)))

    def methods_for(self, t: str, n: str = "") -> list[str]:
        """The methods run on task t (on rung n: those Settings.seed_cells does not give 0 seeds there)."""
        only = self.s.task_methods(t)
        out = self.methods if only is None else [m for m in self.methods if m in only]
        return [m for m in out if not n or seeds_in(self.s, self.names, m, t, n, 1) > 0]

    def run(self) -> None:
        total = sum(self.cost(n, t, m) for n, t, m in self.planned())
        for n in self.places["search"]:          # the grid's first points (with full-run points the seed-0 run
            for m, t in self.to_search(n):       # at the pick is the sweep's: one fewer)
                pts = len(grid(self.s, m, t)) - (self.s.search_share(t) is None)
                total += pts * self.search_cost(n, t, m)
        self.bar = self.ctx.progress(total=total, desc=GROUP, unit="",
                                     bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")
        self.search_lrs(self.places["search"])
        per_rung = {}
        for n in reversed(self.names):     # the largest rung's (longest) runs go to the workers first, so that the
            start = len(self.order)        # short ones fill the end and fewer workers idle; rows keep plan order
            rc = load_rung(n, self.ctx, self.s, self.methods)
            buf = RowBuffer()
            buf.add("-", "rung_params", rc.params, unit="params", model=rc.name, scale="exact")
            self.order.append(buf)
            for t in self.tasks_on(n):
                if t in rc.data:
                    self.order.append(self.runner.submit(do_job, Job("zeroshot", n, t)))
                    self.main_fits(rc, t)
            if self.low_data_on(n):
                self.low_data(rc)
            if self.ablations_on(n, rc.data):
                self.ablations(rc)
            per_rung[n] = self.order[start:], rc.notes
            del self.order[start:]
        for n in self.names:
            self.order += per_rung[n][0]
            self.notes += per_rung[n][1]
        if self.replica:
            self.replica_fits(*self.replica)
        self.drain()
        for item in self.order:
            (item if isinstance(item, RowBuffer) else self.runner.result(item)[0]).replay(self.rec)
        self.from_cache = sum(bool(self.runner.result(i)[2]) for i in range(len(self.runner.jobs)))
        self.bar.close()
        self.derived()

    # ---------------------------------------------------------------- the plan and the progress bar
    def low_data_on(self, n: str) -> bool:
        return (n == self.names[-1] and "d2t" in self.tasks_on(n)
                and {"full", "prefix"} <= set(self.methods_for("d2t")))

    def ablations_on(self, n: str, tasks) -> bool:
        return n in self.places["abl"] and self.s.ablation_task in tasks and "prompt" in self.methods

    def cap_for(self, m: str, t: str, n: str) -> int | None:
        return cap_for(self.s, self.names, m, t, n)

    def extra(self, m: str, t: str, n: str, **kw) -> dict:
        """A fit job's row params (phase, ...) and, where Settings.caps gives the method its own, "cap"."""
        cap = self.cap_for(m, t, n)
        return {**kw, **({"cap": cap} if cap is not None else {})}

    def to_search(self, n: str) -> list[tuple[str, str]]:
        return [(m, t) for t in self.tasks_on(n) for m in self.methods_for(t, n) if m not in self.fixed]

    def planned(self) -> list[tuple[str, str]]:
        """(rung, task, method) of every run of the sweep, for one progress bar with a cost-weighted ETA (the
        search's points are added in `run`, its grid extensions when they are submitted)."""
        out = []
        for n in self.names:
            out += [(n, t, m) for t in self.tasks_on(n) for m in self.methods_for(t, n)
                    for _ in self.seeds_for(t, "main", m, n)]
            if self.low_data_on(n):
                out += [(n, "d2t", m) for m in ("full", "prefix") for _ in self.s.low_data_sizes for _ in self.seeds]
            if self.ablations_on(n, self.s.tasks):
                out += [(n, self.s.ablation_task, "prompt")] * (len(ablation_configs(self.s)) *
                                                                 len(self.seeds_for(self.s.ablation_task, "ablation")))
        if self.replica:
            out += [(self.replica[1], t, m) for t in self.tasks_on(self.replica[1]) if t != "d2t"
                    for m in self.s.replica_methods if m in self.methods for _ in self.seeds]
        return out

    def cost(self, n: str, t: str, m: str = "") -> float:
        return _cost(self.sizes[n], t, self.s, self.virt, self.eval_rows[t], self.cap_for(m, t, n))

    def tick(self, name: str, task: str, text: str, m: str = "", search: bool = False) -> None:
        self.bar.set_postfix_str(text, refresh=False)
        c = self.search_cost(name, task, m) if search else self.cost(name, task, m)
        self.bar.update(min(c, self.bar.total - self.bar.n))

    def submit(self, job: Job) -> int:
        return self.runner.submit(do_job, job)

    def drain(self) -> None:
        """Run (or wait for) every submitted job, advancing the bar as each finishes."""
        for i, _ in self.runner.as_completed(before=lambda j: self.bar.set_postfix_str(label(j))):
            job = self.runner.jobs[i]
            if job.kind != "zeroshot":
                self.tick(job.rung, job.task, "done: " + label(job) + self.done_label, job.method,
                          search=(job.extra or {}).get("phase") == "search")

    def skip_once(self, msg: str, n: str, task: str, m: str = "") -> None:
        if msg not in self.notes:
            self.notes.append(msg)
        self.tick(n, task, "skipped", m)

    def lr_for(self, m: str, t: str, n: str) -> float:
        """The lr of (method, task) on rung n: fixed by options, its own search, else the search rung nearest in
        log parameters (the smaller one on a tie), else the grid's middle (noted)."""
        if m in self.fixed:
            return self.fixed[m]
        if (m, t, n) in self.chosen:
            return self.chosen[(m, t, n)]
        cands = [r for r in self.places["search"] if (m, t, r) in self.chosen]
        if cands:
            r = min(cands, key=lambda r: (abs(math.log(self.sizes[r] / self.sizes[n])), self.sizes[r]))
            return self.chosen[(m, t, r)]
        g = grid(self.s, m, t)
        self.chosen[(m, t, n)] = g[len(g) // 2]
        self.notes.append(f"no lr search for {m}/{t} on {n}: used {g[len(g) // 2]:g}")
        return self.chosen[(m, t, n)]

    # ---------------------------------------------------------------- 1. learning-rate search
    def search_lrs(self, rungs: list[str]) -> None:
        """Per (method, task) on each search rung: the grid with the first seed, selected on validation people; a
        pick on an edge of the points tried adds the next point past it (x3 or /3, `extend` times per side at
        most). The rungs search side by side (one wait per round). Each point is a full run (early stopping; it is
        the sweep's seed-0 run when chosen), or with `search_frac` (on tasks not in `full_search`) a short one: that
        share of the cap, no early stop, and the sweep trains every seed afresh at the pick. Every point is a row (lr_search_*), the pick's
        place too (lr_search_pick_inside)."""
        rcs = {n: load_rung(n, self.ctx, self.s, self.methods) for n in rungs}
        todo = {(m, t, n): list(grid(self.s, m, t)) for n, rc in reversed(rcs.items()) for m, t in self.to_search(n)
                if t in rc.data and self.fits(m, rc)}         # the largest rung's (longest) points first
        added = {k: [0, 0] for k in todo}
        points: dict[tuple, dict] = {}
        while todo:
            for (m, t, n), lrs in todo.items():
                for lr in lrs:
                    self.searched[(m, t, n, lr)] = self.submit(self.search_job(rcs[n], m, t, lr))
            self.drain()
            nxt = {}
            for (m, t, n), lrs in todo.items():
                for lr in lrs:
                    points[(m, t, n, lr)] = self.runner.result(self.searched[(m, t, n, lr)])[1]
                tried = sorted(x for (mm, tt, nn, x) in points if (mm, tt, nn) == (m, t, n))
                best = choose([points[(m, t, n, x)] for x in tried], t)
                self.chosen[(m, t, n)] = best
                side = 0 if best == tried[0] else 1 if best == tried[-1] else None
                if side is not None and added[(m, t, n)][side] < self.s.extend:
                    added[(m, t, n)][side] += 1
                    nxt[(m, t, n)] = [next_lr(best, up=side == 1)]
                    self.bar.total += self.search_cost(n, t, m)
            todo = nxt
        for (m, t, n, lr), pt in sorted(points.items(), key=lambda kv: (self.sizes[kv[0][2]], *kv[0])):
            self.record_search(rcs[n], m, t, pt, sorted(x for (mm, tt, nn, x) in points if (mm, tt, nn) == (m, t, n)))

    def search_steps(self, m: str, t: str, n: str) -> int | None:
        """A short search point's steps (Settings.search_share of the method's cap on the rung), None for full-run
        points."""
        share = self.s.search_share(t)
        if share is None:
            return None
        cap = self.s.with_cap(t, self.cap_for(m, t, n)).steps(t)[0]
        return max(1, round(share * cap))

    def search_job(self, rc: Rung, m: str, t: str, lr: float) -> Job:
        steps = self.search_steps(m, t, rc.name)
        if steps is None:
            return self.fit_job(rc, m, t, lr, self.seeds[0], "main")
        return Job("fit", rc.name, t, m, method_kwargs(m, self.s, rc), lr, self.seeds[0],
                   extra={"phase": "search", "search_steps": steps})

    def search_cost(self, n: str, t: str, m: str) -> float:
        steps = self.search_steps(m, t, n)
        return _cost(self.sizes[n], t, self.s, self.virt, self.eval_rows[t], steps or self.cap_for(m, t, n))

    def fits(self, m: str, rc: Rung) -> bool:
        """Whether method m fits the rung (else a note; the sweep skips it there)."""
        try:
            make_config(m, **method_kwargs(m, self.s, rc)).validate(rc.model)
            return True
        except BenchError as e:
            if f"{m} skipped on {rc.name}: {e}" not in self.notes:
                self.notes.append(f"{m} skipped on {rc.name}: {e}")
            return False

    def fit_job(self, rc: Rung, m: str, t: str, lr: float, seed: int, phase: str) -> Job:
        return Job("fit", rc.name, t, m, method_kwargs(m, self.s, rc), lr, seed, extra=self.extra(m, t, rc.name, phase=phase))

    def record_search(self, rc: Rung, m: str, t: str, pt: dict, tried: list) -> None:
        best = self.chosen[(m, t, rc.name)]
        cap, batch, _ = self.s.with_cap(t, self.cap_for(m, t, rc.name)).steps(t)
        cap = self.search_steps(m, t, rc.name) or cap
        p = {"phase": "search", "task": t, "lr": pt["lr"], "steps": cap, "batch": batch, "seed": self.seeds[0],
             "grid": ",".join(f"{x:g}" for x in grid(self.s, m, t)), "rung_params": rc.params}
        info = {"selected": pt["lr"] == best, "tried": ",".join(f"{x:g}" for x in tried),
                "steps_used": pt.get("steps"), "still_improving": pt.get("still_improving")}
        for metric in ("val_accuracy", "val_loss"):
            if metric in pt:
                self.rec.add("-", f"lr_search_{metric}", pt[metric],
                             unit="accuracy" if "acc" in metric else "nats/token", model=rc.name,
                             data=rc.names[t], method=m, seed=self.seeds[0], scale=rc.scale, params=p, info=info)
        if pt["lr"] == best:
            inside = int(tried[0] < best < tried[-1])
            self.rec.add("-", "lr_search_pick_inside", inside, unit="flag", model=rc.name, data=rc.names[t],
                         method=m, seed=self.seeds[0], scale=rc.scale,
                         params={"phase": "search", "task": t, "rung_params": rc.params}, info=info | {"lr": best})
        if pt["lr"] != best or self.s.search_share(t) is not None:   # a run not replayed: keep its wall (the budget)
            buf = self.runner.result(self.searched[(m, t, rc.name, pt["lr"])])[0]
            for wall in buf.values("run_wall_s"):
                self.rec.add("-", "lr_search_run_wall_s", wall, unit="s", model=rc.name, data=rc.names[t], method=m,
                             seed=self.seeds[0], scale=rc.scale, params=timing_params(**p), timing=True)

    # ---------------------------------------------------------------- 2. the sweep, low data, ablations, replica
    def main_fits(self, rc: Rung, t: str, phase: str = "main", methods=None, lr_rung: str | None = None) -> None:
        """Every method x seed on (rung, task); methods that do not fit the rung are skipped with a note. A search
        run with the chosen lr is the seed-0 run (not trained again)."""
        n = rc.name
        for m in self.methods_for(t, n) if methods is None else methods:
            if not self.fits(m, rc):
                for _ in self.seeds_for(t, phase, m, n):
                    self.tick(n, t, f"{n} {t} {m} skipped", m)
                continue
            lr = self.lr_for(m, t, lr_rung or n)
            for seed in self.seeds_for(t, phase, m, n):
                reuse = seed == self.seeds[0] and phase == "main" and self.s.search_share(t) is None
                i = self.searched.get((m, t, n, lr)) if reuse else None
                if i is None:
                    i = self.submit(self.fit_job(rc, m, t, lr, seed, phase))
                self.order.append(i)

    def replica_fits(self, base: str, name: str) -> None:
        """The second pretraining seed of `base`: replica_methods on its short tasks with base's learning rates,
        every seed (phase "replica"), and its zero-shot rows."""
        L.ensure_rung(name, progress=False)
        rc = load_rung(name, self.ctx, self.s, self.methods)
        buf = RowBuffer()
        buf.add("-", "rung_params", rc.params, unit="params", model=rc.name, scale="exact")
        self.order.append(buf)
        for t in self.tasks_on(name):
            if t != "d2t" and t in rc.data:
                self.order.append(self.runner.submit(do_job, Job("zeroshot", name, t, extra={"phase": "replica-zeroshot"})))
                self.main_fits(rc, t, "replica", [m for m in self.s.replica_methods if m in self.methods], base)

    def low_data(self, rc: Rung) -> None:
        """P2's low-data run (Li & Liang Sec. 6.3): prefix vs full FT on d2t with few training rows."""
        n, n_train = rc.name, len(rc.data["d2t"]["train"])
        for size in self.s.low_data_sizes:
            for m in ("full", "prefix"):
                for seed in self.seeds:
                    if size > n_train:
                        self.skip_once(f"low-data size {size} > {n_train} training rows: skipped", n, "d2t", m)
                        continue
                    self.order.append(self.submit(Job(
                        "fit", n, "d2t", m, method_kwargs(m, self.s, rc), self.lr_for(m, "d2t", n), seed,
                        low_data=size, extra=self.extra(m, "d2t", n, phase="lowdata", size=size), claim="P2")))

    def ablations(self, rc: Rung) -> None:
        """P3's ablations (Settings.ablation_task): prompt length with class-label init, init at the main length."""
        n, t = rc.name, self.s.ablation_task
        room = n_positions(rc.model) - max(len(p) for p in rc.data[t]["test"]["prompt_ids"]) - 1
        for length, init in ablation_configs(self.s):
            for seed in self.seeds_for(t, "ablation"):
                if length > room:
                    self.skip_once(f"ablation length {length} does not fit {n}'s positions: skipped", n, t, "prompt")
                    continue
                self.order.append(self.submit(Job(
                    "fit", n, t, "prompt", method_kwargs("prompt", self.s, rc, n=length, init=init),
                    self.lr_for("prompt", t, n), seed, extra=self.extra("prompt", t, n, phase="ablation"), claim="P3")))

    # ---------------------------------------------------------------- 3. derived metrics for the registry's checks
    def derived(self) -> None:
        scale = "toy" if all(r in L.SPECS for r in self.names) else "paper"
        frame = self.rec.frame()
        ch = frame[frame["metric"].isin(["knowledge_chance", "chance"])]
        chance = {(json.loads(r.params).get("task") or "knowledge", r.model): float(r.value) for r in ch.itertuples()}
        for claim, metric, value, p, model in derive(runs_frame(frame), chance):
            unit = ("rank correlation" if "spearman" in metric else "ratio" if "over_" in metric
                    else "%" if metric.endswith("_pct") else "runs" if metric.startswith("conv_")
                    else "rungs" if metric.endswith("_rungs")
                    else "metric points (0-1)")
            info = {k: p.pop(k) for k in DERIVED_MEASURED if k in p}
            self.rec.add(claim, metric, value, unit=unit, model=model, data=p.get("task", "-"), method=p.pop("method", "-"),
                         seed=p.pop("seed", None), scale=scale, params=p, info=info)
        self.rec.notes.update({"chosen_lrs": {f"{m}/{t}/{n}": v for (m, t, n), v in self.chosen.items()},
                               "notes": self.notes})


def next_lr(lr: float, up: bool) -> float:
    """The next point of the 1-3-10 sequence above (up) or below lr: 1e-3 -> 3e-3 -> 1e-2; 1e-3 -> 3e-4."""
    e = math.floor(math.log10(lr) + 1e-9)
    m = round(lr / 10 ** e)
    if up:
        return float(f"{3 * 10 ** e:g}") if m < 3 else float(f"{10 ** (e + 1):g}")
    return float(f"{3 * 10 ** (e - 1):g}") if m < 3 else float(f"{10 ** e:g}")
