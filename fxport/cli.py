"""The `fxport` command line. Every error is one line on stderr and a documented exit code
(fxport.errors, docs/exit-codes.md): 0 success (OOMs and fallbacks are results), 1 a bug in fxport,
2 bad input, 3 a broken environment, 4 a sweep with entries that produced no result, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import textwrap
import threading
from pathlib import Path

from fxport import progress
from fxport.arguments import check_model_names, parse_input, parse_model_arg, parse_shape
from fxport.durable import LOCK_NAME, output_dir
from fxport.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INACCURATE,
    EXIT_INCOMPLETE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USER,
    EnvironmentFault,
    FxportError,
    model_code_exit,
    no_ops_captured,
)
from fxport.settings import (
    ARCHS,
    DEVICES,
    DTYPES,
    MATH_FIDELITIES,
    MEMORY_CONFIGS,
    PCC_THRESHOLD,
    VALUE_MODES,
)

_HOST_MEMORY = ("can't allocate memory", "DefaultCPUAllocator")


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error, already printed on one line (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USER
    if not getattr(args, "handler", None):
        _parser().print_help()
        return EXIT_USER
    progress.enable(progress.wanted(args.quiet))
    try:
        code = _run(args)
    finally:
        progress.enable(None)
    _exit_if_wedged(code)
    return code


def _check_locale(args: argparse.Namespace) -> None:
    """Under an ASCII locale (LC_ALL=C without UTF-8 mode) a non-ASCII path reaches torch's and
    TT-NN's C++ as an undecodable string and fails deep inside capture: say so first."""
    if sys.getfilesystemencoding().lower() not in ("ascii", "ansi_x3.4-1968"):
        return
    paths = [os.getcwd(), *sys.path, *(str(v) for v in vars(args).values() if isinstance(v, (str, Path)))]
    bad = next((p for p in paths if not p.isascii()), None)
    if bad is not None:
        raise EnvironmentFault(
            f"the locale encodes file names as ASCII, and the path {bad.encode('ascii', 'replace').decode()!r} "
            "is not ASCII; set LC_ALL=C.UTF-8 (or PYTHONUTF8=1) and rerun"
        )


def _terminated(signum, frame) -> None:
    raise KeyboardInterrupt("terminated (SIGTERM)")


def _run(args: argparse.Namespace) -> int:
    # SIGTERM (what `timeout`, CI and service managers send) stops a command as Ctrl-C does: a
    # sweep driver ends its workers and keeps the finished entries, instead of dying alone.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    try:
        _check_locale(args)
        return args.handler(args) or 0
    except KeyboardInterrupt as exc:
        _say(f"fxport: interrupted{_kept(exc)}")
        return EXIT_INTERRUPTED
    except Exception as exc:
        return _failed(args, exc)
    except BaseException as exc:  # SystemExit & co. from model code: fxport's own never get here
        if args.debug:
            raise
        _say(f"fxport: error: {model_code_exit(getattr(args, 'model', None) or 'the model', exc)}")
        return EXIT_USER


def _failed(args: argparse.Namespace, exc: Exception) -> int:
    if args.debug:
        raise exc
    short = _host_memory(exc) or _host_memory(exc.__context__)
    if short:  # whoever caught it first: the machine, not the model or fxport
        _say(
            f"fxport: error: not enough host memory ({short}); free memory, or use --values "
            "none (weights stay on meta) or a smaller --input-shape"
        )
        return EXIT_ENVIRONMENT
    if isinstance(exc, FxportError):
        _say(f"fxport: error: {exc}{_kept(exc)}")
        return exc.exit_code
    return _internal(exc)


def _say(line: str) -> None:
    """One line on stderr, whatever a name inside it holds (names come from user input)."""
    print(" ".join(line.split()), file=sys.stderr)


def _host_memory(exc: BaseException | None) -> str:
    """The first line of a host out-of-memory error ("" for anything else)."""
    if isinstance(exc, MemoryError):
        return type(exc).__name__
    text = (str(exc).strip().splitlines() or [""])[0] if isinstance(exc, RuntimeError) else ""
    return text[max(text.find("DefaultCPUAllocator"), 0) :][:160] if any(p in text for p in _HOST_MEMORY) else ""


