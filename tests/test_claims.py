import re

import pytest

from bench import BenchError
from bench.claims import CLAIMS, GROUPS, Check, by_group, get

EXPECTED = ["P1", "P2", "P3", "P4", "A1", "A2", "L1", "L2", "L3", "L4", "L5", "L6", "L7",
            "M1", "M2", "M3", "Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "X1", "X2", "X3", "X4", "X5"]


def test_registry_has_every_claim_of_claims_md():
    assert list(CLAIMS) == EXPECTED


@pytest.mark.parametrize("cid", EXPECTED)
def test_each_claim_is_complete(cid):
    c = CLAIMS[cid]
    assert c.statement and c.published and c.metric and c.title
    assert set(c.scales) <= {"exact", "toy", "paper"} and c.scales
    assert c.group in GROUPS
    if "paper" in c.scales and c.scales != ("paper",) and c.family != "lora" or cid in ("P1", "P2", "P3", "A1", "Q4", "Q5", "L7"):
        assert c.paper_note, f"{cid} has a paper-scale part and must say what it needs"


def test_get_is_case_insensitive_and_rejects_unknown():
    assert get("l2").id == "L2"
    with pytest.raises(BenchError, match="unknown claim 'Z9'"):
        get("Z9")
    with pytest.raises(BenchError, match="unknown group"):
        by_group("nope")


def test_check_rejects_unknown_operator():
    with pytest.raises(ValueError):
        Check("m", "!=", 1)


def test_l2_rule_pins_the_papers_exact_counts():
    targets = sorted(ch.target for ch in CLAIMS["L2"].checks)
    assert 4_718_592 in targets and 37_748_736 in targets and 4_194_304 in targets


def test_changed_rules_keep_history_and_cli_shows_it(capsys):
    from bench.cli import main
    changed = [c for c in CLAIMS.values() if c.history]
    assert len(changed) >= 10
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", h.date) and h.old and h.reason for c in changed for h in c.history)
    for c in changed:                      # newest last, never dated in the future of the next
        assert [h.date for h in c.history] == sorted(h.date for h in c.history)
    assert main(["claims", "Q2"]) == 0
    out = capsys.readouterr().out
    assert "History:" in out and "0.9999" in out


# ---- issue 31: the rule's prose names every threshold of its machine form (a test that fails on drift)
def number_forms(x: float) -> set[str]:
    """How prose writes a threshold: as is, in %, points, a fraction, bytes, 2^k, exp() of a log bound."""
    import math
    from fractions import Fraction
    x = float(x)
    a = abs(x)
    out = {f"{x:g}", f"{a:g}", f"{a:.3g}", f"{a:.2f}"}
    if a and a < 1e-2:
        out |= {f"{a:.0e}".replace("e-0", "e-"), f"{a:.0e}"}
    if x.is_integer():
        out |= {f"{int(a):,}", f"{int(a)}"}
    for div, unit in ((1e9, "GB"), (1e6, "MB"), (2**20, "MiB"), (2**30, "GiB")):
        if a >= div:
            out |= {f"{a / div:g} {unit}", f"{a / div:g}{unit}"}
    if 0 < a < 1:
        out |= {f"{a * 100:g}%", f"{a * 100:g} point", f"{(1 - a) * 100:g}%"}
        fr = Fraction(a).limit_denominator(16)
        if abs(float(fr) - a) < 1e-12:
            out.add(f"{fr.numerator}/{fr.denominator}")
    if a and math.log2(a).is_integer():
        out |= {f"2^{int(math.log2(a))}"}
    if a < 5:                        # a log bound (Effect log=True): a ratio
        out |= {f"{math.exp(x):.3g}", f"{math.exp(-x):.3g}", f"{math.exp(a):g}x"}
    return out


# Thresholds the prose names in words (claim, metric, value) -> the words it must contain.
IN_WORDS = {("L2", "lora_trainable_params", 4718592): "the paper's to the digit",
            ("L2", "lora_trainable_params", 37748736): "the paper's to the digit",
            ("L2", "lora_trainable_params", 4194304): "the paper's to the digit",
            ("L2", "adapter_bytes_fp16", 8388608): "the paper's to the digit",
            ("M1", "format_max", 3.3895313892515355e+38): "torch.finfo",
            ("M1", "format_eps", 0.0078125): "torch.finfo",
            ("Q1", "q1_zeropoint_roundtrip_err_over_half_step", 1.000001): "within half a step",
            ("Q4", "plant_all_ln_dim_share_ge6", 0.5): "at half the positions or more"}


def _names(text: str, x: float) -> bool:
    return any(re.search(r"(?<![\d.])" + re.escape(f) + r"(?![\d])", text) for f in number_forms(x))


def _unnamed(text: str, cid: str, items) -> list:
    out = []
    for ch in items:
        x = ch.bound if hasattr(ch, "bound") else ch.target
        words = IN_WORDS.get((cid, ch.metric, x))
        if not (words in text if words else _names(text, x)):
            out.append(f"{cid} [{ch.part}] {ch.metric}: {x:g}")
    return out


def test_rule_prose_names_every_threshold_of_its_machine_form():
    unnamed = [u for cid, c in CLAIMS.items() for u in _unnamed(c.rule, cid, (*c.preconditions, *c.checks))]
    assert not unnamed, "rule prose drifted from its machine form: " + "; ".join(unnamed)


def test_real_rule_notes_name_their_thresholds():
    from bench.claims import on_track
    unnamed = [u for cid, c in on_track("real").items() for ch in (*c.preconditions, *c.checks) if ch.note
               for u in _unnamed(ch.note, cid, [ch])]
    assert not unnamed, "a real rule's note drifted from its machine form: " + "; ".join(unnamed)


def test_prose_check_fails_on_a_drifted_threshold():
    from dataclasses import replace
    c = CLAIMS["L4"]
    moved = [replace(e, bound=0.07) if hasattr(e, "bound") else e for e in c.checks]
    assert not _unnamed(c.rule, "L4", c.checks) and _unnamed(c.rule, "L4", moved)
