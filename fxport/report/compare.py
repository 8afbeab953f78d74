"""Computations over saved result documents (the results side: renderers only format what these
return).

`compare` diffs two run documents, or two sweep documents entry by entry; `fallback_kinds` groups
a run's runtime fallbacks by error kind and op. Both read the JSON documents rather than a
`RunResult`, so results saved earlier (or on another machine) can be rendered and compared.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from tabulate import tabulate

from fxport.errors import FxportError
from fxport.report.schema import RUN_SCHEMA, SWEEP_SCHEMA

_COVERAGE_FIELDS = ("total", "planned", "planned_pct", "on_device", "device_pct", "fallback", "host", "not_run")
# Settings that make two results incomparable node for node; compared, reported, never fatal.
_SETTINGS = ("memory_config", "values")


def fallback_kinds(run: dict) -> list[dict]:
    """Runtime fallbacks grouped by (error kind, op): nodes (weighted by repeat) and the first
    error text as an example; most nodes first."""
    groups: dict[tuple[str, str], dict] = {}
    for f in run["fallbacks"]:
        g = groups.setdefault(
            (f["kind"], f["target"]),
            {"kind": f["kind"], "target": f["target"], "nodes": 0, "example": f["error"], "cost_ms": None},
        )
        g["nodes"] += f["repeat"]
        if isinstance(f.get("cost_ms"), (int, float)):
            g["cost_ms"] = round((g["cost_ms"] or 0.0) + f["cost_ms"], 4)
    # Costliest first (runs without an estimate: most nodes first)
    return sorted(groups.values(), key=lambda g: (-(g["cost_ms"] or 0.0), -g["nodes"], g["kind"], g["target"]))


@dataclass(frozen=True)
class Delta:
    """One number in A and in B; None where a side has no value (failed entry, no values run)."""

    name: str
    before: float | None
    after: float | None

    @property
    def change(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return round(self.after - self.before, 6)

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass
class EntryComparison:
    """One model (a run, or one sweep entry key) in A and in B."""

    key: str
    status: tuple[str, str]  # "ok", "failed" or "missing" in A, B
    errors: tuple[str, str]
    coverage: list[Delta] = field(default_factory=list)
    families: list[Delta] = field(default_factory=list)  # lowered % and on-device nodes per op family
    modules: list[Delta] = field(default_factory=list)  # the same per top-level module
    blocking: list[Delta] = field(default_factory=list)  # off-device nodes per op (plan + run time)
    fallbacks_appeared: list[dict] = field(default_factory=list)  # node level (run documents only)
    fallbacks_disappeared: list[dict] = field(default_factory=list)
    oom_appeared: list[dict] = field(default_factory=list)
    oom_disappeared: list[dict] = field(default_factory=list)
    counts: list[Delta] = field(default_factory=list)  # fallback / OOM node counts (sweep entries)
    pcc: list[Delta] = field(default_factory=list)  # end-to-end, per output

    @property
    def newly_lowered(self) -> list[str]:
        """Ops that kept nodes off the device in A and none in B."""
        return [d.name for d in self.blocking if d.before and not d.after]

    @property
    def newly_blocking(self) -> list[str]:
        """Ops that keep nodes off the device in B and did not in A."""
        return [d.name for d in self.blocking if d.after and not d.before]

    @property
    def changed(self) -> bool:
        return (
            self.status[0] != self.status[1]
            or self.errors[0] != self.errors[1]
            or any(
                d.changed for d in self.coverage + self.families + self.modules + self.blocking + self.counts + self.pcc
            )
            or bool(self.fallbacks_appeared or self.fallbacks_disappeared or self.oom_appeared or self.oom_disappeared)
        )


@dataclass
class Comparison:
    kind: str  # "run" or "sweep"
    a: str  # labels of the two sides (model or sweep description)
    b: str
    settings: list[tuple[str, str, str]]  # (setting, A, B) where they differ
    entries: list[EntryComparison]


def compare(
    a: dict, b: dict, a_runs: dict[str, dict] | None = None, b_runs: dict[str, dict] | None = None
) -> Comparison:
    """Compare two run documents, or two sweep documents per entry key. With the sweeps' run
    documents (`runs`: entry key -> run.json document) sweep entries are compared node by node too."""
    kinds = {_kind(a), _kind(b)}
    if len(kinds) != 1:
        raise FxportError("cannot compare a run with a sweep: give two run directories or two sweep directories")
    kind = kinds.pop()
    settings = [(s, str(a.get(s)), str(b.get(s))) for s in _SETTINGS if a.get(s) != b.get(s)]
    for name, key in (("graph passes", "passes"), ("weights", "weights")):
        va, vb = _graph_setting(a, key), _graph_setting(b, key)
        if va != vb:
            settings.append((name, va, vb))
    arch = (
        f"{a['device'].get('kind')} {a['device'].get('arch')}",
        f"{b['device'].get('kind')} {b['device'].get('arch')}",
    )
    if arch[0] != arch[1]:
        settings.append(("device", *arch))
    if kind == "run":
        settings[:0] = [
            (name, side_a, side_b)
            for name, side_a, side_b in (
                ("model", a["model"], b["model"]),
                ("inputs", _inputs(a["inputs"]), _inputs(b["inputs"])),
            )
            if side_a != side_b
        ]
        return Comparison(
            "run", _run_label(a), _run_label(b), settings, [_compare_views(a["model"], _run_view(a), _run_view(b))]
        )
    a_runs, b_runs = a_runs or {}, b_runs or {}
    a_entries = {e["key"]: e for e in a["entries"]}
    b_entries = {e["key"]: e for e in b["entries"]}
    settings[:0] = [
        (
            f"input of {k}",
            "x".join(map(str, a_entries[k]["input_shape"])),
            "x".join(map(str, b_entries[k]["input_shape"])),
        )
        for k in a_entries
        if k in b_entries and a_entries[k]["input_shape"] != b_entries[k]["input_shape"]
    ]
    keys = list(a_entries) + [k for k in b_entries if k not in a_entries]
    entries = [
        _compare_views(
            k, _sweep_view(a, a_entries.get(k), a_runs.get(k)), _sweep_view(b, b_entries.get(k), b_runs.get(k))
        )
        for k in keys
    ]
    return Comparison("sweep", _sweep_label(a), _sweep_label(b), settings, entries)


def _graph_setting(doc: dict, key: str) -> str:
    """A graph-pass setting of a run document (a sweep records its passes at the top)."""
    graph = doc.get("graph") or {"passes": doc.get("passes", "(not recorded)")}
    value = graph.get(key, "(not recorded)")
    return ", ".join(value) or "none" if isinstance(value, list) else str(value)


def _kind(doc: dict) -> str:
    schema = doc.get("schema")
    if schema == RUN_SCHEMA:
        return "run"
    if schema == SWEEP_SCHEMA:
        return "sweep"
    raise FxportError(f"unknown result schema {schema!r} (expected {RUN_SCHEMA} or {SWEEP_SCHEMA})")


def _inputs(specs: list[dict]) -> str:
    return " ".join(f"{'x'.join(map(str, s['shape']))} {s['dtype']}" for s in specs)


def _run_label(doc: dict) -> str:
    shapes = " ".join("x".join(map(str, i["shape"])) for i in doc["inputs"])
    return f"{doc['model']} {shapes} ({doc['memory_config']}, values {doc['values']})"


def _sweep_label(doc: dict) -> str:
    dev = doc["device"]
    return (
        f"sweep of {len(doc['entries'])} entries on {dev.get('kind', '?')} {dev.get('arch', '')} "
        f"({doc['memory_config']}, values {doc['values']})"
    )


def _blocking(run: dict) -> dict[str, int]:
    """Off-device nodes per op, as the sweep's blocking matrix counts them."""
    counts: dict[str, int] = defaultdict(int)
    for u in run["unsupported"]:
        counts[u["target"]] += u["count"]
    for f in run["fallbacks"]:
        counts[f["target"]] += f["repeat"]
    return dict(counts)


