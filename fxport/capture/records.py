"""Op records: one per aten node of a captured graph, with everything a user asks about it."""

from __future__ import annotations

import operator
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import fx


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str  # torch dtype name without the "torch." prefix

    @classmethod
    def of(cls, value: Any) -> "TensorSpec | None":
        if isinstance(value, torch.Tensor):
            return cls(tuple(int(d) for d in value.shape), str(value.dtype).removeprefix("torch."))
        return None

    def __str__(self) -> str:
        return f"{list(self.shape)}:{self.dtype}"

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class OpRecord:
    index: int  # position among the op nodes of the capture (graph order)
    node: str  # fx node name, unique within its graph
    graph: str  # which captured graph the node belongs to ("main" unless capture was split)
    target: str  # "aten.linear.default"
    op: str  # "aten.linear"
    overload: str  # "default"
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    args: str  # the non-tensor arguments, rendered compactly ("dim=1, keepdim=True")
    module: str  # module path from nn_module_stack ("layer1.0.conv1"), "" at top level
    module_type: str  # class name of that module ("Conv2d"; the model's class at top level)
    source: str  # innermost source location ("torchvision/models/resnet.py:143 in forward")
    repeat: int = 1  # how many times this node runs per model call (see capture fast paths)
    # The call, JSON-able, to replay the op (generated tests): {"args": [...], "kwargs": {...}}
    # with tensors as {"tensor": i} (index into `inputs`) and dtypes as {"dtype": "float32"}.
    call: dict | None = None
    # The node has no module of its own (made by a decomposition or a graph pass): `module` is the
    # nearest enclosing one, inferred from its neighbours (see attribute_modules).
    module_inferred: bool = False

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "node": self.node,
            "graph": self.graph,
            "target": self.target,
            "op": self.op,
            "overload": self.overload,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "args": self.args,
            "module": self.module,
            "module_type": self.module_type,
            "source": self.source,
            "repeat": self.repeat,
            "call": self.call,
            "module_inferred": self.module_inferred,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "OpRecord":
        """A record read back from an ops.json: every field checked (a ValueError naming the
        first wrong one), since anyone may have written the file."""
        if not isinstance(d, dict):
            raise ValueError(f"an op record is {type(d).__name__}, not an object")
        for name, kind in _RECORD_FIELDS.items():
            if name in d and (not isinstance(d[name], kind) or (kind is int and isinstance(d[name], bool))):
                raise ValueError(f"op record field {name!r} is {type(d[name]).__name__}")
        return cls(**{**d, "inputs": _specs(d["inputs"]), "outputs": _specs(d["outputs"])})


_RECORD_FIELDS = {
    "index": int,
    "node": str,
    "graph": str,
    "target": str,
    "op": str,
    "overload": str,
    "inputs": list,
    "outputs": list,
    "args": str,
    "module": str,
    "module_type": str,
    "source": str,
    "repeat": int,
    "call": (dict, type(None)),
    "module_inferred": bool,
}


def _specs(xs: list) -> tuple[TensorSpec, ...]:
    out = []
    for x in xs:
        shape = x.get("shape") if isinstance(x, dict) else None
        if (
            not isinstance(shape, list)
            or not all(type(n) is int and 0 <= n < 2**63 for n in shape)
            or not isinstance(x.get("dtype"), str)
        ):
            raise ValueError(f"a tensor spec {str(x)[:60]} is not {{shape: [ints], dtype: str}}")
        out.append(TensorSpec(tuple(shape), x["dtype"]))
    return tuple(out)


# Nodes that are bookkeeping, not operators: tuple indexing and export's metadata assertions.
_SKIPPED_TARGETS = {
    operator.getitem,
    torch.ops.aten._assert_tensor_metadata.default,
    torch.ops.aten.sym_constrain_range_for_size.default,
}


