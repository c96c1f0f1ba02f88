"""Issue 32: the registry split into bench/claims/ (families as data, history.toml, tracks, engine, writers) must not
move a single rule. The fingerprints below were computed from the registry at commit
cefa790fe96adbfff19bbe63cb7c8e888c462410 (bench/claims.py, REAL_RULES) before the refactor; they are data, not
recomputed here."""

import subprocess
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from bench import prereg
from bench.claims import CLAIMS, HISTORY, REAL_GROUP, TRACKS, get, load_history, on_track
from bench.claims.writers import full_rule, rule_sentences

ROOT = Path(__file__).resolve().parent.parent

# computed from the registry at commit cefa790fe96adbfff19bbe63cb7c8e888c462410, before the refactor (issue 32)
FINGERPRINTS = {
    "A1": "2c9cc53b77fcf3e9",
    "A2": "86259d654f5a2172",
    "L1": "e43fcfaf498eea58",
    "L2": "c192fc2d136d5a39",
    "L3": "75f0be75c34ac191",
    "L4": "28428a74a2a1e269",
    "L5": "af66a55163cc53c6",
    "L6": "5c4172ce45b77817",
    "L7": "1016bce52d310992",
    "M1": "a9574b95a1b6d437",
    "M2": "91352ec59df4eb4f",
    "M3": "6543f542839adafd",
    "P1": "3089a0f00147fecd",
    "P2": "da4b7a6879e6d533",
    "P3": "858af89a7257ba59",
    "P4": "8c1d5ab5aad5a48e",
    "Q1": "1d4ae2f98411e078",
    "Q2": "f3d4b54ed515d340",
    "Q3": "ff79ab09d83468ad",
    "Q4": "3f9da866273678e5",
    "Q5": "9609913584a7e7d0",
    "Q6": "ec7a00070f8c74ba",
}
# the real track (REAL_RULES at cefa790), same commit
REAL_FINGERPRINTS = {
    "A1": "8e1d62326c58a5f5",
    "A2": "7081a001904d0a0a",
    "L3": "08fe8083d116c773",
    "L4": "31c648ff459f31d9",
    "L5": "7bd259a909afa533",
    "P2": "7423bdd1a9c7dcae",
    "Q4": "0c0e1854bd164e74",
    "Q5": "a3bd5a0327fd4ed2",
}


# rules revised since the refactor, each with its history entry (committed before the rerun that decides it)
REVISED_SINCE = {"M2": "issue 31 item 4", "M3": "issue 31 item 3", "L4": "issue 31 item 4", "L6": "issue 31 item 3",
                 "P4": "issue 31 item 4", "P3": "issue 30 asks for 'gap closes' on a task"}
REAL_REVISED_SINCE = {"Q4": "issue 31 item 4"}


def test_every_fingerprint_is_the_one_before_the_refactor():
    # the lecture's claims (beyond the lecture, X1-X5, came after the refactor: issue 33)
    now = {cid: prereg.rule_fingerprint(cid) for cid in CLAIMS if CLAIMS[cid].family != "beyond"}
    assert {c: f for c, f in now.items() if c not in REVISED_SINCE} == \
        {c: f for c, f in FINGERPRINTS.items() if c not in REVISED_SINCE}
    assert set(now) == set(FINGERPRINTS)
    for cid, why in REVISED_SINCE.items():       # a revised rule has a new print and says why in its history
        assert now[cid] != FINGERPRINTS[cid] and any(why in h.reason for h in get(cid).history)
    real = {cid: prereg.rule_fingerprint(cid, REAL_GROUP) for cid in on_track(REAL_GROUP)}
    assert {c: f for c, f in real.items() if c not in REAL_REVISED_SINCE} == \
        {c: f for c, f in REAL_FINGERPRINTS.items() if c not in REAL_REVISED_SINCE}
    for cid, why in REAL_REVISED_SINCE.items():    # a revised real rule: a new print, a history entry of its track
        assert real[cid] != REAL_FINGERPRINTS[cid]
        assert any(h.track == REAL_GROUP and why in h.reason for h in get(cid).history)
    assert prereg.fingerprints(REAL_GROUP) == real
    assert TRACKS == (REAL_GROUP, "decoder")     # the decoder track (issue 35) came after, in its own module