def _run_view(run: dict, status: str = "ok", error: str = "") -> dict:
    memory = run.get("memory") or {}
    return {
        "status": status,
        "error": error,
        "coverage": run["coverage"],
        "families": run["coverage_by_family"],
        "modules": run["coverage_by_module"],
        "blocking": _blocking(run),
        "pcc": run["output_pcc"],
        "fallbacks": {f["node"]: f for f in run["fallbacks"]},
        "oom": {o["node"]: o for o in memory.get("oom_nodes", [])},
        "counts": {
            "fallback nodes": sum(f["repeat"] for f in run["fallbacks"]),
            "OOM nodes": len(memory.get("oom_nodes", [])),
            **_call_counts(run),
            **_time_counts(run.get("estimate")),
        },
    }


def _time_counts(est: dict | None) -> dict:
    """The cost model's times (predicted; host and dispatch parts are measured, so they vary)."""
    if not isinstance(est, dict):
        return {}
    return {
        f"est. {label} ms": est.get(key)
        for key, label in (
            ("latency_ms", "latency"),
            ("device_ms", "device"),
            ("host_ms", "host"),
            ("transfer_ms", "transfer"),
        )
        if isinstance(est.get(key), (int, float))
    }


def _call_counts(run: dict) -> dict:
    """The ttnn calls of one inference by kind, and the graph's nodes after the passes."""
    calls = run.get("ttnn_calls")
    if not calls:
        return {}
    return {
        "ttnn calls per inference": calls["per_inference"],
        "ttnn compute calls": calls["compute"],
        "ttnn layout conversions": calls["layout"],
        "ttnn transfer calls": calls["transfer"],
        "ttnn weight calls (once)": calls["weights_once"],
        "aten nodes after the passes": run["coverage"]["total"],
    }


