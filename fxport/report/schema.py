"""Versions of the result documents and the fields their readers rely on. Kept apart from their
producers, which import torch, so that rendering a saved document does not.

Documents are read as untrusted input: a reader checks the fields below (present, of the right
JSON type) before anything uses them, so that a damaged or hand-edited document is one clear line
("missing 'coverage'"), never a KeyError deep inside a renderer.
"""

RUN_SCHEMA = "fxport.run/1"
SWEEP_SCHEMA = "fxport.sweep/1"

_NULL = type(None)
RUN_FIELDS = {
    "schema": str,
    "model": str,
    "inputs": list,
    "device": dict,
    "memory_config": str,
    "values": str,
    "provenance": dict,
    "capture": dict,
    "coverage": dict,
    "coverage_by_family": dict,
    "coverage_by_module": dict,
    "output_pcc": list,
    "unsupported": list,
    "fallbacks": list,
    "memory": (dict, _NULL),
    "partitions": list,
    "transfers": dict,
    "nodes": list,
}
# A run's optional `estimate` block (fxport/cost), checked when present.
ESTIMATE_FIELDS = {
    "arch": str,
    "batch": int,
    "latency_ms": (int, float),
    "throughput_per_s": (int, float, _NULL),
    "device_ms": (int, float),
    "host_ms": (int, float),
    "transfer_ms": (int, float),
    "dispatch_ms": (int, float),
    "bound": str,
    "host_bound": bool,
    "device_split_ms": dict,
    "metal_trace_saves_ms": (int, float),
    "transfers": int,
    "host_islands": list,
    "by_module": dict,
    "assumptions": dict,
}
SWEEP_FIELDS = {
    "schema": str,
    "device": dict,
    "memory_config": str,
    "values": str,
    "provenance": dict,
    "entries": list,
    "blocking_matrix": dict,
}
ENTRY_FIELDS = {
    "key": str,
    "model": str,
    "input_shape": list,
    "status": str,
    "error": str,
    "run": (str, _NULL),
    "coverage": (dict, _NULL),
    "coverage_by_family": (dict, _NULL),
    "coverage_by_module": (dict, _NULL),
    "fallbacks": int,
    "oom_nodes": int,
    "unsupported_ops": int,
    "output_pcc": list,
}


def problems(doc: object, fields: dict) -> list[str]:
    """What keeps `doc` from being a document with `fields`: missing keys, wrong types."""
    if not isinstance(doc, dict):
        return [f"not a JSON object but {type(doc).__name__}"]
    out = []
    for name, kind in fields.items():
        if name not in doc:
            out.append(f"missing {name!r}")
        elif not isinstance(doc[name], kind) or (kind is int and isinstance(doc[name], bool)):
            out.append(f"{name!r} is {type(doc[name]).__name__}")
    return out
