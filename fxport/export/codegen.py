"""The record of a run (fxport.runtime.recording) as a Python program over ttnn.

Weight preparations (calls counted as `weights`, made once) go to `__init__`; every other call,
host op and read back goes to `forward` in the order the run issued it. Tensors are named by the
values that produced them: the model's inputs, its state_dict entries (`params[...]`), the outputs
of earlier calls. Nothing is translated here: a call is written as the run made it.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import keyword
import textwrap
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.utils._pytree as pytree

from fxport.capture.records import _source_of, module_of, target_name
from fxport.errors import FxportError
from fxport.export.grouping import MemoryName, class_code, containers, find_groups, leaves
from fxport.export.names import Namer, class_name, comment, float_literal, identifier
from fxport.runtime.recording import Entry, Handle
from fxport.values import HostValue, TTValue

COMMENT_WIDTH = 100  # comments in a method body stay within the project's 120 columns
INLINE_NUMEL = 8  # constants the rules make up to this size are written into the program


class ExportError(FxportError):
    """A run's record holds something the program cannot express."""


@dataclass
class Program:
    source: str
    weights: dict[str, torch.Tensor]  # key -> tensor, what `params[key]` reads
    per_inference: int  # ttnn calls `forward` issues (transfers and reads back included)
    once: int  # ttnn calls `__init__` issues
    class_name: str
    inputs: list[tuple[str, torch.Tensor]]  # the forward's arguments, in order
    data: dict[str, Any] = field(default_factory=dict)  # the .json beside the program


@dataclass
class Span:
    """What one entry wrote: its lines in __init__ and in forward, and its literals."""

    init: range
    forward: range
    literals: range


@dataclass
class _Scope:
    lines: list[str] = field(default_factory=list)
    namer: Namer = field(default_factory=Namer)
    last_node: Any = None
    loop_var: str = ""  # the one name every `for ... in <container>` of the scope loops with

    def each(self) -> str:
        """The loop variable, reserved on first use (a local or container named "block" then
        gets another name; loops reuse it, each binding it anew)."""
        self.loop_var = self.loop_var or self.namer("block")
        return self.loop_var


