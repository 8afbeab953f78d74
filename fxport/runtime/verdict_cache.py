"""A content-addressed, on-disk cache of device verdicts, for verdict runs (`--values none`).

What is cached is one ttnn call made by a lowering rule (through `DualOps`): its verdict (it
returned, or it raised which error) and its allocation facts (the specs of the device tensors it
returned, and the allocator state it left). A hit replays the call's effect without running it:
the error is raised again, or tensors of the recorded specs are allocated on the device.

Why the key is exact (what a verdict depends on):
- the call: the ttnn op, its tensor arguments' specs (logical and padded shape, dtype, layout,
  tile, memory config with any shard spec, storage), the contents of host-side ttnn tensors
  (conv weights), and every other argument (`_canonical`: a call with an argument that has no
  stable form, such as a torch tensor or an object without a value repr, is never cached);
- the device: the board and its bank layout, ttnn's version and the mapping table's hash
  (fxport.settings, as in run.json's resume key);
- the allocator's state at call time: in L1 the live tensors and the fragmentation decide whether
  an output fits, where circular buffers clash, and which sharding conv2d and the pools choose
  (they size their configs from the free L1). So the key holds a digest of every allocator's
  block table (address, size, allocated; L1, L1_SMALL, DRAM, TRACE): the same call in another
  memory state is another key, in DRAM and L1 alike.
- TT-NN's program cache is not in the key, and this is the one part of the argument that rests on
  observation. A program-cache hit skips creating the program (and the compile-time checks, such
  as where circular buffers sit against L1 buffers) for a call whose program hash (op attributes
  and tensor specs, which the key holds) an earlier successful call already created. A replayed
  call creates no program, so later calls can find the program cache emptier than the uncached
  run did. Where a created program leaves memory behind (cached conv and pool programs keep their
  config tensors in L1_SMALL) the allocator digest sees it: replaying such a call would leave
  L1_SMALL elsewhere, so it is found not replayable (below) and always runs for real, creating its
  program as the uncached run does. Calls that replay are the ones whose programs hold nothing.
  Checked, not assumed: tests/test_fleet.py (DRAM and L1, with real allocator OOMs) and
  bench/sweep.py (the whole zoo) compare cached and uncached run.json documents, which must be
  identical apart from timing fields.
- Buffer lifetimes: a replayed error is raised so that it holds no reference to the call's
  arguments (a traceback cycle would keep their device buffers alive until the next garbage
  collection, where the real error frees them at once).

A replay must leave the allocator exactly as the call did, or later calls would be judged in a
state the uncached run never reaches. The entry records the state digest after the call; a replay
that ends elsewhere (an op that returned a view of its input, freed an input, or allocated in
another order) is undone, the call runs for real, and the entry is marked not replayable.

Nothing read is trusted: an entry that does not parse, carries another key, or has fields of the
wrong type is counted as rejected, ignored and rewritten by the real call; a cached error is
re-raised only as one of a few builtin exception types with its text, and never when it would be
an environment error (those are not cached). Writers need no lock: an entry is written to a
temporary file and renamed to its content address, so concurrent writers of one key leave one
whole entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import operator
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from fxport.durable import OutputError, not_private, read_regular, subdir
from fxport.runtime.mock.runtime_root import cache_home
from fxport.settings import _version, mapping_hash

SCHEMA = "fxport.verdict/1"
_ERRORS = {
    "RuntimeError": RuntimeError,
    "ValueError": ValueError,
    "TypeError": TypeError,
    "IndexError": IndexError,
    "NotImplementedError": NotImplementedError,
}
_MAX_ERROR = 4000  # characters of a cached error text
_BUFFER_TYPES = ("L1", "L1_SMALL", "DRAM", "TRACE")
_BLOCK_ROW = operator.itemgetter("address", "size", "allocated")


def default_cache_dir() -> Path:
    """`$FXPORT_CACHE/verdicts` (default ~/.cache/fxport/verdicts)."""
    return cache_home() / "verdicts"


class Uncacheable(Exception):
    """An argument or result with no stable form: the call runs for real, uncached."""


@dataclass
class CacheStats:
    """Counts of ttnn calls in a verdict run. `hits` were replayed without running."""

    calls: int = 0
    hits: int = 0
    misses: int = 0  # ran for real and stored
    uncacheable: int = 0  # an argument or result without a stable form
    not_replayable: int = 0  # cached, but replaying would not leave the allocator as the call did
    rejected: int = 0  # damaged or foreign entries ignored (and rewritten)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.calls if self.calls else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "hit_rate": round(self.hit_rate, 4)}

    def add(self, other: "CacheStats | dict") -> None:
        other = other if isinstance(other, dict) else asdict(other)
        for k in asdict(self):
            setattr(self, k, getattr(self, k) + int(other.get(k, 0)))


@dataclass
class VerdictCache:
    """The cache directory and this process's counters; `call` is what DualOps uses."""

    root: Path
    stats: CacheStats = field(default_factory=CacheStats)
    _fixed: dict = field(default_factory=dict, init=False, repr=False)  # per device: board, versions

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        why = not_private(self.root)
        self.read_only = why is not None  # others can write it: read (entries are validated), never write
        if why:
            print(f"fxport: note: cache {self.root} is used read-only: {why}", file=sys.stderr)

    def _setting(self, ttnn: Any, device: Any) -> dict:
        """The part of the key that is the same for every call on one device."""
        if id(device) not in self._fixed:
            self._fixed[id(device)] = {
                "board": _board(ttnn, device),
                "ttnn": _version("ttnn"),
                "mapping_table": mapping_hash(),
            }
        return self._fixed[id(device)]

    # -- the store ------------------------------------------------------------------------------
    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.json"

    def read(self, digest: str, material: dict) -> dict | None:
        path = self._path(digest)
        try:
            raw = read_regular(path, limit=1 << 24)
        except OSError:
            return None
        try:
            doc = json.loads(raw)
            ok = (
                isinstance(doc, dict)
                and doc.get("schema") == SCHEMA
                and doc.get("key") == material
                and _valid_outcome(doc.get("outcome"))
            )
        except (ValueError, RecursionError):  # nested beyond the parser's depth: damaged
            ok = False
        if not ok:
            self.stats.rejected += 1
            return None
        return doc["outcome"]

    def write(self, digest: str, material: dict, outcome: dict) -> None:
        path = self._path(digest)
        text = json.dumps({"schema": SCHEMA, "key": material, "outcome": outcome}, sort_keys=True)
        if self.read_only:
            return
        with contextlib.suppress(OSError, OutputError):  # a cache that cannot be written only costs speed
            subdir(self.root, path.parent.name)  # never through a shard folder that is a link
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(text)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    # -- one call -------------------------------------------------------------------------------
    def call(
        self,
        ttnn: Any,
        device: Any,
        name: str,
        op: Callable,
        args: tuple,
        kwargs: dict,
        is_environment_error: Callable[[BaseException], bool],
    ) -> Any:
        """`op(*args, **kwargs)` (ttnn tensors already unwrapped), or its replay."""
        self.stats.calls += 1
        try:
            material = {
                "op": name,
                "args": _canonical(ttnn, args),
                "kwargs": _canonical(ttnn, kwargs),
                **self._setting(ttnn, device),
                "state": allocator_state(ttnn, device),
            }
        except Exception:  # Uncacheable, or a form this code does not know: never a verdict
            self.stats.uncacheable += 1
            return op(*args, **kwargs)
        digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
        outcome = self.read(digest, material)
        if (
            outcome is not None
            and "error" in outcome
            and is_environment_error(_ERRORS[outcome["error"]["type"]](outcome["error"]["message"]))
        ):
            # Environment errors are never written; one read back was forged or damaged, and
            # its text must not stop the run as a broken machine: ignored, rewritten by the call.
            self.stats.rejected += 1
            outcome = None
        if outcome is not None and outcome.get("replay", True):
            replayed = _replay(ttnn, device, outcome, material["state"])
            if replayed is not _DIVERGED:
                self.stats.hits += 1
                if isinstance(replayed, BaseException):
                    try:
                        raise replayed
                    finally:
                        # No exception -> traceback -> this frame -> exception cycle: it would
                        # keep the arguments' device buffers alive until the next garbage
                        # collection, where the real call's error frees them at once.
                        replayed = args = kwargs = None
                return replayed
            self.stats.not_replayable += 1
            self.write(digest, material, {**outcome, "replay": False})
            return op(*args, **kwargs)
        if outcome is not None:  # known not replayable: run it
            self.stats.not_replayable += 1
            return op(*args, **kwargs)
        self.stats.misses += 1
        try:
            out = op(*args, **kwargs)
        except Exception as exc:
            if not is_environment_error(exc) and type(exc).__name__ in _ERRORS:
                self.write(
                    digest,
                    material,
                    {
                        "error": {"type": type(exc).__name__, "message": str(exc)[:_MAX_ERROR]},
                        "state_after": allocator_state(ttnn, device),
                    },
                )
            raise
        try:
            record = {
                "result": _describe(ttnn, out),
                "state_after": allocator_state(ttnn, device),
                "replay": not _aliases(out, args, kwargs),
            }
        except Exception:
            self.stats.misses -= 1
            self.stats.uncacheable += 1
            return out
        self.write(digest, material, record)
        return out


