"""Writers: rule prose (generated from the machine form) and the cells of group reports and the README."""

from __future__ import annotations

from dataclasses import replace

from .engine import INCONCLUSIVE, NOT_REPRODUCED, NOT_RUN, REPRODUCED, Verdict
from .model import Claim, Effect
from .real import REAL_GROUP
from .registry import TRACK_INFO


def rule_sentences(claim: Claim) -> list[str]:
    """The machine rule in words: one generated sentence per precondition and check (`sentence()`), in the order the
    engine decides them."""
    return [f"Precondition. {r.sentence()}" for r in claim.preconditions] + [r.sentence() for r in claim.checks]


def full_rule(claim: Claim) -> str:
    """The claim's whole rule: the generated sentences, then the design rationale (`Claim.rule`), which says what the
    machine form cannot."""
    text = " ".join(rule_sentences(claim))
    return text + (f" Design: {claim.rule}" if claim.rule else "")

def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 3] + "..."


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def prereg_markdown(verdicts: list[Verdict]) -> str:
    """One line per decided claim: was its rule fixed before the run (bench.prereg)?"""
    lines = [f"- {v.claim.id}: {v.prereg.text}" for v in verdicts if v.prereg is not None]
    if not lines:
        return ""
    return ("Pre-registration (`bench/prereg.py`: the fingerprint of each machine rule recorded by the run, against "
            "the rule now; history dates against the run's end):\n\n" + "\n".join(lines) + "\n\n")


def checks_markdown(verdicts: list[Verdict]) -> str:
    """Per-check detail, for a group's report.md: each claim's pre-registration status (`prereg_markdown`), then
    preconditions first, the rule, the measured value (95% CI for effects) and the outcome."""
    lines = ["| claim | part | rule, one generated sentence per check (pre-registration: above) | measured | rows | "
             "power (FPR) | outcome |",
             "|---|---|---|---|---|---|---|"]
    for v in verdicts:
        pw = part_powers(v)
        for kind, rs in (("precondition", v.preconditions), ("", v.checks)):
            for k, r in enumerate(rs):
                part = (kind + (": " if kind and r.check.part else "") + r.check.part) or "-"
                out = (r.outcome or "-") + (" (waived: one-sided)" if r.waived else "")
                p = _power_text(pw[k]) if not kind and k in pw else (_designed(v, r.check.part) or "n/a") if \
                    isinstance(r.check, Effect) and not kind and r.outcome in (REPRODUCED, NOT_REPRODUCED,
                                                                                INCONCLUSIVE) else "-"
                lines.append(f"| {v.claim.id} | {_cell(part)} | {_cell(r.check.sentence(part=False))}{_cell(' Note: ' + r.check.note if r.check.note else '')} | "
                             f"{_cell(r.text)} | {r.n_rows} | {p} | {out} |")
    return prereg_markdown(verdicts) + "\n".join(lines) + "\n"


def part_powers(v: Verdict) -> dict[int, object]:
    """{index into v.checks: bench.power.PartPower} for each decided Effect whose rule has an effect size to aim at
    (computed once per verdict, from the noise of the run's own rows; seeds needed where power < TARGET)."""
    if v.powers is None:
        from bench import power
        v.powers = {}
        for k, r in enumerate(v.checks):
            if isinstance(r.check, Effect) and r.outcome in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE):
                pp = power.of_result(r)
                if pp is not None and pp.power.power < power.TARGET and r.outcome != REPRODUCED:
                    pp = power.of_result(r, need=True)
                if pp is not None:
                    v.powers[k] = pp
    return v.powers


def _designed(v: Verdict, part: str) -> str:
    """The part's design power from its `designed(part)` precondition (issue 30), for an Effect with no published
    size to aim at (the paper gives a plot only; the design aimed at a stored run's difference); "" when none."""
    got = [r.measured for r in v.preconditions if r.check.metric == "design_power" and r.check.part == part
           and r.n_rows and r.measured == r.measured]
    return f"design {got[0]:.2f} (at the stored run's difference)" if got else ""


def _power_text(pp) -> str:
    if not pp.power.room:
        return f"no room (FPR {pp.power.fpr:.2f})"
    return f"{pp.power.power:.2f} (FPR {pp.power.fpr:.2f})"


