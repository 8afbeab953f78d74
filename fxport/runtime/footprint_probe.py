"""Footprints of lowered nodes, measured by TT-NN: the node's lowering run once under graph
capture (NO_DISPATCH: allocations are recorded, not made, and no kernel runs), on its inputs as
they will be at run time: device tensors created inside the capture (in the layout, dtype and
memory of their producer's output) or host values the lowering moves itself.

What the capture records (every buffer allocated and freed, each program's circular buffers, the
per-core peaks of `extract_resource_usage_per_core`) becomes a `fxport.memory.footprint_record.Footprint`.
Footprints depend on the node's signature only (target, arguments, input and output specs,
placement, device, ttnn version and the mapping table), so they are cached: per process in memory
and across processes in `<cache>/footprints/footprints.sqlite` (<cache> = $FXPORT_CACHE or
~/.cache/fxport). The database is read but never trusted: a row is used only when its stored
signature equals the one asked for and its footprint passes `footprint.from_dict`; anything else
is measured again and replaced. New rows are written in one transaction per `flush` (atomic).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import fx

from fxport.capture.records import target_name
from fxport.mapping import REGISTRY
from fxport.memory.footprint_record import FOOTPRINT_SCHEMA, HOST, Footprint, InputSpec, from_dict, parse_capture
from fxport.memory.oom import classify
from fxport.runtime.context import LoweringContext
from fxport.runtime.devices import DeviceHandle
from fxport.runtime.mock.runtime_root import cache_home, make_dirs
from fxport.settings import _version, mapping_hash
from fxport.values import HostValue, TTValue


def tensor_inputs(node: fx.Node) -> list[fx.Node]:
    """The node's inputs in the order footprints number them (fx's all_input_nodes)."""
    return list(node.all_input_nodes)


def used_outputs(node: fx.Node) -> list[int] | None:
    """For a node returning a tuple: the indices its users read (lowerings may skip the rest)."""
    if not isinstance(node.meta.get("val"), (tuple, list)):
        return None
    used = set()
    for user in node.users:
        if user.op == "call_function" and getattr(user.target, "__name__", "") == "getitem":
            used.add(user.args[1])
        else:
            return list(range(len(node.meta["val"])))
    return sorted(used)


def _canonical(value: Any, inputs: dict[fx.Node, int]) -> Any:
    if isinstance(value, fx.Node):
        return {"input": inputs[value], "val": _canonical(value.meta.get("val"), {})}
    if isinstance(value, torch.Tensor):
        return {"tensor": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, inputs) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v, inputs) for k, v in sorted(value.items())}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return repr(value)
    return f"{type(value).__name__}:{value}"


class FootprintProbe:
    """Measures and caches node footprints on one open device."""

    def __init__(self, dev: DeviceHandle, cache: Path | None | bool = True):
        self.dev = dev
        self._memory: dict[str, Footprint] = {}
        self._new: dict[str, tuple[str, Footprint]] = {}
        self.measured = 0  # captures run by this probe
        self.reused = 0  # footprints found in the disk cache
        self.seconds = 0.0  # spent measuring
        self._context = json.dumps(
            {
                "schema": FOOTPRINT_SCHEMA,
                "ttnn": _version("ttnn"),
                "mapping": mapping_hash(),
                "device": [dev.kind, dev.arch, *vars(dev.banks).values()],
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        self._node_keys: dict[fx.Node, str] = {}
        # (node, specs, memory, remedy, layout) -> cache key: a walk asks for the same footprints
        # over and over, and the canonical JSON signature is most of what answering costs
        self._keys: dict[tuple, str] = {}
        path = (cache_home() / "footprints" / "footprints.sqlite") if cache is True else (cache or None)
        self._db = _open_cache(path) if path else None

    # -- the cache -------------------------------------------------------------------------------
    def signature(
        self, node: fx.Node, specs: list[InputSpec], memory: str, remedy: dict | None, layout: tuple | None = None
    ) -> str:
        """Everything the node's footprint depends on, as one canonical JSON text."""
        head = self._node_keys.get(node)
        if head is None:  # the node's own part, once per node
            inputs = {n: i for i, n in enumerate(tensor_inputs(node))}
            head = json.dumps(
                {
                    "target": target_name(node.target),
                    "args": _canonical(node.args, inputs),
                    "kwargs": _canonical(node.kwargs, inputs),
                    "out": _canonical(node.meta.get("val"), {}),
                    "used": used_outputs(node),
                },
                sort_keys=True,
                separators=(",", ":"),
            )
            self._node_keys[node] = head
        rest = {
            "specs": [s.key() for s in specs],
            "memory": memory,
            "remedy": remedy or {},
            **({"l1": [list(b) for b in layout]} if layout is not None else {}),
        }
        return self._context + head + json.dumps(rest, sort_keys=True, separators=(",", ":"))

    def footprint(
        self,
        node: fx.Node,
        specs: list[InputSpec],
        memory: str = "l1",
        remedy: dict | None = None,
        layout: tuple | None = None,
    ) -> Footprint:
        """The footprint of `node` lowered with its activations in `memory` ("l1" or "dram").
        `layout`: measure it with the L1 banks holding these (address, size) buffers, as the run
        will (programs that size their circular buffers, or choose to slice, from the L1 they find
        free then decide as they will in the run)."""
        ask = (node, tuple(specs), memory, json.dumps(remedy, sort_keys=True) if remedy else "", layout)
        key = self._keys.get(ask)
        if key is not None and key in self._memory:
            return self._memory[key]
        sig = self.signature(node, specs, memory, remedy, layout)
        key = self._keys[ask] = hashlib.sha256(sig.encode()).hexdigest()
        found = self._memory.get(key) or self._load(key, sig)
        if found is None:
            start = time.perf_counter()
            found = self.dev.calls(
                lambda: self._measure_within(layout, node, specs, memory, remedy),
                label=f"measuring the footprint of node {node.name}",
            )
            self.seconds += time.perf_counter() - start
            self.measured += 1
            self._new[key] = (sig, found)
        self._memory[key] = found
        return found

    def _load(self, key: str, sig: str) -> Footprint | None:
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT signature, footprint FROM footprints WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error:
            return None
        if row is None or row[0] != sig:
            return None
        try:
            found = from_dict(json.loads(row[1]))
        except (ValueError, TypeError, RecursionError):  # nested past the parser's depth, a blob, ...
            return None  # damaged or foreign: measured again and replaced
        self.reused += 1
        return found

    def flush(self) -> None:
        """Write the footprints measured since the last flush, in one transaction."""
        if self._db is None or not self._new:
            self._new.clear()
            return
        rows = [(k, sig, json.dumps(f.to_dict(), sort_keys=True)) for k, (sig, f) in self._new.items()]
        self._new.clear()
        try:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO footprints VALUES (?, ?, ?)", rows)
        except sqlite3.Error as exc:
            print(f"fxport: note: footprint cache not written ({exc})", file=sys.stderr)

    def refit(self, node: fx.Node, specs: list[InputSpec], memory: str, layout: tuple) -> Footprint | None:
        """The node measured with L1 holding `layout` (see footprint); None when that cannot be
        measured (the device holds other L1 buffers)."""
        try:
            return self.footprint(node, specs, memory, layout=layout)
        except _Busy:
            return None

    @contextlib.contextmanager
    def _l1_layout(self, layout: tuple | None) -> Iterator[None]:
        """Real L1 buffers at the given (address, size) places for the duration: what ops see of
        the allocator when they build their programs. L1 allocates from the top down, first fit,
        so filling the bank from its top with one buffer per block (held or free) and freeing the
        free ones leaves exactly the held ones. Only on an otherwise empty L1."""
        if layout is None:
            yield
            return
        import ttnn

        view = ttnn.get_memory_view(self.dev.device, ttnn.BufferType.L1)
        if view.total_bytes_allocated_per_bank:
            raise _Busy()
        bank, held = view.total_bytes_per_bank, dict(layout)
        edges = sorted({0, bank, *held, *(a + s for a, s in held.items())}, reverse=True)
        fillers, gaps = [], []
        for top, bottom in zip(edges, edges[1:]):  # one 32 B row per bank per 32 B of block
            t = ttnn.empty(
                [view.num_banks * ((top - bottom) // 32), 32],
                dtype=ttnn.uint8,
                layout=ttnn.ROW_MAJOR_LAYOUT,
                device=self.dev.device,
                memory_config=ttnn.L1_MEMORY_CONFIG,
            )
            (fillers if bottom in held else gaps).append(t)
        for t in gaps:
            ttnn.deallocate(t)
        try:
            yield
        finally:
            for t in fillers:
                ttnn.deallocate(t)

    # -- measuring -------------------------------------------------------------------------------
    def _measure_within(
        self, layout: tuple | None, node: fx.Node, specs: list[InputSpec], memory: str, remedy: dict | None
    ) -> Footprint:
        """On the device worker (`dev.calls`): the time bound and Ctrl-C apply to measurements
        as to the run's own calls."""
        with self._l1_layout(layout):
            return self._measure(node, specs, memory, remedy)

    def _measure(self, node: fx.Node, specs: list[InputSpec], memory: str, remedy: dict | None) -> Footprint:
        import ttnn

        rule = REGISTRY.rule_for(node)
        ctx = _CapturingContext(self.dev, memory=memory, values="none")
        ctx.remedy = remedy or {}
        nodes = tensor_inputs(node)
        values: dict[fx.Node, Any] = {}
        outputs: list[Any] = []
        error = kind = ""
        graph: list = []
        with quiet_capture():
            ttnn.graph.begin_graph_capture(ttnn.graph.RunMode.NO_DISPATCH)
        try:
            for i, (n, spec) in enumerate(zip(nodes, specs)):
                values[n] = self._input(ctx, i, n, spec)
            ctx.hosts = {id(v): i for i, v in enumerate(values.values()) if isinstance(v, HostValue)}
            _mark("lower")
            try:
                args = fx.map_arg(node.args, lambda a: values[a])
                kwargs = fx.map_arg(node.kwargs, lambda a: values[a])
                out = rule.lower(ctx, node, *args, **kwargs)
                outputs = _leaves(out)
            except Exception as exc:  # the run will fail the node too
                verdict = classify(str(exc) or type(exc).__name__)
                error, kind = verdict.summary, str(verdict.kind)
            described = [_describe(o) for o in outputs]
            for i, o in enumerate(outputs):
                _mark(f"output:{i}")
                if isinstance(o, TTValue) and described[i][3]:
                    ttnn.deallocate(o.tt)
            _mark("end")
        finally:
            graph = ttnn.graph.end_graph_capture()
        usage = ttnn.graph.extract_resource_usage_per_core(graph)
        found = parse_capture(
            graph,
            len(outputs),
            int(usage.peak_l1),
            int(usage.peak_cb) + int(getattr(usage, "peak_dataflow_buffer", 0)),
            error,
            kind,
        )
        outs = tuple(o.__class__(o.buffer, o.alias, *d) for o, d in zip(found.outputs, described))
        return Footprint(found.buffers, found.events, outs, found.peak_l1, found.peak_cb, found.error, found.error_kind)

    def _input(self, ctx: LoweringContext, i: int, node: fx.Node, spec: InputSpec) -> Any:
        import ttnn

        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            return val
        if spec.where == "host":
            return HostValue(torch.empty(tuple(val.shape), dtype=val.dtype, device="meta"))
        _mark(f"input:{i}")
        config = ttnn.L1_MEMORY_CONFIG if spec.memory == "L1" else ttnn.DRAM_MEMORY_CONFIG
        tt = ttnn.empty(
            list(spec.shape or val.shape),
            dtype=getattr(ttnn, spec.dtype or "bfloat16"),
            layout=ttnn.ROW_MAJOR_LAYOUT if spec.layout == "ROW_MAJOR" else ttnn.TILE_LAYOUT,
            device=self.dev.device,
            memory_config=config,
        )
        _mark("lower")
        return TTValue(tt, None)

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None


class _Busy(RuntimeError):
    """The device holds L1 buffers: a constrained measurement would not be the one asked for."""


class _CapturingContext(LoweringContext):
    """A lowering context that marks the host -> device moves its lowering makes, so that the
    capture can tell a transfer from the op's own buffers."""

    hosts: dict[int, int] = {}

    def tensor(self, value: Any, layout: str = "tile", dtype: Any = None) -> Any:
        if not isinstance(value, HostValue):
            return super().tensor(value, layout, dtype)
        i = self.hosts.get(id(value), -1)
        _mark(f"transfer:{i}:{layout}:{str(dtype).rsplit('.', 1)[-1]}")
        try:
            return super().tensor(value, layout, dtype)
        finally:
            _mark("lower")


@contextlib.contextmanager
def quiet_capture() -> Iterator[None]:
    """ttnn warns at every capture that fast runtime mode records no per-operation sub-graphs:
    footprints need only the buffer and circular-buffer events, which it records."""
    from loguru import logger

    logger.disable("ttnn.graph")
    try:
        yield
    finally:
        logger.enable("ttnn.graph")


def _mark(name: str) -> None:
    import ttnn

    ttnn.graph.track_function_start(f"fxport.{name}")
    ttnn.graph.track_function_end()


def _leaves(out: Any) -> list[Any]:
    if isinstance(out, (list, tuple)):
        return [leaf for o in out for leaf in _leaves(o)]
    return [out]


def _describe(value: Any) -> tuple[tuple[int, ...], str, str, str]:
    """(shape, dtype, layout, memory) of an output; memory "" when it is not on the device."""
    if not isinstance(value, TTValue):
        shape = tuple(getattr(value, "shape", ()))
        return shape, "", "", ""
    tt = value.tt
    dtype = str(tt.dtype).rsplit(".", 1)[-1].lower()
    layout = str(tt.layout).rsplit(".", 1)[-1].upper()
    try:
        on_device = tt.storage_type() == type(tt.storage_type()).DEVICE
    except Exception:
        on_device = False
    memory = str(tt.memory_config().buffer_type).rsplit(".", 1)[-1].upper() if on_device else ""
    return tuple(tt.shape), dtype, layout.replace("LAYOUT", "").strip("_"), memory


def _open_cache(path: Path) -> sqlite3.Connection | None:
    try:
        make_dirs(path.parent)
        db = sqlite3.connect(path, timeout=30.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS footprints "
            "(key TEXT PRIMARY KEY, signature TEXT NOT NULL, footprint TEXT NOT NULL)"
        )
        return db
    except (OSError, sqlite3.Error) as exc:
        print(f"fxport: note: footprint cache {path} unusable ({exc}); measuring without it", file=sys.stderr)
        return None


@contextlib.contextmanager
def probe(dev: DeviceHandle, cache: Path | None | bool = True) -> Iterator[FootprintProbe]:
    p = FootprintProbe(dev, cache)
    try:
        yield p
    finally:
        p.close()


__all__ = ["HOST", "FootprintProbe", "InputSpec", "probe", "quiet_capture", "tensor_inputs", "used_outputs"]