# -- keys -------------------------------------------------------------------------------------------


def allocator_state(ttnn: Any, device: Any) -> str:
    """Digest of every allocator's block table (address, size, allocated), in address order."""
    h = hashlib.sha256()
    for name in _BUFFER_TYPES:
        buffer_type = getattr(ttnn.BufferType, name, None)
        if buffer_type is None:
            continue
        try:
            blocks = ttnn.get_memory_view(device, buffer_type).block_table
        except Exception:
            h.update(f"{name}:none;".encode())
            continue
        # The same rows as one (address, size, allocated) tuple per block, built in C: this digest
        # is taken 2-3 times per device call, and was a quarter of a warm verdict run's execute.
        rows = sorted((int(a), int(s), x) for a, s, x in map(_BLOCK_ROW, blocks))
        h.update(f"{name}:{rows};".encode())
    return h.hexdigest()


def _board(ttnn: Any, device: Any) -> dict:
    views = {}
    for name in ("L1", "L1_SMALL", "DRAM"):
        v = ttnn.get_memory_view(device, getattr(ttnn.BufferType, name))
        views[name] = [v.num_banks, v.total_bytes_per_bank]
    return {"arch": ttnn.cluster.get_cluster_type().name.lower(), "banks": views}


def _is_tensor(x: Any) -> bool:
    """A ttnn tensor (torch tensors have a `storage_type` too)."""
    return type(x).__name__ == "Tensor" and type(x).__module__.startswith("ttnn")