def power_cell(v: Verdict) -> str:
    """The design power of each part decided by Effects, at its published effect (false-positive rate at the rule's
    null boundary), from the run's own noise; a part with several Effects shows the lowest power and highest rate.
    "design p": an Effect without a published size whose part has a design-power precondition (at a stored run's
    difference); "n/a": one without either; "not measured": no rows; "-": Checks only (deterministic
    arithmetic or one measured value, no interval)."""
    pw = part_powers(v)
    by_part: dict[str, list] = {}
    for k, r in enumerate(v.checks):
        if isinstance(r.check, Effect):
            by_part.setdefault(r.check.part, []).append(pw.get(k) if r.outcome in (REPRODUCED, NOT_REPRODUCED,
                                                                                   INCONCLUSIVE) else r.outcome)
    if not by_part:
        return "-"
    cells = []
    for part, got in by_part.items():
        if all(isinstance(g, str) for g in got):
            text = "not measured"
        elif any(g is None for g in got):
            text = _designed(v, part) or "n/a"
        else:
            pps = [g for g in got if not isinstance(g, str)]
            worst = min(pps, key=lambda g: (g.power.room, g.power.power))
            text = _power_text(replace(worst, power=replace(worst.power, fpr=max(g.power.fpr for g in pps))))
        cells.append(f"{part}: {text}" if part and len(v.parts) > 1 else text)
    return "; ".join(cells)


REPLICATE_WORDS = {"seed": "seeds", "params.chunk": "text windows"}


def _excludes(r, effect: float) -> bool:
    """Whether some interval of check result `r` leaves out the true difference `effect`."""
    return any(not lo <= effect <= hi for _, lo, hi in r.groups)


def underpowered(v: Verdict) -> dict[str, str]:
    """{part: why} for a part that did not come out reproduced, whose Effect had power under TARGET at its
    published effect, and whose interval still holds that effect (an interval that excludes it has answered the
    question, whatever the power): the power, and about how many replicates per arm would reach TARGET."""
    from bench import power
    out = {}
    for k, pp in part_powers(v).items():
        r = v.checks[k]
        held = not _excludes(r, pp.effect)
        if r.outcome != REPRODUCED and not pp.power.room and pp.noise is not None:
            out[r.check.part] = (f"no room: a true difference of {pp.effect:+.3g} does not fit on a proportion beside "
                                 f"the other arm's {pp.noise.base:.3f} (power 0, whatever the seeds)")
        elif r.outcome != REPRODUCED and pp.power.power < power.TARGET and held:
            word = REPLICATE_WORDS.get(r.check.replicate, f"{r.check.replicate.removeprefix('params.')} values")
            n = f"about {pp.seeds_needed:,} {word} per arm would give {power.TARGET:g}" if pp.seeds_needed else \
                f"over {power.seeds_limit(pp.noise):,} {word} per arm would be needed for {power.TARGET:g}"
            if pp.noise is not None and pp.noise.items:
                n += (f", or about {pp.items_needed:,} test items at {pp.noise.n_a} {word}" if pp.items_needed else
                      f"; more test items alone (up to 10^6, at {pp.noise.n_a} {word}) would not")
            out[r.check.part] = (f"underpowered: power {pp.power.power:.2f} at a true difference of "
                                 f"{pp.effect:+.3g} with the run's own noise; {n}")
    return out


def answered(v: Verdict) -> dict[str, str]:
    """{part: why} for a part that came out "not reproduced" with power under TARGET at its published effect while
    its interval excludes that effect: the low power is stated, and why it does not undo the outcome (issue 31:
    no "not reproduced" may rest on low power unremarked)."""
    from bench import power
    out = {}
    for k, pp in part_powers(v).items():
        r = v.checks[k]
        if r.outcome == NOT_REPRODUCED and pp.power.room and pp.power.power < power.TARGET and _excludes(r, pp.effect):
            out[r.check.part] = (f"power {pp.power.power:.2f} at a true difference of {pp.effect:+.3g}, but the "
                                 f"interval excludes that difference: answered whatever the power")
    return out


def prereg_cell(v: Verdict | None) -> str:
    """The short pre-registration status of a verdict ("-" where nothing was decided)."""
    return v.prereg.short if v is not None and v.prereg is not None else "-"


def outcome_text(v: Verdict) -> str:
    """The outcome with its sub-verdicts and, for inconclusive parts, why (a part whose Effect had too little power
    says so, `underpowered`)."""
    weak = {**answered(v), **underpowered(v)}
    reasons = {p: "; ".join(x for x in (v.reasons.get(p, ""), weak.get(p, "")) if x) for p in {*v.reasons, *weak}}
    if len(v.parts) <= 1:
        why = next((x for x in reasons.values() if x), "")
        return v.status + (f" ({why})" if why else "")
    subs = [f"{p or 'main'}: {o}" + (f" ({reasons[p]})" if reasons.get(p) else "") for p, o in v.parts.items()]
    return f"{v.status} -- " + "; ".join(subs)


def track_names() -> tuple[str, ...]:
    """Every track of the registry, in registry order (bench.claims.TRACKS): one README column each."""
    from bench.claims import TRACKS
    return TRACKS


def track_label(name: str) -> str:
    return TRACK_INFO.get(name, (name, ""))[0]


