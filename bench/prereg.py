"""Pre-registration by fingerprint (issue 31): was a verdict's rule fixed before the run that it decides?

A claim's *machine rule* is everything `bench.claims.engine.verdict` reads to decide it: its `Check`s and `Effect`s
(preconditions first, then checks: metrics, row filters, ops, targets, bounds, tolerances, tests, arms,
reductions, item counts, parts, the one-sided `moves`), the group whose rows it reads, its scale words (a claim
with no rows is "needs paper scale" or "not run" by them), and the engine constants the rule reads (the
interval level; the one-sided stress test's shares, ceiling and bounded metrics where a precondition has
`moves`). Prose is left out: the claim's title, statement, `rule=` text, notes and history. The fingerprint is
the first 16 hex digits of the sha256 of a canonical JSON of that (sorted keys, numbers as floats, tuples as
lists), so it is the same in every process and on every machine, whatever the order of a dict.

Every run records the fingerprints of the claims its group decides in its meta.json (`rule_fingerprints`,
`bench.schema.Recorder.save`). `bench report` then says, per claim:
- "fixed before the run" when the recorded fingerprint equals the current one;
- "rule revised after the run (<date>)" when it differs (the date of the claim's latest history entry dated
  after the run finished; "no dated history entry" when none is: a change that skipped its history entry);
- "rule not fingerprinted at run time" for runs from before this module (committed older results). Where git
  has the run's recorded commit, the rule is rebuilt from the registry at that commit (bench/claims.py or bench/claims/, run
  apart, `registry_at`) and fingerprinted: equal to now, "unchanged since the run's commit (git)"; else
  "rule revised after the run (date; from git)". Without git, the history entries dated after the run (or on
  its day: the order within a day is unknown) are flagged. The engine constants in a rebuilt rule are
  today's, and a run from a tree with uncommitted changes is read at its commit (the text says so).
What a fingerprint cannot say: whether the rule's author had seen the rows before the rule was fixed (a rule
written after a run, then a rerun that reproduces the same rows, reads "fixed before the run").
Harness settings that are not part of the machine form (step caps, test sizes a harness picks) are not in
the fingerprint: rows record them in params, and a rule that depends on them says so in a precondition.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
import sys
import types
from pathlib import Path
from dataclasses import MISSING, dataclass, fields, is_dataclass, replace

from bench.paths import PATHS

SCHEME = 1           # version of the canonical form below: a change of the form changes every fingerprint
HEX = 16             # hex digits kept of the sha256
PROSE = frozenset({"note", "published"})   # Check / Effect fields that do not decide: words, the design's effect

FIXED, REVISED, UNRECORDED, NO_RUN = "fixed", "revised", "not fingerprinted", "no run"


def canonical(obj):
    """A JSON-able form of a rule object that depends on its values only: dataclasses by field name (prose
    fields and fields at their default dropped) with their type's name, tuples and lists as lists, dicts with
    sorted string keys, numbers (not bools) as floats, so 1 and 1.0 are the same rule (as `bench.claims.engine._same`
    compares them)."""
    if is_dataclass(obj) and not isinstance(obj, type):   # a field at its default is left out: adding a field
        out = {f.name: canonical(getattr(obj, f.name)) for f in fields(obj)   # with a default keeps old prints
               if f.name not in PROSE and not (f.default is not MISSING and getattr(obj, f.name) == f.default)}
        return {"kind": type(obj).__name__, **out}
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (tuple, list)):
        return [canonical(x) for x in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (int, float)):
        return float(obj)
    raise TypeError(f"not part of a machine rule: {type(obj).__name__}")


def machine_rule(claim) -> dict:
    """The canonical machine form of a `bench.claims.Claim` (as `bench.claims.engine.verdict` decides it)."""
    from bench import stats
    from bench.claims import model as eng   # the engine's constants live in the model: the engine imports this module
    rule = [*claim.preconditions, *claim.checks]
    engine = {"level": stats.LEVEL}
    if any(getattr(c, "moves", "") for c in rule):
        engine.update(stress=eng.STRESS, ceiling=eng.CEILING, bounded=eng.BOUNDED)
    return canonical({"scheme": SCHEME, "id": claim.id, "group": claim.group, "scales": claim.scales,
                      "preconditions": claim.preconditions, "checks": claim.checks, "engine": engine})


def fingerprint(claim) -> str:
    """16 hex digits of the sha256 of the claim's canonical machine rule."""
    text = json.dumps(machine_rule(claim), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:HEX]


