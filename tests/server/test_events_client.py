"""EventsClient: delivers each batch once, retries only what cannot have been written.

Against a real Tinybird Local for the happy path, refusals and a server restart; against
a scripted stub HTTP server for what ours will not do on demand (429 with Retry-After,
503, 500, a connection dropped after the body was read, a body that is not JSON): the
client also talks to Tinybird's cloud and to proxies in front of it.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Callable

import pytest
import requests

from lib.bookings.generator import BookingGenerator
from lib.client.errors import TinybirdError
from lib.client.events import EventsClient
from tests.support.servers import PROJECT_DIR


class CountingSession(requests.Session):
    """A real session that counts the requests it sends."""

    def __init__(self):
        super().__init__()
        self.posts = 0

    def request(self, method, url, *args, **kwargs):
        self.posts += 1
        return super().request(method, url, *args, **kwargs)


# --- against a real Tinybird Local -------------------------------------------------------

def test_batch_is_written_once_and_counted(server):
    before = server.count("events")
    session = CountingSession()
    batch = list(BookingGenerator(seed=21).bookings(250))
    with EventsClient(server.url, server.admin_token, session=session) as client:
        result = client.send("events", batch)
    assert (result.successful_rows, result.quarantined_rows, result.attempts) == (250, 0, 1)
    assert session.posts == 1
    assert server.count("events") == before + 250
    ids = ",".join(f"'{b['transaction_id']}'" for b in batch[:50])
    assert server.count(f"events WHERE transaction_id IN ({ids})") == 50


def test_rows_that_do_not_fit_are_reported_as_quarantined(server):
    before = server.count("events")
    before_q = server.count("events_quarantine")
    batch = list(BookingGenerator(seed=22).bookings(3))
    batch.append({**batch[0], "age": "very old", "transaction_id": "bad-row"})
    with EventsClient(server.url, server.admin_token) as client:
        result = client.send("events", batch)
    assert (result.successful_rows, result.quarantined_rows) == (3, 1)
    assert server.count("events") == before + 3
    assert server.count("events_quarantine") == before_q + 1


def test_token_without_append_raises_clearly_and_is_not_retried(server):
    read_token = server.workspace.tokens["top_airlines_read_static"].token
    before = server.count("events")
    session = CountingSession()
    client = EventsClient(server.url, read_token, session=session, sleep=_no_sleep)
    with pytest.raises(TinybirdError) as caught:
        client.send("events", list(BookingGenerator(seed=23).bookings(5)))
    assert caught.value.status == 403
    assert "token lacks APPEND on events" in str(caught.value)
    assert not caught.value.retryable and not caught.value.maybe_written
    assert read_token not in str(caught.value)
    assert session.posts == 1
    assert server.count("events") == before


def test_unknown_datasource_is_a_clear_error_not_retried(server):
    session = CountingSession()
    client = EventsClient(server.url, server.admin_token, session=session,
                          sleep=_no_sleep)
    with pytest.raises(TinybirdError) as caught:
        client.send("no_such_datasource", [{"a": 1}])
    assert caught.value.status == 400
    assert "no_such_datasource" in str(caught.value)
    assert session.posts == 1


def test_batch_sent_while_server_is_down_arrives_exactly_once_after_restart(server_factory,
                                                                             tmp_path):
    data_dir = tmp_path / "data"
    server = server_factory(PROJECT_DIR, data_dir)
    port = int(server.url.rsplit(":", 1)[1])
    retried = threading.Event()
    client = EventsClient(server.url, server.admin_token, max_attempts=100,
                          backoff_seconds=0.05, max_backoff_seconds=0.2,
                          on_retry=lambda error, delay, attempt: retried.set())
    # A first batch leaves a pooled keep-alive connection to the process about to stop.
    assert client.send("events", list(BookingGenerator(seed=1).bookings(10))).attempts == 1
    server.stop()

    batch = list(BookingGenerator(seed=2).bookings(500))
    outcome: dict[str, object] = {}

    def send() -> None:
        try:
            outcome["result"] = client.send("events", batch)
        except TinybirdError as exc:  # reported by the assertions below
            outcome["error"] = exc

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    assert retried.wait(timeout=15), "the client never retried while the server was down"
    assert sender.is_alive()
    restarted = server_factory(PROJECT_DIR, data_dir, port=port)
    sender.join(timeout=30)
    assert not sender.is_alive(), "the send did not finish after the restart"
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.successful_rows == 500 and result.quarantined_rows == 0
    assert result.attempts >= 2
    assert restarted.count("events") == 510
    ids = ",".join(f"'{b['transaction_id']}'" for b in batch[::25])
    assert restarted.count(f"events WHERE transaction_id IN ({ids})") == 20
    client.close()


# --- against a scripted stub --------------------------------------------------------------

Reply = Callable[[http.server.BaseHTTPRequestHandler], None]


def _json_reply(status: int, body: object, headers: dict[str, str] | None = None) -> Reply:
    def reply(handler: http.server.BaseHTTPRequestHandler) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return reply


def _drop(handler: http.server.BaseHTTPRequestHandler) -> None:
    """Read the whole request, then close without a word: the batch may have been written."""
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


ACCEPTED = _json_reply(200, {"successful_rows": 2, "quarantined_rows": 0})


class Stub:
    def __init__(self, replies: list[Reply]):
        self.replies = list(replies)
        self.requests: list[dict] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                stub.requests.append({"path": self.path, "headers": dict(self.headers),
                                      "body": self.rfile.read(length)})
                reply = stub.replies.pop(0) if stub.replies else ACCEPTED
                reply(self)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    made: list[Stub] = []

    def make(*replies: Reply) -> Stub:
        made.append(Stub(list(replies)))
        return made[-1]

    yield make
    for one in made:
        one.close()


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"did not expect to wait ({seconds}s)")


def _client(stub: Stub, slept: list[float] | None = None, **options) -> EventsClient:
    sleep = slept.append if slept is not None else _no_sleep
    return EventsClient(stub.url, "p.secret-token", sleep=sleep, **options)


def test_request_is_ndjson_with_bearer_token_and_wait(stub):
    server = stub(ACCEPTED)
    result = _client(server).send("events", [{"a": 1}, {"b": "x"}])
    assert (result.successful_rows, result.attempts) == (2, 1)
    [request] = server.requests
    assert request["path"].startswith("/v0/events?")
    assert "name=events" in request["path"] and "wait=true" in request["path"]
    assert request["headers"]["Authorization"] == "Bearer p.secret-token"
    assert request["body"] == b'{"a":1}\n{"b":"x"}\n'


def test_429_waits_for_retry_after_then_sends_again(stub):
    server = stub(_json_reply(429, {"error": "slow down"}, {"Retry-After": "3"}), ACCEPTED)
    slept: list[float] = []
    result = _client(server, slept).send("events", [{"a": 1}])
    assert result.attempts == 2 and result.successful_rows == 2
    assert slept == [3.0]
    assert len(server.requests) == 2


def test_503_is_retried_with_backoff_until_attempts_run_out(stub):
    server = stub(*[_json_reply(503, {"error": "busy"})] * 3)
    slept: list[float] = []
    with pytest.raises(TinybirdError) as caught:
        _client(server, slept, max_attempts=3, backoff_seconds=0.5).send("events", [{"a": 1}])
    assert caught.value.status == 503 and caught.value.retryable
    assert slept == [0.5, 1.0]
    assert len(server.requests) == 3


@pytest.mark.parametrize("reply", [
    _json_reply(500, {"error": "boom"}),
    _json_reply(504, {"error": "gateway timeout"}),
    _drop,
    _json_reply(200, b"<html>not the Events API</html>"),
], ids=["500", "504", "dropped", "not-json"])
def test_an_answer_that_may_have_written_the_batch_is_reported_not_retried(stub, reply):
    server = stub(reply, ACCEPTED)
    with pytest.raises(TinybirdError) as caught:
        _client(server).send("events", [{"a": 1}])
    assert caught.value.maybe_written and not caught.value.retryable
    assert "may or may not have been written" in str(caught.value)
    assert len(server.requests) == 1


def test_unreachable_host_is_retried_then_named():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    slept: list[float] = []
    client = EventsClient(f"http://127.0.0.1:{port}", "p.t", max_attempts=3,
                          backoff_seconds=0.25, sleep=slept.append)
    with pytest.raises(TinybirdError) as caught:
        client.send("events", [{"a": 1}])
    assert f"cannot reach http://127.0.0.1:{port}" in str(caught.value)
    assert caught.value.retryable and not caught.value.maybe_written
    assert slept == [0.25, 0.5]