def is_op_node(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target not in _SKIPPED_TARGETS


def target_name(target: Any) -> str:
    """'aten.linear.default' for an OpOverload; the qualified name for anything else."""
    if isinstance(target, torch._ops.OpOverload):
        return f"{target.namespace}.{target._opname}.{target._overloadname}"
    return getattr(target, "__qualname__", None) or str(target)


def split_target(name: str) -> tuple[str, str]:
    """'aten.linear.default' -> ('aten.linear', 'default'); a name without overload -> (name, '')."""
    if name.count(".") >= 2:
        op, _, overload = name.rpartition(".")
        return op, overload
    return name, ""


def records_from_graph(
    graph: fx.Graph, graph_label: str = "main", start: int = 0, repeats: dict[str, int] | None = None
) -> list[OpRecord]:
    """One record per op node. `repeats` maps module paths traced once but run n times to n."""
    records = []
    attribute_modules(graph)
    for node in graph.nodes:
        if not is_op_node(node):
            continue
        name = target_name(node.target)
        op, overload = split_target(name)
        module, module_type = module_of(node)
        records.append(
            OpRecord(
                index=start + len(records),
                node=node.name,
                graph=graph_label,
                target=name,
                op=op,
                overload=overload,
                inputs=tuple(_tensor_specs(_input_values(node))),
                outputs=tuple(_tensor_specs(_flatten(node.meta.get("val")))),
                args=_render_args(node),
                module=module,
                module_type=module_type,
                source=_source_of(node),
                repeat=_repeat_of(node, repeats) if repeats else 1,
                call=_call_of(node),
                module_inferred=module_inferred(node),
            )
        )
    return records


def _call_of(node: fx.Node) -> dict:
    counter = iter(range(1 << 30))

    def encode(value: Any) -> Any:
        if isinstance(value, fx.Node):
            val = value.meta.get("val")
            return {"tensor": next(counter)} if isinstance(val, torch.Tensor) else encode(val)
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        if isinstance(value, torch.dtype):
            return {"dtype": str(value).removeprefix("torch.")}
        if isinstance(value, (torch.device, torch.layout, torch.memory_format)):
            return {"repr": str(value)}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        return {"repr": repr(value)}

    # Same traversal order as _input_values, so tensor indices match `inputs`.
    args = encode(list(node.args))
    kwargs = {k: encode(v) for k, v in node.kwargs.items()}
    return {"args": args, "kwargs": kwargs}


def _repeat_of(node: fx.Node, repeats: dict[str, int]) -> int:
    """Export keys a module's k-th call (k > 0) as "name@k": only the first call is repeated."""
    n = 1
    for key, (path, _) in (node.meta.get("nn_module_stack") or {}).items():
        if "@" not in key:
            n *= repeats.get(_normalise_path(path), 1)
    return n


def _flatten(value: Any) -> Iterable[Any]:
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _flatten(v)
    else:
        yield value


def _input_values(node: fx.Node) -> Iterable[Any]:
    for arg in _flatten(list(node.args) + list(node.kwargs.values())):
        if isinstance(arg, fx.Node):
            yield arg.meta.get("val")


def _tensor_specs(values: Iterable[Any]) -> Iterable[TensorSpec]:
    for v in values:
        spec = TensorSpec.of(v)
        if spec is not None:
            yield spec


def _render_value(value: Any) -> str | None:
    """Compact text for a non-tensor argument; None for tensors (they are listed as inputs)."""
    if isinstance(value, fx.Node):
        val = value.meta.get("val")
        return None if isinstance(val, torch.Tensor) else repr(val)
    if isinstance(value, (list, tuple)):
        parts = [_render_value(v) for v in value]
        if all(p is None for p in parts):
            return None
        return "[" + ", ".join("T" if p is None else p for p in parts) + "]"
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, float):
        return repr(float(f"{value:.6g}"))
    return repr(value)


