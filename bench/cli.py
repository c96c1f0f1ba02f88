"""`python -m bench <command>`: the suite's command line.

Commands: claims, report, pretrain, repro, regress. Errors in the user's input print one line
(`bench: error: ...`) and exit 2; earlier results are never touched by a failed run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench import BenchError, paths

# The commands import their modules inside the functions below, not here: `bench --help`, `bench claims` and
# argument errors answer without importing torch, transformers or pandas.


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints usage + message by default)
        prefix = self.prog[len("bench"):].strip()
        raise BenchError(f"{prefix}: {message}" if prefix else message)


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    from bench.claims import CLAIMS
    from bench.profiles import DEFAULT_PROFILE, PROFILES
    from bench.repro import REPRO_GROUPS

    p = _Parser(prog="bench", formatter_class=_formatter, description=textwrap.dedent(f"""\
        Reproduce the claims of a lecture on parameter-efficient fine-tuning (PEFT): every claim
        gets a harness, a measured number next to the published one, and a verdict.

        Typical use:
          python -m bench claims            list the {len(CLAIMS)} claims with their published numbers
          python -m bench repro lora        run the LoRA group (L1-L6, A2) and regenerate results/README.md
          python -m bench regress           rerun the smoke profile of every group against its baseline
        """))
    sub = p.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)

    c = sub.add_parser("claims", help="list the claims registry, or show one claim",
                       description="List every claim (ID, title, scales, group, published numbers), or show one in full.")
    c.add_argument("claim_id", nargs="?", help="a claim ID such as L2 (omit to list all)")

    r = sub.add_parser("report", help="regenerate results/README.md from stored results",
                       description="Recompute every verdict from the stored results with the registry's rules and "
                                   "rewrite results/README.md (atomically).")
    r.add_argument("--results", type=Path, default=paths.PATHS.results, help="results folder (default: %(default)s)")
    r.add_argument("--compare", type=Path, default=None, metavar="FOLDER",
                   help="instead of writing: compare a results folder from another run or machine (with "
                        "<group>/results.csv inside) with --results: verdict changes, then the largest value moves "
                        "measured in their regression bands")
    r.add_argument("--groups", action="store_true",
                   help="also re-render every group's report.md and figures from its stored CSVs (no training): "
                        "after a change to the report writers or the power model")

    pt = sub.add_parser("pretrain", help="pretrain (or reuse) the embedded model ladder",
                        description="Build the synthetic world and tokenizer, pretrain each rung of a ladder into the "
                                    "cache (BENCH_CACHE, default ~/.cache/bench), reuse valid cached rungs, rebuild "
                                    "corrupt ones, and write the pretraining report to results/ladder/.")
    pt.add_argument("--ladder", default=DEFAULT_PROFILE, choices=sorted(PROFILES), help="which ladder (default: %(default)s)")
    pt.add_argument("--force", action="store_true", help="retrain rungs even when a valid cached copy exists")
    pt.add_argument("--out", type=Path, default=None, help="report folder (default: results/ladder for cpu, "
                                                           "results/runs/ladder-<ladder> otherwise)")

    rp = sub.add_parser("repro", help="run one reproduction group and update the report",
                        formatter_class=_formatter, description=textwrap.dedent(f"""\
        Run a reproduction group, write results.csv / timings.csv / meta.json / report.md / PNGs into
        its folder, and regenerate results/README.md.

        groups: {', '.join(REPRO_GROUPS)}
        profiles: {'; '.join(f'{k}: {v.help}' for k, v in PROFILES.items())}
        """))
    rp.add_argument("group", help="reproduction group: " + ", ".join(REPRO_GROUPS))
    rp.add_argument("--profile", default=DEFAULT_PROFILE, help="smoke | cpu | gpu (default: %(default)s)")
    rp.add_argument("--seeds", default=None, help="seed count (3) or list (0,1,2); default: the profile's")
    rp.add_argument("--model", default=None, help="a ladder rung name, a local HF checkpoint folder, or a hub id "
                                                  "(default: the profile's ladder); the decoder group takes a GGUF "
                                                  "file (path/to/model.gguf)")
    rp.add_argument("--out", type=Path, default=None, help="output folder (default: results/<group> for the cpu "
                                                           "profile on the ladder, results/runs/<group>-<profile>[-model] otherwise)")
    rp.add_argument("--no-report", action="store_true", help="do not regenerate results/README.md")
    rp.add_argument("--set", action="append", default=None, metavar="KEY=VALUE", dest="sets",
                    help="override one field of the group's settings for this profile (repeatable), e.g. "
                         "--set ranks=1,2,4 --set methods=lora,prefix; values are parsed by the field's type "
                         "(int, float, bool, str, comma-separated tuples); an unknown key lists the valid ones")
    rp.add_argument("--executor", default=None, choices=("local", "dask"),
                    help="where the group's jobs run: local (this machine's process pool, the default) or dask "
                         "(Dask distributed; needs `pip install .[dask]`); default: $BENCH_EXECUTOR, else local")
    rp.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="with --executor dask: the scheduler (tcp://HOST:8786, or a scheduler file); default: "
                         "$BENCH_SCHEDULER, else a local cluster of the profile's workers on 127.0.0.1. The results "
                         "are the local executor's (README: More than one machine)")

    rg = sub.add_parser("regress", help="rerun smoke profiles and compare with committed baselines",
                        description="For each group with a baseline in results/baselines/, run the smoke profile into "
                                    "a temporary folder and fail (exit 1), naming claim and metric, when a value leaves "
                                    "its tolerance band or a verdict flips. --update rewrites the baselines instead.")
    rg.add_argument("--group", action="append", help="only this group (repeatable; default: all with a baseline)")
    rg.add_argument("--update", action="store_true", help="write new baselines from this run")
    rg.add_argument("--other-float-path", action="store_true",
                    help="run the check as on another CPU kind: ATen's scalar kernels, MKL capped at SSE4.2, two "
                         "threads and a fresh rung cache (the smoke rungs are pretrained again); CI runs both")

    from bench.fit.command import add_parser as add_memory_parser
    add_memory_parser(sub, _formatter)
    return p


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[-60:]


def default_out(group: str, profile: str, model: str | None) -> Path:
    if profile == "cpu" and model is None:
        return paths.PATHS.results / group
    return paths.PATHS.runs / "-".join([group, profile] + ([_slug(model)] if model else []))


def check_out(out: Path) -> Path:
    """Validate an output folder before any work: writable, and (if it exists) a result folder of this
    suite or empty, since a run replaces the folder as a whole. BenchError otherwise."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {str(out)!r} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "meta.json").exists():
        raise BenchError(f"--out {str(out)!r} holds files that are not a result folder of this suite (a run "
                         f"replaces the whole folder); choose a new or empty folder")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise BenchError(f"--out {str(out)!r}: {str(parent)!r} is not a folder")
    try:
        parent = out.parent
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent):
            pass
        if out.is_dir():
            with tempfile.TemporaryFile(dir=out):
                pass
    except OSError as e:
        raise BenchError(f"--out {str(out)!r} cannot be written ({e.strerror or type(e).__name__}); "
                         f"choose a folder you can write") from None
    return out


