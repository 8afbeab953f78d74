"""A content-addressed, on-disk cache of captured programs, for verdict runs (meta weights).

Capture is most of a warm sweep entry's time (export + decomposition: 3 s for resnet50, 27 s
for PI0), and the same model at the same inputs captures to the same program every time. A hit
loads the program in about a third of the time.

Key (`capture_key`): everything the capture depends on.
- the model: its name (zoo name or `module:callable`), `--model-arg`s, the module tree's text
  (classes and their configuration, `repr(model)`), every parameter and buffer (name, shape,
  stride, dtype, device; the bytes of any that hold values) and the files the model's code comes
  from: every package a submodule's class is defined in and the module of a `module:callable`
  (installed distributions by name and version, anything else by the content of its .py files);
- the inputs: every tensor leaf (path, shape, stride, dtype, device; bytes if it holds values),
  the other leaves' values and the pytree structure of (args, kwargs);
- the capture: the folded submodules (`repeated`), the ops kept whole (`keep`), the decomposition
  table, fxport's capture code (the .py files of this package), torch's version and Python's.

Value: the program as torch's export serde JSON (graph, node meta with shapes, dtypes, module
stacks and stack traces, signature, call specs), its parameters, buffers and constants as specs
(meta) or bytes (real, small), the capture's problems and folded-call counts. Records, input and
output leaves are recomputed from the program and the inputs, as a fresh capture computes them.

Only programs whose weights are all on meta, or small and real, are stored; and only single-graph
exports (`method == "export"`): the dynamo fallback runs the model's Python and is never cached.

Nothing read is trusted. An entry is used only if it parses, carries this exact key, and passes
`_check_program`: no symbolic shapes or range constraints (the deserializer parses those with
sympy, which evaluates text), no custom objects, subgraphs or operator arguments, every node
target an aten OpOverload or `operator.getitem` (resolved by name, never evaluated), every name an
identifier and no string with a line-breaking control character (fx generates Python source from
names and stack-trace summaries). Tensors are rebuilt from shapes and dtypes (dtype by name from an
allow-list; bytes with `torch.frombuffer`); nothing goes through pickle or `torch.load`. A damaged,
foreign or mismatching entry is ignored (one line on stderr), and the fresh capture rewrites it.
Writes are atomic (fxport.durable: temp file + rename), so concurrent writers of one key leave
one whole entry.

The model is still built on a hit (on meta: 0.1-0.3 s for the zoo's largest): the key holds its
module tree, parameters and buffers, which is what makes a stale entry impossible to hit when a
configuration changes without the source changing.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import re
import sys
import time
import types
import typing
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch._export.serde import schema as serde_schema
from torch._export.serde import serialize as serde
from torch._export.serde.union import _Union as _SchemaUnion
from torch.utils import _pytree as pytree

from fxport.capture.decompositions import decomposition_table
from fxport.capture.engine import Capture, CapturedGraph, CaptureProblem, output_leaves
from fxport.capture.pytrees import input_leaves
from fxport.capture.records import records_from_graph
from fxport.durable import OutputError, not_private, read_regular, subdir, write_text

SCHEMA = "fxport.capture/1"
MAX_DATA_BYTES = 1 << 20  # a real (non-meta) weight or constant larger than this: not cached
_CAPTURE_CODE = Path(__file__).parent
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BREAKS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]")  # every control char but \t, \n
# Serde argument kinds that carry code-like content (sympy text, scripts, subgraphs, callables).
_FORBIDDEN_KEYS = {
    "as_expr",
    "expr_str",
    "as_custom_obj",
    "as_graph",
    "as_operator",
    "as_sym_int",
    "as_sym_ints",
    "as_sym_bool",
    "as_sym_bools",
    "as_sym_float",
    "as_sym_floats",
}
_DTYPES = {
    str(d).removeprefix("torch."): d
    for d in (
        torch.float32,
        torch.float64,
        torch.float16,
        torch.bfloat16,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.int8,
        torch.uint8,
        torch.bool,
        torch.complex64,
    )
}


class Uncacheable(Exception):
    """A capture (or a model) this cache cannot represent exactly: it is captured afresh."""


class Rejected(Exception):
    """An entry read from disk that is not used: damaged, foreign, or of another key."""


@dataclass
class CaptureCacheStats:
    hits: int = 0
    misses: int = 0  # captured afresh and stored
    uncacheable: int = 0  # captured afresh, not stored (see Uncacheable)
    rejected: int = 0  # entries on disk ignored (and rewritten)

    def to_dict(self) -> dict:
        lookups = self.hits + self.misses + self.uncacheable
        return {**asdict(self), "hit_rate": round(self.hits / lookups, 4) if lookups else 0.0}

    def add(self, other: "CaptureCacheStats | dict") -> None:
        other = other if isinstance(other, dict) else asdict(other)
        for k in asdict(self):
            setattr(self, k, getattr(self, k) + int(other.get(k, 0)))


@dataclass
class CaptureCache:
    root: Path
    stats: CaptureCacheStats = field(default_factory=CaptureCacheStats)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        why = not_private(self.root)
        self.read_only = why is not None  # others can write it: read (entries are validated), never write
        if why:
            print(f"fxport: note: cache {self.root} is used read-only: {why}", file=sys.stderr)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.json"

    def load(self, material: dict, inputs: tuple, kwargs: dict, name: str) -> Capture | None:
        """The cached capture for `material`, or None (a miss, or an entry not used)."""
        digest = key_digest(material)
        path = self.path(digest)
        try:
            raw = read_regular(path, limit=1 << 30)
        except OSError:
            return None
        start = time.perf_counter()
        try:
            cap = _decode(json.loads(raw), material, inputs, kwargs, name)
        except Exception as exc:  # anything wrong with what was read: never trusted, rewritten
            self.stats.rejected += 1
            print(
                f"fxport: note: capture cache entry {path} ignored ({_why(exc)}); the fresh capture rewrites it",
                file=sys.stderr,
            )
            return None
        cap.seconds = time.perf_counter() - start
        self.stats.hits += 1
        return cap

    def store(self, material: dict, cap: Capture) -> None:
        try:
            text = json.dumps(_encode(material, cap), sort_keys=True, allow_nan=False)
        except Exception:  # Uncacheable, or a form the serializer refuses: only costs speed
            self.stats.uncacheable += 1
            return
        self.stats.misses += 1
        path = self.path(key_digest(material))
        if self.read_only:
            return
        with contextlib.suppress(OSError, OutputError):  # a cache that cannot be written only costs speed
            subdir(self.root, path.parent.name)  # never through a shard folder that is a link
            write_text(path, text)  # temp file + rename: concurrent writers leave one whole entry


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, Rejected) else text


def key_digest(material: dict) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


# -- the key ----------------------------------------------------------------------------------------


def capture_key(
    name: str,
    model: nn.Module,
    inputs: tuple,
    kwargs: dict,
    repeated: tuple[str, ...],
    keep: tuple,
    model_args: dict | None = None,
) -> dict:
    """The key material of capturing `model(*inputs, **kwargs)`; Uncacheable when some part of it
    has no stable form."""
    modules = {type(m).__module__ for m in model.modules()}
    if ":" in name:
        modules.add(name.partition(":")[0])
    leaves, tree = pytree.tree_flatten_with_path((tuple(inputs), dict(kwargs or {})))
    return {
        "schema": SCHEMA,
        "model": name,
        "model_args": _plain(model_args or {}),
        "structure": hashlib.sha256(repr(model).encode()).hexdigest(),
        "state": [
            [k, *_tensor_key(v)]
            for k, v in list(model.named_parameters(remove_duplicate=False))
            + list(model.named_buffers(remove_duplicate=False))
        ],
        "sources": {pkg: package_digest(pkg) for pkg in sorted({m.partition(".")[0] for m in modules})},
        "inputs": [
            [pytree.keystr(p), *_tensor_key(v)] if isinstance(v, torch.Tensor) else [pytree.keystr(p), _plain(v)]
            for p, v in leaves
        ],
        "tree": str(tree),
        "repeated": list(repeated),
        "keep": sorted(str(op) for op in keep),
        "decompositions": _decomposition_digest(tuple(sorted(str(op) for op in keep))),
        "capture_code": f"{_CAPTURE_CODE}:{_files_digest(_CAPTURE_CODE)}",  # its frames are in stack traces
        "torch": torch.__version__,
        "python": list(sys.version_info[:2]),
    }


def _tensor_key(t: torch.Tensor) -> list:
    key = [list(t.shape), list(t.stride()), str(t.dtype), t.device.type, isinstance(t, nn.Parameter)]
    if t.device.type != "meta":
        key.append(hashlib.sha256(_bytes(t)).hexdigest())
    return key


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [_plain(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[_plain(k), _plain(v)] for k, v in value.items()]}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value)}
    raise Uncacheable(f"an input or model argument of type {type(value).__name__}")


def package_digest(package: str) -> str:
    """An installed distribution's name and version, or the digest of a source tree's .py files
    (with its location: stack traces name files by path)."""
    module = sys.modules.get(package)
    origin = getattr(module, "__file__", None) if module is not None else None
    if origin is None:
        return f"builtin:{package}"
    path = Path(origin)
    root = path.parent if path.name == "__init__.py" else path
    if "site-packages" in path.parts or "dist-packages" in path.parts:
        versions = sorted(f"{d}=={_version(d)}" for d in _distributions(package))
        if versions:
            return f"{root}:{','.join(versions)}"
    return f"{root}:{_files_digest(root)}"


@lru_cache(maxsize=None)
def _distributions(package: str) -> tuple[str, ...]:
    """The installed distributions that provide a top-level package (usually one, named alike)."""
    try:
        importlib.metadata.distribution(package)
        return (package,)
    except importlib.metadata.PackageNotFoundError:
        return tuple(importlib.metadata.packages_distributions().get(package) or ())


@lru_cache(maxsize=None)
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _files_digest(root: Path) -> str:
    h = hashlib.sha256()
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    for f in files:
        h.update(str(f.relative_to(root) if f != root else f.name).encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return h.hexdigest()


@lru_cache(maxsize=8)
def _decomposition_digest(keep: tuple[str, ...]) -> str:
    kept = set(keep)
    table = decomposition_table(op for op in torch.export.default_decompositions() if str(op) in kept)
    return hashlib.sha256("\n".join(sorted(str(op) for op in table)).encode()).hexdigest()


# -- the value --------------------------------------------------------------------------------------


def _bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    return t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def _tensor_desc(t: Any) -> dict:
    if not isinstance(t, torch.Tensor) or type(t) not in (torch.Tensor, nn.Parameter):
        raise Uncacheable(f"a constant of type {type(t).__name__}")
    if str(t.dtype).removeprefix("torch.") not in _DTYPES or t.device.type not in ("meta", "cpu"):
        raise Uncacheable(f"a {t.dtype} tensor on {t.device}")
    desc = {
        "shape": list(t.shape),
        "stride": list(t.stride()),
        "dtype": str(t.dtype).removeprefix("torch."),
        "param": isinstance(t, nn.Parameter),
        "requires_grad": bool(t.requires_grad),
    }
    if t.device.type == "cpu":
        if t.numel() * t.element_size() > MAX_DATA_BYTES:
            raise Uncacheable("real weights")
        desc["data"] = base64.b64encode(_bytes(t)).decode()
    return desc


def _tensor_of(d: Any) -> torch.Tensor:
    if not isinstance(d, dict) or set(d) - {"shape", "stride", "dtype", "param", "requires_grad", "data"}:
        raise Rejected("a malformed tensor")
    shape, stride, dtype = d.get("shape"), d.get("stride"), _DTYPES.get(d.get("dtype"))
    if (
        dtype is None
        or not _ints(shape)
        or not _ints(stride)
        or len(shape) != len(stride)
        or not isinstance(d.get("param"), bool)
        or not isinstance(d.get("requires_grad"), bool)
    ):
        raise Rejected("a malformed tensor")
    if "data" in d:
        if not isinstance(d["data"], str) or len(d["data"]) > 2 * MAX_DATA_BYTES:
            raise Rejected("a malformed tensor")
        data = bytearray(base64.b64decode(d["data"], validate=True))
        numel = 1
        for s in shape:
            numel *= s
        if len(data) != numel * torch.empty((), dtype=dtype).element_size():
            raise Rejected("tensor bytes of the wrong size")
        flat = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
        t = torch.empty_strided(shape, stride, dtype=dtype).copy_(flat.reshape(shape))
    else:
        t = torch.empty_strided(shape, stride, dtype=dtype, device="meta")
    return nn.Parameter(t, requires_grad=d["requires_grad"]) if d["param"] else t


def _ints(xs: Any) -> bool:
    return isinstance(xs, list) and len(xs) <= 16 and all(type(x) is int and 0 <= x < 1 << 40 for x in xs)


def _encode(material: dict, cap: Capture) -> dict:
    if cap.method != "export" or len(cap.graphs) != 1:
        raise Uncacheable("not a single-graph export")
    program = cap.graphs[0].program
    try:
        serialized = serde.ExportedProgramSerializer().serialize(
            program, serialize_state_dict=False, serialize_constants=False, serialize_example_inputs=False
        )
        as_dict = json.loads(serde._to_json_bytes(serialized.exported_program))
    except Exception as exc:
        raise Uncacheable(f"torch's serializer: {exc}") from None
    state = {k: _tensor_desc(v) for k, v in program.state_dict.items()}
    constants = {k: _tensor_desc(v) for k, v in program.constants.items()}
    try:
        _check_program(as_dict, state, constants)
    except Rejected as exc:  # what could not be read back is not written
        raise Uncacheable(str(exc)) from None
    return {
        "schema": SCHEMA,
        "key": material,
        "program": as_dict,
        "state": state,
        "constants": constants,
        "problems": [p.to_dict() for p in cap.problems],
        "repeats": dict(cap.repeats),
    }


def _decode(doc: Any, material: dict, inputs: tuple, kwargs: dict, name: str) -> Capture:
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise Rejected("not a capture cache entry of this fxport")
    if doc.get("key") != material:
        raise Rejected("an entry of another key")
    state, constants = doc.get("state"), doc.get("constants")
    if not isinstance(state, dict) or not isinstance(constants, dict):
        raise Rejected("malformed weights")
    _check_program(doc.get("program"), state, constants)
    problems = doc.get("problems")
    if not isinstance(problems, list) or not all(
        isinstance(p, dict)
        and set(p) == {"stage", "message", "location"}
        and all(isinstance(v, str) for v in p.values())
        for p in problems
    ):
        raise Rejected("malformed problems")
    repeats = doc.get("repeats")
    if not isinstance(repeats, dict) or not all(
        isinstance(k, str) and type(v) is int and v > 0 for k, v in repeats.items()
    ):
        raise Rejected("malformed repeats")
    schema_program = _to_dataclass(serde.ExportedProgram, doc["program"])
    program = serde.ExportedProgramDeserializer().deserialize(
        schema_program,
        {k: _tensor_of(v) for k, v in state.items()},
        {k: _tensor_of(v) for k, v in constants.items()},
        None,
    )
    records = records_from_graph(program.graph, "main", repeats=repeats or None)
    return Capture(
        name,
        input_leaves(inputs, kwargs),
        "export",
        [CapturedGraph("main", program)],
        records,
        [CaptureProblem(**p) for p in problems],
        outputs=output_leaves(program),
        repeats=repeats,
        cached=True,
    )


def _to_dataclass(cls: Any, data: Any) -> Any:
    """torch's `serde._dict_to_dataclass` with each schema class's type hints computed once: the
    original recomputes them per object, which was half of loading PI0's program (15 of 28 s)."""
    cls = serde._resolve_schema_cls(cls)
    origin = typing.get_origin(cls)
    if origin is typing.Annotated:
        return _to_dataclass(cls.__origin__, data)
    if origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(cls):
        return None if data is None else _to_dataclass(typing.get_args(cls)[0], data)
    if isinstance(cls, type) and issubclass(cls, _SchemaUnion):
        if not isinstance(data, dict) or len(data) != 1:
            raise Rejected("a malformed union")
        ((kind, value),) = data.items()
        hints = _hints(cls)
        if kind not in hints:
            raise Rejected(f"an unknown {cls.__name__} kind")
        return cls.create(**{kind: _to_dataclass(hints[kind], value)})
    if dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            raise Rejected(f"a malformed {cls.__name__}")
        hints = _hints(cls)
        return cls(**{name: _to_dataclass(hints[name], data[name]) for name in _fields(cls) if name in data})
    if isinstance(data, list):
        item = typing.get_args(cls)[0] if typing.get_args(cls) else Any
        return [_to_dataclass(item, d) for d in data]
    if isinstance(data, dict):
        value_type = typing.get_args(cls)[1] if len(typing.get_args(cls)) == 2 else Any
        return {k: _to_dataclass(value_type, v) for k, v in data.items()}
    if cls is float:
        return float(data)
    return data


