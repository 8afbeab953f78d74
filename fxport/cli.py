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

    p = sub.add_parser("models", parents=[common], help="list the model zoo")
    p.set_defaults(handler=_cmd_models)
    return parser


def _cmd_trace(args) -> int:
    from fxport.capture.loader import parse_shape
    from fxport.capture.trace import trace_model
    from fxport.report.inventory import inventory_document, summary_text, write_inventory

    shape = parse_shape(args.input_shape) if args.input_shape else None
    start = time.perf_counter()
    cap = trace_model(args.model, shape, fold=not args.no_fold)
    out = args.out or Path("out") / _safe_name(cap.model)
    write_inventory(cap, out)
    print(summary_text(inventory_document(cap), seconds=time.perf_counter() - start))
    print(f"wrote {out}/ops.json (source of truth), ops.csv, unique_ops.csv, unique_ops.md")
    return 0


def _cmd_models(args) -> int:
    from tabulate import tabulate

    import models

    rows = [[e.name, e.family, "x".join(map(str, e.input_shape)), e.description] for e in models.entries()]
    print(tabulate(rows, headers=["model", "family", "default input", "description"]))
    return 0


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


if __name__ == "__main__":
    sys.exit(main())