class _Writer:
    def __init__(
        self,
        ttnn: Any,
        device: Any,
        inputs: list[tuple[str, torch.Tensor]],
        params: dict[int, tuple[str, torch.Tensor]],
    ):
        self.ttnn, self.device = ttnn, device
        self.exprs: dict[int, str] = {}  # id(tensor) -> expression, torch and ttnn tensors alike
        self.scope_of: dict[int, str] = {}  # id -> "init" / "forward"
        self.params = params
        self.weights: dict[str, torch.Tensor] = {}
        self.modules: dict[str, dict[str, Any]] = {}  # instance path -> its constructor's arguments
        self.init, self.forward = _Scope(namer=Namer(("device",))), _Scope()
        self.attr_names = Namer(("device", "params", "forward"))
        self.uses_params_in_forward = False
        self.imports: set[str] = set()  # modules of the output types (a dataclass of outputs)
        self.forward_reads: set[int] = set()  # ids the forward's calls read (set by write_program)
        self.entry_scope: dict[int, str] = {}  # id(entry) -> the scope it was written in
        self.aliases: dict[int, Any] = {}  # id(stand-in) -> the value the program reads instead
        self.spans: dict[int, Span] = {}  # id(entry) -> the lines and literals it wrote
        # Writing one module instance as a class (fxport.export.grouping): the path prefix of its
        # names, the writer of the whole program (whose values become the instance's inputs), the
        # literals met (None: written as they are), and the inputs in order.
        self.prefix: str = ""
        self.outer: _Writer | None = None
        self.literals: list[tuple[str, Any]] | None = None
        self.hint = ""
        self.unit_inputs: list[int] = []
        for name, t in inputs:
            self.exprs[id(t)] = name
            self.scope_of[id(t)] = "forward"

    # -- expressions ----------------------------------------------------------------------------
    def expr(self, value: Any, scope: str) -> str:
        if isinstance(value, TTValue):
            return self._known(value.tt, scope)
        if isinstance(value, HostValue):
            return self.expr(value.tensor, scope)
        if _is_ttnn_tensor(value):
            return self._known(value, scope)
        if isinstance(value, torch.Tensor):
            return self._torch(value, scope)
        if self.literals is not None and type(value) in (int, float):
            self.literals.append((self.hint, value))
            return f"\x00{len(self.literals) - 1}\x00"
        if value is None or isinstance(value, (bool, int, str)):
            return repr(value)
        if isinstance(value, float):
            return float_literal(value)
        if isinstance(value, torch.dtype):
            return str(value)
        if isinstance(value, slice):
            return f"slice({', '.join(self.expr(v, scope) for v in (value.start, value.stop, value.step))})"
        if value is Ellipsis:
            return "..."
        if isinstance(value, torch.device):
            return repr(str(value))
        if isinstance(value, torch.memory_format):
            return str(value)
        if isinstance(value, torch.Size):
            return self.expr(tuple(value), scope)
        if isinstance(value, tuple):
            items = [self.expr(v, scope) for v in value]
            return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
        if isinstance(value, list):
            return f"[{', '.join(self.expr(v, scope) for v in value)}]"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{self.expr(k, scope)}: {self.expr(v, scope)}" for k, v in value.items()) + "}"
        if value is self.device:
            return "self.device"
        return self._ttnn_object(value, scope)

    def _input(self, key: int, scope: str) -> str | None:
        """A value of the enclosing program read by a module instance: an argument of its forward."""
        if self.outer is None or key in self.exprs or key not in self.outer.exprs:
            return None
        if scope == "init" or self.outer.scope_of[key] != "forward":
            raise ExportError(f"a module instance reads {self.outer.exprs[key]} of the enclosing program")
        name = self.forward.namer(f"x{len(self.unit_inputs)}")
        self.exprs[key], self.scope_of[key] = name, "forward"
        self.unit_inputs.append(key)
        return name

    def _known(self, tt: Any, scope: str) -> str:
        self._input(id(tt), scope)
        name = self.exprs.get(id(tt))
        if name is None:
            raise ExportError(f"a ttnn tensor {list(tt.shape)} of the run was made outside the recorded calls")
        if scope == "forward" and self.scope_of[id(tt)] == "init_local":
            name = self._keep(id(tt))
        if scope == "init" and self.scope_of[id(tt)] == "forward":
            raise ExportError(f"a weight preparation reads {name}, a value of the forward pass")
        return name

    def _keep(self, key: int) -> str:
        """A local of __init__ the forward pass reads after all (a host op on a prepared weight):
        kept as an attribute at the end of __init__, where the local is still bound."""
        name = f"self.{self.attr_names(self.exprs[key])}"
        self.init.lines.append(f"{name} = {self.exprs[key]}")
        self.exprs[key], self.scope_of[key] = name, "init"
        return name

    def _torch(self, t: torch.Tensor, scope: str) -> str:
        key = id(t)
        if key in self.aliases:
            return self.expr(self.aliases[key], scope)
        self._input(key, scope)
        if key in self.exprs:
            if scope == "forward" and self.scope_of[key] == "init_local":
                self._keep(key)
            if scope == "init" and self.scope_of[key] == "forward":
                raise ExportError(f"a weight preparation reads {self.exprs[key]}, a value of the forward pass")
            return self.exprs[key]
        root = t._base if t._base is not None else t
        if id(root) in self.params:
            name, _ = self.params[id(root)]
            self.weights[name] = root
            base = self._param(name, scope)
            if t is root:
                return base
            if t.is_contiguous() and t.numel() == root.numel():
                return f"{base}.reshape({self.expr(tuple(t.shape), scope)})"
            if t.dim() == 2 and root.dim() == 2 and t.t().is_contiguous() and t.shape == root.t().shape:
                return f"{base}.t()"
        if t.numel() <= INLINE_NUMEL and not t.is_meta:
            values = [float_literal(v) if isinstance(v, float) else repr(v) for v in t.flatten().tolist()]
            return f"torch.tensor([{', '.join(values)}], dtype={t.dtype}).reshape({self.expr(tuple(t.shape), scope)})"
        name = f"constant.{len([k for k in self.weights if k.startswith('constant.')])}"
        self.weights[name] = t.detach().clone()
        self.exprs[key] = self._param(name, scope)
        self.scope_of[key] = "init"
        return self.exprs[key]

    def _param(self, name: str, scope: str) -> str:
        key = f"prefix + {name[len(self.prefix) :]!r}" if self.prefix and name.startswith(self.prefix) else repr(name)
        if scope == "forward":
            self.uses_params_in_forward = True
            return f"self.params[{key}]"
        return f"params[{key}]"

    def _ttnn_object(self, value: Any, scope: str) -> str:
        ttnn = self.ttnn
        if isinstance(value, enum.Enum) or type(value).__name__ in (
            "DataType",
            "Layout",
            "BufferType",
            "TensorMemoryLayout",
            "UnaryOpType",
            "MathFidelity",
        ):
            kind = type(value).__name__
            if getattr(ttnn, kind, None) is type(value):
                return f"ttnn.{kind}.{value.name}"
        kind = type(value).__name__
        if kind == "MemoryConfig":
            for name in ("DRAM_MEMORY_CONFIG", "L1_MEMORY_CONFIG"):
                if value == getattr(ttnn, name):
                    if self.literals is not None:  # a module instance's placement: an argument
                        self.literals.append((self.hint, MemoryName(name.split("_")[0].lower())))
                        return f"\x00{len(self.literals) - 1}\x00"
                    return f"ttnn.{name}"
        if kind == "UnaryWithParam":
            params = list(value.params)
            args = ", ".join([self.expr(value.op_type, scope), *[float_literal(p) for p in params]])
            return f"ttnn.UnaryWithParam({args})"
        cls = getattr(ttnn, kind, None)
        if isinstance(cls, type) and type(value) is cls:
            try:
                default = cls()
            except Exception:
                default = None
            if default is not None:
                fields = []
                for attr in sorted(a for a in dir(value) if not a.startswith("_")):
                    got = getattr(value, attr)
                    if callable(got):
                        continue
                    if repr(got) != repr(getattr(default, attr)):
                        fields.append(f"{attr}={self.expr(got, scope)}")
                return f"ttnn.{kind}({', '.join(fields)})"
        raise ExportError(f"cannot write a ttnn argument of type {kind} into a program")

    # -- statements -----------------------------------------------------------------------------
    def bind(self, out: Any, scope: str, base: str, entry: Entry) -> str:
        """Assignment targets for a call's output; the tensors are named from here on."""
        if isinstance(out, (list, tuple)):
            parts = [self.bind(o, scope, base, entry) for o in out]
            return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        if isinstance(out, TTValue) or isinstance(out, torch.Tensor) or _is_ttnn_tensor(out):
            tt = out.tt if isinstance(out, TTValue) else out
            if scope == "init" and entry is not None and entry.step == "torch" and id(tt) not in self.forward_reads:
                name = self.init.namer(base)  # a host tensor only __init__ reads: a local
                self.exprs[id(tt)] = name
                self.scope_of[id(tt)] = "init_local"
                return name
            if scope == "init":
                name = f"self.{self.attr_names(base)}"
            else:
                name = self.forward.namer(base)
            self.exprs[id(tt)] = name
            self.scope_of[id(tt)] = scope
            return name
        return "_"

    def write(self, entry: Entry) -> None:
        if entry.step == "alias":  # no code: later reads of the stand-in read the value
            self.aliases[id(entry.out)] = entry.args[0]
            return
        if entry.step == "comment":  # the torch calls that follow run an fxport op on the host
            text = f"{entry.name} on the host: {comment(entry.reason)}"
            self.forward.lines += [f"# {line}" for line in textwrap.wrap(text, COMMENT_WIDTH)]
            return
        scope = "init" if entry.kind == "weights" or (entry.step == "torch" and self._all_init(entry)) else "forward"
        block = self.init if scope == "init" else self.forward
        if entry.node is not None and entry.node is not block.last_node:
            block.lines += [f"# {line}" for line in textwrap.wrap(_describe(entry.node, self.prefix), COMMENT_WIDTH)]
            block.last_node = entry.node
        self.entry_scope[id(entry)] = scope
        base = entry.node.name if entry.node is not None else entry.name
        path = module_of(entry.node)[0] if entry.node is not None else ""
        if self.prefix:  # inside a module instance: names relative to it, the same in every instance
            relative = path[len(self.prefix) :] if path.startswith(self.prefix) else ""
            base = relative or (target_name(entry.node.target).split(".")[1] if entry.node is not None else "t")
        elif scope == "init" and path:
            base = path  # weights are named after their module
        if entry.note:
            block.lines += [f"# {line}" for line in textwrap.wrap(f"NOTE: {comment(entry.note)}", COMMENT_WIDTH)]
        if entry.step == "ttnn":
            call = self._call(f"ttnn.{entry.name}", entry.args, entry.kwargs, scope)
            out = entry.out
            # conv2d hands back its prepared weights: later inferences take those (as the run did)
            prepares = entry.name == "conv2d" and entry.kwargs.get("return_weights_and_bias")
            if prepares and isinstance(out, (list, tuple)):
                y, (w, b) = out
                w = self._rebind(entry.kwargs.get("weight_tensor"), w)
                b = self._rebind(entry.kwargs.get("bias_tensor"), b)
                target = f"{self.bind(y, scope, base, entry)}, ({w}, {b})"
            else:
                target = self.bind(out, scope, base, entry)
        elif entry.step == "to_torch":
            call = f"ttnn.to_torch({self.expr(entry.args[0], scope)})"
            target = self.bind(entry.out, scope, base, entry)
        elif entry.step == "torch":
            call = self._torch_call(entry, scope)
            target = self.bind(entry.out, scope, base, entry)
        else:
            op = entry.node.target if entry.node is not None else None
            if not isinstance(op, torch._ops.OpOverload) or op.namespace != "aten":
                raise ExportError(f"host op {entry.name} is not an aten op a program can call")
            if entry.reason:
                block.lines += [
                    f"# {line}" for line in textwrap.wrap(f"on the host: {comment(entry.reason)}", COMMENT_WIDTH)
                ]
            call = self._call(f"torch.ops.aten.{op._opname}.{op._overloadname}", entry.args, entry.kwargs, scope)
            target = self.bind(entry.out, scope, base, entry)
        block.lines.append(f"{target} = {call}" if target.strip("(),_ ") else call)

    def write_entry(self, entry: Entry) -> None:
        before = (len(self.init.lines), len(self.forward.lines), len(self.literals or ()))
        try:
            self.write(entry)
            self.spans[id(entry)] = Span(
                range(before[0], len(self.init.lines)),
                range(before[1], len(self.forward.lines)),
                range(before[2], len(self.literals or ())),
            )
        except ExportError as exc:
            where = f" (node {entry.node.name})" if entry.node is not None else ""
            raise ExportError(f"ttnn.{entry.name}{where}: {exc}") from None

    def _all_init(self, entry: Entry) -> bool:
        """A torch function of weights only (a weight transposed before its upload) is made once."""
        for value in leaves((entry.args, entry.kwargs)):
            if isinstance(value, TTValue):
                value = value.tt
            if isinstance(value, HostValue):
                value = value.tensor
            value = self.aliases.get(id(value), value)
            key = id(value)
            if key in self.exprs:
                if self.scope_of[key] == "forward":
                    return False
            elif isinstance(value, torch.Tensor):
                root = value._base if value._base is not None else value
                if id(root) not in self.params:
                    return False
        return True

    def _torch_call(self, entry: Entry, scope: str) -> str:
        fn, name = entry.fn, getattr(entry.fn, "__name__", "")
        owner = getattr(fn, "__self__", None)  # a property read (`weight.T`): its getter
        if name == "__get__" and getattr(owner, "__objclass__", None) is torch._C.TensorBase and entry.args:
            attr = getattr(owner, "__name__", "")
            if attr.isidentifier() and getattr(torch.Tensor, attr, None) is owner:
                return f"{self.expr(entry.args[0], scope)}.{attr}"
        if getattr(torch.Tensor, name, None) is fn and entry.args:
            this, rest = self.expr(entry.args[0], scope), entry.args[1:]
            if name == "__getitem__":
                return f"{this}[{self.expr(rest[0], scope)}]"
            if not name.startswith("__"):
                return self._call(f"{this}.{name}", rest, entry.kwargs, scope)
            return self._call(f"torch.Tensor.{name}", entry.args, entry.kwargs, scope)
        module = getattr(fn, "__module__", None) or "torch"
        if getattr(torch, name, None) is fn:
            return self._call(f"torch.{name}", entry.args, entry.kwargs, scope)
        if module.startswith("torch.") and all(p.isidentifier() for p in module.split(".")) and name.isidentifier():
            import importlib

            if getattr(importlib.import_module(module), name, None) is fn:
                return self._call(f"{module}.{name}", entry.args, entry.kwargs, scope)
        raise ExportError(f"a rule applied {name or fn!r}, which the program cannot name")

    def _rebind(self, arg: Any, out: Any) -> str:
        """The prepared weight replaces the host weight under the same attribute."""
        if out is None:
            return "_"
        tt = out.tt if isinstance(out, TTValue) else out
        key = id(arg.tt) if isinstance(arg, TTValue) else id(arg) if isinstance(arg, Handle) else None
        name = self.exprs.get(key) if key is not None else None
        if name is None or not name.startswith("self."):
            return self.bind(out, "forward", "weights", None)
        self.exprs[id(tt)] = name
        self.scope_of[id(tt)] = "init"
        return name

    def _call(self, fn: str, args: tuple, kwargs: dict, scope: str) -> str:
        self.hint = "size"
        parts = [self.expr(a, scope) for a in args]
        for k, v in kwargs.items():
            self.hint = k
            parts.append(f"{identifier(k)}={self.expr(v, scope)}")
        return f"{fn}({', '.join(parts)})"


