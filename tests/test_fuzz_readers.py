"""Property-based fuzzing of the document readers and renderers (issue 22): a mutated run.json,
sweep.json or ops.json (values replaced by any JSON, keys removed, lists emptied, nesting
deepened) is rendered, compared or collected; the reader either works or raises a one-line
FxportError, never anything else, and never writes half a report.

The default suite runs a bounded number of documents per reader (seconds); the slow one runs
1,000 per reader (`-m slow`).
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_report import run_doc

from fxport.errors import FxportError
from fxport.report.render import comparison_text, render_results

# Any JSON value, nested deep enough to reach the renderers' loops, plus a few pathological ones.
SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=20)
JSON = st.recursive(
    SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)
PATHOLOGICAL = st.sampled_from(["DEEP", "HUGE_INT", "EMPTY_DICT", "EMPTY_LIST"])


DEEP = "\x00DEEP\x00"  # written as a list nested 3,000 deep (past the parser's recursion limit)


def _special(kind: str):
    return {"DEEP": DEEP, "HUGE_INT": 10**400, "EMPTY_DICT": {}, "EMPTY_LIST": []}[kind]


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:6]):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated(draw, base: dict) -> dict:
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "special"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "special":
            parent[path[-1]] = _special(draw(PATHOLOGICAL))
        else:
            parent[path[-1]] = draw(JSON)
    return doc


def _write(path: Path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc).replace(json.dumps(DEEP), "[" * 3000 + "]" * 3000))


def _render_or_refuse(directory: Path, html: bool) -> None:
    try:
        render_results(directory, html)
    except FxportError as exc:
        assert "\n" not in str(exc).strip()
        assert not (directory / "report.md").exists() or (directory / "report.md").read_text().endswith("\n")


def _compare_or_refuse(a: Path, b: Path) -> None:
    try:
        comparison_text(a, b)
    except FxportError as exc:
        assert "\n" not in str(exc).strip()


BASE_RUN = run_doc("m")


def _sweep(tmp: Path, runs: dict) -> None:
    from test_faults import _sweep_dir

    _sweep_dir(tmp, runs)


def check_run(doc: dict, html: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        a, b = Path(d) / "a", Path(d) / "b"
        _write(a / "run.json", doc)
        _write(b / "run.json", BASE_RUN)
        _render_or_refuse(a, html)
        _compare_or_refuse(a, b)
        _compare_or_refuse(b, a)


def check_sweep(doc: dict, html: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        a, b = Path(d) / "a", Path(d) / "b"
        _sweep(a, {"a@16x16": BASE_RUN, "b@16x16": run_doc("b")})
        _sweep(b, {"a@16x16": BASE_RUN, "b@16x16": run_doc("b")})
        _write(a / "sweep.json", doc)
        _render_or_refuse(a, html)
        _compare_or_refuse(a, b)


def _base_sweep() -> dict:
    with tempfile.TemporaryDirectory() as d:
        _sweep(Path(d), {"a@16x16": BASE_RUN, "b@16x16": run_doc("b")})
        return json.loads((Path(d) / "sweep.json").read_text())


BASE_SWEEP = _base_sweep()


def check_ops(doc) -> None:
    from fxport.testgen import collect

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ops.json"
        _write(path, doc)
        try:
            collect(path)
        except FxportError as exc:
            assert "\n" not in str(exc).strip()


def _ops_doc() -> dict:
    """Two records of `fxport trace tests.user_models:TinyCNN --input-shape 1,3,16,16`."""
    return json.loads(
        '{"model": "tests.user_models:TinyCNN", "ops": [{"args": "stride=[1, 1], padding=[1, 1]", "call": {"args": [{"tensor": 0}, {"tensor": 1}, {"tensor": 2}, [1, 1], [1, 1]], "kwargs": {}}, "graph": "main", "index": 0, "inputs": [{"dtype": "float32", "shape": [1, 3, 16, 16]}, {"dtype": "float32", "shape": [8, 3, 3, 3]}, {"dtype": "float32", "shape": [8]}], "module": "conv", "module_inferred": false, "module_type": "Conv2d", "node": "conv2d", "op": "aten.conv2d", "outputs": [{"dtype": "float32", "shape": [1, 8, 16, 16]}], "overload": "default", "repeat": 1, "source": "torch/nn/modules/conv.py:565 in forward", "target": "aten.conv2d.default"}, {"args": "momentum=0.1, eps=1e-05", "call": {"args": [{"tensor": 0}, {"tensor": 1}, {"tensor": 2}, {"tensor": 3}, {"tensor": 4}, 0.1, 1e-05], "kwargs": {}}, "graph": "main", "index": 1, "inputs": [{"dtype": "float32", "shape": [1, 8, 16, 16]}, {"dtype": "float32", "shape": [8]}, {"dtype": "float32", "shape": [8]}, {"dtype": "float32", "shape": [8]}, {"dtype": "float32", "shape": [8]}], "module": "bn", "module_inferred": false, "module_type": "BatchNorm2d", "node": "_native_batch_norm_legit_no_training", "op": "aten._native_batch_norm_legit_no_training", "outputs": [{"dtype": "float32", "shape": [1, 8, 16, 16]}, {"dtype": "float32", "shape": [8]}, {"dtype": "float32", "shape": [8]}], "overload": "default", "repeat": 1, "source": "torch/nn/modules/batchnorm.py:210 in forward", "target": "aten._native_batch_norm_legit_no_training.default"}]}'
    )


FAST = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(mutated(BASE_RUN))
def test_run_documents(doc):
    check_run(doc, html=False)


@FAST
@given(mutated(BASE_SWEEP))
def test_sweep_documents(doc):
    check_sweep(doc, html=False)


@FAST
@given(mutated(_ops_doc()))
def test_ops_documents(doc):
    check_ops(doc)


@pytest.mark.slow
@SLOW
@given(mutated(BASE_RUN))
def test_run_documents_1000(doc):
    check_run(doc, html=True)


@pytest.mark.slow
@SLOW
@given(mutated(BASE_SWEEP))
def test_sweep_documents_1000(doc):
    check_sweep(doc, html=False)


@pytest.mark.slow
@SLOW
@given(mutated(_ops_doc()))
def test_ops_documents_1000(doc):
    check_ops(doc)
