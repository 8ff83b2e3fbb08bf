"""Write bodies through `BatchWriter` into a real engine, and print what each stored.

Run as a script (chDB opens one data directory per process, see `servers`). Each case
writes into a data source of its own whose merges are stopped, so its parts count its
inserts. Prints, as JSON, for each case: the writer's counts (or the error it raised),
the rows and parts of the table, the quarantine's rows, and the sift's calls.

- `joined`: good rows around a line that is not JSON and an event of a bad type, in
  pieces of four lines;
- `sifted`: good rows, then enough events that lack a column for the sift to take the
  rest of the body (its least size set to 0 for this case), then good rows again;
- `failed`: the checks fail after a piece of good rows;
- `sift_after_rejected`: a piece of over `FEW_REJECTED` lines that cannot be events,
  whose write (which needs the sift's tables) starts only once the sift holds them;
  then the sift takes the rest of the body. A deadlock is reported, not waited for;
- `query_during_insert`: a count of `joined` from another thread while an insert into
  it is open (after the cases).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from lib.tinybird_local import batch_writes
from lib.tinybird_local import batches as batches_module
from lib.tinybird_local.batch_writes import FEW_REJECTED, BatchWriter, settle
from lib.tinybird_local.batches import SIFT_AFTER, SIFT_MIN_BYTES, CheckedBatch, checked_body
from lib.tinybird_local.datafiles import load_project
from lib.tinybird_local.engine import Engine
from lib.tinybird_local.row_checks import RowChecker
from lib.tinybird_local.schema import apply_project

SCHEMA = "SCHEMA >\n    `n` Int32,\n    `s` String\n"
CASES = ("joined", "sifted", "failed", "sift_after_rejected")
# Lines that cannot be events at the start of `sift_after_rejected`: its first piece.
REJECTED_FIRST = FEW_REJECTED + 200


def good(count: int, start: int = 0) -> list[bytes]:
    return [json.dumps({"n": start + i, "s": f"row {start + i}"}).encode()
            for i in range(count)]


def body_of(case: str) -> bytes:
    if case == "joined":
        lines = [*good(15), b"not json", *good(15, 15), b'{"n": "x", "s": "bad"}', *good(10, 30)]
    elif case == "sifted":
        lines = [*good(60), *[b'{"s": "no n"}'] * (SIFT_AFTER * 3), *good(30, 60)]
    elif case == "sift_after_rejected":
        lines = [b"1"] * REJECTED_FIRST + [b'{"s": "no n"}'] * SIFT_AFTER * 3 + good(30)
    else:
        lines = good(40)
    return b"\n".join(lines) + b"\n"


def failing(batches: Iterator[CheckedBatch]) -> Iterator[CheckedBatch]:
    """The batches of the first piece, then a failure of the checks."""
    yield next(batches)
    raise RuntimeError("the checks failed")


def after_the_sift_starts(write: Any) -> Any:
    """`write` (which takes the sift's tables), once the sift has taken them first."""
    def wait_then_write(*args: Any) -> Any:
        deadline = time.monotonic() + 30
        while not batch_writes._SIFT_LOCK.locked() and time.monotonic() < deadline:
            time.sleep(0.001)
        return write(*args)
    return wait_then_write


def run_case(engine: Engine, checker: RowChecker, case: str) -> dict[str, Any]:
    ds = checker.datasource
    engine.execute(f"SYSTEM STOP MERGES {case}")
    writer = BatchWriter(engine, ds, f"import-{case}")
    sift = writer.sift
    calls = [0]

    def counted_sift(lines: bytes, start: int, end: int) -> tuple[bytes, int]:
        calls[0] += 1
        return sift(lines, start, end)

    body = body_of(case)
    # Pieces of 4 lines; for the sift, of 90 good lines' bytes, so the second piece shows
    # enough bad lines, and the sift takes the rest of the body (small as it is).
    size = len(good(1)[0]) * (90 if case == "sifted" else 4)
    if case == "sift_after_rejected":
        size = 2 * REJECTED_FIRST - 1
    sifts = case in ("sifted", "sift_after_rejected")
    batches_module.SIFT_MIN_BYTES = 0 if sifts else SIFT_MIN_BYTES
    batches = checked_body(checker, body, sift=counted_sift, size=size)
    out: dict[str, Any] = {}

    def write() -> None:
        try:
            result = writer.write(failing(batches) if case == "failed" else batches)
            out["counts"] = [result.successful_rows, result.quarantined_rows]
        except RuntimeError as exc:
            out["error"] = str(exc)

    quarantine_lines = batch_writes._quarantine_lines
    if case == "sift_after_rejected":
        batch_writes._quarantine_lines = after_the_sift_starts(quarantine_lines)
    writing = threading.Thread(target=write, daemon=True)
    writing.start()
    writing.join(timeout=60)
    batch_writes._quarantine_lines = quarantine_lines
    if writing.is_alive():
        return {"error": "deadlock"}
    settle(engine, ds, checker)
    out["rows"] = engine.row_count(case)
    out["parts"] = int(engine.scalar(
        "SELECT count() FROM system.parts WHERE active AND database = currentDatabase() "
        f"AND table = '{case}'"))
    out["quarantine"] = engine.row_count(f"{case}_quarantine")
    out["sift_calls"] = calls[0]
    return out


def query_during_insert(engine: Engine) -> dict[str, Any]:
    """Count a table's rows from another thread while an insert into it is open."""
    counted: list[int] = []
    with engine.open_insert("INSERT INTO joined", "JSONEachRow") as insert:
        insert.append(b"\n".join(good(5, 100)) + b"\n")
        reader = threading.Thread(target=lambda: counted.append(engine.row_count("joined")))
        reader.start()
        reader.join(timeout=60)
        answered = not reader.is_alive()
        insert.finish()
    reader.join()
    return {"answered_while_open": answered, "counted": counted,
            "after": engine.row_count("joined")}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        project_dir = Path(folder) / "project"
        (project_dir / "datasources").mkdir(parents=True)
        (project_dir / "pipes").mkdir()
        for case in CASES:
            (project_dir / "datasources" / f"{case}.datasource").write_text(SCHEMA)
        project = load_project(project_dir)
        engine = Engine(Path(folder) / "data")
        try:
            apply_project(engine, project)
            out = {case: run_case(engine, RowChecker(project.datasources[case]), case)
                   for case in CASES}
            if any(case.get("error") == "deadlock" for case in out.values()):
                # Threads wait for each other forever: no clean way out.
                json.dump(out, sys.stdout)
                sys.stdout.flush()
                os._exit(0)
            out["query_during_insert"] = query_during_insert(engine)
        finally:
            engine.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
