"""The quarantine as clients read it, whatever its storage: Tinybird's columns and types,
and the rows of a data dir written before the storage became compact."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import requests

from lib.bookings.generator import BookingGenerator
from tests.support.servers import ROOT

COLUMNS = ["age", "airline", "email", "extra_bags", "flight_from", "flight_to", "meal_choice",
           "name", "passport_number", "priority_boarding", "timestamp", "transaction_id"]


def post(server, body: bytes) -> dict:
    response = requests.post(f"{server.url}/v0/events", params={"name": "events", "wait": "true"},
                             data=body, headers=server.admin_headers(), timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def quarantine(server) -> list[dict]:
    return server.sql("SELECT * FROM events_quarantine ORDER BY insertion_date, age, name, "
                      "c__error")["data"]


def test_the_quarantine_has_tinybirds_columns_and_types(server_factory):
    server = server_factory()
    described = {row["name"]: row["type"] for row in server.sql(
        "DESCRIBE events_quarantine")["data"]}
    assert described == {**{c: "Nullable(String)" for c in COLUMNS},
                         "c__error_column": "Array(String)", "c__error": "Array(String)",
                         "c__import_id": "Nullable(String)", "insertion_date": "DateTime"}


def test_rows_of_a_data_dir_from_before_the_compact_storage_read_the_same(server_factory,
                                                                          tmp_path):
    data_dir = tmp_path / "data"
    server = server_factory(data_dir=data_dir)
    booking = BookingGenerator(seed=21).booking()
    lines = [json.dumps({**booking, "age": "old"}), "1", "{broken", '{"age":"x"}', "{}"]
    assert post(server, "\n".join(lines).encode()) == {"successful_rows": 0,
                                                      "quarantined_rows": 5}
    before = quarantine(server)
    assert server.stop() == 0
    # The layout of earlier versions: `events_quarantine` was the table itself, in
    # Tinybird's form, and held every row whole, rejected lines too.
    expand = ", ".join([*COLUMNS, "c__error_column", "c__error", "c__import_id",
                        "insertion_date"])
    script = textwrap.dedent(f"""
        import chdb
        c = chdb.connect({str(data_dir / "chdb")!r})
        c.query("CREATE TABLE old AS _tb_local_events_quarantine_rows")
        c.query("INSERT INTO old ({expand}) SELECT {expand} FROM events_quarantine")
        c.query("DROP VIEW events_quarantine")
        c.query("DROP VIEW IF EXISTS _tb_local_events_rejected_lines__mv")
        for table in ("rejected_rows", "compact_rows", "quarantine_rows"):
            c.query(f"DROP TABLE _tb_local_events_{{table}}")
        c.query("RENAME TABLE old TO events_quarantine")
        # ... fed by views that wrote into it.
        c.query("CREATE TABLE IF NOT EXISTS _tb_local_events_rejected_lines (line String) "
                "ENGINE = Null")
        c.query("CREATE MATERIALIZED VIEW _tb_local_events_rejected_lines__mv TO "
                "events_quarantine AS SELECT line AS age FROM _tb_local_events_rejected_lines")
        c.query("CREATE TABLE _tb_local_events_compact_quarantine (age String) ENGINE = Null")
        c.query("CREATE MATERIALIZED VIEW _tb_local_events_compact_quarantine__mv TO "
                "events_quarantine AS SELECT age FROM _tb_local_events_compact_quarantine")
        c.close()
    """)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120)

    server = server_factory(data_dir=data_dir)
    assert quarantine(server) == before
    assert post(server, b'{"name":"late"}') == {"successful_rows": 0, "quarantined_rows": 1}
    [late] = [r for r in quarantine(server) if r["name"] == "late"]
    assert late["c__error_column"] == [c for c in COLUMNS if c != "name"]
    assert server.count("events_quarantine") == 6


def test_rejected_lines_stored_before_they_had_a_count_read_the_same(server_factory, tmp_path):
    """Rejected lines gained `repeat` (how many alike lines a row stands for): a data dir
    whose table lacks the column gets it, each old row standing for one line."""
    data_dir = tmp_path / "data"
    server = server_factory(data_dir=data_dir)
    assert post(server, b"1\n{broken\n[2]") == {"successful_rows": 0, "quarantined_rows": 3}
    before = quarantine(server)
    assert server.stop() == 0
    script = textwrap.dedent(f"""
        import chdb
        c = chdb.connect({str(data_dir / "chdb")!r})
        c.query("ALTER TABLE _tb_local_events_rejected_rows DROP COLUMN repeat")
        c.close()
    """)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120)
    server = server_factory(data_dir=data_dir)
    assert quarantine(server) == before
    assert server.count("events_quarantine") == 3