@lru_cache(maxsize=None)
def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls, globalns=vars(serde_schema))


def _check_program(program: Any, state: dict, constants: dict) -> None:
    """Reject a serialized program that could make the deserializer or fx run anything: see the
    module docstring."""
    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise Rejected("not a serialized program")
    if program.get("range_constraints") not in ({}, None):
        raise Rejected("symbolic shapes")
    graph = program["graph_module"].get("graph")
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        raise Rejected("not a serialized program")
    for k in ("sym_int_values", "sym_bool_values", "sym_float_values", "custom_obj_values"):
        if graph.get(k) not in ({}, None):
            raise Rejected("symbolic values or custom objects")
    _walk(program, 0)
    for node in graph["nodes"]:
        if not isinstance(node, dict) or not _allowed_target(node.get("target")):
            raise Rejected(
                f"node target {str(node.get('target') if isinstance(node, dict) else node)[:80]!r} is not an aten op"
            )
    for d in list(state) + list(constants):
        if not isinstance(d, str):
            raise Rejected("a malformed weight name")


def _walk(value: Any, depth: int) -> None:
    if depth > 64:
        raise Rejected("nested too deep")
    if isinstance(value, dict):
        for k, v in value.items():
            if k in _FORBIDDEN_KEYS:
                raise Rejected(f"a {k!r} argument")
            if k == "name" and isinstance(v, str) and not _IDENT.match(v):
                raise Rejected(f"a node name {v[:40]!r}")
            _walk(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _walk(v, depth + 1)
    elif isinstance(value, str):
        if _BREAKS.search(value):
            raise Rejected("a control character in a string")
    elif not (value is None or isinstance(value, (bool, int, float))):
        raise Rejected("a malformed value")


def _allowed_target(target: Any) -> bool:
    if target == "_operator.getitem":
        return True
    if not isinstance(target, str) or not target.startswith("torch.ops.aten."):
        return False
    parts = target.split(".")[3:]
    if len(parts) != 2 or not all(_IDENT.match(p) for p in parts):
        return False
    packet = getattr(torch.ops.aten, parts[0], None)
    return isinstance(packet, torch._ops.OpOverloadPacket) and isinstance(
        getattr(packet, parts[1], None), torch._ops.OpOverload
    )
