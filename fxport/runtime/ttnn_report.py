"""TT-NN's own report of a run, in the form its visualizer opens (`fxport run --ttnn-report`).

The run's device work is captured by TT-NN's graph capture (NORMAL mode: the allocations are the
run's own; remedies tried on an OOM node are device work too and appear in it), written with `ttnn.graph.end_graph_capture_to_file`, and turned into the report
database by TT-NN's importer (`python -m ttnn.graph_report report.json DIR`): `DIR/db.sqlite`
(operations, buffers with their per-bank sizes and addresses, tensors, devices, ...) and
`cluster_descriptor.yaml`, which ttnn-visualizer (PyPI `ttnn-visualizer`) opens to show per-op,
per-core L1 usage. The database is built in a scratch folder and moved into place whole.

Graph capture records the thread that began it, so capture begins and ends on the device worker
(`DeviceCalls`), where the run's ttnn calls are made; begun on the caller's thread it would see
only the tensors Python frees there.

`VISUALIZER_COLUMNS` lists what ttnn-visualizer 0.108.0 reads (its `queries.py` selects these
columns of these tables through its dataclass models); a database missing any is reported, since
the visualizer would then show defaults instead of the run's figures. Checked on 2026-12-02 with
ttnn-visualizer 0.108.0 itself, in a venv of its own (installing it into fxport's would downgrade
matplotlib, pandas and pydantic, so it is not an extra): its `DatabaseQueries` read the operations,
buffers, tensors, devices, arguments and buffer totals of a run's db.sqlite.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from fxport.runtime.devices import DeviceHandle
from fxport.runtime.footprint_probe import quiet_capture

REPORT_DIR = "ttnn_report"
VISUALIZER_COLUMNS: dict[str, tuple[str, ...]] = {
    "operations": ("operation_id", "name", "duration"),
    "buffers": ("operation_id", "device_id", "address", "max_size_per_bank", "buffer_type", "buffer_layout"),
    "tensors": ("tensor_id", "shape", "dtype", "layout", "memory_config", "device_id", "address", "buffer_type"),
    "devices": (
        "device_id",
        "num_y_cores",
        "num_x_cores",
        "l1_num_banks",
        "l1_bank_size",
        "address_at_first_l1_bank",
        "address_at_first_l1_cb_buffer",
        "total_l1_memory",
        "cb_limit",
    ),
    "input_tensors": ("operation_id", "input_index", "tensor_id"),
    "output_tensors": ("operation_id", "output_index", "tensor_id"),
    "operation_arguments": ("operation_id", "name", "value"),
    "captured_graph": ("operation_id", "captured_graph"),
    "report_metadata": ("key", "value"),
}


@dataclass
class TtnnReport:
    path: Path  # the report folder (db.sqlite inside)
    operations: int = 0
    buffers: int = 0
    missing: list[str] = field(default_factory=list)  # tables/columns the visualizer reads that are absent
    error: str = ""  # why there is no report

    def to_dict(self) -> dict:
        """Paths relative to the run's folder."""
        return {
            "path": REPORT_DIR,
            "database": f"{REPORT_DIR}/db.sqlite",
            "operations": self.operations,
            "buffers": self.buffers,
            "missing_for_visualizer": self.missing,
            "error": self.error,
        }


def check_database(db: Path) -> tuple[int, int, list[str]]:
    """(operations, buffers, what the visualizer reads that the database lacks)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = []
        for table, columns in VISUALIZER_COLUMNS.items():
            if table not in tables:
                missing.append(table)
                continue
            have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            missing += [f"{table}.{c}" for c in columns if c not in have]
        count = lambda t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] if t in tables else 0
        return count("operations"), count("buffers"), missing


@contextlib.contextmanager
def ttnn_report(out: Path | None, dev: DeviceHandle) -> Iterator[TtnnReport | None]:
    """Capture the device work done inside on `dev` into `out/ttnn_report/` (None: no report)."""
    if out is None:
        yield None
        return
    import ttnn

    report = TtnnReport(Path(out) / REPORT_DIR)

    def begin():
        with quiet_capture():
            ttnn.graph.begin_graph_capture(ttnn.graph.RunMode.NORMAL)

    dev.calls(begin, label="beginning TT-NN's graph capture")
    try:
        yield report
    finally:
        # What the run did so far is still reported when it stops; a wedged device cannot end its
        # capture, and then there is no report, said so, rather than a second error.
        Path(out).mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".ttnn_report.", dir=out))
        try:
            dev.calls(
                lambda: ttnn.graph.end_graph_capture_to_file(str(scratch / "report.json")),
                label="writing TT-NN's graph capture",
            )
            _convert(scratch, report)
        except Exception as exc:
            report.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _convert(scratch: Path, report: TtnnReport) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ttnn.graph_report", str(scratch / "report.json"), str(scratch)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    db = scratch / "db.sqlite"
    if done.returncode != 0 or not db.exists():
        lines = (done.stderr or done.stdout).strip().splitlines()
        report.error = f"ttnn.graph_report failed: {lines[-1][:200] if lines else f'exit {done.returncode}'}"
        return
    report.operations, report.buffers, report.missing = check_database(db)
    staged = scratch.parent / f".{REPORT_DIR}.new"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir()
    for name in ("db.sqlite", "cluster_descriptor.yaml", "report.json", "report.python_io.json"):
        if (scratch / name).exists():
            shutil.move(str(scratch / name), staged / name)
    shutil.rmtree(report.path, ignore_errors=True)
    staged.rename(report.path)


__all__ = ["REPORT_DIR", "VISUALIZER_COLUMNS", "TtnnReport", "check_database", "ttnn_report"]