def _claim(claim_id: str, group: str | None):
    from bench.claims import get
    claim = get(claim_id)
    if group in (None, claim.group):
        return claim
    if group in claim.tracks:
        return claim.on(group)
    from bench import BenchError
    raise BenchError(f"claim {claim.id} is not decided in group {group!r} (its group: {claim.group})")


def rule_fingerprint(claim_id: str, group: str | None = None) -> str:
    """The fingerprint of a claim's machine rule; a track's group ("real"): the claim on that track (Claim.tracks).
    Raises BenchError for an unknown claim, or a group that does not decide it."""
    return fingerprint(_claim(claim_id, group))


def fingerprints(group: str) -> dict[str, str]:
    """{claim ID: fingerprint} of every claim the group's results decide ({} for a group that decides none)."""
    from bench.claims import CLAIMS
    out = {c.id: fingerprint(c) for c in CLAIMS.values() if c.group == group}
    out.update({c.id: fingerprint(c.on(group)) for c in CLAIMS.values() if group in c.tracks})
    return out


def _git(args: list, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)


def _load_module_file(sha: str, src: str, name: str):
    """The one-file registry (bench/claims.py, before issue 32), run apart under `name`."""
    mod = types.ModuleType(name)
    sys.modules[name] = mod           # dataclasses look their module up while the class is made
    try:
        exec(compile(src, f"bench/claims.py@{sha}", "exec"), mod.__dict__)
    finally:
        sys.modules.pop(name, None)
    return mod


def _load_package(sha: str, files: list[str], root, name: str):
    """The registry package (bench/claims/, issue 32 on) at `sha`: its files written to a temporary folder and
    imported there as a package of its own (`name`; its modules import each other relatively), then dropped from
    sys.modules. Its __init__ loads the registry and its history only (the engine is not run)."""
    import importlib.util
    import shutil
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix="bench_claims_at_"))
    try:
        for f in files:
            got = subprocess.run(["git", "show", f"{sha}:bench/claims/{f}"], cwd=root, capture_output=True, timeout=20)
            if got.returncode != 0:
                return None
            (tmp / f).write_bytes(got.stdout)
        spec = importlib.util.spec_from_file_location(name, tmp / "__init__.py", submodule_search_locations=[str(tmp)])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        finally:
            for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                sys.modules.pop(key, None)
        return mod
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@functools.lru_cache(maxsize=16)
def registry_at(commit: str):
    """The registry as it was at a git commit, loaded apart: bench/claims.py (before issue 32) or the bench/claims/
    package (its top-level files); None when git, the commit or the old registry is not available here, or it does
    not load. The rules a run from before fingerprints started with."""
    sha = commit.removesuffix("+dirty")
    if not sha or sha == "unknown":
        return None
    name = f"_bench_claims_at_{sha}"
    try:
        src = _git(["show", f"{sha}:bench/claims.py"], PATHS.source_root)
        if src.returncode == 0:
            return _load_module_file(sha, src.stdout, name)
        ls = _git(["ls-tree", "--name-only", sha, "bench/claims/"], PATHS.source_root)
        files = [Path(p).name for p in ls.stdout.split()] if ls.returncode == 0 else []
        if "__init__.py" not in files:
            return None
        return _load_package(sha, [f for f in files if f.endswith((".py", ".toml"))], PATHS.source_root, name)
    except Exception:                     # noqa: BLE001 -- an old registry that no longer loads: no reconstruction
        return None