def _sweep_view(sweep: dict, entry: dict | None, run: dict | None) -> dict:
    if entry is None:
        return {"status": "missing", "error": ""}
    if entry["status"] == "ok" and run is not None:
        return _run_view(run, "ok", entry["error"])
    view = {"status": entry["status"], "error": entry["error"]}
    if entry["status"] == "ok":  # no run document at hand: what the sweep document itself holds
        view.update(
            coverage=entry["coverage"],
            families=entry["coverage_by_family"],
            modules=entry["coverage_by_module"],
            pcc=entry["output_pcc"],
            blocking={t: row[entry["key"]] for t, row in sweep["blocking_matrix"].items() if entry["key"] in row},
            counts={
                "fallback nodes": entry["fallbacks"],
                "OOM nodes": entry["oom_nodes"],
                **_time_counts(entry.get("estimate")),
            },
        )
    return view


def _deltas(a: dict | None, b: dict | None) -> list[Delta]:
    a, b = a or {}, b or {}
    return [Delta(n, a.get(n), b.get(n)) for n in sorted(set(a) | set(b))]


def _group_deltas(a: dict | None, b: dict | None) -> list[Delta]:
    """Per coverage group (family or module): lowered % (the plan) and on-device nodes (the run)."""
    a, b = a or {}, b or {}
    return [
        Delta(f"{name}: {label}", a[name][f] if name in a else None, b[name][f] if name in b else None)
        for name in sorted(set(a) | set(b))
        for f, label in (("lowered_pct", "lowered %"), ("on_device", "on device"))
    ]


def _compare_views(key: str, a: dict, b: dict) -> EntryComparison:
    cmp = EntryComparison(key, (a["status"], b["status"]), (a["error"], b["error"]))
    if "coverage" not in a and "coverage" not in b:
        return cmp
    ca, cb = a.get("coverage") or {}, b.get("coverage") or {}
    cmp.coverage = [Delta(f, ca.get(f), cb.get(f)) for f in _COVERAGE_FIELDS]
    cmp.families = _group_deltas(a.get("families"), b.get("families"))
    cmp.modules = _group_deltas(a.get("modules"), b.get("modules"))
    # An op absent on one side (fully lowered there, or that side has no data) counts as 0 only
    # when that side has coverage: a failed entry has no numbers, not zero of them.
    ba = a.get("blocking", {}) if ca else None
    bb = b.get("blocking", {}) if cb else None
    cmp.blocking = [
        Delta(t, (ba or {}).get(t, 0) if ba is not None else None, (bb or {}).get(t, 0) if bb is not None else None)
        for t in sorted(set(ba or {}) | set(bb or {}))
    ]
    cmp.counts = _deltas(a.get("counts"), b.get("counts"))
    pa, pb = a.get("pcc") or [], b.get("pcc") or []
    cmp.pcc = [
        Delta(f"output {i}", pa[i] if i < len(pa) else None, pb[i] if i < len(pb) else None)
        for i in range(max(len(pa), len(pb)))
    ]
    if "fallbacks" in a and "fallbacks" in b:
        cmp.fallbacks_appeared = [f for n, f in b["fallbacks"].items() if n not in a["fallbacks"]]
        cmp.fallbacks_disappeared = [f for n, f in a["fallbacks"].items() if n not in b["fallbacks"]]
        cmp.oom_appeared = [o for n, o in b["oom"].items() if n not in a["oom"]]
        cmp.oom_disappeared = [o for n, o in a["oom"].items() if n not in b["oom"]]
    return cmp


# --- rendering (formatting only) ---

NODE_LIMIT = 25  # nodes listed per change in the terminal