def check_model(model: str | None) -> None:
    """Cheap --model checks before any work (a missing folder); the full load happens in the run."""
    if model is None:
        return
    from bench import ladder as L
    if not model.strip():
        raise BenchError("--model needs a rung name, a checkpoint folder or a hub id, got ''")
    if model in L.SPECS or model in ("smallest", "largest"):
        return
    if model.lower().endswith(".gguf"):   # the decoder group reads GGUF files (bench.decoder)
        if not Path(model).expanduser().is_file():
            raise BenchError(f"GGUF file {model!r} does not exist")
        return
    for part in model.split(","):   # int8 takes a comma list
        path = Path(part).expanduser()
        if (part.startswith((".", "/", "~")) or part.count("/") > 1) and not path.is_dir():
            raise BenchError(f"model folder {part!r} does not exist (and it is not a ladder rung or a hub id)")


def run_group(group: str, profile_name: str, seeds_text: str | None, out: Path | None, model: str | None,
              update_readme: bool = True, sets: list[str] | None = None, executor: str | None = None,
              scheduler: str | None = None) -> Path:
    """Validate every input, run one group into a staging folder, then replace `out` with it as a whole:
    a crash or a kill leaves `out` as it was (bench.fileio.publish). `sets`: --set key=value items;
    `executor`, `scheduler`: where its jobs run (bench.jobs.executor_from; a scheduler is reached before any work)."""
    from bench.fileio import clean_stale, new_staging, publish
    from bench.jobs import executor_from, use_executor
    from bench.profiles import get_profile, parse_seeds
    from bench.report import write_readme
    from bench.repro import RunContext, load_group, parse_sets

    ex = executor_from(executor, scheduler)
    profile = get_profile(profile_name)          # validate cheap inputs before importing the group
    seeds = parse_seeds(seeds_text, profile)
    check_model(model)
    module = load_group(group)
    if model is not None and not getattr(module, "TAKES_MODEL", True):
        raise BenchError(f"{group}: --model is not used by this group (it measures fixed configs); drop it")
    if model is not None and model.lower().endswith(".gguf") and not getattr(module, "TAKES_GGUF", False):
        raise BenchError(f"{group}: takes no GGUF file (the decoder group does: python -m bench repro decoder "
                         f"--model {model})")
    overrides = parse_sets(module, group, profile.name, sets)
    out = check_out(out or default_out(group, profile.name, model))
    clean_stale(out)
    staging = new_staging(out)
    try:
        ctx = RunContext(profile=profile, seeds=seeds, out_dir=staging, model=model,
                         options={"settings": overrides} if overrides else {})
        t0 = time.time()
        with use_executor(ex):
            rec = module.run(ctx)
        rec.out_dir = staging
        rec.save(extra_meta={"seeds": list(seeds), "model_arg": model, **({"settings_set": overrides} if overrides
                                                                                  else {}),
                             **({"executor": ex.describe()} if ex.kind != "local" else {})})
        module.report(staging)
        publish(staging, out)
        print(f"{group}: {len(rec.rows)} rows, {len(rec.timing_rows)} timing rows in {time.time() - t0:.0f} s -> {out}",
              file=sys.stderr)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    results = paths.PATHS.results
    if update_readme and writes_checkout_results(out, group):
        write_readme(results)   # the checkout's results/ also rewrites the block in README.md
    elif update_readme:
        print(f"{results / 'README.md'} not regenerated: this run wrote {out}, not {results / group} "
              f"(README reads only that folder; `python -m bench report` regenerates it)", file=sys.stderr)
    return out


