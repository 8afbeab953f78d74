"""Collect the unique op cases of one or more captures: what a generated per-op test replays.

A case is one (aten target, input specs, call) signature. The call (the recorded arguments, with
tensors as {"tensor": i}) is part of the key: two convolutions with the same shapes but another
stride are two cases. Every case remembers where it came from (model, module paths) and how often
it runs there, counting repeats. Sources are captures, `fxport trace` output (ops.json files or
directories holding one), or ops.json documents already loaded.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Union

from fxport.capture.records import OpRecord, TensorSpec
from fxport.durable import read_regular
from fxport.errors import FxportError
from fxport.passes import constants_of, records_after, run_passes


@dataclass(frozen=True)
class Source:
    """Where a case occurs: one model, the nodes it accounts for there, their module paths."""

    model: str
    count: int  # nodes with this signature in the model, counting repeats
    modules: tuple[str, ...]  # distinct module paths, sorted ("" = top level)

    def to_dict(self) -> dict:
        return {"model": self.model, "count": self.count, "modules": list(self.modules)}

    @classmethod
    def from_dict(cls, d: dict) -> Source:
        return cls(d["model"], int(d["count"]), tuple(d["modules"]))


@dataclass(frozen=True)
class Case:
    target: str  # "aten.conv2d.default"
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    args: str  # the non-tensor arguments as records render them
    call: dict | None  # {"args": [...], "kwargs": {...}}; None in ops.json files older than calls
    sources: tuple[Source, ...]  # sorted by model name
    record: OpRecord  # the first occurrence: what the memory model sizes

    @property
    def count(self) -> int:
        return sum(s.count for s in self.sources)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(s.model for s in self.sources)

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(sorted({m for s in self.sources for m in s.modules}))

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "args": self.args,
            "call": self.call,
            "count": self.count,
            "sources": [s.to_dict() for s in self.sources],
        }


SourceLike = Union["Capture", str, Path, dict, tuple]


def collect(*sources: SourceLike | Iterable[SourceLike]) -> list[Case]:
    """The unique cases of all sources, ordered by target, then most frequent first, then shapes
    and arguments (deterministic: the same sources give the same list).

    A source is a `Capture`, a path to an ops.json written by `fxport trace` (or to the directory
    holding it), an ops.json document (dict with "model" and "ops"), or a `(model name, records)`
    pair. Lists of sources may be passed as one argument.
    """
    groups: dict[tuple, list[tuple[str, OpRecord]]] = defaultdict(list)
    for model, records in _expand(sources):
        for r in records:
            groups[case_key(r)].append((model, r))
    cases = [_case(members) for members in groups.values()]
    cases.sort(key=lambda c: (c.target, -c.count, _specs_key(c.inputs), c.args, _canonical(c.call)))
    return cases


def optimized_capture(capture: Any, passes: tuple[str, ...]) -> Any:
    """A capture as a source of the cases its model runs after the graph passes (fused and
    channels-last ops in place of what they replace): `(model name, records)` of every graph."""
    if not passes:
        return capture
    records: list[OpRecord] = []
    for g in capture.graphs:
        optimized = run_passes(g.graph_module, constants_of(g.program), passes)
        records += records_after(optimized, g.label, capture.repeats)
    return str(capture.model), records


def case_key(r: OpRecord) -> tuple:
    """Records with equal keys replay identically. Without a recorded call, the rendered
    arguments stand in (they are rendered from the same values)."""
    return (r.target, r.inputs, r.args if r.call is None else _canonical(r.call))


def load_ops(path: str | Path) -> tuple[str, list[OpRecord]]:
    """(model name, records) of an ops.json written by `fxport trace` (or its directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "ops.json"
    try:
        doc = json.loads(read_regular(path))
        model, records = _from_document(doc, default_name=path.parent.name or path.stem)
        for r in records:  # the key every case is grouped by must be computable
            case_key(r)
        return model, records
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise FxportError(f"cannot read {path}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None


def _from_document(doc: dict, default_name: str) -> tuple[str, list[OpRecord]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("ops"), list):
        raise ValueError('not an ops.json document written by `fxport trace` (no "ops" list)')
    return str(doc.get("model") or default_name), [OpRecord.from_dict(d) for d in doc["ops"]]


def _expand(sources: Iterable[Any]) -> Iterable[tuple[str, list[OpRecord]]]:
    for src in sources:
        if isinstance(src, (str, Path)):
            yield load_ops(src)
        elif isinstance(src, dict):
            yield _from_document(src, default_name="model")
        elif isinstance(src, tuple) and len(src) == 2 and isinstance(src[0], str):
            yield src[0], list(src[1])
        elif hasattr(src, "records") and hasattr(src, "model"):  # a Capture
            yield str(src.model), list(src.records)
        elif isinstance(src, Iterable):
            yield from _expand(src)
        else:
            raise TypeError(
                f"cannot collect op cases from {type(src).__name__}: expected a "
                "Capture, an ops.json path or document, or (name, records)"
            )


def _case(members: list[tuple[str, OpRecord]]) -> Case:
    first = members[0][1]
    per_model: dict[str, list[OpRecord]] = defaultdict(list)
    for model, r in members:
        per_model[model].append(r)
    sources = tuple(
        Source(model, sum(r.repeat for r in rs), tuple(sorted({r.module for r in rs})))
        for model, rs in sorted(per_model.items())
    )
    return Case(first.target, first.inputs, first.outputs, first.args, first.call, sources, first)


def _canonical(call: dict | None) -> str:
    return json.dumps(call, sort_keys=True, separators=(",", ":"))


def _specs_key(specs: tuple[TensorSpec, ...]) -> tuple:
    return tuple((s.shape, s.dtype) for s in specs)