def _needed(entries: list[Entry], outputs: Any) -> list[Entry]:
    """The entries the program needs: every call and host op, and the torch functions whose
    results something later reads (a rule's measurements of a value are left out)."""
    used = {id(v) for v in leaves(outputs)}
    kept = []
    for entry in reversed(entries):
        outs = [v.tt if isinstance(v, TTValue) else v for v in leaves(entry.out)]
        if entry.step in ("torch", "alias") and not any(id(o) in used for o in outs):
            continue
        kept.append(entry)
        for v in leaves((entry.args, entry.kwargs)):
            for x in (v, getattr(v, "tt", None), getattr(v, "tensor", None)):
                if x is not None:
                    used.add(id(x))
    return kept[::-1]


def _describe(node: Any, prefix: str = "") -> str:
    path, cls = module_of(node)
    where = _source_of(node)
    if prefix:  # inside a module's class: the path below it (the same in every instance)
        path = path[len(prefix) :] if path.startswith(prefix) else ""
        path = path or "self"
    text = f"{path or '(top)'}"
    if cls:
        text += f" ({cls})"
    text += f": {target_name(node.target)}"
    if where:
        text += f", {where}"
    return comment(text)


def _is_ttnn_tensor(x: Any) -> bool:
    if isinstance(x, Handle):
        return True
    return not isinstance(x, torch.Tensor) and type(x).__name__ == "Tensor" and hasattr(x, "storage_type")


