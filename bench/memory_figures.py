"""The memory figures of issue 10, read from sweeps that `fxport sweep` wrote (nothing is rerun).

For each sweep directory: the memory model's agreement with the allocator node by node, over the
whole sweep and per entry (targets: >= 99% over the L1 sweep, >= 97% on every entry), and per
entry whether it ran 100% on the device with no OOM node and what share of its activations stayed
in L1 (the `auto` target: every entry whole on the device, zero OOM).

    .venv/bin/python bench/memory_figures.py SWEEP_DIR [SWEEP_DIR ...]
    e.g. after `fxport sweep --memory-config l1 --out /tmp/l1` and the same with auto
"""

from __future__ import annotations

import sys
from pathlib import Path

from tabulate import tabulate

from fxport.errors import FxportError
from fxport.report.render import load_results
from fxport.report.tables import fmt_agreement, fmt_l1_share
from fxport.sweep import l1_share, memory_agreement

SWEEP_TARGET, ENTRY_TARGET = 0.99, 0.97


def figures(path: Path) -> None:
    kind, _, doc, runs = load_results(path)
    if kind != "sweep":
        raise FxportError(f"{path}: a run, not a sweep")
    rows, agree, judged, whole = [], 0, 0, 0
    for e in doc["entries"]:
        run = runs.get(e["key"]) or {}  # sweeps written before entries carried the figures
        a = e.get("memory_agreement") or memory_agreement(run.get("memory") or {}) or {}
        l1 = e.get("l1_share") or (l1_share(run) if run else None)
        cov = e.get("coverage") or {}
        if isinstance(a.get("judged"), int) and a["judged"]:
            agree, judged = agree + a["agree"], judged + a["judged"]
        on_device = e["status"] == "ok" and cov.get("device_pct") == 100.0 and e["oom_nodes"] == 0
        whole += on_device
        share = a["agree"] / a["judged"] if isinstance(a.get("judged"), int) and a["judged"] else None
        rows.append(
            [
                e["key"],
                e["status"],
                fmt_agreement(a or None),
                "" if share is None else ("meets" if share >= ENTRY_TARGET else "MISSES"),
                f"{cov.get('device_pct', '-')}",
                e["oom_nodes"],
                "yes" if on_device else "NO",
                fmt_l1_share(l1),
            ]
        )
    print(f"\n{path}: {doc['memory_config']} on {doc['device'].get('kind')} {doc['device'].get('arch')}")
    print(
        tabulate(
            rows,
            headers=[
                "entry",
                "status",
                "memory model = allocator",
                f">= {ENTRY_TARGET:.0%}",
                "on device %",
                "OOM nodes",
                "whole on device, no OOM",
                "L1 share (bytes / nodes)",
            ],
        )
    )
    total = agree / judged if judged else 0.0
    print(
        f"over the sweep: {agree} of {judged} nodes agree ({100 * total:.2f}%, "
        f"{'meets' if total >= SWEEP_TARGET else 'MISSES'} >= {SWEEP_TARGET:.0%}); "
        f"{whole} of {len(doc['entries'])} entries whole on the device with no OOM node"
    )


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-2].strip(), file=sys.stderr)
        return 2
    try:
        for p in argv:
            figures(Path(p))
    except FxportError as exc:
        print(f"bench/memory_figures.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
