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

from fxport.capture.records import _stack, module_of
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


class MemoryName(str):
    """A memory config met in a module instance's code ("dram", "l1"): data in the program's JSON,
    `MEMORY[...]` (or the ttnn constant) in its code."""


@dataclass
class Plan:
    """Instances of one module class whose code differs by optional children (ResNet's
    `downsample`): written as the instance with the most children, each optional child's lines
    under `if self.<child>:`, a value it would compute taking its default (the block's input)."""

    base: Instance
    optional: dict[str, str]  # child -> its flag (a constructor argument)
    defaults: dict[str, str]  # a name an optional child binds -> its value without the child
    maps: dict[str, list[int | None]]  # text of a variant -> base literal -> the variant's (None: absent)
    children: dict[str, set[str]]  # text of a variant -> its children


@dataclass
class Group:
    name: str  # the class's name
    instances: list[Instance]
    arguments: list[str]  # constructor arguments: varying numbers, then optional children's flags
    columns: dict[int, str]  # marker -> argument name (varying) ...
    constants: dict[int, str]  # ... or the literal (the same in every instance)
    values: dict[str, dict[str, Any]]  # instance path -> its arguments' values
    plan: Plan | None = None

    @property
    def base(self) -> Instance:
        return self.plan.base if self.plan else self.instances[0]


def _stack_of(entry: Entry) -> tuple[tuple[str, str], ...]:
    return tuple(_stack(entry.node)) if entry.node is not None else ()