def _internal(exc: Exception) -> int:
    """A bug or an unforeseen failure: still one line."""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    _say(f"fxport: error: {type(exc).__name__}: {first} (an fxport bug: rerun with --debug for the traceback)")
    return EXIT_INTERNAL


def _kept(exc: BaseException) -> str:
    """What a stopped run saved before stopping ("" when nothing was)."""
    kept = getattr(exc, "kept", "")
    return f"; {kept}" if kept else ""


def _exit_if_wedged(code: int) -> None:
    """A device call that never returned holds a worker thread inside TT-Metal: exiting
    normally would wait for it (closing the device, finalising ttnn). Everything is written and
    said by now, so leave at once."""
    devices = sys.modules.get("fxport.runtime.devices")
    session = getattr(devices, "_session", None) if devices else None
    if session is not None and session.wedged:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# -- option values: each bad one is a one-line usage error -------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def _pcc(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a PCC threshold in (0, 1]")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (the usage is one `--help` away)."""

    def error(self, message: str):
        _say(f"fxport: error: {self.prog.removeprefix('fxport ')}: {message}".replace(": :", ":"))
        raise SystemExit(EXIT_USER)


def _pass_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--passes",
        default="all",
        help="graph passes to run: all (default), none, or a comma-separated list of "
        "noops, packed_split, batchnorm, constants, activations, layout",
    )
    p.add_argument(
        "--no-pass", action="append", default=[], metavar="NAME", help="leave out one graph pass (repeatable)"
    )


def _selected_passes(args) -> tuple[str, ...]:
    from fxport.passes import select

    return select(args.passes, args.no_pass)


# RunOptions' settings and the flags that set them; a command without a flag keeps its default
_RUN_FLAGS = {
    "memory": "memory_config",
    "values": "values",
    "min_block_size": "min_block_size",
    "weights": "weights",
    "fidelity": "math_fidelity",
    "activations": "activations",
    "pcc_threshold": "pcc",
    "localize": "localize",
}


def _run_options(args, **given):
    """The run settings of a command that runs models (run, export, sweep), from its arguments."""
    from fxport.run_options import RunOptions

    flags = {k: getattr(args, flag) for k, flag in _RUN_FLAGS.items() if getattr(args, flag, None) is not None}
    passes = {"passes": _selected_passes(args)} if hasattr(args, "passes") else {}
    return RunOptions(**flags, **passes, **given)