def write_program(
    entries: list[Entry],
    *,
    ttnn: Any,
    device: Any,
    model_name: str,
    inputs: list[tuple[str, torch.Tensor]],
    params: dict[int, tuple[str, torch.Tensor]],
    outputs: Any,
    header: str,
    group: bool = True,
) -> Program:
    """The program for one run's record. `inputs`: (name, tensor) of the forward's arguments;
    `params`: id(tensor) -> (key, tensor) of the constants; `outputs`: the run's outputs."""
    needed = _needed(entries, outputs)
    _name_folded(needed, params)
    forward_reads = {id(v) for v in leaves(outputs)}
    for entry in needed:
        if entry.kind != "weights" and entry.step != "torch":
            for v in leaves((entry.args, entry.kwargs)):
                forward_reads.add(id(v.tt if isinstance(v, TTValue) else v))
    once = sum(1 for e in needed if e.step in ("ttnn", "to_torch") and e.kind == "weights")
    per_inference = sum(1 for e in needed if e.step in ("ttnn", "to_torch") and e.kind != "weights")

    def writer_for(prefix: str = "") -> _Writer:
        writer = _Writer(ttnn, device, inputs if not prefix else [], params)
        writer.forward_reads, writer.prefix = forward_reads, prefix
        return writer

    flat = writer_for()
    for entry in needed:
        flat.write_entry(entry)
    groups, unit_of = ({}, {})
    if group:
        outs = {id(getattr(v, "tt", v)) for v in leaves(outputs)}
        groups, unit_of = find_groups(needed, flat.entry_scope, flat, writer_for, outs)
    if not groups:
        writer, classes = flat, []
    else:
        writer, classes = _grouped(needed, flat.entry_scope, groups, unit_of, writer_for)
    output_leaves, spec = pytree.tree_flatten(outputs)
    result = _structure(outputs, writer)
    if result is None:
        values = ", ".join(writer.expr(leaf, "forward") for leaf in output_leaves)
        try:
            dumped = pytree.treespec_dumps(spec)
        except TypeError as exc:  # a library's container (a KV cache) torch cannot write as data
            raise ExportError(
                f"the model's outputs hold {', '.join(sorted(_library_types(spec)))}, whose structure a "
                "program cannot rebuild without the model's library: export a configuration that returns plain tensors "
                "(for a Hugging Face model, use_cache=False)"
            ) from exc
        result = f"pytree.tree_unflatten([{values}], pytree.treespec_loads({dumped!r}))"
    cls = class_name(model_name)
    source = _render(writer, cls, inputs, result, header, classes)
    data = {
        "weights": {k: [list(t.shape), str(t.dtype).removeprefix("torch.")] for k, t in sorted(writer.weights.items())},
        "modules": dict(sorted(writer.modules.items())),
    }
    return Program(source, writer.weights, per_inference, once, cls, inputs, data)