def fingerprint_at(claim, commit: str) -> str | None:
    """The fingerprint the claim's rule had at `commit` (on a track's group, e.g. "real": the claim's rule on that
    track then: REAL_RULES in the one-file registry, Claim.tracks in the package); None when the registry of that
    commit is not available or does not hold the claim (or its track)."""
    old = registry_at(commit)
    if old is None or claim.id not in getattr(old, "CLAIMS", {}):
        return None
    then = old.CLAIMS[claim.id]
    from bench.claims import TRACKS
    if claim.group in TRACKS and claim.group != then.group:   # the claim on a track: that track's rule then
        if hasattr(old, "REAL_RULES"):                      # before issue 32: a second registry for the real track
            rules = old.REAL_RULES if claim.group == getattr(old, "REAL_GROUP", "real") else {}
            if claim.id not in rules:
                return None
            pre, checks = rules[claim.id]
        elif claim.group in (getattr(then, "tracks", None) or {}):
            track = then.tracks[claim.group]
            pre, checks = track.preconditions, track.checks
        else:
            return None
        then = replace(then, checks=checks, preconditions=pre, scales=claim.scales, group=claim.group)
    try:
        return fingerprint(then)
    except (TypeError, ValueError, AttributeError):
        return None


@dataclass(frozen=True)
class PreReg:
    """A verdict's pre-registration status. state: fixed / revised / not fingerprinted / no run."""

    state: str
    text: str              # the sentence for a report
    short: str             # a table cell
    revised: tuple = ()    # dates of history entries after the run (or on its day)


def status(claim, meta: dict | None, git: bool = True) -> PreReg:
    """Compare the run's recorded fingerprint of `claim` (meta.json's `rule_fingerprints`) with the current one
    and its history dates with the run's `finished` timestamp (ISO 8601; history dates are days, so an entry
    on the run's own day counts as possibly after it). A track's rule (real, decoder) reads the history entries
    marked with its track (`Change.track`), the claim's own rule those without one.
    A run from before fingerprints: with `git`, the rule is rebuilt from the registry at the run's recorded
    commit (`fingerprint_at`) and compared; where git cannot, the history dates alone speak."""
    from bench.claims import TRACKS
    meta = meta or {}
    finished = str(meta.get("finished") or "")[:10]
    if not finished:
        return PreReg(NO_RUN, "no run", "-")
    mine = claim.group if claim.group in TRACKS else ""
    history = tuple(h for h in claim.history if h.track == mine)
    after = tuple(sorted({h.date for h in history if h.date > finished}))
    same_day = tuple(sorted({h.date for h in history if h.date == finished}))
    recorded = (meta.get("rule_fingerprints") or {}).get(claim.id)
    now = fingerprint(claim)
    if recorded and meta.get("rule_fingerprint_scheme") != SCHEME:   # another canonical form: not comparable
        recorded = None
    if recorded == now:
        return PreReg(FIXED, f"rule fixed before the run (fingerprint {now})", "fixed before the run")
    if recorded:
        when = after[-1] if after else same_day[-1] if same_day else ""
        date = when or f"no history entry dated after {finished}"
        return PreReg(REVISED, f"rule revised after the run ({date}; fingerprint at the run {recorded}, now {now})",
                      f"rule revised after the run ({date})", after + same_day)
    commit = str(meta.get("git_commit") or "")
    then = fingerprint_at(claim, commit) if git else None
    dirty = " (its tree had uncommitted changes)" if commit.endswith("+dirty") else ""
    if then == now:
        return PreReg(UNRECORDED, f"rule not fingerprinted at run time ({finished}); the rule at the run's commit "
                                  f"{commit}{dirty}, read from git, is the rule now (fingerprint {now})",
                      "not fingerprinted; unchanged since the run's commit (git)")
    if then is not None:
        when = after[-1] if after else same_day[-1] if same_day else f"no history entry dated after {finished}"
        return PreReg(REVISED, f"rule revised after the run ({when}; not fingerprinted at run time: the rule at the "
                               f"run's commit {commit}{dirty}, read from git, had fingerprint {then}, now {now})",
                      f"rule revised after the run ({when}; from git)", after + same_day)
    notes = []
    if after:
        notes.append(f"revised after the run ({', '.join(after)})")
    if same_day:
        notes.append(f"revised on the run's day ({same_day[-1]}; order unknown)")
    tail = ("; " + "; ".join(notes)) if notes else ""
    return PreReg(UNRECORDED, f"rule not fingerprinted at run time ({finished}){tail}",
                  "not fingerprinted" + tail, after + same_day)
