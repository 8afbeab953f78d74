"""Module instances of the program written once as a class: ResNet's Bottleneck, a YOLO C2f.

An instance is the record's entries of one module path (its weight preparations and its calls,
which must be contiguous in the forward pass). Each is written by its own writer, with names
relative to the instance and every number replaced by a marker: instances of a module class
whose code is then the same text are one class; the numbers that differ between them (channels,
heights, strides) become arguments of its constructor, one per distinct column of values. A module
class whose instances share no code is looked into: its children are tried the same way.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from fxport.capture.records import _stack
from fxport.export.names import Namer, class_name, float_literal, identifier
from fxport.runtime.recording import Entry

_MARKER = re.compile("\x00([0-9]+)\x00")
CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})  # torch's, not the model's code
MIN_ENTRIES = 3  # a module of fewer recorded steps (one ReLU) reads better inline


@dataclass
class Instance:
    path: str
    cls: str
    entries: list[Entry]
    init: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    literals: list[tuple[str, Any]] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)  # ids of the enclosing program's values
    outputs: list[int] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    uses_params: bool = False
    writer: Any = None

    @property
    def text(self) -> str:
        return "\n".join([*self.init, "--", *self.forward, "--", *self.output_names])


@dataclass
class Group:
    name: str  # the class's name
    instances: list[Instance]
    arguments: list[str]  # constructor arguments, one per varying column of numbers
    columns: dict[int, str]  # marker -> argument name (varying) ...
    constants: dict[int, str]  # ... or the literal (the same in every instance)


def _stack_of(entry: Entry) -> tuple[tuple[str, str], ...]:
    return tuple(_stack(entry.node)) if entry.node is not None else ()


def find_groups(
    entries: list[Entry], scopes: dict[int, str], outer: Any, make_writer, outputs: set[int], leaves
) -> tuple[dict[str, Group], dict[int, str]]:
    """The classes to write and, for each entry, the instance path it belongs to (absent: the
    enclosing program writes it). `make_writer(prefix)` gives a writer for one instance."""
    stacks = {id(e): _stack_of(e) for e in entries}
    paths_of_class: dict[str, set[str]] = defaultdict(set)
    for stack in stacks.values():
        for path, cls in stack:
            if path:
                paths_of_class[cls].add(path)
    candidates = {cls for cls, paths in paths_of_class.items() if len(paths) > 1 and cls not in CONTAINERS}
    excluded: set[str] = set()
    for _ in range(8):  # each round gives up on classes whose instances share no code
        unit_of = {}
        for e in entries:
            for path, cls in stacks[id(e)]:
                if cls in candidates and path and path not in excluded:
                    unit_of[id(e)] = path
                    break
        spans = _spans(entries, scopes, unit_of)
        broken = {p for p, n in spans.items() if n > 1}
        if broken:
            excluded |= broken
            continue
        members: dict[str, list[Entry]] = defaultdict(list)
        for e in entries:
            if id(e) in unit_of:
                members[unit_of[id(e)]].append(e)
        small = {p for p, mine in members.items() if len(mine) < MIN_ENTRIES}
        if small:
            excluded |= small
            continue
        instances = {}
        failed = set()
        for path, mine in members.items():
            cls = next(c for p, c in stacks[id(mine[0])] if p == path)
            try:
                instances[path] = _render(path, cls, mine, entries, unit_of, outer, make_writer, outputs, leaves)
            except Exception:  # an instance that cannot stand alone (it reads the program's weights)
                failed.add(path)
        if failed:
            excluded |= failed
            continue
        by_class: dict[str, dict[str, list[Instance]]] = defaultdict(lambda: defaultdict(list))
        for inst in instances.values():
            by_class[inst.cls][inst.text].append(inst)
        lonely = {cls for cls, texts in by_class.items() if all(len(v) < 2 for v in texts.values())}
        if lonely:
            candidates -= lonely
            continue
        groups: dict[str, Group] = {}
        names = Namer()
        for cls in sorted(by_class, key=lambda c: min(i.path for t in by_class[c].values() for i in t)):
            for text in sorted(by_class[cls], key=lambda t: by_class[cls][t][0].path):
                same = by_class[cls][text]
                if len(same) < 2:
                    excluded |= {i.path for i in same}
                    continue
                groups[same[0].path] = _group(class_name(names(cls)), same)
        if any(len(texts[t]) < 2 for texts in by_class.values() for t in texts):
            # instances that stay alone are written inline: find the groups again without them
            continue
        return groups, dict(unit_of)
    return {}, {}


def _spans(entries: list[Entry], scopes: dict[int, str], unit_of: dict[int, str]) -> dict[str, int]:
    """How many separate runs of the forward pass each instance's calls make."""
    spans: dict[str, int] = defaultdict(int)
    last = None
    for e in entries:
        if scopes.get(id(e)) != "forward":
            continue
        unit = unit_of.get(id(e))
        if unit is not None and unit != last:
            spans[unit] += 1
        last = unit
    return spans