def _tracks(tracks: dict | None, real: dict | None) -> dict[str, dict]:
    """{track: {claim ID: verdict}} for every track (an empty dict where none were given); `real` is the older
    keyword for the real track's verdicts alone."""
    given = dict(tracks or {})
    if real is not None and REAL_GROUP not in given:
        given[REAL_GROUP] = real
    return {t: given.get(t) or {} for t in track_names()}


def track_lines() -> list[str]:
    """One sentence per track column: what model and data decide it."""
    return [f"The `{track_label(t)}` column decides the same claims on {TRACK_INFO[t][1]}."
            for t in track_names() if t in TRACK_INFO]


def summary_table(verdicts: list[Verdict], link_prefix: str = "", real: dict | None = None,
                  tracks: dict | None = None) -> str:
    """results/README.md's table: one line per claim, one column per track (`tracks`: {track: {claim ID:
    verdict}}; `real`: the real track's alone)."""
    cols = _tracks(tracks, real)
    lines = ["| ID | claim | published | measured (effects: 95% CI) | scale run | outcome | rule | "
             + " | ".join(track_label(t) for t in cols) + " |",
             "|---|---|---|---|---|---|---|" + "---|" * len(cols)]
    for v in verdicts:
        c = v.claim
        link = f"[{c.id}]({link_prefix}{c.group}/report.md)" if v.status not in (NOT_RUN,) else c.id
        status = outcome_text(v)
        if "paper" in c.scales and v.status in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE):
            status += "; paper scale: not run (needs paper scale)"
        cells = " | ".join(_cell(_track_cell(got.get(c.id), t, link_prefix)) for t, got in cols.items())
        lines.append(f"| {link} | {_cell(c.title)} | {_cell(c.published)} | {_cell(v.measured) or '-'} | "
                     f"{_cell(v.scale_run)} | **{_cell(status)}** | {_cell(prereg_cell(v))} | {cells} |")
    return "\n".join(lines) + "\n"


def _track_cell(v: Verdict | None, track: str = REAL_GROUP, link_prefix: str = "") -> str:
    if v is None:
        return "-"
    text = outcome_text(v) + (f" [{v.effect}]" if v.effect else "")
    rule = f" (rule: {prereg_cell(v)})" if v.prereg is not None else ""
    if v.status == NOT_RUN:
        return v.status
    return f"[{track}]({link_prefix}{track}/report.md): " + _short(text, 300) + rule


def _effect_short(v: Verdict, n: int = 110) -> str:
    """The headline effect with its interval, short: the first group's interval and how many more there are."""
    if not v.effect:
        return _short(v.measured, 70) if v.measured else "-"
    head, _, rest = v.effect.partition("; ")
    more = rest.count("; ") + 1 if rest else 0
    return _short(head, n) + (f" (+{more} more)" if more else "")


def verdict_short(v: Verdict) -> str:
    """The outcome and, for a claim with parts, how many parts came out which way (the reasons: the group report)."""
    if len(v.parts) <= 1:
        return v.status
    counts: dict[str, int] = {}
    for o in v.parts.values():
        counts[o] = counts.get(o, 0) + 1
    if len(counts) == 1:
        return f"{v.status} ({len(v.parts)} parts)"
    return f"{v.status} ({', '.join(f'{k} {o}' for o, k in counts.items())} of {len(v.parts)} parts)"


def readme_table(verdicts: list[Verdict], real: dict | None = None, link_prefix: str = "results/",
                 tracks: dict | None = None) -> str:
    """One short line per claim for the root README: verdict, headline effect with its interval, the rule's
    design power at the published effect, pre-registration, links to the group reports (which hold the reasons),
    and one column per track (`tracks`: {track: {claim ID: verdict}}; `real`: the real track's alone)."""
    cols = _tracks(tracks, real)
    lines = ["| ID | claim | verdict | effect (95% CI) or measured | power (FPR) | rule | "
             + " | ".join(track_label(t) for t in cols) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(cols)]
    for v in verdicts:
        c = v.claim
        link = f"[{c.id}]({link_prefix}{c.group}/report.md)" if v.status != NOT_RUN else c.id
        cells = []
        for t, got in cols.items():
            r = got.get(c.id)
            cells.append("-" if r is None else r.status if r.status == NOT_RUN else
                         f"[{verdict_short(r)}]({link_prefix}{t}/report.md)")
        lines.append(f"| {link} | {_cell(c.title)} | {_cell(verdict_short(v))} | {_cell(_effect_short(v))} | "
                     f"{_cell(power_cell(v))} | {_cell(prereg_cell(v))} | " + " | ".join(_cell(x) for x in cells) + " |")
    return "\n".join(lines) + "\n"
