"""The `fxport` command line. Every user error is one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fxport.errors import FxportError

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return args.handler(args) or 0
    except FxportError as exc:
        if args.debug:
            raise
        print(f"fxport: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("fxport: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unforeseen failure: still one line, unless --debug
        if args.debug:
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"fxport: error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL_ERROR


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    parser = argparse.ArgumentParser(prog="fxport", parents=[common],
                                     description="PyTorch -> TT-NN graph capture, lowering and coverage")
    sub = parser.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("trace", parents=[common], help="capture a model's aten ops with shapes")
    p.add_argument("model", help="zoo name (see `fxport models`) or module.path:callable")
    p.add_argument("--input-shape", help="input shape, e.g. 1,3,224,224 (default: the model's)")
    p.add_argument("--out", type=Path, help="output directory (default: out/<model>)")
    p.add_argument("--no-fold", action="store_true",
                   help="trace every call of repeated blocks (PI0's denoise steps) instead of "
                        "tracing two and counting the rest")
    p.set_defaults(handler=_cmd_trace)

    p = sub.add_parser("run", parents=[common], help="lower a model to TT-NN and run it on a device")
    p.add_argument("model", help="zoo name or module.path:callable")
    p.add_argument("--input-shape", help="input shape, e.g. 1,3,224,224 (default: the model's)")
    p.add_argument("--device", choices=["auto", "mock", "hardware"], default="auto",
                   help="hardware: a Tenstorrent card; mock: TT-NN without a card; auto: a card "
                        "when present, else mock (default)")
    p.add_argument("--arch", choices=["n150", "p150"], help="mock device board (default n150)")
    p.add_argument("--memory-config", choices=["dram", "l1"], default="dram",
                   help="where activations live on the device (default dram)")
    p.add_argument("--values", choices=["emulate", "device", "none"],
                   help="emulate: golden functions (mock default); device: read back (hardware "
                        "default); none: verdicts only, weights on meta (for full-size models)")
    p.add_argument("--min-block-size", type=int, default=1,
                   help="leave device partitions with fewer ops on the host (default 1)")
    p.add_argument("--out", type=Path, help="output directory (default: out/<model>)")
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser("sweep", parents=[common], help="run the zoo (or MODELS) x resolutions and write reports")
    p.add_argument("models", nargs="*", help="zoo names (default: every zoo model at its sweep shapes)")
    p.add_argument("--input-shape", action="append", default=[],
                   help="shape to run every model at (repeatable; default: each model's sweep shapes)")
    p.add_argument("--device", choices=["auto", "mock", "hardware"], default="mock")
    p.add_argument("--arch", choices=["n150", "p150"])
    p.add_argument("--memory-config", choices=["dram", "l1"], default="dram")
    p.add_argument("--values", choices=["emulate", "device", "none"], default="none",
                   help="none (default): verdict runs of full-size models on meta weights")
    p.add_argument("--out", type=Path, default=Path("reports"), help="output directory (default reports/)")
    p.add_argument("--no-resume", action="store_true", help="rerun entries that already have results")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per entry (default 1800)")
    p.set_defaults(handler=_cmd_sweep)

    p = sub.add_parser("report", parents=[common], help="render a run or sweep directory (Markdown, HTML, CSV)")
    p.add_argument("path", type=Path, help="a directory with run.json or sweep.json")
    p.set_defaults(handler=_cmd_report)

    p = sub.add_parser("compare", parents=[common], help="what changed between two runs or sweeps")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.set_defaults(handler=_cmd_compare)

    p = sub.add_parser("gen-tests", parents=[common], help="generate per-op pytest suites from captured ops")
    p.add_argument("sources", nargs="*",
                   help="zoo names, module.path:callable, or ops.json files / `fxport trace` "
                        "directories (default: every zoo model at its input shape)")
    p.add_argument("--input-shape", help="input shape for the models named (default: each model's)")
    p.add_argument("--memory-config", choices=["dram", "l1"], default="dram")
    p.add_argument("--arch", choices=["n150", "p150"], default="n150")
    p.add_argument("--pcc", type=float, default=0.99, help="PCC every case must reach (default 0.99)")
    p.add_argument("--out", type=Path, default=Path("out/op-tests"), help="suite directory")
    p.set_defaults(handler=_cmd_gen_tests)

    p = sub.add_parser("ops", parents=[common], help="print the aten -> TT-NN mapping table")
    p.add_argument("--family", help="only this op family")
    p.set_defaults(handler=_cmd_ops)

    p = sub.add_parser("models", parents=[common], help="list the model zoo")
    p.set_defaults(handler=_cmd_models)
    return parser


def _cmd_trace(args) -> int:
    from fxport.capture.loader import parse_shape
    from fxport.tracing import trace_model
    from fxport.report.inventory import inventory_document, summary_text, write_inventory

    shape = parse_shape(args.input_shape) if args.input_shape else None
    start = time.perf_counter()
    cap = trace_model(args.model, shape, fold=not args.no_fold)
    out = args.out or Path("out") / _safe_name(cap.model)
    write_inventory(cap, out)
    print(summary_text(inventory_document(cap), seconds=time.perf_counter() - start))
    print(f"wrote {out}/ops.json (source of truth), ops.csv, unique_ops.csv, unique_ops.md")
    return 0


def _cmd_run(args) -> int:
    from fxport.capture.loader import parse_shape
    from fxport.report.run_report import run_summary_text, write_run
    from fxport.runner import run_model
    from fxport.runtime.devices import open_session_device

    shape = parse_shape(args.input_shape) if args.input_shape else None
    dev = open_session_device(args.device, args.arch)  # closed at exit
    result = run_model(args.model, dev, shape, memory=args.memory_config, values=args.values or "",
                       min_block_size=args.min_block_size)
    out = args.out or Path("out") / _safe_name(result.model)
    doc = write_run(result, out)
    print(run_summary_text(doc))
    print(f"wrote {out}/run.json (source of truth)")
    _render(out)
    return 0


def _cmd_sweep(args) -> int:
    from tabulate import tabulate

    from fxport.capture.loader import parse_shape
    from fxport.sweep import sweep, sweep_items

    items = sweep_items(args.models or None, [parse_shape(s) for s in args.input_shape] or None)
    doc = sweep(items, args.out, args.device, args.arch, args.memory_config, args.values,
                resume=not args.no_resume, timeout=args.timeout)
    rows = [[e["key"], e["status"], e["coverage"]["total"] if e["coverage"] else "",
             f"{e['coverage']['planned_pct']:.1f}" if e["coverage"] else "",
             f"{e['coverage']['device_pct']:.1f}" if e["coverage"] else "",
             e["fallbacks"], e["oom_nodes"], e["error"][:70]] for e in doc["entries"]]
    print(tabulate(rows, headers=["entry", "status", "nodes", "lowered %", "on device %",
                                  "fallbacks", "OOM nodes", "error"]))
    failed = [e["key"] for e in doc["entries"] if e["status"] != "ok"]
    if failed:  # kept in the reports with their errors; said here so that it is not missed
        print(f"fxport: {len(failed)} of {len(doc['entries'])} entries failed: {', '.join(failed)}",
              file=sys.stderr)
    print(f"wrote {args.out}/sweep.json")
    _render(args.out)
    return 0


def _render(path: Path) -> None:
    """The renderings people read (Markdown, summary CSVs); `fxport report` adds HTML pages,
    plots and per-node CSVs on demand."""
    from fxport.report.render import render_dir

    written = render_dir(path, html=False)
    for p in written[:3]:
        print(f"wrote {p}")
    if len(written) > 3:
        print(f"wrote {len(written) - 3} more files (per-entry reports) under {path}/")
    print(f"`fxport report {path}` writes the HTML pages, plots and per-node CSVs")


def _cmd_report(args) -> int:
    from fxport.report.render import render_dir

    for written in render_dir(args.path):
        print(f"wrote {written}")
    return 0


def _cmd_compare(args) -> int:
    from fxport.report.compare import compare_text
    from fxport.report.render import compare_dirs

    print(compare_text(compare_dirs(args.a, args.b)), end="")
    return 0


def _cmd_gen_tests(args) -> int:
    from fxport.capture.loader import parse_shape
    from fxport.tracing import trace_model
    from fxport.testgen import collect, describe_suite, generate

    import fxport_models

    shape = parse_shape(args.input_shape) if args.input_shape else None
    names = args.sources or [e.name for e in fxport_models.entries() if "zoo" in e.tags]
    sources = []
    for name in names:
        path = Path(name)
        if path.exists():
            sources.append(path)
        else:
            sources.append(trace_model(name, shape))
            print(f"traced {name}", file=sys.stderr)
    cases = collect(*sources)
    written = generate(cases, args.out, memory=args.memory_config, arch=args.arch, pcc=args.pcc)
    print(describe_suite(args.out))
    print(f"wrote {len(written)} files to {args.out}/; run: .venv/bin/python -m pytest {args.out}")
    return 0


def _cmd_ops(args) -> int:
    from tabulate import tabulate

    from fxport.capture.records import target_name
    from fxport.mapping import FAMILIES, REGISTRY

    if args.family and args.family not in FAMILIES:
        raise FxportError(f"unknown family {args.family!r}; families: {', '.join(FAMILIES)}")
    rows = [[target_name(t), r.ttnn, r.family, r.conditions]
            for t, r in ((t, REGISTRY.rules[t]) for t in REGISTRY.targets())
            if not args.family or r.family == args.family]
    print(tabulate(rows, headers=["aten overload", "ttnn", "family", "conditions"], tablefmt="simple"))
    print(f"{len(rows)} aten overloads")
    return 0


def _cmd_models(args) -> int:
    from tabulate import tabulate

    import fxport_models

    rows = [[e.name, e.family, "x".join(map(str, e.input_shape)), e.description] for e in fxport_models.entries()]
    print(tabulate(rows, headers=["model", "family", "default input", "description"]))
    return 0


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


if __name__ == "__main__":
    sys.exit(main())
