"""Fake bookings: their shape and skew, the in-engine seed, and the command that sends them.

The command runs as a subprocess against a real Tinybird Local, as a user runs it; the
pacing loop is also driven on a fake clock so its schedule is checked without waiting.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest
import requests

from lib.bookings.cli import Tally, stream
from lib.bookings.distributions import AIRLINES, EXTRA_BAGS, MEAL_CHOICES
from lib.bookings.generator import BookingGenerator
from lib.client.errors import OutcomeUnknown
from lib.client.events import SendResult
from lib.tinybird_local.batches import CheckedBatch
from lib.tinybird_local.datafiles import parse_datasource
from lib.tinybird_local.row_checks import RowChecker
from tests.support.servers import PROJECT_DIR, ROOT

EVENTS_DATASOURCE = PROJECT_DIR / "datasources" / "events.datasource"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SUMMARY = re.compile(r"sent (\d+) bookings to (\w+) in ([\d.]+)s: (\d+) accepted, "
                     r"(\d+) quarantined \(([\d,]+) rows/s\)")
TOLERANCE = 0.015  # share points; the sampling error at 20000 rows is about 0.003


def _python_type(clickhouse_type: str) -> type | tuple[type, ...]:
    if re.fullmatch(r"U?Int\d+", clickhouse_type):
        return int
    if clickhouse_type == "String" or clickhouse_type.startswith("DateTime"):
        return str
    raise AssertionError(f"no Python type known for {clickhouse_type}")


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {key: n / total for key, n in counts.items()}


def _assert_shares(counts: dict, weights: dict) -> None:
    total_weight = sum(weights.values())
    shares = _shares(counts)
    assert set(shares) <= set(weights), set(shares) - set(weights)
    for key, weight in weights.items():
        expected = weight / total_weight
        assert abs(shares.get(key, 0.0) - expected) < TOLERANCE, (key, shares.get(key), expected)


# --- the booking model --------------------------------------------------------------------

def test_booking_has_every_column_of_the_datasource_with_its_type():
    ds = parse_datasource(EVENTS_DATASOURCE)
    checker, batch = RowChecker(ds), CheckedBatch()
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    bookings = list(BookingGenerator(seed=3).bookings(2000))
    after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    for booking in bookings:
        assert set(booking) == {c.name for c in ds.columns}
        for column in ds.columns:
            assert isinstance(booking[column.name], _python_type(column.type)), column
        assert booking["flight_from"] != booking["flight_to"]
        assert 18 <= booking["age"] <= 99
        assert 3456789 <= booking["passport_number"] <= 9876543
        assert booking["priority_boarding"] in (0, 1)
        assert booking["extra_bags"] in EXTRA_BAGS
        assert booking["meal_choice"] in MEAL_CHOICES
        assert booking["airline"] in AIRLINES
        assert ISO_Z.match(booking["timestamp"]), booking["timestamp"]
        assert before <= dt.datetime.fromisoformat(booking["timestamp"]) <= after
        assert uuid.UUID(booking["transaction_id"]).version == 4
        assert re.fullmatch(r"[a-z]+\.[a-z]+\d+@[a-z.]+", booking["email"]), booking["email"]
        checker.check_event(booking, batch)
    assert batch.quarantined_count == 0, (batch.quarantined[:1], bytes(batch.compact[:500]))
    assert batch.row_count == len(bookings)
    assert len({b["transaction_id"] for b in bookings}) == len(bookings)


def test_same_seed_gives_the_same_bookings():
    stamp = "2024-06-01T12:00:00.000Z"

    def run(seed: int) -> list[dict]:
        generator = BookingGenerator(seed)
        return [generator.booking(timestamp=stamp) for _ in range(200)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_generated_bookings_follow_mockingbird_weights():
    bookings = list(BookingGenerator(seed=11).bookings(20000))
    _assert_shares(Counter(b["airline"] for b in bookings), AIRLINES)
    _assert_shares(Counter(b["meal_choice"] for b in bookings), MEAL_CHOICES)
    _assert_shares(Counter(b["extra_bags"] for b in bookings), EXTRA_BAGS)
    assert AIRLINES == {"BrianAir": 20, "Fizz": 5, "EasyPlane": 15, "Skittish Airways": 20,
                        "GAS": 15, "Ler Dingus": 10, "Red Balloon": 15}


def _group_counts(server, column: str) -> Counter:
    result = server.sql(f"SELECT {column} AS k, count() AS n FROM events GROUP BY k")
    return Counter({row["k"]: int(row["n"]) for row in result["data"]})


def test_seed_in_the_engine_has_the_same_shares(server):
    before = {c: _group_counts(server, c) for c in ("airline", "meal_choice")}
    response = requests.post(f"{server.url}/v0/local/seed",
                             params={"rows": 20000, "seed": 11},
                             headers=server.admin_headers(), timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["successful_rows"] == 20000
    after = {c: _group_counts(server, c) for c in ("airline", "meal_choice")}
    airline_delta = after["airline"] - before["airline"]
    assert sum(airline_delta.values()) == 20000
    _assert_shares(airline_delta, AIRLINES)
    _assert_shares(after["meal_choice"] - before["meal_choice"], MEAL_CHOICES)
    assert server.count("events WHERE flight_from = flight_to") == 0


# --- the pacing loop, on a fake clock -----------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sends: list[tuple[float, int]] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds

    def send(self, events: list[dict]) -> SendResult:
        self.sends.append((round(self.now - 100.0, 6), len(events)))
        return SendResult(len(events), 0, 1)


def _stream(fake: FakeClock, **options) -> Tally:
    return stream(fake.send, BookingGenerator(seed=1), Tally("events"), clock=fake.clock,
                  sleep=fake.sleep, **options)


def test_duration_run_sends_rate_times_duration_in_second_sized_requests():
    fake = FakeClock()
    tally = _stream(fake, rate=50, batch=100, duration=3.5)
    assert fake.sends == [(1.0, 50), (2.0, 50), (3.0, 50), (3.5, 25)]
    assert (tally.sent, tally.accepted, tally.seconds) == (175, 175, 3.5)
    assert "(50 rows/s)" in tally.summary()


def test_count_run_is_paced_and_requests_never_exceed_batch():
    fake = FakeClock()
    tally = _stream(fake, rate=400, batch=100, count=250)
    assert fake.sends == [(0.25, 100), (0.5, 100), (0.625, 50)]
    assert tally.sent == 250 and tally.seconds == 0.625


def test_rate_zero_sends_full_batches_back_to_back():
    fake = FakeClock()
    _stream(fake, rate=0, batch=100, count=250)
    assert fake.sends == [(0.0, 100), (0.0, 100), (0.0, 50)]


def test_a_batch_that_may_have_been_written_is_counted_as_unconfirmed():
    calls = []

    def send(events):
        calls.append(len(events))
        if len(calls) == 2:
            raise OutcomeUnknown("connection broke")
        return SendResult(len(events), 0, 1)

    tally = stream(send, BookingGenerator(seed=1), Tally("events"), rate=0, batch=10, count=50)
    assert calls == [10, 10]
    assert (tally.sent, tally.accepted, tally.unknown) == (10, 10, 10)
    assert "10 unconfirmed" in tally.summary()


# --- the command, as a subprocess against a real server -----------------------------------

def _env(**settings: str) -> dict[str, str]:
    """The environment minus any Tinybird settings of the machine running the tests."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TINYBIRD_") and k != "NEXT_PUBLIC_TINYBIRD_HOST"}
    return {**env, **settings, "PYTHONPATH": str(ROOT)}


