"""The writer joins a body's good rows in one insert, and stores nothing half done;
queries go on while that insert is open.

`BatchWriter` keeps one insert open while the body's pieces are checked. These cases run
in a real engine (`writer_probe`, in a process of its own) on tables whose merges are
stopped, so a table's parts count the inserts that wrote it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.servers import ROOT


@pytest.fixture(scope="module")
def written() -> dict:
    result = subprocess.run([sys.executable, "-m", "tests.support.writer_probe"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_good_rows_around_bad_lines_go_out_in_one_insert(written):
    """Ten pieces, two of them with a bad line: one insert of the 40 good rows."""
    case = written["joined"]
    assert case["counts"] == [40, 2]
    assert (case["rows"], case["parts"], case["quarantine"]) == (40, 1, 2)


def test_a_sift_in_the_middle_of_a_body_stores_the_rows_before_it_first(written):
    """The sift needs the engine: the open insert is stored first, and nothing is lost."""
    case = written["sifted"]
    assert case["sift_calls"] == 1
    assert case["counts"] == [90, 300]
    assert (case["rows"], case["parts"], case["quarantine"]) == (90, 2, 300)


def test_a_sift_while_a_write_waits_for_its_tables_ends(written):
    """A piece of many lines that cannot be events is written through the sift's tables;
    when the sift of the rest takes them first, that write waits for the sift's own
    writes, which must not wait behind it."""
    case = written["sift_after_rejected"]
    assert case.get("error") is None
    assert case["sift_calls"] == 1
    assert case["counts"] == [30, 1500]
    assert (case["rows"], case["quarantine"]) == (30, 1500)


def test_checks_that_fail_mid_body_store_none_of_its_rows(written):
    case = written["failed"]
    assert case["error"] == "the checks failed"
    assert (case["rows"], case["parts"], case["quarantine"]) == (0, 0, 0)


def test_a_query_is_answered_while_an_insert_is_open(written):
    """Inserts have their own connection: a reader does not wait for the checks."""
    case = written["query_during_insert"]
    assert case["answered_while_open"]
    assert case["counted"] == [40] and case["after"] == 45