def writes_checkout_results(out: Path, group: str) -> bool:
    """True when `out` is this results folder's own `<group>/`, the one folder README's verdicts read: only such a
    run rewrites README.md and results/README.md (a run elsewhere touches nothing outside its --out)."""
    try:
        return Path(out).expanduser().resolve() == (paths.PATHS.results / group).resolve()
    except OSError:
        return False


def cmd_claims(args) -> int:
    from bench.claims import CLAIMS, get
    from bench.claims.writers import rule_sentences
    from bench.prereg import rule_fingerprint

    def fill(text: str, label: str, indent: int = 13) -> None:
        print(textwrap.fill(text, 100, initial_indent=f"{label:{indent}}", subsequent_indent=" " * indent))

    if args.claim_id:
        c = get(args.claim_id)
        print(f"{c.id}: {c.title}\n")
        for label, text in [("Lecture", c.statement), ("Published", c.published), ("Scales", ", ".join(c.scales)),
                            ("Group", f"{c.group} (tox -e repro-{c.group}; results/{c.group}/)"),
                            ("Measured", c.metric)]:
            fill(text, label + ":")
        # the rule: one generated sentence per precondition and check (its machine form), then the design rationale
        for i, (sentence, ch) in enumerate(zip(rule_sentences(c), (*c.preconditions, *c.checks))):
            fill(sentence + (f" ({ch.note})" if ch.note else ""), "Rule:" if i == 0 else "")
        fill(c.rule or "-", "Design:")
        fill(c.paper_note or "-", "Paper scale:")
        print(f"{'Fingerprint:':13}{rule_fingerprint(c.id)} (sha256 of the machine rule above; bench/prereg.py)")
        for h in c.history:
            when = f" ({h.run} the run it relates to)" if h.run else ""
            fill(f"{h.date}{when}: was '{h.old}'. Why changed: {h.reason}", "History:")
        for name in c.tracks:   # the same claim on another group (real: a real pretrained model, tox -e repro-real)
            on = c.on(name)
            label = f"Track {name}:"
            for sentence, ch in zip(rule_sentences(on), (*on.preconditions, *on.checks)):
                fill(sentence + (f" ({ch.note})" if ch.note else ""), label, 15)
            print(f"{label:15}fingerprint: {rule_fingerprint(c.id, name)}")
        return 0
    print(f"{'ID':4} {'group':9} {'scales':17} title / published")
    for c in CLAIMS.values():
        print(f"{c.id:4} {c.group:9} {'/'.join(c.scales):17} {c.title}")
        print(textwrap.fill(c.published, 100, initial_indent=" " * 32, subsequent_indent=" " * 32))
    print(f"\n{len(CLAIMS)} claims. `python -m bench claims <ID>` shows one in full.")
    return 0