def _add_force(p) -> None:
    p.add_argument(
        "--force",
        action="store_true",
        help="write into an existing --out that holds files other than fxport results "
        "(fxport may then replace its own file names there)",
    )


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    common.add_argument(
        "-q", "--quiet", action="store_true", help="no progress on stderr (there is none when stderr is not a terminal)"
    )
    parser = _Parser(
        prog="fxport", parents=[common], description="PyTorch -> TT-NN graph capture, lowering and coverage"
    )
    sub = parser.add_subparsers(metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("trace", parents=[common], help="capture a model's aten ops with shapes")
    p.add_argument("model", help="zoo name (see `fxport models`) or module.path:callable")
    p.add_argument("--input-shape", help="input shape, e.g. 1,3,224,224 (default: the model's)")
    _add_input_options(p)
    p.add_argument("--out", type=Path, help="output directory (default: out/<model>)")
    p.add_argument(
        "--no-fold",
        action="store_true",
        help="trace every call of repeated blocks (PI0's denoise steps) instead of tracing two and counting the rest",
    )
    _add_force(p)
    p.set_defaults(handler=_cmd_trace)

    p = sub.add_parser("run", parents=[common], help="lower a model to TT-NN and run it on a device")
    p.add_argument("model", help="zoo name or module.path:callable")
    p.add_argument("--input-shape", help="input shape, e.g. 1,3,224,224 (default: the model's)")
    _add_input_options(p)
    p.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="hardware: a Tenstorrent card; mock: TT-NN without a card; auto: a card when present, else mock (default)",
    )
    p.add_argument("--arch", choices=ARCHS, help="mock device board (default n150)")
    p.add_argument(
        "--memory-config",
        choices=MEMORY_CONFIGS,
        default="dram",
        help="where activations live on the device: dram (default), l1, or auto (each "
        "activation in L1 when it fits given what is live there, else DRAM)",
    )
    p.add_argument(
        "--values",
        choices=VALUE_MODES,
        help="emulate: golden functions (mock default); device: read back (hardware "
        "default); none: verdicts only, weights on meta (for full-size models)",
    )
    p.add_argument(
        "--min-block-size",
        type=_positive_int,
        default=1,
        help="leave device partitions with fewer ops on the host (default 1)",
    )
    p.add_argument(
        "--device-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="bound on each device call; one that does not return stops the run as a broken environment (default 300)",
    )
    p.add_argument(
        "--ttnn-report",
        action="store_true",
        help="also write TT-NN's own report of the run (OUT/ttnn_report/db.sqlite, from "
        "its graph capture), the database ttnn-visualizer opens",
    )
    p.add_argument(
        "--pcc",
        type=_pcc,
        default=PCC_THRESHOLD,
        help=f"end-to-end PCC every output must reach, in (0, 1]; below it the run "
        f"fails its accuracy (exit 5) (default {PCC_THRESHOLD})",
    )
    p.add_argument(
        "--localize",
        action="store_true",
        help="find the nodes where error enters: each node's output as run vs the fp32 "
        "reference fed with reference values (needs values)",
    )
    p.add_argument("--out", type=Path, help="output directory (default: out/<model>)")
    _pass_options(p)
    p.add_argument(
        "--weights",
        choices=DTYPES,
        default="bfloat16",
        help="dtype of conv and linear weights on the device (default bfloat16)",
    )
    _add_force(p)
    _compute_options(p)
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser(
        "export",
        parents=[common],
        help="write the model as a standalone TT-NN program (DIR/<name>_ttnn.py, weights, a test)",
    )
    p.add_argument("model", help="zoo name or module.path:callable")
    p.add_argument("--input-shape", help="input shape, e.g. 1,3,224,224 (default: the model's)")
    _add_input_options(p)
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="the device of the run the program is written from (default auto)",
    )
    p.add_argument("--arch", choices=ARCHS, help="mock device board (default n150)")
    p.add_argument(
        "--memory-config",
        choices=MEMORY_CONFIGS,
        default="dram",
        help="where activations live, as in `fxport run` (auto: the placed configs)",
    )
    p.add_argument(
        "--weights",
        choices=DTYPES,
        default="bfloat16",
        help="dtype of conv and linear weights on the device (default bfloat16)",
    )
    p.add_argument(
        "--pcc",
        type=_pcc,
        default=PCC_THRESHOLD,
        help=f"the PCC the generated test requires of every output (default {PCC_THRESHOLD})",
    )
    p.add_argument(
        "--no-weights",
        action="store_true",
        help="write the program only (no weights, inputs, references or test), from a verdict run "
        "on meta weights unless --values says otherwise",
    )
    p.add_argument(
        "--values",
        choices=VALUE_MODES,
        help="the run's values, as in `fxport run` (default: none with --no-weights, else the device's)",
    )
    _add_force(p)
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("sweep", parents=[common], help="run the zoo (or MODELS) x resolutions and write reports")
    p.add_argument(
        "models", nargs="*", help="zoo names or module.path:callable (default: every zoo model at its sweep shapes)"
    )
    p.add_argument(
        "--input-shape",
        action="append",
        default=[],
        help="shape to run every model at (repeatable; default: each model's sweep shapes)",
    )
    _add_input_options(p)
    p.add_argument("--device", choices=DEVICES, default="mock")
    p.add_argument("--arch", choices=ARCHS)
    p.add_argument("--memory-config", choices=MEMORY_CONFIGS, default="dram")
    p.add_argument(
        "--values",
        choices=VALUE_MODES,
        default="none",
        help="none (default): verdict runs of full-size models on meta weights",
    )
    p.add_argument("--out", type=Path, default=Path("reports"), help="output directory (default reports/)")
    p.add_argument("--no-resume", action="store_true", help="rerun entries that already have results")
    p.add_argument("--timeout", type=_seconds, default=1800.0, help="seconds per entry (default 1800)")
    p.add_argument(
        "--device-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="bound on each device call of an entry (default 300)",
    )
    p.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="entries run in parallel, each in its own worker process and device "
        "session (default: one per core, as many as the memory holds)",
    )
    p.add_argument(
        "--entries-per-worker",
        type=_positive_int,
        default=16,
        metavar="K",
        help="a warm worker runs about K entries, then is replaced (default 16; 1: a fresh process per entry)",
    )
    p.add_argument(
        "--cluster",
        choices=["local", "ray"],
        default="local",
        help="local: worker processes on this host (default); ray: tasks on a Ray "
        "cluster (pip install fxport[ray]; RAY_ADDRESS or --ray-address, else a "
        "local one)",
    )
    p.add_argument("--ray-address", default=None, help="address of the Ray cluster to join")
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="verdict cache shared across entries and runs (default "
        "$FXPORT_CACHE/verdicts); used by verdict runs only (--values none)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="run every device call and capture every model (no verdict or capture cache)",
    )
    p.add_argument(
        "--no-capture-cache",
        action="store_true",
        help="capture every model afresh (no capture cache; the verdict cache stays)",
    )
    _pass_options(p)
    _add_force(p)
    _compute_options(p)
    p.set_defaults(handler=_cmd_sweep)

    p = sub.add_parser("report", parents=[common], help="render a run or sweep directory (Markdown, HTML, CSV)")
    p.add_argument("path", type=Path, help="a directory with run.json or sweep.json")
    p.set_defaults(handler=_cmd_report)

    p = sub.add_parser("compare", parents=[common], help="what changed between two runs or sweeps")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.set_defaults(handler=_cmd_compare)

    p = sub.add_parser("gen-tests", parents=[common], help="generate per-op pytest suites from captured ops")
    p.add_argument(
        "sources",
        nargs="*",
        help="zoo names, module.path:callable, or ops.json files / `fxport trace` "
        "directories (default: every zoo model at its input shape)",
    )
    p.add_argument("--input-shape", help="input shape for the models named (default: each model's)")
    _add_input_options(p)
    p.add_argument("--memory-config", choices=["dram", "l1"], default="dram")
    p.add_argument("--arch", choices=ARCHS, default="n150")
    p.add_argument("--pcc", type=_pcc, default=0.99, help="PCC every case must reach, in (0, 1] (default 0.99)")
    p.add_argument("--out", type=Path, default=Path("out/op-tests"), help="suite directory")
    _pass_options(p)
    _add_force(p)
    p.set_defaults(handler=_cmd_gen_tests)

    p = sub.add_parser("ops", parents=[common], help="print the aten -> TT-NN mapping table")
    p.add_argument("--family", help="only this op family")
    p.set_defaults(handler=_cmd_ops)

    p = sub.add_parser("models", parents=[common], help="list the model zoo")
    p.set_defaults(handler=_cmd_models)
    return parser


