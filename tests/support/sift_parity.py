"""Write one body two ways into a real engine, and print what each way stored.

Run as a script (chDB opens one data directory per process, see `servers`). It reads
{"schema": ..., "lines": [...], "piece_bytes": N} as JSON on stdin, and optionally:

- "window_bytes": the size of the body's pieces;
- "bodies": how many times the body is sent;
- "prefix": how many lines of `{}` go first (100 if not said);
- "settle_cut_short": how many settles of `by_engine` stop after their writes, as a
  crash there would, before the one that ends;
- "settle_each_sift": settle after every call of the sift, as a read of the quarantine
  between them would;
- "sift_meanwhile": lines of another body that `by_engine`'s sift takes while its
  settle checks its lines;
- "few_rejected": up to how many lines of a piece that cannot be events `by_python`
  writes itself, not through the sift's tables.

It makes two datasources of that schema. `by_python` gets the lines with every line
checked in Python (no sift). `by_engine` gets them with the sift: the 100 lines of `{}`
that go first make the rest of the body go to the engine's sift. It prints, as JSON,
each datasource's rows, its quarantine as clients read it, the counts, and how many
lines the sift quarantined itself.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from lib.tinybird_local import batch_writes
from lib.tinybird_local import batches as batches_module
from lib.tinybird_local.batches import SIFT_AFTER, WINDOW_BYTES, checked_body
from lib.tinybird_local.datafiles import load_project
from lib.tinybird_local.engine import Engine
from lib.tinybird_local.row_checks import RowChecker
from lib.tinybird_local.schema import apply_project


def cut_short(engine: Engine, ds: Any, times: int) -> None:
    """Settle `times` times, each stopped after its writes, before it empties the
    unchecked lines: the one place a crash leaves written rows that are written again."""
    truncate = engine.truncate

    def crash(table: str) -> None:
        raise RuntimeError(f"stopped before emptying {table}")

    engine.truncate = crash  # type: ignore[method-assign]
    try:
        for _ in range(times):
            try:
                batch_writes.settle(engine, ds, RowChecker(ds))
            except RuntimeError:
                pass
            else:
                raise AssertionError("the settle emptied nothing: no lines were unchecked")
    finally:
        engine.truncate = truncate  # type: ignore[method-assign]


def sift_meanwhile(engine: Engine, ds: Any, lines: list[str]) -> RowChecker:
    """A checker whose first check sifts `lines` (another body) in a thread, and waits
    for that sift to end: it never would, if the settle held the sift's lock meanwhile."""
    checker = RowChecker(ds)
    check_line = checker.check_line
    first = [True]

    def check_after_a_sift(line: bytes | str, batch: Any, clean: bool = True) -> None:
        if first[0]:
            first[0] = False
            body = "\n".join(lines).encode()
            sift = threading.Thread(target=batch_writes.sift_lines, daemon=True,
                                    args=(engine, ds, "import-meanwhile", body))
            sift.start()
            sift.join(timeout=60)
            if sift.is_alive():
                raise AssertionError("the sift waited for the settle to check its lines")
        check_line(line, batch, clean)

    checker.check_line = check_after_a_sift  # type: ignore[method-assign]
    return checker


def main() -> None:
    given = json.load(sys.stdin)
    # Small bodies, sifted in small pieces: the sift's thresholds are for speed only.
    batch_writes.SIFT_PIECE_BYTES = given["piece_bytes"]
    batches_module.SIFT_MIN_BYTES = 0
    batch_writes.FEW_REJECTED = given.get("few_rejected", batch_writes.FEW_REJECTED)
    with tempfile.TemporaryDirectory() as folder:
        project_dir = Path(folder) / "project"
        (project_dir / "datasources").mkdir(parents=True)
        (project_dir / "pipes").mkdir()
        for name in ("by_python", "by_engine"):
            (project_dir / "datasources" / f"{name}.datasource").write_text(given["schema"])
        project = load_project(project_dir)
        engine = Engine(Path(folder) / "data")
        try:
            apply_project(engine, project)
            body = b"\n".join([b"{}"] * given.get("prefix", SIFT_AFTER)
                               + [line.encode() for line in given["lines"]])
            sifted = {"calls": 0, "quarantined": 0}

            def write(name: str, sift: bool) -> list[int]:
                ds = project.datasources[name]
                import_id = f"import-{name}"

                def count_sift(lines: bytes, start: int, end: int) -> tuple[bytes, int]:
                    kept, quarantined = batch_writes.sift_lines(engine, ds, import_id, lines,
                                                                start, end)
                    sifted["calls"] += 1
                    sifted["quarantined"] += quarantined
                    if given.get("settle_each_sift"):
                        batch_writes.settle(engine, ds, RowChecker(ds))
                    return kept, quarantined

                counts = [0, 0]
                for _ in range(given.get("bodies", 1)):
                    for batch in checked_body(RowChecker(ds), body,
                                              sift=count_sift if sift else None,
                                              size=given.get("window_bytes", WINDOW_BYTES)):
                        result = batch_writes.insert_batch(engine, ds, batch, import_id)
                        counts[0] += result.successful_rows
                        counts[1] += result.quarantined_rows
                return counts

            out: dict[str, Any] = {}
            for name, sift in (("by_python", False), ("by_engine", True)):
                counts = write(name, sift)
                # What a read of the quarantine through the API does first.
                ds = project.datasources[name]
                if sift:
                    cut_short(engine, ds, given.get("settle_cut_short", 0))
                if sift and given.get("sift_meanwhile"):
                    batch_writes.settle(engine, ds,
                                        sift_meanwhile(engine, ds, given["sift_meanwhile"]))
                batch_writes.settle(engine, ds, RowChecker(ds))
                columns = ", ".join(f"`{c.name}`" for c in project.datasources[name].columns)
                out[name] = {
                    "counts": counts,
                    "rows": json.loads(engine.query(
                        f"SELECT * FROM {name} ORDER BY ALL", "JSONCompact"))["data"],
                    "quarantine": json.loads(engine.query(
                        f"SELECT {columns}, c__error_column, c__error FROM {name}_quarantine "
                        "ORDER BY ALL", "JSONCompact"))["data"],
                }
            out["sifted"] = sifted
        finally:
            engine.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
