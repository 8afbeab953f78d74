"""`fxport run --ttnn-report`: TT-NN's own report of a run, the database its visualizer opens."""

import contextlib
import json
import sqlite3

from fxport.cli import main
from fxport.runtime.ttnn_report import VISUALIZER_COLUMNS, check_database


def test_run_writes_the_database_the_visualizer_opens(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "run",
            "tests.user_models:TinyCNN",
            "--input-shape",
            "1,3,32,32",
            "--device",
            "mock",
            "--ttnn-report",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    db = out / "ttnn_report" / "db.sqlite"
    assert (out / "ttnn_report" / "cluster_descriptor.yaml").stat().st_size > 0
    doc = json.loads((out / "run.json").read_text())["ttnn_report"]
    assert doc["database"] == "ttnn_report/db.sqlite" and not doc["error"]
    assert doc["missing_for_visualizer"] == []  # every table and column the visualizer reads
    assert f"wrote {out}/ttnn_report/db.sqlite" in capsys.readouterr().out

    # Loadable, and the run's own device work is in it (captured on the device worker thread,
    # not only the host's deallocations): the conv the run lowered, with its buffers.
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        ops = [r[0] for r in con.execute("SELECT name FROM operations ORDER BY operation_id")]
        assert "ttnn.conv2d" in ops and "ttnn.from_torch" in ops
        assert (doc["operations"], doc["buffers"]) == check_database(db)[:2]
        assert doc["operations"] == len(ops)
        sized = con.execute("SELECT COUNT(*) FROM buffers WHERE max_size_per_bank > 0").fetchone()[0]
        assert sized > 0
        device = con.execute("SELECT l1_num_banks, l1_bank_size FROM devices").fetchone()
        assert device == (64, 1_360_544)  # n150 with l1_small_size reserved
        for table, columns in VISUALIZER_COLUMNS.items():
            con.execute(f"SELECT {', '.join(columns)} FROM {table} LIMIT 1").fetchall()


def test_without_the_flag_there_is_no_report(tmp_path):
    out = tmp_path / "run"
    assert (
        main(["run", "tests.user_models:TinyCNN", "--input-shape", "1,3,32,32", "--device", "mock", "--out", str(out)])
        == 0
    )
    assert not (out / "ttnn_report").exists()
    assert "ttnn_report" not in json.loads((out / "run.json").read_text())


def test_a_database_lacking_what_the_visualizer_reads_is_reported(tmp_path):
    db = tmp_path / "db.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("CREATE TABLE operations (operation_id INTEGER, name TEXT)")
        con.execute("INSERT INTO operations VALUES (1, 'ttnn.add')")
        con.commit()
    operations, buffers, missing = check_database(db)
    assert (operations, buffers) == (1, 0)
    assert "operations.duration" in missing and "buffers" in missing and "devices" in missing