def _check_arguments(args, models: list[str], many: bool = False) -> None:
    """Model names and input options checked as text, before torch is imported: bad input is
    refused in a fraction of a second."""
    check_model_names(models, many)
    shapes = args.input_shape if isinstance(args.input_shape, list) else [args.input_shape]
    for shape in shapes:
        if shape:
            parse_shape(shape)
    for text in args.input:
        parse_input(text)
    for text in args.model_arg:
        parse_model_arg(text)


def _heavy_imports() -> None:
    """torch and the pipeline (seconds on a loaded machine), said as a step."""
    with progress.step("loading torch and the pipeline"):
        import fxport.runner  # noqa: F401


def _compute_options(p) -> None:
    """How compute ops run on the device, as deployed TT-NN models run them (published figures
    use them): they change the lowering, and so the values, and the cost estimate."""
    p.add_argument(
        "--math-fidelity",
        choices=MATH_FIDELITIES,
        default="",
        help="math fidelity of matmul, linear, conv and attention kernels (default: TT-NN's own per op)",
    )
    p.add_argument(
        "--activations",
        choices=DTYPES,
        default="bfloat16",
        help="dtype of matmul, linear and conv outputs on the device (default bfloat16)",
    )


def _cmd_trace(args) -> int:
    _check_arguments(args, [args.model])
    # The output directory first: a second writer or an unusable --out fails before any import.
    with output_dir(args.out or Path("out") / _safe_name(args.model), f"fxport trace {args.model}", args.force) as out:
        _heavy_imports()
        from fxport.report.inventory import capture_seconds, inventory_document, summary_text, write_inventory
        from fxport.tracing import trace_model

        try:
            cap = trace_model(args.model, _input_options(args), fold=not args.no_fold)
        except FxportError as exc:
            _keep_log(getattr(exc, "log", ""), out, args.debug, exc)
            raise
        _keep_log(cap.log, out, args.debug)
        if cap.node_count == 0:
            raise no_ops_captured(cap.model)
        with progress.step(f"writing {out}/ops.json, ops.csv, unique_ops.csv, unique_ops.md"):
            write_inventory(cap, out)
    print(summary_text(inventory_document(cap), seconds=capture_seconds(cap)))
    print(f"wrote {out}/ops.json (source of truth), ops.csv, unique_ops.csv, unique_ops.md")
    return 0


