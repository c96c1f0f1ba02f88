import re

import pytest

from bench import BenchError
from bench.claims import CLAIMS, GROUPS, Check, by_group, get

EXPECTED = ["P1", "P2", "P3", "P4", "A1", "A2", "L1", "L2", "L3", "L4", "L5", "L6", "L7",
            "M1", "M2", "M3", "Q1", "Q2", "Q3", "Q4", "Q5", "Q6"]


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