def _more(shown: int, items: list) -> list[str]:
    return [f"... {len(items) - shown} more"] if len(items) > shown else []


def _num(v) -> str:
    if v is None:
        return "-"
    return f"{v:,.6g}" if isinstance(v, float) else f"{v:,}"


def _delta_rows(deltas: list[Delta]) -> list[list[str]]:
    return [
        [d.name, _num(d.before), _num(d.after), "" if d.change is None else f"{d.change:+,.6g}"]
        for d in deltas
        if d.changed
    ]


def _entry_text(e: EntryComparison) -> list[str]:
    lines = [f"== {e.key}"]
    if e.status[0] != e.status[1]:
        lines.append(f"status: {e.status[0]} -> {e.status[1]}")
    for side, status, error in (("A", e.status[0], e.errors[0]), ("B", e.status[1], e.errors[1])):
        if status == "failed":
            lines.append(f"{side} failed: {error}")
    for title, deltas in (
        ("coverage (aten nodes)", e.coverage),
        ("by op family", e.families),
        ("by module", e.modules),
        ("counts", e.counts),
        ("end-to-end PCC", e.pcc),
    ):
        rows = _delta_rows(deltas)
        if rows:
            lines += [
                f"{title}:",
                tabulate(rows, headers=["", "A", "B", "change"], tablefmt="simple", disable_numparse=True),
                "",
            ]
    if e.newly_lowered:
        lines.append("newly lowered (no longer off the device): " + ", ".join(e.newly_lowered))
    if e.newly_blocking:
        lines.append("newly off the device (declined or falling back): " + ", ".join(e.newly_blocking))
    rows = _delta_rows([d for d in e.blocking if d.name not in e.newly_lowered + e.newly_blocking])
    if rows:
        lines += [
            "off-device nodes per op:",
            tabulate(rows, headers=["aten op", "A", "B", "change"], tablefmt="simple", disable_numparse=True),
            "",
        ]
    for title, items in (
        ("fallbacks appeared", e.fallbacks_appeared),
        ("fallbacks disappeared", e.fallbacks_disappeared),
    ):
        if items:
            rows = [[f["node"], f["target"], f["kind"], f["error"][:100]] for f in items[:NODE_LIMIT]]
            lines += [
                f"{title} ({len(items)}):",
                tabulate(rows, headers=["node", "aten op", "kind", "error"], tablefmt="simple", disable_numparse=True),
                *_more(NODE_LIMIT, items),
                "",
            ]
    for title, items in (("OOM nodes appeared", e.oom_appeared), ("OOM nodes disappeared", e.oom_disappeared)):
        if items:
            rows = [
                [
                    o["node"],
                    o["target"],
                    o["config"],
                    f"{o['per_bank']:,} / {o['bank_size']:,}",
                    o["cause"],
                    o["observed"],
                ]
                for o in items[:NODE_LIMIT]
            ]
            lines += [
                f"{title} ({len(items)}):",
                tabulate(
                    rows,
                    headers=["node", "aten op", "config", "B per bank / bank size", "cause", "device"],
                    tablefmt="simple",
                    disable_numparse=True,
                ),
                *_more(NODE_LIMIT, items),
                "",
            ]
    if len(lines) == 1:
        lines.append("no change")
    return lines


def compare_text(c: Comparison) -> str:
    lines = [f"A: {c.a}", f"B: {c.b}"]
    for setting, a, b in c.settings:
        lines.append(f"warning: {setting} differs (A {a}, B {b}): differences may come from the settings")
    if c.kind == "sweep":
        rows = []
        for e in c.entries:
            cov = {d.name: d for d in e.coverage}
            dev = cov.get("device_pct")
            note = "changed" if e.changed else ""
            if e.status[1] == "failed":
                note = f"{note}; B failed: {e.errors[1][:70]}".lstrip("; ")
            rows.append(
                [
                    e.key,
                    f"{e.status[0]} -> {e.status[1]}" if e.status[0] != e.status[1] else e.status[0],
                    _num(dev.before) if dev else "-",
                    _num(dev.after) if dev else "-",
                    note,
                ]
            )
        lines += [
            "",
            tabulate(
                rows,
                headers=["entry", "status", "on device % A", "on device % B", "note"],
                tablefmt="simple",
                disable_numparse=True,
            ),
        ]
    changed = [e for e in c.entries if e.changed]
    if not changed:
        lines += ["", "no differences"]
    for e in changed:
        lines += [""] + _entry_text(e)
    return "\n".join(lines).rstrip() + "\n"