def _spec(ttnn: Any, t: Any) -> dict:
    spec = {
        "shape": list(t.shape),
        "padded_shape": list(t.padded_shape),
        "dtype": str(t.dtype),
        "layout": str(t.layout),
        "tile": list(t.tile.tile_shape) if t.layout == ttnn.TILE_LAYOUT else None,
        "storage": str(t.storage_type()),
    }
    if t.storage_type() == ttnn.StorageType.DEVICE:
        spec["memory_config"] = json.loads(t.memory_config().to_json())
    return spec


def _canonical(ttnn: Any, value: Any) -> Any:
    """A JSON form of a call argument that equals another's exactly when the arguments are the
    same to ttnn; Uncacheable when there is none."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [_canonical(ttnn, v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[_canonical(ttnn, k), _canonical(ttnn, v)] for k, v in value.items()]}
    if _is_tensor(value):
        spec = _spec(ttnn, value)
        if value.storage_type() != ttnn.StorageType.DEVICE:  # its data is an argument too
            import torch  # here for cost: the sweep driver reads CacheStats without torch

            data = ttnn.to_torch(value).contiguous()
            spec["data"] = hashlib.sha256(data.view(-1).view(torch.uint8).numpy()).hexdigest()
        return {"tensor": spec}
    kind = type(value)
    if kind.__name__ in ("MeshDevice", "Device", "IDevice"):
        return {"device": True}
    if kind.__name__ == "MemoryConfig":
        return {"memory_config": json.loads(value.to_json())}
    if (kind.__module__ or "").startswith("ttnn"):
        text = repr(value)
        if " at 0x" not in text and "object at" not in text:
            return {kind.__name__: text}
    if kind.__module__ == "torch" and kind.__name__ == "dtype":
        return {"torch.dtype": str(value)}
    raise Uncacheable(kind.__name__)


def _describe(ttnn: Any, out: Any) -> Any:
    """What a replay needs to recreate a call's result: device tensor specs and plain values."""
    if out is None or isinstance(out, (bool, int, str)):
        return out
    if isinstance(out, float):
        return {"float": repr(out)}
    if isinstance(out, (list, tuple)):
        return {type(out).__name__: [_describe(ttnn, o) for o in out]}
    if _is_tensor(out) and out.storage_type() == ttnn.StorageType.DEVICE and out.is_allocated():
        spec = _spec(ttnn, out)
        if spec["tile"] not in (None, [32, 32]):
            raise Uncacheable("a custom tile")
        return {"tensor": spec}
    raise Uncacheable(type(out).__name__)