def _render_args(node: fx.Node) -> str:
    parts = []
    schema = getattr(node.target, "_schema", None)
    names = [a.name for a in schema.arguments] if schema is not None else []
    for i, arg in enumerate(node.args):
        text = _render_value(arg)
        if text is not None:
            parts.append(f"{names[i]}={text}" if i < len(names) else text)
    for key, arg in node.kwargs.items():
        text = _render_value(arg)
        if text is not None:
            parts.append(f"{key}={text}")
    return ", ".join(parts)


# node.meta key: the (path, class name) stack attribute_modules inferred for a node without its own.
INFERRED_MODULE = "fxport_inferred_module"


def module_of(node: fx.Node) -> tuple[str, str]:
    """(path, class name) of the innermost module the node was traced in; for a node traced in
    none (see attribute_modules), the nearest enclosing one; ("", "") when nothing is known."""
    own = node.meta.get("nn_module_stack")
    if own:
        path, cls = next(reversed(own.values()))
        return _normalise_path(path), _class_name(cls)
    inferred = node.meta.get(INFERRED_MODULE)
    return tuple(inferred[-1]) if inferred else ("", "")


def module_inferred(node: fx.Node) -> bool:
    """True when module_of(node) is inferred, not the node's own."""
    return not node.meta.get("nn_module_stack") and bool(node.meta.get(INFERRED_MODULE))


def _own_stack(node: fx.Node) -> tuple[tuple[str, str], ...]:
    return tuple(
        (_normalise_path(path), _class_name(cls)) for path, cls in (node.meta.get("nn_module_stack") or {}).values()
    )


def _stack(node: fx.Node) -> tuple[tuple[str, str], ...]:
    return _own_stack(node) or tuple(node.meta.get(INFERRED_MODULE) or ())


def _class_name(cls: Any) -> str:
    name = cls if isinstance(cls, str) else getattr(cls, "__qualname__", str(cls))
    return name.rpartition(".")[2]


def attribute_modules(graph: fx.Graph) -> int:
    """Give every op node traced in no module (nodes a decomposition or a graph pass creates,
    pieces of a dynamo-split graph) the nearest enclosing module: the deepest module stack its
    producers and consumers share (their own stacks, or producers' inferred ones: one walk in
    graph order), else the root model (path "", the model's class when any node names it). The
    stack goes into node.meta[INFERRED_MODULE], which module_of reads; returns how many nodes."""
    root: tuple[tuple[str, str], ...] = ()
    for node in graph.nodes:
        stack = _own_stack(node)
        if stack and stack[0][0] == "":
            root = stack[:1]  # export's stacks start with the model itself
            break
    count = 0
    for node in graph.nodes:
        if not is_op_node(node) or node.meta.get("nn_module_stack"):
            continue
        stacks = [s for s in (*(_stack(u) for u in node.all_input_nodes), *(_own_stack(u) for u in node.users)) if s]
        shared = stacks[0] if stacks else ()
        for s in stacks[1:]:
            k = 0
            while k < min(len(shared), len(s)) and shared[k][0] == s[k][0]:
                k += 1
            shared = shared[:k]
        node.meta[INFERRED_MODULE] = shared or root or (("", ""),)
        count += 1
    return count


def module_paths(node: fx.Node) -> list[str]:
    """Paths of every module on the node's call stack, outermost first."""
    return [path for path, _ in _stack(node)]


def _normalise_path(path: str) -> str:
    # Dynamo-captured graphs name paths like "L['self'].layer1[0]": normalise to "layer1.0".
    path = re.sub(r"^L\['self'\]\.?|^L__self___?", "", str(path))
    path = re.sub(r"\[(\d+)\]", r".\1", path).replace("._modules['", ".").replace("']", "")
    return path.strip(".")


_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<fn>\S+)')


def _source_of(node: fx.Node) -> str:
    frames = _FRAME.findall(node.meta.get("stack_trace") or "")
    if not frames:
        return ""
    file, line, fn = frames[-1]
    return f"{_short_path(file)}:{line} in {fn}"


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "dist-packages/"):
        if marker in path:
            return path.split(marker, 1)[1]
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel
