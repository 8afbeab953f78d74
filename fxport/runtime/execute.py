"""Stage 4, execute: run a partitioned graph, device partitions through the mapping table.

Every device node is contained: when its lowering raises (an allocator OOM, a TT_FATAL
validation, a missing golden function), the error is classified and recorded, the node re-runs on
the host with the same input values, and the run goes on; later device nodes take its output
back to the device. Host nodes run as aten ops in fp32.
"""

from __future__ import annotations

import contextlib
import operator
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import fx

from fxport import progress
from fxport.capture.records import is_op_node, module_of, target_name
from fxport.errors import EnvironmentFault
from fxport.mapping import REGISTRY
from fxport.mapping.fused_ops import REFERENCES
from fxport.memory.oom import MEMORY_KINDS, classify
from fxport.runtime.call_list import CallList, Recording, replay, signature
from fxport.runtime.context import CallCounts, LoweringContext
from fxport.runtime.devices import environment_error
from fxport.runtime.pcc import agreement
from fxport.runtime.remedy_trials import try_remedies
from fxport.values import HostValue, TTValue


@dataclass(frozen=True)
class NodeResult:
    node: str
    target: str
    module: str
    partition: str  # "fused_N", or "" for host nodes
    status: str  # "device" (ran through TT-NN), "fallback" (device failed, re-ran on host), "host"
    error_kind: str = ""  # classification of the device error for fallbacks (OUT_OF_MEMORY, ...)
    error: str = ""  # one line
    pcc: float | None = None  # device (or emulated) output vs the aten op on the same inputs;
    # None for host nodes, fallbacks and runs without values
    seconds: float = 0.0
    fields: dict = field(default_factory=dict)  # the classified error's numbers (allocator figures)
    memory: str = ""  # where its activations were placed ("l1" / "dram"); "" for host nodes
    # A memory failure re-run with the remedy ladder: the cheapest remedy the allocator took
    # (fxport/runtime/remedy_trials.py), whether the run kept its result (`auto` does), every rung tried.
    remedy: str = ""
    remedy_applied: bool = False
    remedy_tried: tuple[str, ...] = ()
    calls: CallCounts | None = None  # the ttnn calls its lowering issued (device nodes)


@dataclass
class Execution:
    outputs: list[torch.Tensor]
    nodes: list[NodeResult]
    observed: dict[str, Any] | None = None  # node -> its output on the host, when asked to observe


def execute(
    gm: fx.GraphModule,
    inputs: list[torch.Tensor],
    ctx: LoweringContext,
    node_pcc: bool = True,
    remedies: bool = True,
    observe: bool = False,
    replay: bool = True,
) -> Execution:
    """Run a partitioned graph (`fxport.partition`'s top level: host nodes and `fused_N` device
    submodules). `remedies`: a node that runs out of memory is re-run with the remedy ladder in
    the allocator state it failed in; under `auto` placement the cheapest verified remedy's result
    is kept (the node runs on the device), otherwise it is recorded and the node falls back.
    `observe`: keep every op node's output, read back to the host (localisation). `replay`:
    a partition whose ttnn calls were recorded by an earlier unchecked run of the same program
    and input shapes replays them (fxport.runtime.call_list); a run that scores nodes, observes
    them, records for export or computes verdicts only runs every rule."""
    runner = _Runner(gm, ctx, node_pcc and ctx.values != "none", remedies)
    runner.observed = {} if observe else None
    runner.replay = (
        replay
        and not runner.node_pcc
        and not observe
        and ctx.recorder is None
        and ctx.cache is None
        and ctx.values in ("emulate", "device")
    )
    try:
        with progress.counter(f"executing on the {ctx.device.kind} device", _op_count(gm)) as runner.counter:
            out = runner.run(*inputs)
    except (KeyboardInterrupt, EnvironmentFault) as exc:
        exc.partial = Execution([], runner.results)
        raise
    outputs = list(out) if isinstance(out, (list, tuple)) else [out]
    return Execution(outputs, runner.results, runner.observed)