def _name_folded(entries: list[Entry], params: dict[int, tuple[str, torch.Tensor]]) -> None:
    """Constants the graph passes made (batch norm folded into a convolution) are named after the
    module that reads them: `layer1.0.conv1.folded.0` (its weight), `.folded.1` (its bias)."""
    counts: dict[str, int] = {}
    for entry in entries:
        path = module_of(entry.node)[0] if entry.node is not None else ""
        if not path:
            continue
        for v in leaves((entry.args, entry.kwargs)):
            t = v.tensor if isinstance(v, HostValue) else v
            if not isinstance(t, torch.Tensor):
                continue
            root = t._base if t._base is not None else t
            key, tensor = params.get(id(root), ("", None))
            if key.startswith("folded."):
                n = counts.get(path, 0)
                counts[path] = n + 1
                params[id(root)] = (f"{path}.folded.{n}", tensor)


def _grouped(
    needed: list[Entry], scopes: dict[int, str], groups: dict, unit_of: dict[int, str], writer_for
) -> tuple[_Writer, list[str]]:
    """The program with each grouped module instance built in __init__ and called in forward;
    the instances of an nn.Sequential or nn.ModuleList as a list (`self.layer1[0]`), called in a
    loop when they chain."""
    writer = writer_for()
    instance_of = {inst.path: (g, inst) for g in groups.values() for inst in g.instances}
    lists = containers(needed, instance_of)
    chains = {parent for parent, paths in lists.items() if _chains(needed, scopes, unit_of, instance_of, paths)}
    attrs: dict[str, str] = {}
    called: set[str] = set()
    for entry in needed:
        path = unit_of.get(id(entry))
        if path is None:
            writer.write_entry(entry)
            continue
        g, inst = instance_of[path]
        parent = _parent(path, lists)
        if path not in attrs:
            if parent is None:
                attrs[path] = f"self.{writer.attr_names(path)}"
                writer.init.lines.append(f"{attrs[path]} = {_build(g, path)}")
            else:
                name, paths = f"self.{writer.attr_names(parent)}", lists[parent]
                attrs.update({p: f"{name}[{i}]" for i, p in enumerate(paths)})
                builds = [_build(instance_of[p][0], p) for p in paths]
                if len({instance_of[p][0].name for p in paths}) == 1:  # one class: built in a loop
                    cls, args = g.name, f"**MODULES[f'{parent}.{{i}}']" if g.arguments else ""
                    each = f"{cls}(device, params, f'{parent}.{{i}}.'{', ' + args if args else ''})"
                    builds = [f"{each} for i in range({len(paths)})"]
                    writer.init.lines.append(f"{name} = [{builds[0]}]")
                else:
                    writer.init.lines.append(f"{name} = [{', '.join(builds)}]")
            for p in paths if parent is not None else [path]:
                writer.weights.update(instance_of[p][1].writer.weights)
                writer.modules[p] = instance_of[p][0].values[p]
        if scopes.get(id(entry)) != "forward" or path in called:
            continue
        if parent in chains:  # x = block(x) for each block of the container
            paths = lists[parent]
            called.update(paths)
            first, last = instance_of[paths[0]][1], instance_of[paths[-1]][1]
            each = writer.forward.each()  # before the output's name, which may be "block" too
            name = writer.forward.namer(parent)
            writer.exprs[last.outputs[0]], writer.scope_of[last.outputs[0]] = name, "forward"
            kinds = ", ".join(dict.fromkeys(comment(instance_of[p][1].cls) for p in paths))
            writer.forward.lines += [
                f"# {comment(parent)} ({kinds})",
                f"{name} = {writer.exprs[first.inputs[0]]}",
                f"for {each} in {attrs[paths[0]][: -len('[0]')]}:",
                f"    {name} = {each}({name})",
            ]
            continue
        called.add(path)
        args = ", ".join(writer.exprs[k] for k in inst.inputs)
        names = [writer.forward.namer(path) for _ in inst.outputs]
        for k, name in zip(inst.outputs, names, strict=True):
            writer.exprs[k], writer.scope_of[k] = name, "forward"
        writer.forward.lines.append(f"# {comment(path)} ({comment(inst.cls)})")
        call = f"{attrs[path]}({args})"
        writer.forward.lines.append(f"{', '.join(names)} = {call}" if names else call)
    classes = []
    for g in groups.values():
        first = g.base
        where = comment(", ".join(i.path for i in g.instances), 300)
        head = [f"# {line}" for line in textwrap.wrap(f"{first.cls} at {where}", COMMENT_WIDTH)]
        signature = ", ".join(["self", "device", "params", "prefix", *(["*", *g.arguments] if g.arguments else [])])
        init = ["self.device = device", *(f"self.{a} = {a}" for a in g.arguments)]
        if any(i.uses_params for i in g.instances):
            init.append("self.params = params")
        own_init, body = class_code(g)
        init += own_init
        inputs = ", ".join(["self", *(first.writer.exprs[k] for k in first.inputs)])
        returned = ", ".join(first.output_names)
        body.append(f"return {returned}" if returned else "return None")
        classes.append(
            "\n".join(
                [
                    *head,
                    f"class {g.name}:",
                    f"    def __init__({signature}):",
                    *(f"        {line}" for line in init),
                    "",
                    f"    def forward({inputs}):",
                    *(f"        {line}" for line in body),
                    "",
                    "    __call__ = forward",
                    "",
                    "",
                ]
            )
        )
    return writer, classes


