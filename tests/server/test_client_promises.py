"""The clients' promises that a silent resend or a lax retry would break.

The Events client never sends a batch again when the server may have written it: after a
read timeout (the whole batch was sent) and after a 502. A stand-in Events API on a
free loopback port plays the slow or failing Tinybird, which Tinybird Local will not be
on demand; it counts every request it read in full. The pipe client re-mints on a 403
even when the cached JWT is within its `exp`, once: a real Tinybird Local refuses it.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Callable

import jwt
import pytest

from lib.bookings.generator import BookingGenerator
from lib.client.errors import AuthError, OutcomeUnknown, ServerError
from lib.client.events import EventsClient, to_ndjson
from lib.client.pipes import PipeClient
from lib.client.tokens import mint_jwt

SERVER_SEED, SERVER_SEED_ROWS = 5, 200  # for the `server` fixture (tests/conftest.py)

READ_TIMEOUT = 0.5  # the client's read timeout when the answer comes late
LATE_SECONDS = 5.0  # how long the stand-in holds a late answer, at most
WRONG_KEY = "p.not-the-admin-token-but-long-enough-for-hs256"

Reply = Callable[[http.server.BaseHTTPRequestHandler], None]


def _json_reply(status: int, body: object) -> Reply:
    def reply(handler: http.server.BaseHTTPRequestHandler) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return reply


ACCEPTED = _json_reply(200, {"successful_rows": 3, "quarantined_rows": 0})


class StandIn:
    """An Events API that reads each whole request, counts it, then gives the next reply.

    Once the scripted replies run out it accepts every batch, so a resend would succeed
    silently: only the count shows it. `release` ends any late answer still held.
    """

    def __init__(self, replies: list[Reply]):
        self.replies = list(replies)
        self.bodies: list[bytes] = []
        self.release = threading.Event()
        self._received = threading.Condition()
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with stand_in._received:
                    stand_in.bodies.append(body)
                    reply = stand_in.replies.pop(0) if stand_in.replies else ACCEPTED
                    stand_in._received.notify_all()
                try:
                    reply(self)
                except OSError:  # the client gave up on a late answer and closed
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def received(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until `count` whole requests have been read; False if they did not come."""
        with self._received:
            return self._received.wait_for(lambda: len(self.bodies) >= count, timeout)

    def late(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        """A reply: 200, but only long after the client's read timeout, or at `release`."""
        self.release.wait(LATE_SECONDS)
        ACCEPTED(handler)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in():
    made: list[StandIn] = []

    def make(*replies: Reply) -> StandIn:
        made.append(StandIn(list(replies)))
        return made[-1]

    yield make
    for one in made:
        one.close()


def _events_client(url: str, slept: list[float], timeout: float = 10.0) -> EventsClient:
    """A client that would resend at once if it resent at all: waits are only noted."""
    return EventsClient(url, "p.secret-token", timeout=timeout, max_attempts=3,
                        backoff_seconds=0.01, sleep=slept.append)


def test_a_read_timeout_after_the_batch_was_sent_is_outcome_unknown_and_never_resent(
        stand_in):
    server = stand_in()
    server.replies = [server.late]
    batch = list(BookingGenerator(seed=31).bookings(3))
    slept: list[float] = []
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown) as caught:
        _events_client(server.url, slept, timeout=READ_TIMEOUT).send("events", batch)
    assert time.monotonic() - started < LATE_SECONDS  # gave up, did not wait for the answer
    assert server.received(1)
    assert server.bodies == [to_ndjson(batch)]  # the server had the whole batch, once
    assert slept == []
    error = caught.value
    assert error.maybe_written and not error.retryable and error.status is None
    assert "may or may not have been written" in str(error)


def test_a_502_may_have_written_the_batch_and_is_not_resent(stand_in):
    server = stand_in(_json_reply(502, {"error": "bad gateway"}))
    batch = list(BookingGenerator(seed=32).bookings(3))
    slept: list[float] = []
    with pytest.raises(ServerError) as caught:
        _events_client(server.url, slept).send("events", batch)
    assert server.received(1)
    assert server.bodies == [to_ndjson(batch)]
    assert slept == []
    error = caught.value
    assert error.status == 502
    assert error.maybe_written and not error.retryable
    assert "bad gateway" in str(error) and "may or may not have been written" in str(error)


# -- the pipe client's 403 re-mint, against a real Tinybird Local ------------------------------


class Tokens:
    """A token provider that hands out `tokens[n]` after `n` invalidations (the last one
    after more), and counts what it was asked."""

    def __init__(self, *tokens: str):
        self.tokens = tokens
        self.handed_out: list[str] = []
        self.invalidations = 0

    def get(self) -> str:
        token = self.tokens[min(self.invalidations, len(self.tokens) - 1)]
        self.handed_out.append(token)
        return token

    def invalidate(self) -> None:
        self.invalidations += 1

    @property
    def scope(self) -> str:
        return "top_airlines"


def _refused_jwt(server, why: str) -> str:
    """A JWT the server refuses though its `exp` is ten minutes away."""
    name = f"refused-{uuid.uuid4().hex[:8]}"
    if why == "wrong-key":
        token = mint_jwt(WRONG_KEY, server.workspace.workspace_id, "top_airlines", name=name)
    else:
        token = mint_jwt(server.admin_token, str(uuid.uuid4()), "top_airlines", name=name)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] > time.time() + 60  # refused for what it is, not for its age
    return token


@pytest.mark.parametrize("why", ["wrong-key", "other-workspace"])
def test_a_jwt_refused_before_its_exp_is_re_minted_once_and_the_fetch_succeeds(server, why):
    refused = _refused_jwt(server, why)
    good = server.jwt(name=f"good-{uuid.uuid4().hex[:8]}")
    tokens = Tokens(refused, good)
    client = PipeClient(server.url, tokens)
    result = client.fetch("top_airlines")
    assert sum(int(row["bookings"]) for row in result.data) == SERVER_SEED_ROWS
    assert client.requests_sent == 2
    assert tokens.invalidations == 1
    assert tokens.handed_out == [refused, good]


def test_a_second_403_is_an_auth_error_without_a_third_request(server):
    first, second = _refused_jwt(server, "wrong-key"), _refused_jwt(server, "other-workspace")
    tokens = Tokens(first, second)
    client = PipeClient(server.url, tokens)
    with pytest.raises(AuthError) as caught:
        client.fetch("top_airlines")
    assert caught.value.status == 403
    assert client.requests_sent == 2
    assert tokens.invalidations == 1
    assert tokens.handed_out == [first, second]