def _aliases(out: Any, args: tuple, kwargs: dict) -> bool:
    """Whether a returned device tensor shares a buffer with an argument (a view): a replay would
    allocate where the call did not."""

    def buffers(x: Any, acc: set) -> set:
        if isinstance(x, (list, tuple)):
            for v in x:
                buffers(v, acc)
        elif isinstance(x, dict):
            for v in x.values():
                buffers(v, acc)
        elif _is_tensor(x) and x.storage_type().name == "DEVICE" and x.is_allocated():
            acc.add(x.buffer_address())
        return acc

    return bool(buffers(out, set()) & buffers((args, kwargs), set()))


# -- replay -----------------------------------------------------------------------------------------

_DIVERGED = object()


def _replay(ttnn: Any, device: Any, outcome: dict, state_before: str) -> Any:
    """The recorded error (to raise), the recreated result, or _DIVERGED (state restored)."""
    if "error" in outcome:
        if outcome["state_after"] != state_before:
            return _DIVERGED
        return _ERRORS[outcome["error"]["type"]](outcome["error"]["message"])
    made: list = []
    try:
        result = _recreate(ttnn, device, outcome["result"], made)
    except Exception:
        result = _DIVERGED
    if result is not _DIVERGED and allocator_state(ttnn, device) == outcome["state_after"]:
        return result
    for t in made:
        ttnn.deallocate(t)
    del made, result
    if allocator_state(ttnn, device) != state_before:
        raise RuntimeError(
            "fxport verdict cache: a replay could not be undone (allocator state changed); rerun with --no-cache"
        )
    return _DIVERGED


def _recreate(ttnn: Any, device: Any, desc: Any, made: list) -> Any:
    if isinstance(desc, dict) and "tensor" in desc:
        s = desc["tensor"]
        t = ttnn.allocate_tensor_on_device(
            ttnn.Shape(s["shape"]),
            _enum(ttnn.DataType, s["dtype"]),
            _enum(ttnn.Layout, s["layout"]),
            device,
            ttnn.MemoryConfig.from_json(json.dumps(s["memory_config"])),
        )
        made.append(t)
        if _spec(ttnn, t) != s:
            raise Uncacheable("recreated tensor differs")
        return t
    if isinstance(desc, dict) and "float" in desc:
        return float(desc["float"])
    if isinstance(desc, dict) and ("list" in desc or "tuple" in desc):
        kind = "list" if "list" in desc else "tuple"
        items = [_recreate(ttnn, device, d, made) for d in desc[kind]]
        return items if kind == "list" else tuple(items)
    return desc


def _enum(enum: Any, text: str) -> Any:
    """DataType.BFLOAT16 -> ttnn.DataType.BFLOAT16 (by member name, never evaluated)."""
    member = text.rsplit(".", 1)[-1]
    if not member.isidentifier():
        raise Uncacheable(text)
    value = getattr(enum, member, None)
    if value is None or not isinstance(value, enum):
        raise Uncacheable(text)
    return value


def _valid_outcome(o: object) -> bool:
    """Shape checks of a cached outcome read from disk (its content is checked again on replay:
    a recreated tensor must have exactly the recorded spec, the allocator the recorded state)."""
    if not isinstance(o, dict) or not isinstance(o.get("state_after"), str):
        return False
    if not isinstance(o.get("replay", True), bool):
        return False
    if "error" in o:
        e = o["error"]
        return (
            isinstance(e, dict)
            and e.get("type") in _ERRORS
            and isinstance(e.get("message"), str)
            and len(e["message"]) <= _MAX_ERROR
        )
    return "result" in o and _valid_result(o["result"])


def _valid_result(d: object, depth: int = 0) -> bool:
    if depth > 8:
        return False
    if d is None or isinstance(d, (bool, int, str)):
        return True
    if not isinstance(d, dict) or len(d) != 1:
        return False
    ((kind, v),) = d.items()
    if kind == "float":
        return isinstance(v, str)
    if kind in ("list", "tuple"):
        return isinstance(v, list) and all(_valid_result(x, depth + 1) for x in v)
    if kind == "tensor":
        return (
            isinstance(v, dict)
            and isinstance(v.get("shape"), list)
            and all(isinstance(x, int) for x in v["shape"])
            and isinstance(v.get("dtype"), str)
            and isinstance(v.get("layout"), str)
            and isinstance(v.get("memory_config"), dict)
        )
    return False
