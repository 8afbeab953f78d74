""" "Adding an op touches one place", checked: every mapped overload has a lowering case and a
decline case in a rule-test table (tests/test_rules_*.py, run by tests/rule_harness.py), the
conditions `fxport ops` prints come from the checks, the report's op family from the rule, and
the README's op count from `fxport ops` (scripts/readme_op_count.py)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import torch

from fxport.capture.records import target_name
from fxport.mapping import FAMILIES, REGISTRY
from fxport.mapping.registry import UNMAPPED

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def rule_cases() -> list:
    """Every case of every rule-test table."""
    return [
        case
        for path in sorted(TESTS.glob("test_rules_*.py"))
        for case in importlib.import_module(f"tests.{path.stem}").CASES
    ]


def missing_cases(cases: list) -> dict[str, list[str]]:
    """Mapped overloads without a lowering case or without a decline case, and what they lack."""
    kinds = {"lowering": "lowers", "decline": "declines"}
    have = {kind: {c.target for c in cases if c.expect == expect} for kind, expect in kinds.items()}
    missing = {target_name(t): [kind for kind in kinds if t not in have[kind]] for t in REGISTRY.targets()}
    return {name: lacks for name, lacks in missing.items() if lacks}


def test_every_mapped_overload_has_a_lowering_case_and_a_decline_case():
    missing = missing_cases(rule_cases())
    assert not missing, (
        "mapped overloads without a rule-test case (add them to the family's table in "
        f"tests/test_rules_*.py): {missing}"
    )


def test_the_walk_fails_for_a_rule_without_cases():
    cases = rule_cases()
    dropped = [c for c in cases if c.target is not torch.ops.aten.hypot.default]
    assert missing_cases(cases) == {}
    assert missing_cases(dropped) == {"aten.hypot.default": ["lowering", "decline"]}


def test_every_case_is_of_a_mapped_overload():
    stale = sorted({c.name for c in rule_cases() if c.target not in REGISTRY.rules})
    assert not stale, f"cases of overloads the table does not map: {stale}"


def test_conditions_are_the_checks_requirements():
    for target in REGISTRY.targets():
        rule = REGISTRY.rules[target]
        assert rule.conditions == "; ".join(dict.fromkeys(c.requires for c in rule.checks))
        assert rule.conditions, f"{target_name(target)}: a rule without checks"


def test_report_family_comes_from_the_rule():
    assert REGISTRY.family_of("aten.conv2d.default") == "conv_pool"
    assert REGISTRY.family_of("aten.add.out") == "eltwise"  # unmapped overload of a mapped op
    assert REGISTRY.family_of("aten.grid_sampler_2d.default") == UNMAPPED
    assert {REGISTRY.rules[t].family for t in REGISTRY.targets()} <= set(FAMILIES)


def test_readme_op_count_is_written_from_fxport_ops():
    """scripts/readme_op_count.py (run with the reports) writes what `fxport ops` counts into the
    README: adding an op touches its rule and its test case, not the README by hand."""
    spec = importlib.util.spec_from_file_location("readme_op_count", ROOT / "scripts" / "readme_op_count.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    # fxport's own ops (the graph passes' fused and channels-last forms) are counted apart
    assert script.op_count() == sum(1 for t in REGISTRY.rules if not target_name(t).startswith("fxport."))
    readme = (ROOT / "README.md").read_text()
    assert len(script.PHRASE.findall(readme)) == 1
    assert "1,234 aten overloads are mapped; `fxport ops`" in script.with_count(
        "x 12 aten overloads are mapped; `fxport ops`", 1234
    )