def _render(
    path: str,
    cls: str,
    mine: list[Entry],
    entries: list[Entry],
    unit_of: dict[int, str],
    outer: Any,
    make_writer,
    outputs: set[int],
    leaves,
) -> Instance:
    writer = make_writer(path + ".")
    writer.outer = outer
    writer.literals = []
    produced: list[int] = []
    mine_ids = {id(e) for e in mine}
    for e in mine:
        writer.write_entry(e)
        for v in leaves(e.out):
            produced.append(id(getattr(v, "tt", v)))
    read_elsewhere = set(outputs)
    for e in entries:
        if id(e) not in mine_ids:
            for v in leaves((e.args, e.kwargs)):
                read_elsewhere.add(id(getattr(v, "tt", v)))
                if hasattr(v, "tensor"):
                    read_elsewhere.add(id(v.tensor))
    outs = [k for k in dict.fromkeys(produced) if k in read_elsewhere]
    for k in outs:
        if writer.scope_of.get(k) != "forward":
            raise ValueError("an instance hands a weight to the program")
    inst = Instance(
        path,
        cls,
        mine,
        writer.init.lines,
        writer.forward.lines,
        writer.literals,
        writer.unit_inputs,
        outs,
        [writer.exprs[k] for k in outs],
        writer.uses_params_in_forward,
        writer,
    )
    return inst


def _group(name: str, instances: list[Instance]) -> Group:
    count = len(instances[0].literals)
    arguments: list[str] = []
    columns: dict[int, str] = {}
    constants: dict[int, str] = {}
    by_values: dict[tuple, str] = {}
    hints: dict[tuple, list[str]] = {}
    order: dict[tuple, int] = {}
    namer = Namer(("device", "params", "prefix", "self"))
    for i in range(count):
        values = tuple(inst.literals[i][1] for inst in instances)
        if len(set(map(repr, values))) == 1:
            v = values[0]
            constants[i] = float_literal(v) if isinstance(v, float) else repr(v)
            continue
        hints.setdefault(values, []).append(instances[0].literals[i][0])
        order.setdefault(values, i)
    for values in sorted(hints, key=order.get):
        # named after the first keyword that takes it (in_channels), else the first place it appears
        named = [h for h in hints[values] if h != "size"] or hints[values]
        by_values[values] = namer(identifier(named[0], "n"))
        arguments.append(by_values[values])
    for i in range(count):
        values = tuple(inst.literals[i][1] for inst in instances)
        if i not in constants:
            columns[i] = by_values[values]
    return Group(name, instances, arguments, columns, constants)


def fill(line: str, group: Group) -> str:
    """A line of the class's code with its numbers: constants, or the constructor's arguments."""

    def sub(m: re.Match) -> str:
        i = int(m.group(1))
        return group.constants[i] if i in group.constants else f"self.{group.columns[i]}"

    return _MARKER.sub(sub, line)


def arguments_of(inst: Instance, group: Group) -> list[str]:
    """The constructor's keyword arguments for one instance."""
    first: dict[str, Any] = {}
    for i, arg in group.columns.items():
        first.setdefault(arg, inst.literals[i][1])
    return [
        f"{arg}={float_literal(first[arg]) if isinstance(first[arg], float) else repr(first[arg])}"
        for arg in group.arguments
    ]