def _settings_env(server) -> dict[str, str]:
    """Host and token the way the dashboard reads them, so the token is not in argv."""
    return _env(TINYBIRD_HOST=server.url, TINYBIRD_SIGNING_TOKEN=server.admin_token,
                TINYBIRD_WORKSPACE=server.workspace.workspace_id)


def _cli(*args: str, env: dict[str, str], cwd=ROOT, timeout: float = 60):
    return subprocess.run([sys.executable, "-m", "lib.bookings", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_count_run_lands_exactly_that_many_rows(server):
    before, before_q = server.count("events"), server.count("events_quarantine")
    run = _cli("--count", "10000", "--rate", "0", "--batch", "1000", "--seed", "42",
               env=_settings_env(server))
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert server.count("events") == before + 10000
    assert server.count("events_quarantine") == before_q
    summary = SUMMARY.search(run.stdout)
    assert summary, run.stdout
    assert summary.group(1, 2, 4, 5) == ("10000", "events", "10000", "0")
    assert float(summary.group(3)) > 0
    # --seed reached the generator: every 50th booking of that seed is in the table.
    sample = list(BookingGenerator(42).bookings(10000))[::50]
    ids = ",".join(f"'{b['transaction_id']}'" for b in sample)
    assert server.count(f"events WHERE transaction_id IN ({ids})") == len(sample)


def test_token_without_append_stops_with_a_clear_message(server):
    before = server.count("events")
    read_token = server.workspace.tokens["top_airlines_read_static"].token
    run = _cli("--host", server.url, "--token", read_token, "--count", "100",
               "--rate", "0", env=_env())
    assert run.returncode == 1
    assert "token lacks APPEND on events" in run.stderr
    assert "Traceback" not in run.stderr
    assert read_token not in run.stderr + run.stdout
    assert SUMMARY.search(run.stdout).group(4) == "0"
    assert server.count("events") == before


def test_stopped_server_is_named_and_exits_non_zero():
    with socket.socket() as probe:  # a port with no server behind it
        probe.bind(("127.0.0.1", 0))
        host = f"http://127.0.0.1:{probe.getsockname()[1]}"
    run = _cli("--host", host, "--token", "p.some-token", "--count", "10", "--rate", "0",
               "--retries", "1", env=_env())
    assert run.returncode == 1
    assert f"cannot reach {host}" in run.stderr
    assert "retrying" in run.stderr  # the retry was announced, then given up
    assert "Traceback" not in run.stderr
    assert "p.some-token" not in run.stderr + run.stdout


def test_no_host_or_token_says_what_is_needed(tmp_path):
    run = _cli("--count", "1", env=_env(), cwd=tmp_path)  # no settings, no .env files
    assert run.returncode == 2
    assert "--host" in run.stderr and "--token" in run.stderr
    assert "python -m lib.tinybird_local info" in run.stderr
    assert "Traceback" not in run.stderr


def test_ctrl_c_prints_the_summary_so_far(server):
    before = server.count("events")
    process = subprocess.Popen(
        [sys.executable, "-m", "lib.bookings", "--duration", "30", "--rate", "400",
         "--batch", "100"],
        cwd=ROOT, env=_settings_env(server), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        # A shell that started pytest in the background may have left SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 20
        while server.count("events") < before + 200 and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stdout.startswith("interrupted: "), stdout
    summary = SUMMARY.search(stdout)
    accepted = int(summary.group(4))
    unconfirmed = int((re.search(r"(\d+) unconfirmed", stdout) or [0, 0])[1])
    landed = server.count("events") - before
    assert accepted + unconfirmed >= 200
    assert accepted <= landed <= accepted + unconfirmed


@pytest.mark.parametrize("args, complaint", [
    (["--batch", "0"], "--batch must be"),
    (["--host", "localhost:7181", "--token", "p.x"], "not an http(s) URL"),
])
def test_bad_arguments_are_one_line(args, complaint, tmp_path):
    run = _cli(*args, env=_env(), cwd=tmp_path)
    assert run.returncode == 2 and complaint in run.stderr and "Traceback" not in run.stderr


def test_configured_token_is_never_sent_to_another_host(tmp_path):
    env = _env(TINYBIRD_HOST="http://127.0.0.1:9", TINYBIRD_SIGNING_TOKEN="p.configured-secret",
               TINYBIRD_WORKSPACE="00000000-0000-4000-8000-000000000000")
    run = _cli("--host", "http://127.0.0.1:10", "--count", "1", env=env, cwd=tmp_path)
    assert run.returncode == 2
    assert "--token needed for --host http://127.0.0.1:10" in run.stderr
    assert "p.configured-secret" not in run.stderr + run.stdout