def _build(g: Any, path: str) -> str:
    """An instance's construction: its prefix, and its arguments from the program's data file."""
    args = f", **MODULES[{path!r}]" if g.arguments else ""
    return f"{g.name}(device, params, {path + '.'!r}{args})"


def _parent(path: str, lists: dict[str, list[str]]) -> str | None:
    parent = path.rpartition(".")[0]
    return parent if parent in lists else None


def _chains(needed, scopes, unit_of, instance_of, paths: list[str]) -> bool:
    """The container's instances run one after the other, each on the previous one's output only."""
    insts = [instance_of[p][1] for p in paths]
    if any(len(i.inputs) != 1 or len(i.outputs) != 1 for i in insts):
        return False
    if any(b.inputs[0] != a.outputs[0] for a, b in itertools.pairwise(insts)):
        return False
    members = set(paths)
    inner = {i.outputs[0] for i in insts[:-1]}
    run = [unit_of.get(id(e)) for e in needed if scopes.get(id(e)) == "forward"]
    where = [k for k, u in enumerate(run) if u in members]
    if any(u not in members for u in run[where[0] : where[-1] + 1]) or [u for u in run if u in members] != sorted(
        (u for u in run if u in members), key=paths.index
    ):
        return False
    for e in needed:  # the values between blocks are read by the next block only
        if unit_of.get(id(e)) not in members:
            for v in leaves((e.args, e.kwargs)):
                if id(getattr(v, "tt", v)) in inner:
                    return False
    return True