def cmd_report(args) -> int:
    from bench.report import write_readme

    if args.compare is not None:
        from bench.regress import compare_folders
        if not args.compare.is_dir():
            raise BenchError(f"--compare {str(args.compare)!r} is not a folder")
        print("\n".join(compare_folders(args.compare, args.results)))
        return 0

    if not args.results.is_dir():
        raise BenchError(f"--results {str(args.results)!r} is not a folder")
    if args.groups:
        from bench.repro import REPRO_GROUPS, load_group
        for g in REPRO_GROUPS:
            folder = args.results / g
            if (folder / "results.csv").is_file():
                load_group(g).report(folder)
                print(f"re-rendered {folder / 'report.md'}")
    path = write_readme(args.results)
    print(f"wrote {path}")
    return 0


def cmd_pretrain(args) -> int:
    from bench.ladder.report import pretrain_ladder

    out = args.out or (paths.PATHS.ladder_results if args.ladder == "cpu" else paths.PATHS.runs / f"ladder-{args.ladder}")
    from bench.fileio import clean_stale, new_staging, publish
    out = check_out(out)
    clean_stale(out)
    staging = new_staging(out)
    try:
        pretrain_ladder(args.ladder, force=args.force, out_dir=staging)
        publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return 0


def cmd_repro(args) -> int:
    run_group(args.group, args.profile, args.seeds, args.out, args.model, update_readme=not args.no_report,
              sets=args.sets, executor=args.executor, scheduler=args.scheduler)
    return 0


# Another float path on any x86 CPU kind: ATen's scalar kernels, MKL capped at SSE4.2, two threads, and a
# fresh rung cache (so the smoke rungs are pretrained again with those floats), as on another machine.
OTHER_FLOAT_PATH = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "BENCH_THREADS": "2"}


def regress_other_float_path(args) -> int:
    """Rerun `bench regress` in a child process under OTHER_FLOAT_PATH with an empty rung cache."""
    import subprocess
    argv = [sys.executable, "-m", "bench", "regress"] + [a for g in (args.group or []) for a in ("--group", g)]
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        env = {**os.environ, **OTHER_FLOAT_PATH, "BENCH_CACHE": cache}
        print("regress under another float path: " + " ".join(f"{k}={v}" for k, v in OTHER_FLOAT_PATH.items())
              + ", fresh rung cache", flush=True)
        return subprocess.run(argv, env=env).returncode


def cmd_regress(args) -> int:
    from bench import regress
    from bench.repro import REPRO_GROUPS, load_group

    if args.other_float_path:
        if args.update:
            raise BenchError("--other-float-path checks against the baselines; it cannot --update them")
        return regress_other_float_path(args)
    if args.group:
        groups = args.group
        for g in groups:
            load_group(g)
    else:   # every group, not the files found: a deleted baseline must fail, not drop its group from the gate
        groups = [g for g in REPRO_GROUPS if _implemented(g)]
    if not groups:
        raise BenchError("no baselines in results/baselines/; create them with `python -m bench regress --update`")
    failures = []
    for group in groups:
        module = load_group(group)
        if not args.update:
            problem = regress.load_baseline(group)[1] or regress.load_verdicts(group)[1]
            if problem:   # a damaged, missing or edited baseline file fails at once, before the run
                print(f"{group}: baseline unusable")
                failures.append(problem)
                continue
        with tempfile.TemporaryDirectory(prefix=f"regress-{group}-") as tmp:
            run_dir = run_group(group, "smoke", None, Path(tmp) / group, None, update_readme=False)
            if args.update:
                print(f"baseline written: {regress.write_baseline(group, run_dir, getattr(module, 'REGRESS', []))}")
                continue
            problems = regress.compare(group, run_dir)
            note = regress.base_model_note(group, run_dir)
        print(f"{group}: {'ok' if not problems else f'{len(problems)} regression(s)'}" + (f" ({note})" if note else ""))
        failures += problems
    for line in failures:
        print("REGRESSION " + line)
    return 1 if failures else 0


def _implemented(group: str) -> bool:
    root = paths.PATHS.reproductions
    return (root / group / "__init__.py").exists() or (root / f"{group}.py").exists()


def cmd_memory(args) -> int:
    from bench.fit.command import cmd_memory as run_memory

    return run_memory(args)


COMMANDS = {"claims": cmd_claims, "report": cmd_report, "pretrain": cmd_pretrain, "repro": cmd_repro,
            "regress": cmd_regress, "memory": cmd_memory}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 2
        return COMMANDS[args.command](args)
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `python -m bench claims | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("bench: interrupted; earlier results are unchanged", file=sys.stderr)
        return 130
