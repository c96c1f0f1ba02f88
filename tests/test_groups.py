"""One group contract in one place: bench.repro.REPRO_GROUPS is the only list of groups, and every group's
settings.py declares GROUP, CLAIMS, REGRESS and SETTINGS (bench.repro's docstring), exported by its package."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from bench.claims import CLAIMS, REAL_GROUP, on_track
from bench.repro import REPRO_GROUPS

ROOT = Path(__file__).resolve().parent.parent


def test_the_registry_holds_every_claims_group_once():
    assert {c.group for c in CLAIMS.values()} | {REAL_GROUP} <= set(REPRO_GROUPS)
    REAL_RULES = on_track(REAL_GROUP)
    assert REAL_RULES and set(REAL_RULES) <= set(CLAIMS)       # the real track decides registry claims
    assert REPRO_GROUPS[-1] == "methods" and len(set(REPRO_GROUPS)) == len(REPRO_GROUPS)
    assert sorted(REPRO_GROUPS) == sorted(p.parent.name for p in (ROOT / "reproductions").glob("*/settings.py"))


@pytest.mark.parametrize("group", REPRO_GROUPS)
def test_settings_py_declares_the_contract(group):
    settings = importlib.import_module(f"reproductions.{group}.settings")
    package = importlib.import_module(f"reproductions.{group}")
    assert settings.GROUP == group
    assert set(settings.CLAIMS) <= set(CLAIMS)
    assert isinstance(settings.REGRESS, list) and {"smoke", "cpu"} <= set(settings.SETTINGS)
    for name in ("GROUP", "CLAIMS", "REGRESS", "SETTINGS"):
        assert getattr(package, name) is getattr(settings, name), (group, name)
    assert callable(package.run) and callable(package.report)


def test_no_other_module_lists_the_groups():
    """A literal tuple/list naming three or more groups appears only in bench/repro.py."""
    names = "|".join(REPRO_GROUPS)
    pattern = re.compile(rf"""[(\[]\s*(["'](?:{names})["']\s*,\s*){{2,}}""")
    hits = [str(p.relative_to(ROOT)) for top in ("bench", "reproductions")
            for p in (ROOT / top).rglob("*.py") if p.name != "repro.py" and pattern.search(p.read_text())]
    assert hits == []


def test_tox_has_an_environment_per_group():
    """tox.ini cannot import the registry, so its per-group environments are checked against it here."""
    text = (ROOT / "tox.ini").read_text()
    envs = set(re.findall(r"^\[testenv:repro-([a-z0-9]+)\]", text, flags=re.M)) - {"all"}
    assert envs == set(REPRO_GROUPS)
    repro_all = text.split("[testenv:repro-all]", 1)[1].split("\n[", 1)[0]
    assert set(re.findall(r"bench repro ([a-z0-9]+)", repro_all)) <= set(REPRO_GROUPS)