class _Runner(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, ctx: LoweringContext, node_pcc: bool, remedies: bool = True):
        super().__init__(gm)
        self.extra_traceback = False  # keep exceptions as raised: fxport's messages are one line
        self.ctx, self.node_pcc, self.remedies = ctx, node_pcc, remedies
        self.results: list[NodeResult] = []
        self.observed: dict[str, Any] | None = None
        self.counter: Any = None  # progress over the op nodes run
        self.replay = False  # partitions may record and replay their calls (see `execute`)

    def run_node(self, n: fx.Node) -> Any:
        if n.op == "call_module" and str(n.target).startswith("fused_"):
            args, _ = self.fetch_args_kwargs_from_env(n)
            sub = self.module.get_submodule(n.target)
            # One handoff to the device worker per partition: its nodes' calls run inside it,
            # each still contained and bounded (fxport.runtime.watchdog).
            return self.ctx.device.calls(
                lambda: self._run_partition(str(n.target), sub, args), label=f"partition {n.target}"
            )
        start = time.perf_counter()
        result = super().run_node(n)
        recorder = self.ctx.recorder
        if recorder is not None and is_op_node(n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            recorder.node = n
            recorder.add("host", target_name(n.target), "", args, kwargs, result)
            recorder.node = None
        if is_op_node(n):
            self.results.append(
                NodeResult(
                    n.name, target_name(n.target), module_of(n)[0], "", "host", seconds=time.perf_counter() - start
                )
            )
            self.counter.update()
            if self.observed is not None:
                self.observed[n.name] = result
        return result

    def _run_partition(self, name: str, sub: fx.GraphModule, args: tuple) -> Any:
        if self.ctx.recorder is None:
            return self._partition(name, sub, args)
        # In the device worker's thread: torch function modes are per thread
        with self.ctx.recorder.torch_functions():
            return self._partition(name, sub, args)

    def _partition(self, name: str, sub: fx.GraphModule, args: tuple) -> Any:
        plan = _partition_plan(sub)
        recording = None
        if self.replay and (key := self._calls_key(args)) is not None:
            known = plan.calls.get(key)
            if isinstance(known, CallList):
                out = self._replayed(known, plan.output, args)
                if out is not None:
                    return out
                plan.calls[key] = "a replay failed"  # the rules run from now on
            elif known is None:
                recording = Recording(
                    args, self.ctx.constants, self.ctx.values == "emulate", lambda: self.ctx.last_kind
                )
        if recording is None:
            return self._interpreted(name, sub, plan, args, None)
        self.ctx.tape = self.ctx.ops.tape = recording
        try:
            out = self._interpreted(name, sub, plan, args, recording)
        finally:
            self.ctx.tape = self.ctx.ops.tape = None
        if recording.done is not None:
            recording.done.owners = (self.ctx.constants, self.ctx.device)
            plan.calls[key] = recording.done
        elif not recording.transient:
            plan.calls[key] = recording.problem  # said once, not recorded again
        return out

    def _interpreted(self, name: str, sub: fx.GraphModule, plan: "_PartitionPlan", args: tuple, recording) -> Any:
        env: dict[fx.Node, Any] = {}
        last_use = plan.last_use
        placeholders = iter(args)
        for n in sub.graph.nodes:
            if n.op == "placeholder":
                env[n] = HostValue(next(placeholders))
            elif n.op == "output":
                if recording is not None:
                    recording.finish({a: env[a] for a in n.all_input_nodes})
                    self.ctx.tape = self.ctx.ops.tape = None  # the outputs' reads are the partition's
                return fx.map_arg(n.args[0], lambda a: _map_pairs(env[a], _val(a), self.ctx.host))
            elif n.target is operator.getitem:
                env[n] = env[n.args[0]][n.args[1]]
            else:
                env[n] = self._run_device_node(name, n, env, plan.nodes[n], plan.last_use.get(n, ()))
                if recording is not None:
                    recording.node(self.results[-1], plan.nodes[n][3])
            for dead in last_use.get(n, ()):
                env.pop(dead, None)  # frees device buffers: allocator verdicts see live tensors only
        raise AssertionError("partition graph without output")

    def _calls_key(self, args: tuple) -> tuple | None:
        """What a recorded call list is valid for besides its partition: the program's device
        constants and device (by identity: the list holds both, `CallList.owners`), the run's
        options, the inputs' shapes."""
        shapes = signature(args)
        if shapes is None:
            return None
        ctx = self.ctx
        options = (ctx.memory, ctx.weights, ctx.fidelity, ctx.activations, ctx.values)
        return (id(ctx.constants), id(ctx.device), *options, shapes)

    def _replayed(self, calls: CallList, output: fx.Node, args: tuple) -> Any:
        """The partition's outputs from its recorded calls, or None when a call failed (nothing
        of the attempt is kept: its nodes' results and counts are dropped, the rules run)."""
        ctx = self.ctx
        mark, counted, transfers = len(self.results), ctx.calls.copy(), replace(ctx.transfers)

        def done(result: NodeResult) -> None:
            self.results.append(result)
            self.counter.update()

        try:
            outputs = replay(calls, args, lambda fn, label: ctx.device.calls(fn, label=label), ctx.count, done)
        except EnvironmentFault:
            raise
        except Exception as exc:
            broken = environment_error(ctx.device, exc)
            if broken is not None:
                raise broken from None
            del self.results[mark:]
            ctx.calls, ctx.transfers = counted, transfers
            return None
        return fx.map_arg(output.args[0], lambda a: _map_pairs(outputs[a], _val(a), ctx.host))

    def _run_device_node(self, partition: str, n: fx.Node, env: dict, info: tuple, dying: Any = ()) -> Any:
        args = fx.map_arg(n.args, lambda a: env[a])
        kwargs = fx.map_arg(n.kwargs, lambda a: env[a])
        rule, target, module, label = info
        start, calls = time.perf_counter(), self.ctx.calls.copy()
        status, kind, error, fields = "device", "", "", {}
        memory = self.ctx.memory_of(n.name)
        remedy, applied, tried = "", False, ()

        if self.ctx.recorder is not None:
            self.ctx.recorder.node = n

        def lower() -> Any:
            with self.ctx.placed(n.name):
                return rule.lower(self.ctx, n, *args, **kwargs)

        try:
            out = self.ctx.device.calls(lower, label=label)
        except EnvironmentFault:
            raise
        except Exception as exc:  # contained: classify, record, re-run on the host
            broken = environment_error(self.ctx.device, exc)
            if broken is not None:
                raise broken from None
            verdict = classify(str(exc) or type(exc).__name__)
            status, kind, error, fields = "fallback", verdict.kind, verdict.summary, verdict.fields
            out = None
        if status == "fallback" and kind in MEMORY_KINDS and self.remedies:
            # The ladder's trials measure; an inference issues the node's calls once.
            counted = self.ctx.calls.copy()
            found = self._remedy(n, args, kwargs, memory, label)
            if (found is None or found.verified is None) and self.ctx.memory == "auto":
                # Under `auto` the run may also move what it holds: tensors kept in L1 for later
                # consumers go to DRAM (their buffers block this node's), then the ladder again.
                spilled = self._spill(env)
                if spilled:
                    args = fx.map_arg(n.args, lambda a: env[a])
                    kwargs = fx.map_arg(n.kwargs, lambda a: env[a])
                    again = self._remedy(n, args, kwargs, "dram", label)
                    if again is not None:
                        again.tried = [
                            *(found.tried if found else []),
                            f"moved {spilled} L1 tensors to DRAM",
                            *again.tried,
                        ]
                        found = again
            if found is not None:
                tried = found.tried
                if found.verified is not None:
                    remedy = found.verified.text
                    if self.ctx.memory == "auto":  # the placement is the run's to adjust: keep it
                        out, status, applied = found.outputs, "device", True
                        memory = found.verified.remedy.memory
                found.outputs = None
            self.ctx.calls = counted
        if status == "fallback":
            out = _as_host(self._host_call(n, args, kwargs, count=True, reason=f"{kind}: {error}"))
        seconds = time.perf_counter() - start
        for d in dying:  # device copies of host inputs used last here: free them before scoring
            if isinstance(env.get(d), HostValue):
                env[d].device_copies.clear()
        # A fallback's output is the host reference itself: there is no device value to score.
        with self.ctx.recorder.pause() if self.ctx.recorder is not None else contextlib.nullcontext():
            score = self._node_pcc(n, args, kwargs, out) if self.node_pcc and status == "device" else None
        self.results.append(
            NodeResult(
                n.name,
                target,
                module,
                partition,
                status,
                kind,
                error,
                score,
                seconds,
                fields,
                memory,
                remedy,
                applied,
                tuple(tried),
                self.ctx.calls.since(calls),
            )
        )
        self.counter.update()
        if self.observed is not None:
            self.observed[n.name] = _map_pairs(out, _val(n), lambda v, like: self.ctx.host(v, like=like, count=False))
        return out

    def _spill(self, env: dict) -> int:
        """Move every L1 tensor the partition holds (values and host values' device copies) to
        DRAM; the number moved."""
        ttnn = self.ctx.ttnn

        def to_dram(v: TTValue) -> TTValue | None:
            tt = v.tt
            if not _in_l1(tt):
                return None
            return TTValue(
                self.ctx.device.calls(
                    lambda: ttnn.to_memory_config(tt, ttnn.DRAM_MEMORY_CONFIG), label="moving an L1 tensor to DRAM"
                ),
                v.golden,
            )

        moved = 0
        for key, value in list(env.items()):
            if isinstance(value, TTValue) and (new := to_dram(value)) is not None:
                env[key], moved = new, moved + 1
            elif isinstance(value, HostValue):
                for copy_key, copy in list(value.device_copies.items()):
                    if (new := to_dram(copy)) is not None:
                        value.device_copies[copy_key], moved = new, moved + 1
        return moved

    def _remedy(self, n: fx.Node, args: Any, kwargs: Any, memory: str, label: str) -> Any:
        try:
            found = self.ctx.device.calls(
                lambda: try_remedies(self.ctx, n, args, kwargs, memory), label=f"remedies of {label}"
            )
        except EnvironmentFault:
            raise
        except Exception as exc:
            broken = environment_error(self.ctx.device, exc)
            if broken is not None:
                raise broken from None
            return None  # the ladder itself failed: the node falls back unremedied
        return found if found.verified is not None else _Tried(found.tried)

    def _host_call(self, n: fx.Node, args: Any, kwargs: Any, count: bool = False, reason: str = "") -> Any:
        """The aten op on host values, in the dtypes capture recorded (fp32 activations).
        `count`: a real fallback moves its inputs; a PCC reference only measures."""
        like = fx.map_arg((n.args, n.kwargs), _val)
        read = lambda v, like: self.ctx.host(v, like=like, count=count)
        hargs, hkwargs = _map_pairs((args, kwargs), like, read)
        recorder = self.ctx.recorder if count else None
        if recorder is not None and n.target in REFERENCES:
            # fxport's own op (a fused linear) on the host: recorded as its reference's torch
            # calls, which a program without fxport can make
            recorder.add("comment", target_name(n.target), "", (), {}, None, reason)
            return REFERENCES[n.target](*hargs, **hkwargs)
        out = n.target(*hargs, **hkwargs)
        if recorder is not None:
            recorder.add("host", target_name(n.target), "", hargs, hkwargs, out, reason)
        return out

    def _node_pcc(self, n: fx.Node, args: Any, kwargs: Any, out: Any) -> float | None:
        try:
            expected = self._host_call(n, args, kwargs)
        except Exception:
            return None
        actual = out[0] if isinstance(out, (list, tuple)) else out
        expected = expected[0] if isinstance(expected, (list, tuple)) else expected
        if not isinstance(expected, torch.Tensor):
            return None
        got = self.ctx.host(actual, count=False)
        if not isinstance(got, torch.Tensor):
            return None
        if not (got.is_floating_point() and expected.is_floating_point()):
            got = self.ctx.host(actual, like=expected, count=False)  # integer results: rounded
        # (floats are compared as they are: PCC converts them piece by piece, no fp32 copy)
        return round(agreement(got, expected), 6)


def _in_l1(tt: Any) -> bool:
    try:
        return str(tt.memory_config().buffer_type).rsplit(".", 1)[-1].upper() == "L1"
    except Exception:  # a host-side ttnn tensor
        return False


@dataclass
class _Tried:
    """No rung of the ladder fitted: what was tried."""

    tried: list[str]
    verified: None = None
    outputs: None = None


def _val(a: Any) -> Any:
    return a.meta.get("val") if isinstance(a, fx.Node) else a


def _map_pairs(values: Any, likes: Any, fn) -> Any:
    """Apply fn(value, like) leaf-wise over two structures of the same shape."""
    if isinstance(values, (list, tuple)):
        return type(values)(_map_pairs(v, like, fn) for v, like in zip(values, likes))
    if isinstance(values, dict):
        return {k: _map_pairs(v, likes[k], fn) for k, v in values.items()}
    if isinstance(values, (HostValue, TTValue)):
        return fn(values, like=likes if isinstance(likes, torch.Tensor) else None)
    return values


def _as_host(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return HostValue(out)
    if isinstance(out, (list, tuple)):
        return type(out)(_as_host(o) for o in out)
    return out


@dataclass
class _PartitionPlan:
    """What running a partition needs that does not change from inference to inference."""

    last_use: dict[fx.Node, list[fx.Node]]
    nodes: dict[fx.Node, tuple[Any, str, str, str]]  # device node -> rule, target, module, label
    output: fx.Node
    # recorded call lists by `_Runner._calls_key`, or why the partition is not replayed
    calls: dict[tuple, "CallList | str"] = field(default_factory=dict)


# A partition's plan is an attribute of the partition itself. A weak-keyed table would never let
# it go: the plan's nodes hold their graph, which holds the partition, so every compiled program's
# recorded calls (prepared weights on the device) lived until the process ended.
_PLAN = "_fxport_partition_plan"


def _partition_plan(sub: fx.GraphModule) -> _PartitionPlan:
    """Computed on a partition's first run and kept with it (a compiled program runs its
    partitions on every inference)."""
    plan = sub.__dict__.get(_PLAN)
    if plan is None:
        nodes = {
            n: (
                REGISTRY.rule_for(n),
                target_name(n.target),
                module_of(n)[0],
                f"node {n.name} ({target_name(n.target)})",
            )
            for n in sub.graph.nodes
            if n.op == "call_function" and n.target is not operator.getitem
        }
        output = next(n for n in sub.graph.nodes if n.op == "output")
        plan = _PartitionPlan(_last_uses(sub.graph), nodes, output)
        setattr(sub, _PLAN, plan)
    return plan


def call_lists(gm: fx.GraphModule) -> dict[str, list[CallList | str]]:
    """For each device partition of a partitioned graph: its recorded call lists (one per run
    key, `_Runner._calls_key`), or why it is not replayed."""
    lists: dict[str, list[CallList | str]] = {}
    for n in gm.graph.nodes:
        if n.op == "call_module" and str(n.target).startswith("fused_"):
            plan = gm.get_submodule(n.target).__dict__.get(_PLAN)
            lists[str(n.target)] = list(plan.calls.values()) if plan is not None else []
    return lists


def _op_count(gm: fx.GraphModule) -> int:
    """The op nodes a run will record: host nodes at the top level and the partitions' nodes."""
    count = 0
    for n in gm.graph.nodes:
        if n.op == "call_module" and str(n.target).startswith("fused_"):
            count += sum(
                1
                for m in gm.get_submodule(n.target).graph.nodes
                if m.op == "call_function" and m.target is not operator.getitem
            )
        elif is_op_node(n):
            count += 1
    return count


def _last_uses(graph: fx.Graph) -> dict[fx.Node, list[fx.Node]]:
    """node -> the values whose last use it is (as torch.fx.Interpreter computes it)."""
    seen: set[fx.Node] = set()
    out: dict[fx.Node, list[fx.Node]] = {}
    for n in reversed(graph.nodes):
        for inp in n.all_input_nodes:
            if inp not in seen:
                seen.add(inp)
                out.setdefault(n, []).append(inp)
    return out