def _keep_log(log: str, out: Path, debug: bool, exc: BaseException | None = None) -> None:
    """What torch printed while tracing (a failed export dumps its whole graph) goes to
    OUT/capture.log, or to stderr with --debug; an error then names the file."""
    if not log:
        return
    if debug:
        print(log, file=sys.stderr, end="" if log.endswith("\n") else "\n")
        return
    from fxport.durable import write_text

    write_text(out / "capture.log", log)
    if exc is not None:
        exc.kept = f"torch's output while tracing is in {out}/capture.log"


def _refuse_mock_values(values: str | None, kind: str) -> None:
    if values == "device" and kind == "mock":
        raise FxportError(
            "--values device reads values back from a card, but a mock device runs "
            "no kernels; use --values emulate (golden functions) or --values none"
        )


def _cmd_export(args) -> int:
    _check_arguments(args, [args.model])
    _refuse_mock_values(args.values, args.device)
    if args.values == "none" and not args.no_weights:  # before --out is made and the model built
        raise FxportError("a verdict run (--values none) has no weights or references to save: add --no-weights")
    # Checked, created and locked before the run, as every command's --out is: never a result
    # computed for a place it cannot be written to, nor written over a folder of the user's.
    with output_dir(args.out, f"fxport export {args.model}", args.force) as out:
        _heavy_imports()
        from fxport.export import export
        from fxport.runtime.devices import open_session_device

        dev = open_session_device(args.device, args.arch)
        _refuse_mock_values(args.values, dev.kind)
        done = export(
            args.model,
            out=out,
            inputs=_input_options(args),
            device=dev,
            weights=not args.no_weights,
            options=_run_options(args),
        )
    pcc = "not computed" if done.pcc is None else f"{done.pcc:.6f}"
    print(
        f"{done.program}: {done.lines} lines, {done.per_inference} ttnn calls per inference "
        f"(fxport run: {done.run_per_inference}), {done.once} weight preparations, PCC {pcc}"
    )
    for path in (done.data, done.weights, done.test):
        if path is not None:
            print(path)
    return 0


def _cmd_run(args) -> int:
    _check_arguments(args, [args.model])
    _refuse_mock_values(args.values, args.device)
    if args.localize and args.values == "none":
        raise FxportError("--localize compares values: it needs --values emulate or device, not none")
    with output_dir(args.out or Path("out") / _safe_name(args.model), f"fxport run {args.model}", args.force) as out:
        _heavy_imports()
        from fxport.report.run_report import run_summary_text, write_run
        from fxport.runner import run_model
        from fxport.runtime.devices import open_session_device

        inputs, given = _input_options(args), _input_args(args)
        options = _run_options(args, ttnn_report=out if args.ttnn_report else None)
        shape = inputs.shape
        with progress.step("opening the device"):
            dev = open_session_device(args.device, args.arch, timeout=args.device_timeout)
        _say_repairs(dev)
        _refuse_mock_values(args.values, dev.kind)

        def settings(result):
            # Inputs given as --input/--inputs are keyed by those options, not by a shape.
            full = shape or (() if given else result.inputs[0].spec.shape if result.inputs else ())
            return options.settings(args.model, full, dev.kind, args.arch, given)

        try:
            result = run_model(args.model, dev, inputs, options)
        except FxportError as exc:
            if not isinstance(exc, EnvironmentFault):
                _keep_log(getattr(exc, "log", ""), out, args.debug, exc)
                raise
            partial = getattr(exc, "result", None)
            if partial is not None:  # keep what was computed, marked as stopped
                write_run(partial, out, settings(partial))
                exc.kept = f"the {len(partial.nodes)} nodes run before are in {out}/run.json (marked stopped)"
            raise
        except KeyboardInterrupt as exc:
            partial = getattr(exc, "result", None)
            if partial is not None:  # keep what was computed, marked as stopped
                write_run(partial, out, settings(partial))
                exc.kept = f"the {len(partial.nodes)} nodes run before are in {out}/run.json (marked stopped)"
            raise
        with progress.step(f"writing {out}/run.json"):
            doc = write_run(result, out, settings(result))
        _keep_log(result.log, out, args.debug)
        print(run_summary_text(doc, out=out))
        print(f"wrote {out}/run.json (source of truth)")
        report = doc.get("ttnn_report")
        if report:
            print(
                f"wrote {out}/{report['database']}: TT-NN's report of the run ({report['operations']} "
                f"operations, {report['buffers']} buffers) for ttnn-visualizer"
                if not report["error"]
                else f"fxport: note: no TT-NN report: {report['error']}"
            )
        _render(out)
    if doc["accuracy"]["verdict"] == "fail":  # a result, saved and rendered, that CI must see
        print(f"fxport: accuracy failed: {'; '.join(doc['accuracy']['failing'])}", file=sys.stderr)
        return EXIT_INACCURATE
    return 0


