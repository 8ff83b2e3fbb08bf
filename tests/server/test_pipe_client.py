"""PipeClient against a real Tinybird Local: results, re-mint on 403, typed errors, close.

One seeded server serves the module; tests that need their own (one is stopped) start it
with `server_factory`. A few shapes no Tinybird answers with (HTML from a proxy, a JSON
list) come from a tiny stand-in HTTP server: the client must survive them too.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import uuid

import pytest
import requests

from lib.client.errors import (
    AuthError,
    BadResponse,
    NotFound,
    RateLimited,
    ServerError,
    TinybirdError,
    Unreachable,
)
from lib.client.pipes import PipeClient, PipeResult
from lib.client.settings import WorkspaceSettings
from lib.client.tokens import TokenSource
from lib.ui.access import Access
from lib.ui.page import Connection
from lib.ui.session import ViewerSession
from lib.ui.settings import DashboardSettings
from lib.ui.top_airlines import DashboardSession

SEED_ROWS = 5000
WRONG_KEY = "p.not-the-admin-token-but-long-enough-for-hs256"
FAKE_KEY = "p.a-signing-key-for-servers-that-do-not-check-it"


SERVER_SEED, SERVER_SEED_ROWS = 3, SEED_ROWS

def token_source(server, **options) -> TokenSource:
    options.setdefault("name", f"test-{uuid.uuid4().hex[:8]}")  # rate limits are per name
    return TokenSource(server.admin_token, server.workspace.workspace_id, "top_airlines",
                       **options)


class ExpiredFirst(TokenSource):
    """Mints its first JWT an hour in the past, so the server refuses it as expired."""

    def _mint(self, now: float):
        return super()._mint(now - 3600 if self.mint_count == 0 else now)


class CountingSource(TokenSource):
    """Remembers every JWT it handed out."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.handed_out: list[str] = []

    def get(self) -> str:
        token = super().get()
        self.handed_out.append(token)
        return token


# -- success -----------------------------------------------------------------------------------


def test_success_shape(server):
    tokens = token_source(server)
    client = PipeClient(server.url, tokens)
    before = time.time()
    result = client.fetch("top_airlines")

    assert isinstance(result, PipeResult)
    truth = server.sql("SELECT airline, count() AS bookings FROM events GROUP BY airline "
                       "ORDER BY bookings DESC, airline")["data"]
    assert {r["airline"]: int(r["bookings"]) for r in result.data} == \
        {r["airline"]: int(r["bookings"]) for r in truth}
    assert sum(int(r["bookings"]) for r in result.data) == SEED_ROWS
    counts = [int(r["bookings"]) for r in result.data]
    assert counts == sorted(counts, reverse=True)
    assert [m["name"] for m in result.meta] == ["airline", "bookings"]
    assert result.rows == len(result.data) == len(truth)
    assert isinstance(result.elapsed_seconds, float) and 0 <= result.elapsed_seconds < 5
    # top_airlines reads the per-airline totals: at least one row per airline charted.
    assert isinstance(result.rows_read, int) and result.rows_read >= len(result.data) > 0
    assert 0 < result.round_trip_seconds < 5
    assert result.elapsed_seconds <= result.round_trip_seconds
    assert before <= result.fetched_at <= time.time()
    assert client.requests_sent == 1 and tokens.mint_count == 1