def _library_types(spec: pytree.TreeSpec) -> set[str]:
    """The names of the containers in an output structure other than tuples, lists and dicts."""
    own = set() if spec.type in (None, tuple, list, dict) else {spec.type.__name__}
    return own.union(*(_library_types(c) for c in spec.children()))


def _structure(value: Any, writer: _Writer) -> str | None:
    """The outputs as a literal when they are tensors in tuples, lists and dicts."""
    if isinstance(value, (torch.Tensor, int, float, bool)) or value is None:
        return writer.expr(value, "forward")
    if type(value) in (tuple, list):
        items = [_structure(v, writer) for v in value]
        if any(i is None for i in items):
            return None
        if type(value) is list:
            return f"[{', '.join(items)}]"
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        module, qualname = cls.__module__, cls.__qualname__
        if not all(p.isidentifier() and not keyword.iskeyword(p) for p in (*module.split("."), qualname)):
            return None
        items = {f.name: _structure(getattr(value, f.name), writer) for f in dataclasses.fields(value)}
        if any(i is None and getattr(value, k) is not None for k, i in items.items()):
            return None
        writer.imports.add(module)
        return f"{module}.{qualname}(" + ", ".join(f"{k}={v}" for k, v in items.items()) + ")"
    if type(value) is dict and all(isinstance(k, str) for k in value):
        items = {k: _structure(v, writer) for k, v in value.items()}
        if any(i is None for i in items.values()):
            return None
        return "{" + ", ".join(f"{k!r}: {v}" for k, v in items.items()) + "}"
    return None


