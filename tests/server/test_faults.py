"""Faults: a server killed mid-ingest keeps every row it acknowledged; a silent server
makes the dashboard's client give up in time instead of hanging."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest
import requests

from lib.bookings.generator import BookingGenerator
from lib.client.errors import Unreachable
from lib.client.events import to_ndjson
from lib.client.pipes import PipeClient
from lib.client.tokens import TokenSource
from tests.support.servers import PROJECT_DIR

BATCH = 500


def test_kill_9_during_acknowledged_appends_loses_no_acknowledged_row(server_factory, tmp_path):
    server = server_factory(data_dir=tmp_path / "data")
    acknowledged: list[str] = []
    stop = threading.Event()
    sender = threading.Thread(target=send_until_stopped,
                              args=(server, "batch", 5, stop, acknowledged))
    sender.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 20 and time.monotonic() < deadline and sender.is_alive():
        time.sleep(0.01)
    assert len(acknowledged) >= 20, "the server acknowledged too few batches"
    server.stop(signal.SIGKILL)
    stop.set()
    sender.join(timeout=30)

    restarted = server_factory(project_dir=PROJECT_DIR, data_dir=tmp_path / "data")
    counts = {row["name"]: int(row["n"]) for row in restarted.sql(
        "SELECT name, count() AS n FROM events GROUP BY name")["data"]}
    missing = [tag for tag in acknowledged if counts.get(tag) != BATCH]
    assert missing == []
    # The materialized totals agree with the rows that survived.
    totals = restarted.sql("SELECT sum(bookings) AS n FROM airline_bookings_totals")["data"]
    assert int(totals[0]["n"]) == sum(counts.values())


SENDERS = 6


def send_until_stopped(server, prefix: str, seed: int, stop: threading.Event,
                       acknowledged: list[str]) -> None:
    """Send tagged batches with wait=true until `stop`; note each acknowledged tag."""
    generator = BookingGenerator(seed=seed)
    session = requests.Session()
    number = 0
    while not stop.is_set():
        number += 1
        tag = f"{prefix}-b{number}"
        body = to_ndjson({**b, "name": tag} for b in generator.bookings(BATCH))
        try:
            response = session.post(f"{server.url}/v0/events",
                                    params={"name": "events", "wait": "true"},
                                    data=body, headers=server.admin_headers(), timeout=30)
        except requests.RequestException:
            return  # the server is gone; unacknowledged batches may be lost
        if response.status_code == 200 and response.json()["successful_rows"] == BATCH:
            acknowledged.append(tag)


def test_kill_9_during_concurrent_appends_leaves_views_agreeing_with_events(server_factory,
                                                                              tmp_path):
    """Several senders, kill -9 while inserts are in flight, restart: every acknowledged
    row is in events, and the materialized totals count exactly the rows of events.

    Without the repair at start-up this failed about two runs in three: the source's part
    of an INSERT was committed and the view's part into the totals was not."""
    for round_number in range(2):
        server = server_factory(data_dir=tmp_path / "data")
        acknowledged: list[str] = []
        stop = threading.Event()
        senders = [threading.Thread(target=send_until_stopped,
                                    args=(server, f"r{round_number}-s{i}", i, stop, acknowledged))
                   for i in range(SENDERS)]
        for thread in senders:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 10 * (round_number + 1) and time.monotonic() < deadline:
            time.sleep(0.01)
        server.stop(signal.SIGKILL)
        stop.set()
        for thread in senders:
            thread.join(timeout=30)
        assert len(acknowledged) >= 10, "the server acknowledged too few batches"

        restarted = server_factory(data_dir=tmp_path / "data")
        counts = {row["name"]: int(row["n"]) for row in restarted.sql(
            "SELECT name, count() AS n FROM events GROUP BY name")["data"]}
        assert [tag for tag in acknowledged if counts.get(tag) != BATCH] == []
        totals = restarted.sql("SELECT sum(bookings) AS n FROM airline_bookings_totals")
        assert int(totals["data"][0]["n"]) == restarted.count("events")
        endpoint = requests.get(f"{restarted.url}/v0/pipes/top_airlines.json",
                                params={"token": restarted.jwt()}, timeout=30).json()["data"]
        by_airline = {row["airline"]: int(row["n"]) for row in restarted.sql(
            "SELECT airline, count() AS n FROM events GROUP BY airline")["data"]}
        assert {row["airline"]: row["bookings"] for row in endpoint} == by_airline
        restarted.stop(signal.SIGKILL)  # the next round starts from a killed server too


@pytest.fixture
def silent_server():
    """A socket that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    for conn in accepted:
        conn.close()
    listener.close()


def test_silent_server_gives_a_timely_unreachable_error(silent_server):
    tokens = TokenSource("p.secret-signing-token-long-enough-0123456789", "ws", "top_airlines")
    client = PipeClient(silent_server, tokens, timeout=(1.0, 0.5))
    started = time.monotonic()
    with pytest.raises(Unreachable) as info:
        client.fetch("top_airlines")
    assert time.monotonic() - started < 5
    assert "did not answer in time" in info.value.message
    assert client.requests_sent == 1  # a timeout is not retried within the poll