def test_the_jwt_goes_in_the_authorization_header_even_with_a_netrc(server, tmp_path,
                                                                     monkeypatch):
    """requests would replace a plain Authorization header with ~/.netrc credentials."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password something\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    client = PipeClient(server.url, token_source(server))
    assert client.fetch("top_airlines").rows > 0
    assert client.requests_sent == 1


def test_many_fetches_one_jwt(server):
    tokens = CountingSource(server.admin_token, server.workspace.workspace_id, "top_airlines",
                            name="counting")
    client = PipeClient(server.url, tokens)
    for _ in range(5):
        client.fetch("top_airlines")
    assert client.requests_sent == 5
    assert tokens.mint_count == 1
    assert len(set(tokens.handed_out)) == 1


# -- 403: one re-mint, one retry ---------------------------------------------------------------


def test_expired_first_token_is_re_minted_once_and_succeeds(server):
    tokens = ExpiredFirst(server.admin_token, server.workspace.workspace_id, "top_airlines",
                          name="expired-first")
    client = PipeClient(server.url, tokens)
    result = client.fetch("top_airlines")
    assert result.rows > 0
    assert client.requests_sent == 2
    assert tokens.mint_count == 2
    # The next fetch uses the fresh token: no further mint, one request.
    client.fetch("top_airlines")
    assert client.requests_sent == 3 and tokens.mint_count == 2


def test_wrong_signing_key_is_retried_once_then_auth_error(server):
    tokens = CountingSource(WRONG_KEY, server.workspace.workspace_id,
                            "top_airlines", name="wrong-key")
    client = PipeClient(server.url, tokens)
    with pytest.raises(AuthError) as caught:
        client.fetch("top_airlines")
    error = caught.value
    assert error.status == 403
    assert "Signature verification failed" in error.message
    assert "admin token" in error.hint and "workspace" in error.hint
    assert client.requests_sent == 2
    assert tokens.mint_count == 2
    assert WRONG_KEY not in str(error)


def test_wrong_workspace_is_an_auth_error(server):
    tokens = TokenSource(server.admin_token, str(uuid.uuid4()), "top_airlines")
    client = PipeClient(server.url, tokens)
    with pytest.raises(AuthError) as caught:
        client.fetch("top_airlines")
    assert "Workspace" in caught.value.message
    assert client.requests_sent == 2


# -- other statuses: no retry ------------------------------------------------------------------


def test_unknown_pipe_is_not_found(server):
    tokens = TokenSource(server.admin_token, server.workspace.workspace_id, "no_such_pipe")
    client = PipeClient(server.url, tokens)
    with pytest.raises(NotFound) as caught:
        client.fetch("no_such_pipe")
    assert caught.value.status == 404
    assert "no_such_pipe" in caught.value.message
    assert "published as an API Endpoint" in caught.value.hint
    assert client.requests_sent == 1 and tokens.mint_count == 1


def test_rate_limited_with_retry_after(server):
    tokens = token_source(server, rps=1)
    client = PipeClient(server.url, tokens)
    # rps=1 allows a burst of 1 + 1: the third request within a second is refused. Allow a
    # few more attempts in case the machine is slow enough for the bucket to refill.
    with pytest.raises(RateLimited) as caught:
        for _ in range(6):
            client.fetch("top_airlines")
    error = caught.value
    assert error.status == 429
    assert error.retry_after is not None and error.retry_after >= 1
    assert f"{error.retry_after:g} s" in error.hint
    assert tokens.mint_count == 1  # a 429 is not a token problem: no re-mint
    assert 3 <= client.requests_sent <= 6


def test_server_stopped_is_unreachable_quickly_without_a_traceback(server_factory):
    own = server_factory()
    tokens = TokenSource(own.admin_token, own.workspace.workspace_id, "top_airlines")
    client = PipeClient(own.url, tokens)
    client.fetch("top_airlines")  # a live connection in the pool, then the server goes away
    own.stop()
    started = time.monotonic()
    with pytest.raises(Unreachable) as caught:
        client.fetch("top_airlines")
    assert time.monotonic() - started < client.timeout[0]
    error = caught.value
    assert own.url in error.message
    assert "host" in error.hint
    assert error.status is None
    # No chained exception: nothing from urllib3 to print as a traceback.
    assert error.__cause__ is None and error.__suppress_context__


def test_a_server_that_never_answers_times_out_as_unreachable():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the TCP connection, never answers it
        host = f"http://127.0.0.1:{listener.getsockname()[1]}"
        client = PipeClient(host, TokenSource(FAKE_KEY, str(uuid.uuid4()), "top_airlines"),
                            timeout=(1.0, 0.3))
        started = time.monotonic()
        with pytest.raises(Unreachable) as caught:
            client.fetch("top_airlines")
        assert time.monotonic() - started < 3
    assert "did not answer in time" in caught.value.message


# -- answers no Tinybird gives, from a stand-in server ------------------------------------------


class StandIn(http.server.BaseHTTPRequestHandler):
    replies: dict[str, tuple[int, str, bytes]] = {
        "/v0/pipes/html.json": (200, "text/html", b"<html>captive portal</html>"),
        "/v0/pipes/list.json": (200, "application/json", b"[1, 2, 3]"),
        "/v0/pipes/rows.json": (200, "application/json", b'{"data": [1, 2]}'),
        "/v0/pipes/gateway.json": (502, "text/html", b"<html>Bad gateway</html>"),
        "/v0/pipes/minimal.json": (200, "application/json",
                                   b'{"data": [{"airline": "A", "bookings": "12"}]}'),
    }

    def do_GET(self):  # noqa: N802 - http.server's name
        path = self.path.split("?")[0]
        if path == "/v0/pipes/echo.json":  # refuses the JWT quoting it, as Tinybird may
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            reply = (403, "application/json",
                     json.dumps({"error": f"invalid authentication token {token}"}).encode())
        else:
            reply = self.replies[path]
        status, content_type, body = reply
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def stand_in():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("pipe", ["html", "list", "rows"])
def test_a_body_that_is_not_tinybirds_shape_is_a_bad_response(stand_in, pipe):
    client = PipeClient(stand_in, TokenSource(FAKE_KEY, str(uuid.uuid4()), pipe))
    with pytest.raises(BadResponse):
        client.fetch(pipe)


def test_a_proxy_error_page_is_a_server_error(stand_in):
    client = PipeClient(stand_in, TokenSource(FAKE_KEY, str(uuid.uuid4()), "gateway"))
    with pytest.raises(ServerError) as caught:
        client.fetch("gateway")
    assert caught.value.status == 502 and caught.value.message == "HTTP 502"


def test_a_jwt_quoted_in_an_error_message_is_redacted(stand_in):
    tokens = CountingSource(FAKE_KEY, str(uuid.uuid4()), "echo")
    client = PipeClient(stand_in, tokens)
    with pytest.raises(AuthError) as caught:
        client.fetch("echo")
    assert len(tokens.handed_out) == 2 and tokens.mint_count == 2
    assert caught.value.message == "invalid authentication token <jwt>"
    assert "eyJ" not in str(caught.value)


def test_missing_statistics_and_quoted_numbers_are_tolerated(stand_in):
    client = PipeClient(stand_in, TokenSource(FAKE_KEY, str(uuid.uuid4()), "minimal"))
    result = client.fetch("minimal")
    assert result.rows == 1 and result.elapsed_seconds is None and result.meta == []


# -- close and with ---------------------------------------------------------------------------


class ClosingSession(requests.Session):
    """A real session that remembers being closed."""

    def __init__(self):
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


def open_pools(session: requests.Session) -> int:
    """How many connection pools the session holds: one per host it has talked to."""
    return sum(len(adapter.poolmanager.pools) for adapter in session.adapters.values())


def test_close_closes_the_session_and_its_connections(server):
    session = ClosingSession()
    client = PipeClient(server.url, token_source(server), session=session)
    client.fetch("top_airlines")
    assert open_pools(session) == 1
    client.close()
    assert session.closed
    assert open_pools(session) == 0


def test_close_closes_the_session_the_client_made(server):
    client = PipeClient(server.url, token_source(server))
    client.fetch("top_airlines")
    assert open_pools(client.session) == 1
    client.close()
    assert open_pools(client.session) == 0


def test_with_gives_the_client_and_closes_it(server):
    session = ClosingSession()
    with PipeClient(server.url, token_source(server), session=session) as client:
        assert isinstance(client, PipeClient)
        assert client.fetch("top_airlines").rows > 0
        assert not session.closed
    assert session.closed
    assert open_pools(session) == 0


def test_with_closes_the_client_when_a_fetch_raises(stand_in):
    session = ClosingSession()
    with pytest.raises(BadResponse):
        with PipeClient(stand_in, TokenSource(FAKE_KEY, str(uuid.uuid4()), "html"),
                        session=session) as client:
            client.fetch("html")
    assert session.closed
    assert open_pools(session) == 0


def test_a_viewer_session_closes_every_client_it_made(server):
    workspace_id = server.workspace.workspace_id
    settings = DashboardSettings(WorkspaceSettings(
        host=server.url, signing_token=server.admin_token, workspace_id=workspace_id))
    connection = Connection(server.url, workspace_id, server.admin_token, is_local_demo=False)
    viewer = ViewerSession(connection, settings, Access(kind="demo"), DashboardSession.create(
        server.url, workspace_id, server.admin_token, settings))
    clients = [viewer.dashboard.client, viewer.tenant_client("AZ"),
               viewer.explorer_client("top_airlines")]
    sessions = [ClosingSession() for _ in clients]
    for client, session in zip(clients, sessions, strict=True):
        client.session = session
    viewer.close()
    assert all(session.closed for session in sessions)


def test_dashboard_session_keeps_the_last_good_result_and_never_raises(stand_in):
    settings = DashboardSettings(WorkspaceSettings(host=stand_in, signing_token=FAKE_KEY,
                                                   workspace_id=str(uuid.uuid4())), pipe="minimal")
    session = DashboardSession.create(stand_in, settings.workspace_id, FAKE_KEY, settings)
    good = session.poll()
    assert good.error is None and good.result is not None
    session.pipe = "html"
    bad = session.poll()
    assert isinstance(bad.error, BadResponse)
    assert bad.result is good.result
    assert bad.stale_seconds is not None and bad.stale_seconds >= 0
    # Rows without the chart's columns are an error too, not a chart traceback later.
    session.pipe, session.columns = "minimal", ("airline", "passengers")
    wrong = session.poll()
    assert isinstance(wrong.error, BadResponse) and "passengers" in wrong.error.message
    assert session.polls == 3


def test_dashboard_session_turns_any_failure_into_an_error_outcome():
    class Broken:
        def get(self) -> str:
            raise RuntimeError("boom")

        def invalidate(self) -> None:
            pass

    settings = DashboardSettings(WorkspaceSettings(
        host="http://127.0.0.1:9", signing_token=FAKE_KEY, workspace_id=str(uuid.uuid4())))
    session = DashboardSession.create("http://127.0.0.1:9", settings.workspace_id, FAKE_KEY,
                                      settings)
    session.client.tokens = Broken()
    outcome = session.poll()
    assert isinstance(outcome.error, TinybirdError)
    assert "RuntimeError" in outcome.error.message
    assert outcome.result is None
