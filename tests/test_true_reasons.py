"""Reasons that are true: every decline or limit that says TT-NN lacks a kernel or a function is
checked against the installed ttnn, so that the mapping table cannot claim what the library
contradicts (it once declined 3-D convolution as "no 3-D convolution kernel" while the wheel had
ttnn.experimental.conv3d, and transposed convolution while it had ttnn.conv_transpose2d)."""

import re

import pytest

from fxport.mapping import REGISTRY
from fxport.plan import plan_graph
from fxport.single_op import op_graph
from tests import test_rules_conv_data, test_rules_eltwise, test_rules_fused, test_rules_matmul_norm
from tests.rule_harness import inputs

# A sentence that says something is missing from TT-NN
CLAIMS_ABSENCE = re.compile(
    r"\bhas no\b|\bno [\w-]+ (?:kernel|function)\b|\bnot (?:in|exposed by) ttnn\b|"
    r"\bttnn(?: [\d.]+)? lacks\b",
    re.IGNORECASE,
)
# A ttnn function named inside such a sentence: "no ttnn.foo", "ttnn.foo does not exist"
NAMED_MISSING = re.compile(r"(?:\bno |\bwithout )`?ttnn\.([\w.]+)|`?ttnn\.([\w.]+)`? (?:does not exist|is missing)")


def _exists(name: str) -> bool:
    import ttnn

    value = ttnn
    for part in name.split("."):
        value = getattr(value, part, None)
        if value is None:
            return False
    return True


def _decline_reasons() -> list[tuple[str, str]]:
    cases = [
        c
        for module in (test_rules_conv_data, test_rules_eltwise, test_rules_fused, test_rules_matmul_norm)
        for c in module.CASES
        if c.reason
    ]
    out = []
    for case in cases:
        args, kwargs = inputs(case)
        gm, _ = op_graph(case.target, args, kwargs, case.reads)
        out.append((case.id, plan_graph(gm.graph).nodes[0].reason))
    return out


def test_limits_claiming_absence_name_what_is_absent():
    claims = {t: limit for t, limit in REGISTRY.limits.items() if CLAIMS_ABSENCE.search(limit)}
    assert claims  # the 3-D pools at least
    for target, limit in claims.items():
        absent = REGISTRY.absent.get(target, ())
        assert absent, f"{target}: {limit!r} says TT-NN lacks something: name it in no_kernel(absent=...)"
        present = [name for name in absent if _exists(name)]
        assert not present, f"{target}: {limit!r}, but the installed ttnn has {present}"


def test_every_ttnn_function_a_reason_says_is_missing_is_missing():
    texts = list(REGISTRY.limits.items()) + _decline_reasons()
    named = [(where, m.group(1) or m.group(2)) for where, text in texts for m in NAMED_MISSING.finditer(text)]
    present = [(where, name) for where, name in named if _exists(name)]
    assert not present, present


@pytest.mark.parametrize("reason", ["TT-NN 0.81.1 has no 3-D convolution kernel", "no ttnn.conv_transpose2d"])
def test_the_check_catches_the_claims_it_was_written_for(reason):
    """The two false claims this test exists for would be caught."""
    assert CLAIMS_ABSENCE.search(reason) or any(
        _exists(m.group(1) or m.group(2)) for m in NAMED_MISSING.finditer(reason)
    )
    if "ttnn." in reason:
        assert _exists(NAMED_MISSING.search(reason).group(1))


def test_decline_reasons_that_claim_absence_are_checked():
    """A decline reason saying TT-NN has no kernel for something names a ttnn function that is
    really missing, or is one of the claims the registry's `absent` lists cover."""
    unchecked = [
        (case, reason)
        for case, reason in _decline_reasons()
        if CLAIMS_ABSENCE.search(reason)
        and not NAMED_MISSING.search(reason)
        and reason.split(": ", 1)[-1] not in REGISTRY.limits.values()
    ]
    assert not unchecked, unchecked