def _render(
    writer: _Writer, cls: str, inputs: list[tuple[str, torch.Tensor]], result: str, header: str, classes: list[str]
) -> str:
    init = ["self.device = device"]
    if writer.uses_params_in_forward:
        init.append("self.params = params")
    init += writer.init.lines
    forward = writer.forward.lines + [f"return {result}"]
    args = ", ".join(["self", *(name for name, _ in inputs)])
    body_init = "\n".join(f"        {line}" for line in init)
    body_forward = "\n".join(f"        {line}" for line in forward)
    modules = {"torch", "ttnn", *writer.imports}
    lines = [f"import {m}" for m in modules] + (["import torch.utils._pytree as pytree"] if "pytree." in result else [])
    imports = "import json\nfrom pathlib import Path\n\n" + "\n".join(sorted(lines))
    header = "\n".join(textwrap.wrap(header, 100))
    memory = ""
    if any("MEMORY[" in c for c in classes):  # a module's placement varies between its instances
        memory = 'MEMORY = {"dram": ttnn.DRAM_MEMORY_CONFIG, "l1": ttnn.L1_MEMORY_CONFIG}\n'

    return f'''"""{header}
"""

{imports}
from safetensors.torch import load_file

# The program's data (the .json beside it): the weights it reads, by the model's state_dict
# names (constants the graph passes computed, such as batch norm folded into a convolution, as
# <module>.folded.N), with their shapes and dtypes; each module instance's constructor arguments.
DATA = json.loads(Path(__file__).with_suffix(".json").read_text())
WEIGHTS = {{key: (tuple(shape), dtype) for key, (shape, dtype) in DATA["weights"].items()}}
MODULES = DATA["modules"]
{memory}

def load_weights(path):
    """The weights from a safetensors file, checked against the names and shapes above."""
    return check_weights(load_file(str(path)))


def check_weights(params):
    """`params` (a state_dict-like mapping) with every weight the program reads, of its shape."""
    params = dict(params)
    for key, (shape, dtype) in WEIGHTS.items():
        if key not in params:
            raise KeyError(f"weight {{key!r}} is missing")
        if tuple(params[key].shape) != shape:
            raise ValueError(f"weight {{key!r}} has shape {{tuple(params[key].shape)}}, expected {{shape}}")
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"weight {{key!r}}: {{dtype!r}} is not a torch dtype")
        params[key] = params[key].to(getattr(torch, dtype))
    return params


{"".join(classes)}class {cls}:
    def __init__(self, device, params):
{body_init}

    def forward({args}):
{body_forward}

    __call__ = forward
'''