def _say_repairs(dev) -> None:
    for note in dev.mock_runtime.repaired if dev.mock_runtime else ():
        print(f"fxport: note: {note}", file=sys.stderr)


def _cmd_sweep(args) -> int:
    _check_arguments(args, args.models, many=True)
    _refuse_mock_values(args.values, args.device)

    from fxport.capture.loader import parse_shape
    from fxport.report.tables import fmt_agreement, fmt_l1_share, fmt_latency
    from fxport.report.terminal import terminal_table
    from fxport.runtime.mock.runtime_root import cache_home
    from fxport.runtime.verdict_cache import default_cache_dir
    from fxport.sweep import Fleet, run_sweep, sweep_items

    options = _run_options(args)  # a bad --passes before any cache folder or --out is made
    items = sweep_items(args.models or None, [parse_shape(s) for s in args.input_shape] or None, _input_args(args))
    cache = None if args.no_cache or args.values != "none" else (args.cache or default_cache_dir())
    # Captured programs (meta weights: verdict runs only) beside the verdicts: DIR/captures with
    # --cache DIR, else $FXPORT_CACHE/captures
    captures = (
        None
        if args.no_cache or args.no_capture_cache or args.values != "none"
        else (args.cache / "captures" if args.cache else cache_home() / "captures")
    )
    if cache is not None:
        _check_cache(cache)
    if captures is not None:
        _check_cache(captures, "capture cache", "--no-capture-cache")
    fleet = Fleet(
        args.jobs,
        args.entries_per_worker,
        "ray" if args.cluster == "ray" else "",
        args.ray_address,
        str(cache) if cache else None,
        str(captures) if captures else None,
    )
    with output_dir(args.out, "fxport sweep", args.force) as out:
        done = run_sweep(
            items,
            out,
            args.device,
            args.arch,
            options,
            resume=not args.no_resume,
            timeout=args.timeout,
            device_timeout=args.device_timeout,
            fleet=fleet,
        )
        doc = done.doc
        rows = [
            [
                e["key"],
                e["status"],
                e["coverage"]["total"] if e["coverage"] else "",
                f"{e['coverage']['planned_pct']:.1f}" if e["coverage"] else "",
                f"{e['coverage']['device_pct']:.1f}" if e["coverage"] else "",
                e["fallbacks"],
                e["oom_nodes"],
                fmt_agreement(e.get("memory_agreement")),
                fmt_l1_share(e.get("l1_share")),
                fmt_latency(e.get("estimate")),
                e["error"],
            ]
            for e in doc["entries"]
        ]
        print(
            terminal_table(
                [
                    "entry",
                    "status",
                    "aten nodes",
                    "lowered %",
                    "on device %",
                    "fallbacks",
                    "OOM nodes",
                    "model = allocator",
                    "L1 share (bytes / nodes)",
                    "latency ms (est.)",
                    "error",
                ],
                rows,
            )
        )
        print(_sweep_timing_text(done.timing))
        print(f"wrote {out}/sweep.json, {out}/timing.json")
        _render(out)
    if done.redone:
        print(
            f"fxport: note: redid {len(done.redone)} entries whose saved results could not be "
            f"reused: {', '.join(done.redone)}",
            file=sys.stderr,
        )
    if done.failed:  # kept in the reports with their errors; CI sees it in the exit code
        print(
            f"fxport: error: {len(done.failed)} of {len(doc['entries'])} entries produced no result: "
            f"{', '.join(done.failed)} (errors in {out}/index.md)",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    inaccurate = [e["key"] for e in doc["entries"] if e.get("accuracy") == "fail"]
    if inaccurate:  # results, saved and rendered; CI sees them in the exit code
        print(
            f"fxport: accuracy failed (end-to-end PCC below {PCC_THRESHOLD}): {', '.join(inaccurate)}", file=sys.stderr
        )
        return EXIT_INACCURATE
    return 0


def _check_cache(path: Path, what: str = "verdict cache", off: str = "--no-cache") -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FxportError(f"cannot use {what} {path}: {exc.strerror or exc}; choose another --cache or {off}") from None
    if not path.is_dir() or not os.access(path, os.W_OK):
        raise FxportError(f"cannot use {what} {path}: not a writable directory; choose another --cache or {off}")


def _sweep_timing_text(timing: dict) -> str:
    """The sweep's volatile facts in one or two lines: wall time, workers, verdict cache."""
    if not timing or not timing.get("entries_run"):
        return "every entry reused from an earlier sweep (--resume)"
    line = f"ran {timing['entries_run']} entries in {timing['wall_seconds']:.1f} s on {timing['workers']}"
    vc = timing.get("verdict_cache") or {}
    if vc.get("calls"):
        line += (
            f"; verdict cache: {vc['hits']:,} of {vc['calls']:,} device calls replayed "
            f"({100 * vc['hit_rate']:.1f}%), {vc['misses']:,} run and stored, "
            f"{vc['not_replayable'] + vc['uncacheable']:,} run uncached"
        )
        if vc.get("rejected"):
            line += f", {vc['rejected']} damaged or foreign entries ignored and rewritten"
    cc = timing.get("capture_cache") or {}
    if cc.get("hits") or cc.get("misses") or cc.get("uncacheable"):
        line += (
            f"; capture cache: {cc['hits']} of {cc['hits'] + cc['misses'] + cc['uncacheable']} "
            f"captures loaded ({100 * cc['hit_rate']:.1f}%), {cc['misses']} captured and stored, "
            f"{cc['uncacheable']} not cacheable"
        )
        if cc.get("rejected"):
            line += f", {cc['rejected']} damaged or foreign entries ignored and rewritten"
    return line


def _render(path: Path, html: bool = False) -> list[str]:
    """Render a run or sweep directory and say what was written; returns its damaged entries.
    By default the renderings people read (Markdown, summary CSVs); `html` (`fxport report`)
    adds the HTML pages, plots and per-node CSVs."""
    from fxport.report.render import render_results

    with progress.step(f"rendering {path}"):
        done = render_results(path, html)
    for p in done.written[:3]:
        print(f"wrote {p}")
    if len(done.written) > 3:
        print(f"wrote {len(done.written) - 3} more files (per-entry reports) under {path}/")
    if not html:
        print(f"`fxport report {path}` writes the HTML pages, plots and per-node CSVs")
    return list(done.damaged)


def _cmd_report(args) -> int:
    directory = args.path.parent if args.path.is_file() else args.path
    if not (directory / LOCK_NAME).exists():  # no lock file left where there are no results
        from fxport.report.render import results_file

        results_file(args.path)
    with output_dir(directory, f"fxport report {args.path}"):
        damaged = _render(args.path, html=True)
    if damaged:
        raise FxportError(
            f"{len(damaged)} damaged sweep entries rendered as DAMAGED (the rest in full): {', '.join(damaged)}"
        )
    return 0


def _cmd_compare(args) -> int:
    from fxport.report.render import comparison_text

    print(comparison_text(args.a, args.b), end="")
    return 0


def _cmd_gen_tests(args) -> int:
    _check_arguments(args, [s for s in args.sources if not Path(s).exists()], many=True)
    import fxport_models
    from fxport.testgen import collect, describe_suite, generate, optimized_capture
    from fxport.tracing import trace_model

    options = _input_options(args)
    passes = _selected_passes(args)
    names = args.sources or [e.name for e in fxport_models.entries() if "zoo" in e.tags]
    with output_dir(args.out, "fxport gen-tests", args.force) as out:
        sources = []
        for name in names:
            path = Path(name)
            if path.exists():
                sources.append(path)
            else:
                sources.append(optimized_capture(trace_model(name, options), passes))
                print(f"traced {name}", file=sys.stderr)
        cases = collect(*sources)
        written = generate(cases, out, memory=args.memory_config, arch=args.arch, pcc=args.pcc)
    print(describe_suite(out))
    print(f"wrote {len(written)} files to {out}/; run: .venv/bin/python -m pytest {out}")
    return 0


def _cmd_ops(args) -> int:
    from tabulate import tabulate

    from fxport.capture.records import target_name
    from fxport.mapping import FAMILIES, REGISTRY
    from fxport.report.terminal import TERMINAL_WIDTH

    if args.family and args.family not in FAMILIES:
        raise FxportError(f"unknown family {args.family!r}; families: {', '.join(FAMILIES)}")
    rows = [
        [target_name(t), r.ttnn, r.family, r.conditions]
        for t, r in ((t, REGISTRY.rules[t]) for t in REGISTRY.targets())
        if not args.family or r.family == args.family
    ]
    # Each rule's conditions run to hundreds of characters: wrapped under its row, not in a column
    head, rule, *lines = tabulate(
        [row[:3] for row in rows], headers=["overload", "ttnn", "family"], tablefmt="simple"
    ).splitlines()
    print(head, rule, sep="\n")
    for line, row in zip(lines, rows):
        print(line.rstrip())
        print(
            "\n".join(
                textwrap.wrap(
                    f"if {row[3]}",
                    TERMINAL_WIDTH,
                    initial_indent="    ",
                    subsequent_indent="    ",
                    break_long_words=False,
                )
            )
        )
    own = sum(1 for row in rows if row[0].startswith("fxport."))
    print(f"{len(rows) - own} aten overloads")
    print(f"{own} fxport ops (fused and channels-last forms the graph passes introduce)")
    return 0


def _cmd_models(args) -> int:
    import fxport_models
    from fxport.report.terminal import terminal_table

    rows = [[e.name, e.family, "x".join(map(str, e.input_shape)), e.description] for e in fxport_models.entries()]
    print(terminal_table(["model", "family", "default input", "description"], rows))
    return 0


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="SHAPE[:DTYPE[:LOW..HIGH]]",
        help="a positional input of forward, repeatable, in order: e.g. --input 1,3,224,224 "
        "--input 1,48:int64:0..32000 --input 1,48:bool (floats: normal, or uniform "
        "in LOW..HIGH; integers: [LOW, HIGH), default [0, 10))",
    )
    p.add_argument(
        "--inputs",
        metavar="MODULE:CALLABLE",
        help="a callable returning example inputs: a tuple of args, a dict of kwargs, or (args, kwargs)",
    )
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument for a module.path:callable model's factory, repeatable; "
        "VALUE is a Python literal (None, 10, 'resnet18', [1, 2]), else a string",
    )


def _input_options(args):
    from fxport.capture.loader import InputOptions, parse_input

    shape = args.input_shape if isinstance(args.input_shape, str) else None  # sweep: a list
    return InputOptions(
        shape=parse_shape(shape) if shape else None,
        specs=tuple(parse_input(s) for s in args.input),
        source=args.inputs,
        model_args=dict(map(parse_model_arg, args.model_arg)),
    )


def _input_args(args) -> tuple[str, ...]:
    """The input options as `fxport run` arguments (sweep passes them on), validated first."""
    _input_options(args)
    return (
        *(a for s in args.input for a in ("--input", s)),
        *(("--inputs", args.inputs) if args.inputs else ()),
        *(a for m in args.model_arg for a in ("--model-arg", m)),
    )


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


if __name__ == "__main__":
    sys.exit(main())