def _git_has(commit: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", commit], cwd=ROOT, capture_output=True).returncode == 0


def test_registry_at_reads_the_one_file_registry_of_an_old_commit():
    if not _git_has("cefa790fe96adbfff19bbe63cb7c8e888c462410"):
        pytest.skip("git history of the repository not available here")
    old = prereg.registry_at("cefa790fe96adbfff19bbe63cb7c8e888c462410")
    assert old is not None and hasattr(old, "REAL_RULES")
    assert {c: prereg.fingerprint_at(CLAIMS[c], "cefa790fe96adbfff19bbe63cb7c8e888c462410") for c in FINGERPRINTS} == FINGERPRINTS
    real = {c: prereg.fingerprint_at(rc, "cefa790fe96adbfff19bbe63cb7c8e888c462410") for c, rc in on_track("real").items()}
    assert real == REAL_FINGERPRINTS


def test_registry_at_reads_the_package_of_a_new_commit():
    head = subprocess.run(["git", "log", "-1", "--format=%H", "--", "bench/claims/__init__.py"], cwd=ROOT,
                          capture_output=True, text=True)
    sha = head.stdout.strip()
    if head.returncode != 0 or not sha:
        pytest.skip("git history of the repository not available here")
    old = prereg.registry_at(sha)
    assert old is not None and not hasattr(old, "REAL_RULES") and set(FINGERPRINTS) <= set(old.CLAIMS) <= set(CLAIMS)
    assert all(prereg.fingerprint_at(CLAIMS[c], sha) == FINGERPRINTS[c] for c in FINGERPRINTS if c not in REVISED_SINCE)
    assert all(prereg.fingerprint_at(rc, sha) == REAL_FINGERPRINTS[c] for c, rc in on_track("real").items()
               if c not in REAL_REVISED_SINCE)
    assert prereg.fingerprint_at(replace(CLAIMS["L1"], group=REAL_GROUP), sha) is None   # L1 has no real track


def test_history_is_data_with_every_field_and_known_claims():
    with open(HISTORY, "rb") as f:
        raw = tomllib.load(f)["change"]
    assert raw == load_history() and len(raw) == sum(len(c.history) for c in CLAIMS.values())
    for e in raw:
        assert set(e) <= {"claim", "date", "old", "reason", "run", "track"}
        assert {"claim", "date", "old", "reason"} <= set(e)
        assert e["claim"] in CLAIMS and e.get("run", "before") in ("before", "after")
        assert e.get("track", "") in ("", *CLAIMS[e["claim"]].tracks)
        assert "which I have seen" not in e["reason"]
    assert not any("history=" in p.read_text() for p in HISTORY.parent.glob("*.py") if p.name != "__init__.py")


def test_cli_claims_shows_history(capsys):
    from bench.cli import main
    assert main(["claims", "L6"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for h in get("L6").history:
        assert h.date in out and " ".join(h.old.split())[:40] in out


def test_every_rule_renders_one_sentence_per_part_naming_its_thresholds():
    for c in [*CLAIMS.values(), *on_track("real").values()]:
        rules = (*c.preconditions, *c.checks)
        sentences = rule_sentences(c)
        assert len(sentences) == len(rules)
        for s, r in zip(sentences, rules):
            assert s.endswith(".") and f"`{r.metric}`" in s and (f"Part '{r.part}'" in s) == bool(r.part)
            x = r.bound if hasattr(r, "bound") else r.target
            assert f"{x:g}" in s, (c.id, s)
        assert full_rule(c).startswith(" ".join(sentences))


def test_the_claim_count_comes_from_the_registry():
    from bench.cli import build_parser
    assert f"list the {len(CLAIMS)} claims" in build_parser().format_help()