def find_groups(
    entries: list[Entry], scopes: dict[int, str], outer: Any, make_writer, outputs: set[int]
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
                instances[path] = _render(path, cls, mine, entries, outer, make_writer, outputs)
            except Exception:  # an instance that cannot stand alone (it reads the program's weights)
                failed.add(path)
        if failed:
            excluded |= failed
            continue
        by_class: dict[str, dict[str, list[Instance]]] = defaultdict(lambda: defaultdict(list))
        for inst in instances.values():
            by_class[inst.cls][inst.text].append(inst)
        variants: dict[str, list[tuple[list[Instance], Plan | None]]] = {}
        for cls, texts in by_class.items():
            found = list(texts.values())
            plan = _merge(found) if len(found) > 1 else None
            if plan is None:
                variants[cls] = [(v, None) for v in found]
                continue
            merged = sorted((i for v in found if v[0].text in plan.maps for i in v), key=lambda i: i.path)
            variants[cls] = [(merged, plan)] + [(v, None) for v in found if v[0].text not in plan.maps]
        lonely = {cls for cls, found in variants.items() if all(len(v) < 2 for v, _ in found)}
        if lonely:
            candidates -= lonely
            continue
        alone = {i.path for found in variants.values() for v, _ in found if len(v) < 2 for i in v}
        if alone:  # instances that stay alone are written inline: find the groups again without them
            excluded |= alone
            continue
        groups: dict[str, Group] = {}
        names = Namer()
        for cls in sorted(variants, key=lambda c: min(i.path for v, _ in variants[c] for i in v)):
            for same, plan in sorted(variants[cls], key=lambda v: v[0][0].path):
                groups[same[0].path] = _group(class_name(names(cls)), same, plan)
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
    outer: Any,
    make_writer,
    outputs: set[int],
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


_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*|\x00[0-9]+\x00|\S")
_ABSENT = object()  # a number of an optional child the instance does not have


def _child(inst: Instance, entry: Entry) -> str:
    """The child of `inst` an entry belongs to (its first name below the instance), "" for its own."""
    path = module_of(entry.node)[0] if entry.node is not None else ""
    below = path[len(inst.path) + 1 :] if path.startswith(inst.path + ".") else ""
    return below.split(".", 1)[0]


def _children(inst: Instance) -> set[str]:
    return {c for e in inst.entries if (c := _child(inst, e))}


def _without(base: Instance, missing: set[str]) -> tuple[str, list[int], dict[str, str]]:
    """The base's code without the children in `missing`: its text (numbers unnumbered), the base
    literals kept, and the names the dropped lines bind (-> their child)."""
    init, forward, literals, bound = set(), set(), set(), {}
    for e in base.entries:
        child = _child(base, e)
        if child in missing:
            span = base.writer.spans[id(e)]
            init |= set(span.init)
            forward |= set(span.forward)
            literals |= set(span.literals)
            for v in leaves(e.out):
                name = base.writer.exprs.get(id(getattr(v, "tt", v)))
                if name and not name.startswith("self."):
                    bound[name] = child
    kept_init = [line for i, line in enumerate(base.init) if i not in init]
    kept_forward = [line for i, line in enumerate(base.forward) if i not in forward]
    text = "\n".join([*kept_init, "--", *kept_forward, "--", *base.output_names])
    return text, [i for i in range(len(base.literals)) if i not in literals], bound


def _tokens(text: str) -> list[str]:
    return [t if not t.startswith("\x00") else "\x00" for t in _TOKEN.findall(text)]


def _merge(variants: list[list[Instance]]) -> Plan | None:
    """One class for the variants that are the same code as the one with the most children up to
    optional children (the others stay classes or code of their own); None when none is."""
    reps = [v[0] for v in variants]
    kids = {r.text: _children(r) for r in reps}
    base = max(reps, key=lambda r: (len(kids[r.text]), len(r.entries), r.path))
    defaults: dict[str, str] = {}
    maps = {base.text: list(range(len(base.literals)))}
    optional: set[str] = set()
    for r in reps:
        if r is base or not kids[r.text] <= kids[base.text] or len(r.inputs) != len(base.inputs):
            continue
        missing = kids[base.text] - kids[r.text]
        text, kept, bound = _without(base, missing)
        mine, theirs = _tokens(text), _tokens(r.text)
        if not missing or len(mine) != len(theirs) or len(kept) != len(r.literals):
            continue
        pairs = {(a, b) for a, b in zip(mine, theirs, strict=True) if a != b}
        if any(a not in bound or defaults.get(a, b) != b for a, b in pairs) or len(dict(pairs)) != len(pairs):
            continue  # a difference an absent child does not explain
        defaults.update(pairs)
        optional |= missing
        mapping: list[int | None] = [None] * len(base.literals)
        for j, i in enumerate(kept):
            mapping[i] = j
        maps[r.text] = mapping
    if not optional:
        return None
    flags = Namer(("device", "params", "prefix", "self", *base.writer.attr_names._used))
    return Plan(base, {c: flags(c) for c in sorted(optional)}, defaults, maps, kids)


def _literal(value: Any) -> str:
    if isinstance(value, MemoryName):
        return f"ttnn.{value.upper()}_MEMORY_CONFIG"
    return float_literal(value) if isinstance(value, float) else repr(value)


def _agree(a: Any, b: Any) -> bool:
    return a is _ABSENT or b is _ABSENT or (type(a) is type(b) and repr(a) == repr(b))


def _group(name: str, instances: list[Instance], plan: Plan | None = None) -> Group:
    base = plan.base if plan else instances[0]
    maps = [plan.maps[i.text] if plan else list(range(len(i.literals))) for i in instances]
    count = len(base.literals)
    columns: dict[int, str] = {}
    constants: dict[int, str] = {}
    known: dict[str, list[Any]] = {}  # argument -> its value in each instance (_ABSENT: not read)
    hints: dict[str, list[str]] = {}
    namer = Namer(("device", "params", "prefix", "self", *(plan.optional.values() if plan else ())))

    def values(i: int) -> list[Any]:
        return [_ABSENT if m[i] is None else inst.literals[m[i]][1] for inst, m in zip(instances, maps, strict=True)]

    order = sorted(range(count), key=lambda i: (_ABSENT in values(i), i))  # numbers every instance has first
    for i in order:
        got = values(i)
        present = [v for v in got if v is not _ABSENT]
        if len({(type(v), repr(v)) for v in present}) == 1:
            constants[i] = _literal(present[0])
            continue
        for arg, column in known.items():  # a column it agrees with wherever both are read
            if all(_agree(a, b) for a, b in zip(column, got, strict=True)):
                known[arg] = [b if a is _ABSENT else a for a, b in zip(column, got, strict=True)]
                break
        else:
            arg = f"\x00{len(known)}"
            known[arg] = got
        columns[i] = arg
        hints.setdefault(arg, []).append(base.literals[i][0])
    renamed = {}
    for arg in known:  # named after the first keyword that takes it (in_channels), else "size"
        named = [h for h in hints[arg] if h != "size"] or hints[arg]
        renamed[arg] = namer(identifier(named[0], "n"))
    columns = {i: renamed[a] for i, a in columns.items()}
    arguments = [renamed[a] for a in known] + (list(plan.optional.values()) if plan else [])
    per_instance: dict[str, dict[str, Any]] = {}
    for k, inst in enumerate(instances):
        mine = {renamed[a]: (None if col[k] is _ABSENT else col[k]) for a, col in known.items()}
        if plan:
            mine.update({flag: child in plan.children[inst.text] for child, flag in plan.optional.items()})
        per_instance[inst.path] = mine
    return Group(name, instances, arguments, columns, constants, per_instance, plan)


def fill(line: str, group: Group) -> str:
    """A line of the class's code with its numbers: constants, or the constructor's arguments."""

    def sub(m: re.Match) -> str:
        i = int(m.group(1))
        if i in group.constants:
            return group.constants[i]
        arg = f"self.{group.columns[i]}"
        return f"MEMORY[{arg}]" if isinstance(group.base.literals[i][1], MemoryName) else arg

    return _MARKER.sub(sub, line)


def class_code(group: Group) -> tuple[list[str], list[str]]:
    """The class's __init__ and forward lines: the base instance's, with each optional child's
    lines under `if self.<flag>:` (its values' defaults set before)."""
    base, plan = group.base, group.plan
    owner: dict[tuple[str, int], str] = {}
    if plan:
        for e in base.entries:
            child = _child(base, e)
            if child in plan.optional:
                span = base.writer.spans[id(e)]
                owner.update({("init", i): child for i in span.init})
                owner.update({("forward", i): child for i in span.forward})
    code = {}
    for scope, lines in (("init", base.init), ("forward", base.forward)):
        out: list[str] = []
        current = None
        for i, line in enumerate(lines):
            child = owner.get((scope, i))
            if child is not None and child != current:
                if scope == "forward":
                    out += [f"{n} = {d}" for n, d in plan.defaults.items() if _binds(base, child, n)]
                out.append(f"if self.{plan.optional[child]}:")
            current = child
            out.append(("    " if child is not None else "") + fill(line, group))
        code[scope] = out
    return code["init"], code["forward"]


def _binds(base: Instance, child: str, name: str) -> bool:
    return _without(base, {child})[2].get(name) == child


def leaves(value: Any):
    """The values in nested lists, tuples and dicts (the recorded arguments' structure)."""
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from leaves(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    else:
        yield value


_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")


def containers(entries: list[Entry], instance_of: dict[str, Any]) -> dict[str, list[str]]:
    """nn.Sequential / nn.ModuleList paths whose children 0..n-1 are all grouped instances (and
    whose names are plain identifiers and indices): written as a list, `self.layer1[0]`."""
    classes = {path: cls for e in entries for path, cls in _stack_of(e)}
    children: dict[str, set[str]] = defaultdict(set)
    for path in instance_of:
        parent, _, index = path.rpartition(".")
        if parent and index.isdigit() and classes.get(parent) in CONTAINERS:
            children[parent].add(path)
    found = {}
    for parent, paths in children.items():
        ordered = [f"{parent}.{i}" for i in range(len(paths))]
        plain = all(_SEGMENT.fullmatch(p) for p in parent.split("."))
        if plain and set(ordered) == paths and not any(k.startswith(parent + ".") for k in _others(instance_of, paths)):
            found[parent] = ordered
    return found


def _others(instance_of: dict[str, Any], paths: set[str]) -> list[str]:
    return [p for p in instance_of if p not in paths]
