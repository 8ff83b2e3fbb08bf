"""N headless viewers of one page, speaking Streamlit's websocket protocol: what polls cost.

No browser: each viewer is one websocket to `/_stcore/stream` that says what the browser
says (the protobuf `BackMsg`s of `streamlit.proto`) and reads what the server sends back
(`ForwardMsg`s) without drawing anything. All viewers share one asyncio loop, so 200 of
them fit in this process and leave the server's cores to the server.

    python bench/viewers.py                                  # 10 viewers, 60 s, top_airlines
    python bench/viewers.py --viewers 10 50 100 --seconds 60 # each N in turn, same server
    python bench/viewers.py --page tenant_view --refresh 2 --ramp 4
    python bench/viewers.py --page tenant_view --viewers 100 --login # logged-in viewers
    python bench/viewers.py --url http://127.0.0.1:8501 --pid 12345   # a running server

By default it starts `streamlit run streamlit_app.py --server.headless true --server.port
<free> --browser.gatherUsageStats false` (plus `--server.address 127.0.0.1`) from the repo
root with every TINYBIRD_* variable removed, TINYBIRD_LOCAL_DATA_DIR on a fresh temporary
directory (the embedded Tinybird Local seeds its own data there), TINYBIRD_ENV_DIR and
`--secrets.files` on an empty directory and an empty file (so no developer `.env.local`
or `secrets.toml` points the app at a real workspace). It waits (bounded) for
`/_stcore/health`, opens one warm-up viewer so that the embedded server's start and
seeding are not billed to the first run, samples the idle server for 3 s, and kills the
server at the end whatever happens. Traffic goes to 127.0.0.1 only; `--url` must be a
loopback address too.

`--login`: what a logged-in viewer costs, next to the anonymous one above. The server's
secrets file then holds an `[auth]` section (redirect_uri on the server's own port, a
random cookie_secret, a client id and secret, and a server_metadata_url on a loopback
port nobody listens on: no provider is ever contacted) and a `[tenancy]` one that maps
one email, LOGIN_EMAIL, to LOGIN_TENANT, the tenant the demo's Tenant view shows first,
so that both modes fetch the same airline's bookings. So every page asks for a login.
Each viewer arrives already logged in: its websocket carries the `_streamlit_user`
cookie that Streamlit itself sets in the browser after `/oauth2callback`, made by
Streamlit's own code (`auth_util.set_cookie_with_chunks` around `create_signed_value`,
the itsdangerous signer) with claims {email, email_verified, iat and auth_time = the
viewer's connect time, sub, origin, is_logged_in, provider "default"}. The bench signs it
with the cookie_secret it wrote, because it owns the app's secrets. The handshake is the
browser's: the Origin header (the server checks it against the cookie's `origin`), and a
`_streamlit_xsrf` cookie with the same token in the websocket subprotocol's XSRF slot (the
server reads the login cookie only when they match; the token is made by Streamlit's
`generate_xsrf_token_string`, as the server would have set it with the page). The
`_streamlit_user_tokens` cookie (the provider's raw tokens) is not sent: the app does not
expose them. Each viewer's first full run must draw the sidebar's "Logged in as
**LOGIN_EMAIL** · LOGIN_TENANT" line (`lib/ui/access.py::show_viewer`) and no "Log in"
button, or the bench stops with an error. The browser's login flow itself (provider,
`/auth/login`, `/oauth2callback`) is tested in tests/e2e/test_login_browser.py, not here.
`--login` needs the server the bench starts (it signs with that server's secret), so it
is refused with `--url`.

One run per N:
  1. load: N viewers connect, spread over `--ramp` seconds (default: one refresh interval,
     so that their polls do not all land together), and each waits for its first full
     script run (bounded).
  2. measure: `--seconds` of steady polling. Everything in the table is counted in this
     window only.
  3. all websockets are closed; the server drops the sessions before the next N.

The columns:
  served/expected  fragment reruns that finished (`script_finished` =
                   FINISHED_FRAGMENT_RUN_SUCCESSFULLY) over N x seconds / interval. Below
                   100 % the server is behind: Streamlit coalesces a viewer's pending
                   fragment reruns into one, so late polls are dropped, not queued.
  ms/viewer/s      server CPU (utime+stime of the streamlit process, all threads, from
                   /proc/PID/stat; psutil is not installed) in the window, minus the idle
                   rate sampled before the first run (the live-bookings trickle of the
                   embedded server), per viewer per second.
  % core           the server's whole CPU in the window, as a share of one core.
  RSS MiB          VmRSS of the server before the viewers connect and at the window's end.
  bytes/poll       websocket payload bytes received in the window (ForwardMsg protobufs;
                   Streamlit leaves permessage-deflate off by default) per served poll.
  TB req/interval  `/v0/pipes/` requests the server made to Tinybird in the window, per
                   refresh interval (all viewers together).
  poll ms          from the oldest unanswered fragment rerun a viewer sent to the next
                   served one, p50/p95 (a server that falls behind shows it here).
  load s           first full script run per viewer, from connect, p50/max.
  client % core    this process's own CPU in the window, to check it stays light.

How a viewer answers fragment reruns, as the frontend (App.tsx, read from the bundled JS)
does: a `ForwardMsg.auto_rerun {interval, fragment_id}` (sent by `st.fragment(run_every=)`
during the full run) starts a repeating timer for that fragment id, unless one with the
same interval already runs; each tick sends `BackMsg.rerun_script` with `fragment_id`,
`is_auto_rerun=true`, the current `page_script_hash` (from `new_session`), the current
query string (updated by `page_info_changed`) and the cached message hashes. The timer
does not wait for the previous poll to finish, like `setInterval`. A `new_session` that
is not a fragment run (no `metadata.run.fragment_ids`) clears every timer, and
`stop_auto_rerun` clears the ones it names.

The message cache: the server replaces a large `new_element` delta with a `ref_hash`
reference only when the client listed that hash in `cached_message_hashes` of the rerun
request; nothing is acknowledged otherwise and the server never waits for the client. So
each viewer keeps what the browser keeps (hashes only: nothing is drawn): messages with
`metadata.cacheable`, aged out like the frontend's ForwardMsgCache after
`new_session.config.max_cached_message_age` finished runs (a fragment run only ages the
entries of its fragments), and sends their hashes with each rerun. A `ref_hash` for an
unknown hash (the browser would fail) is counted as a cache miss.

Which page ran is read from the `navigation` message (the `url_pathname` of its
`page_script_hash`), not from `page_not_found`: Streamlit can send that before
`st.navigation` has registered the pages, and then run the page it was asked for. The
default page is at "/" (`url_pathname` ""), so `--page top_airlines` opens "/" as a
browser opening the app does; "/Top_airlines" is not a name the server resolves.
Runs that end FINISHED_EARLY_FOR_RERUN (seen only on an overloaded server) are not served.

Not done like a browser: widget states are sent empty (a fragment rerun keeps the session's
widget values server side), no static files, `/_stcore/host-config` or heartbeats are
fetched, and the XSRF slot of the websocket subprotocol holds the browser's placeholder.

Tinybird requests: the embedded server's access log (logger `tinybird_local`, one INFO
line per request: "GET /v0/pipes/top_airlines.json 200 3.1ms") is silent inside the app,
because only `python -m lib.tinybird_local` calls `configure_logging`; nothing else in the
process gives the logger a handler. So the bench starts Streamlit's own CLI (`streamlit.web.
cli.main`, the `streamlit` command's entry point, same arguments) under `python -c` with a
two-line preamble that attaches a stderr handler at INFO to that one logger, and counts
the lines on the pipe. That costs the server one short write per Tinybird request, and
changes nothing else. With `--url` the log is not ours to read: "n/a" (and the server
columns are n/a unless `--pid` names the server's process).

Figures only, never pass/fail (except a `--login` viewer that is not logged in); every
wait is bounded and it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from streamlit.auth_util import set_cookie_with_chunks
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ContextInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.web.server.starlette.starlette_app_utils import (
    create_signed_value,
    generate_xsrf_token_string,
)
from streamlit.web.server.starlette.starlette_server_config import (
    AUTH_COOKIE_MAX_AGE_SECONDS,
    USER_COOKIE_NAME,
    XSRF_COOKIE_NAME,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

ROOT = Path(__file__).resolve().parents[1]
# --page -> the URL path the browser opens, as the server names the page (`url_pathname`):
# the default page (Top_airlines) is served at "/", its url_pathname is "".
PAGES = {"top_airlines": "", "tenant_view": "Tenant_view"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
HEALTH_TIMEOUT = 120.0  # first start imports chdb and the app
WARMUP_TIMEOUT = 180.0  # the embedded server's start and seeding
IDLE_SAMPLE = 3.0
ACCESS_LINE = re.compile(r"^tinybird_local (GET|POST) /v0/pipes/\S+ \d{3} ")
# Streamlit's CLI with the embedded server's access log switched on (see the docstring).
SERVER_PREAMBLE = """\
import logging, sys
handler = logging.StreamHandler(sys.stderr)
handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
log = logging.getLogger("tinybird_local")
log.setLevel(logging.INFO)
log.addHandler(handler)
log.propagate = False
from streamlit.web.cli import main
sys.argv[0] = "streamlit"
sys.exit(main())
"""
CONTEXT = {"timezone": "UTC", "timezone_offset": 0, "locale": "en-US", "is_embedded": False,
           "color_scheme": "light"}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# --login: the one viewer identity, and its tenant: the demo's first (view_state.TENANTS[0]),
# so that logged-in and anonymous viewers of Tenant view fetch the same airline's bookings.
LOGIN_EMAIL = "viewer@brianair.example"
LOGIN_TENANT = "BrianAir"
LOGIN_SECRETS = """\
[auth]
redirect_uri = "{origin}/oauth2callback"
cookie_secret = "{cookie_secret}"
client_id = "bench-viewers"
client_secret = "{client_secret}"
server_metadata_url = "http://127.0.0.1:{unused_port}/.well-known/openid-configuration"

[tenancy]

[tenancy.users]
"{email}" = "{tenant}"
"""


# --- --login: the cookie Streamlit sets after /oauth2callback -------------------------------

@dataclass(frozen=True)
class Login:
    """The server's login settings, as far as a browser that logged in depends on them."""

    origin: str  # scheme://host:port of the redirect_uri
    cookie_secret: str

    def secrets_toml(self) -> str:
        return LOGIN_SECRETS.format(origin=self.origin, cookie_secret=self.cookie_secret,
                                    client_secret=secrets.token_hex(16),
                                    unused_port=free_port(), email=LOGIN_EMAIL,
                                    tenant=LOGIN_TENANT)

    def user_cookies(self) -> dict[str, str]:
        """`_streamlit_user` (in chunks if long), as `_auth_callback` sets it, claims now."""
        now = int(time.time())
        claims = {"email": LOGIN_EMAIL, "email_verified": True, "iat": now, "auth_time": now,
                  "sub": "bench-viewer", "origin": self.origin, "is_logged_in": True,
                  "provider": "default"}
        cookies: dict[str, str] = {}

        def sign(name: str, value: str) -> bytes:
            return create_signed_value(self.cookie_secret, name, value)

        def set_single(name: str, value: str) -> None:
            cookies[name] = sign(name, value).decode("utf-8")

        # The attributes `_set_single_cookie` appends, which count towards the chunk size.
        attributes = f"; Path=/; HttpOnly; SameSite=lax; Max-Age={AUTH_COOKIE_MAX_AGE_SECONDS}"
        set_cookie_with_chunks(set_single, sign, USER_COOKIE_NAME, claims,
                               cookie_attr_size=len(attributes))
        return cookies

    def handshake(self) -> tuple[str, dict[str, str]]:
        """A logged-in browser's websocket: (the XSRF subprotocol slot, extra headers)."""
        xsrf = generate_xsrf_token_string()
        cookies = {XSRF_COOKIE_NAME: xsrf, **self.user_cookies()}
        return xsrf, {"Origin": self.origin,
                      "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


def login_problem(viewer: Viewer) -> str | None:
    """Why this --login viewer's first full run does not show it logged in, if it does not."""
    expected = f"Logged in as **{LOGIN_EMAIL}** · {LOGIN_TENANT}"
    if viewer.login_button:
        return "its first full run drew the \"Log in\" button"
    if viewer.login_line is None:
        return "its first full run drew no \"Logged in as\" line"
    if viewer.login_line != expected:
        return f"its first full run said {viewer.login_line!r}, not {expected!r}"
    return None


# --- the server process ---------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    # Fields after the ")" of the command name: state is 3, utime 14, stime 15 (1-based).
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class StderrCounter(threading.Thread):
    """Drains the server's stderr: counts Tinybird pipe requests, keeps the other lines' tail."""

    def __init__(self, stream):
        super().__init__(name="server-stderr", daemon=True)
        self.stream = stream
        self.pipe_requests = 0
        self.tail: deque[str] = deque(maxlen=30)

    def run(self) -> None:
        for raw in self.stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if ACCESS_LINE.match(line):
                self.pipe_requests += 1
            elif not line.startswith("tinybird_local "):
                self.tail.append(line)


@dataclass
class Server:
    base_url: str
    pid: int | None
    log: StderrCounter | None = None
    process: subprocess.Popen | None = None
    login: Login | None = None

    @property
    def ws_url(self) -> str:
        parts = urlsplit(self.base_url)
        return f"ws://{parts.netloc}{parts.path.rstrip('/')}/_stcore/stream"

    def alive(self) -> bool:
        return self.process is None or self.process.poll() is None


def wait_healthy(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not server.alive():
            raise SystemExit(f"streamlit exited with {server.process.returncode}:\n"
                             + "\n".join(server.log.tail if server.log else []))
        try:
            with NO_PROXY.open(f"{server.base_url.rstrip('/')}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
                last = f"HTTP {r.status}"
        except OSError as exc:
            last = str(exc)
            time.sleep(0.25)  # the port is not open yet: poll again shortly
    raise SystemExit(f"/_stcore/health did not answer 200 within {timeout:g} s ({last})")


def start_server(tmp: Path, login: bool) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINYBIRD_")}
    (tmp / "env").mkdir()
    server_login = (Login(f"http://127.0.0.1:{port}", secrets.token_urlsafe(32)) if login
                    else None)
    (tmp / "secrets.toml").write_text(server_login.secrets_toml() if server_login else "")
    env.update(TINYBIRD_LOCAL_DATA_DIR=str(tmp / "data"), TINYBIRD_ENV_DIR=str(tmp / "env"))
    command = [sys.executable, "-c", SERVER_PREAMBLE, "run", "streamlit_app.py",
               "--server.headless", "true", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
               "--secrets.files", str(tmp / "secrets.toml")]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = StderrCounter(process.stderr)
    log.start()
    return Server(f"http://127.0.0.1:{port}", process.pid, log, process, server_login)


def stop_server(server: Server) -> None:
    process = server.process
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


# --- one viewer -----------------------------------------------------------------------------

@dataclass
class Viewer:
    """One browser tab, minus the drawing."""

    ws_url: str
    page_name: str
    query_string: str
    login: Login | None = None
    page_script_hash: str = ""
    # The frontend's ForwardMsgCache, hashes only: hash -> [run count when last used, fragment]
    cache: dict[str, list] = field(default_factory=dict)
    cache_runs: int = 0
    max_cached_age: int = 2
    got_new_session: bool = False
    timers: dict[str, tuple[float, asyncio.Task]] = field(default_factory=dict)
    ws: ClientConnection | None = None
    # what is counted
    connected_at: float = 0.0
    load_seconds: float | None = None
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    interval: float | None = None
    page_url_path: str | None = None
    sent_polls: int = 0
    served: int = 0
    early: int = 0
    exceptions: int = 0
    cache_misses: int = 0
    bytes: int = 0
    pending_since: float | None = None
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (finished at, s)
    error: str | None = None
    # --login: what the first full run drew of access.py's login screen or sidebar line
    login_line: str | None = None
    login_button: bool = False

    async def run(self, start_at: float, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start_at - loop.time()))
        if stop.is_set():
            return
        self.connected_at = loop.time()
        xsrf, headers = self.login.handshake() if self.login else ("PLACEHOLDER_AUTH_TOKEN", {})
        try:
            async with connect(self.ws_url, subprotocols=[Subprotocol("streamlit"),
                                                          Subprotocol(xsrf)],
                               additional_headers=headers, proxy=None, ping_interval=None,
                               max_size=None, open_timeout=30, close_timeout=3) as ws:
                self.ws = ws
                await self.rerun(fragment_id="")  # what the browser sends on load
                reader = asyncio.create_task(self.read(ws))
                stopper = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait({reader, stopper},
                                             return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if reader in done:
                    reader.result()
                    if not stop.is_set():
                        self.error = self.error or "the server closed the websocket"
                else:
                    reader.cancel()
        except Exception as exc:  # one viewer's failure is a figure, not the end of the bench
            if not stop.is_set():
                self.error = self.error or f"{type(exc).__name__}: {exc}"
        finally:
            self.ws = None
            for _, task in self.timers.values():
                task.cancel()
            self.timers.clear()
            self.loaded.set()  # nobody waits on a viewer that is gone

    async def rerun(self, fragment_id: str) -> None:
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query_string
        state.widget_states.SetInParent()
        state.context_info.CopyFrom(ContextInfo(**CONTEXT))
        base = self.ws_url.removesuffix("/_stcore/stream").replace("ws", "http", 1)
        state.context_info.url = f"{base}/{self.page_name}?{self.query_string}"
        if self.page_script_hash:
            state.page_script_hash = self.page_script_hash
        else:
            state.page_name = self.page_name  # first load: the page is named by the URL path
        if fragment_id:
            state.fragment_id = fragment_id
            state.is_auto_rerun = True
        state.cached_message_hashes.extend(self.cache)
        self.got_new_session = False
        if self.ws is not None:
            await self.ws.send(msg.SerializeToString())
            if fragment_id:
                self.sent_polls += 1
                if self.pending_since is None:
                    self.pending_since = asyncio.get_running_loop().time()

    async def auto_rerun(self, fragment_id: str, interval: float) -> None:
        """The browser's setInterval: a tick every `interval`, whether or not the last one ended."""
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        while self.ws is not None:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due = max(due + interval, loop.time())  # a late loop skips ticks, as timers do
            try:
                await self.rerun(fragment_id)
            except Exception:  # the socket closed under the timer: the reader says so
                return

    async def read(self, ws: ClientConnection) -> None:
        async for data in ws:
            if isinstance(data, str):
                continue  # Streamlit sends binary frames only
            self.bytes += len(data)
            self.handle(ForwardMsg.FromString(data))

    def handle(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        self.cache_message(msg, kind)
        if kind == "new_session":
            self.got_new_session = True
            self.page_script_hash = msg.new_session.page_script_hash
            self.max_cached_age = msg.new_session.config.max_cached_message_age
            if not msg.metadata.run.fragment_ids:  # a full run: the frontend drops its timers
                for _, task in self.timers.values():
                    task.cancel()
                self.timers.clear()
        elif kind == "auto_rerun":
            fragment_id, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
            if not fragment_id or interval <= 0:
                return
            current = self.timers.get(fragment_id)
            if current is not None and current[0] == interval:
                return
            if current is not None:
                current[1].cancel()
            self.interval = interval
            self.timers[fragment_id] = (interval,
                                        asyncio.create_task(self.auto_rerun(fragment_id, interval)))
        elif kind == "stop_auto_rerun":
            for fragment_id in msg.stop_auto_rerun.fragment_ids:
                current = self.timers.pop(fragment_id, None)
                if current is not None:
                    current[1].cancel()
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "navigation":
            for page in msg.navigation.app_pages:
                if page.page_script_hash == msg.navigation.page_script_hash:
                    self.page_url_path = page.url_pathname
        elif kind == "delta":
            element = msg.delta.new_element
            shown = element.WhichOneof("type")
            if shown == "exception":
                self.exceptions += 1
            elif self.login is not None and self.load_seconds is None:  # the first full run
                if shown == "markdown" and element.markdown.body.startswith("Logged in as "):
                    self.login_line = element.markdown.body
                elif shown == "button" and element.button.label.startswith("Log in"):
                    self.login_button = True
        elif kind == "script_finished":
            self.finished(msg)

    def finished(self, msg: ForwardMsg) -> None:
        now = asyncio.get_running_loop().time()
        status = msg.script_finished
        if status == ForwardMsg.FINISHED_SUCCESSFULLY:
            if self.load_seconds is None:
                self.load_seconds = now - self.connected_at
                self.loaded.set()
        elif status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
            self.served += 1
            if self.pending_since is not None:
                self.latencies.append((now, now - self.pending_since))
                self.pending_since = None
        elif status == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            self.early += 1
        else:
            self.error = "the script did not compile"
            self.loaded.set()
        if status != ForwardMsg.FINISHED_EARLY_FOR_RERUN and self.got_new_session:
            self.age_cache(list(msg.metadata.run.fragment_ids))

    def cache_message(self, msg: ForwardMsg, kind: str | None) -> None:
        """ForwardMsgCache.processMessagePayload: keep cacheable messages, resolve refs."""
        if kind == "ref_hash":
            entry = self.cache.get(msg.ref_hash)
            if entry is None:
                self.cache_misses += 1
            else:
                entry[0] = self.cache_runs
        elif msg.metadata.cacheable and msg.hash:
            entry = self.cache.get(msg.hash)
            if entry is None:
                fragment = msg.delta.fragment_id if kind == "delta" else ""
                self.cache[msg.hash] = [self.cache_runs, fragment]
            else:
                entry[0] = self.cache_runs

    def age_cache(self, fragment_ids: list[str]) -> None:
        """ForwardMsgCache.incrementRunCount: a fragment run ages only its own fragments."""
        self.cache_runs += 1
        for key, (used_at, fragment) in list(self.cache.items()):
            if fragment_ids and (not fragment or fragment not in fragment_ids):
                continue
            if self.cache_runs - used_at > self.max_cached_age:
                del self.cache[key]


# --- one run of N viewers -------------------------------------------------------------------

@dataclass
class Snapshot:
    at: float
    sent: int
    served: int
    bytes: int
    pipe_requests: int | None
    cpu: float | None
    rss: float | None
    own_cpu: float

    @classmethod
    def take(cls, server: Server, viewers: list[Viewer]) -> Snapshot:
        pid_ok = server.pid is not None and Path(f"/proc/{server.pid}").exists()
        return cls(at=asyncio.get_running_loop().time(),
                   sent=sum(v.sent_polls for v in viewers),
                   served=sum(v.served for v in viewers), bytes=sum(v.bytes for v in viewers),
                   pipe_requests=server.log.pipe_requests if server.log else None,
                   cpu=cpu_seconds(server.pid) if pid_ok else None,
                   rss=rss_mib(server.pid) if pid_ok else None, own_cpu=own_cpu_seconds())


def page_query(args: argparse.Namespace) -> tuple[str, str]:
    return PAGES[args.page], f"refresh={args.refresh:g}"


async def warm_up(server: Server, args: argparse.Namespace) -> float:
    """One viewer's first full run: starts the embedded Tinybird Local (and seeds it)."""
    page_name, query = page_query(args)
    viewer, stop = Viewer(server.ws_url, page_name, query, server.login), asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(viewer.run(0.0, stop))
    try:
        await asyncio.wait_for(viewer.loaded.wait(), WARMUP_TIMEOUT)
    except TimeoutError:
        viewer.error = viewer.error or f"no full run within {WARMUP_TIMEOUT:g} s"
    stop.set()
    await asyncio.wait_for(task, 10)
    if viewer.error or viewer.load_seconds is None:
        tail = "\n".join(server.log.tail) if server.log else ""
        raise SystemExit(f"warm-up viewer failed: {viewer.error}\n{tail}")
    if server.login is not None and (problem := login_problem(viewer)):
        raise SystemExit(f"--login: the warm-up viewer is not logged in: {problem}")
    if viewer.page_url_path != page_name:
        raise SystemExit(f"asked for /{page_name}, the server ran /{viewer.page_url_path}")
    return time.monotonic() - started


async def idle_cpu_rate(server: Server) -> float | None:
    if server.pid is None:
        return None
    before = cpu_seconds(server.pid)
    await asyncio.sleep(IDLE_SAMPLE)
    return (cpu_seconds(server.pid) - before) / IDLE_SAMPLE


async def settle(server: Server, idle_rate: float | None) -> None:
    """After closing the websockets: wait (bounded) until the server is back near idle."""
    if server.pid is None:
        await asyncio.sleep(1.0)
        return
    for _ in range(20):  # up to 10 s
        before = cpu_seconds(server.pid)
        await asyncio.sleep(0.5)
        if (cpu_seconds(server.pid) - before) / 0.5 <= (idle_rate or 0.0) + 0.05:
            return


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def one_run(server: Server, args: argparse.Namespace, n: int,
                  idle_rate: float | None) -> dict[str, str]:
    loop = asyncio.get_running_loop()
    page_name, query = page_query(args)
    ramp = args.refresh if args.ramp is None else args.ramp
    viewers = [Viewer(server.ws_url, page_name, query, server.login) for _ in range(n)]
    stop = asyncio.Event()
    before = Snapshot.take(server, viewers)
    t0 = loop.time()
    tasks = [asyncio.create_task(v.run(t0 + ramp * i / n, stop)) for i, v in enumerate(viewers)]
    load_timeout = ramp + 60 + 1.0 * n
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(v.loaded.wait() for v in viewers)), load_timeout)

    first = Snapshot.take(server, viewers)
    await asyncio.sleep(args.seconds)
    last = Snapshot.take(server, viewers)
    stop.set()
    _, pending = await asyncio.wait(tasks, timeout=15)
    for task in pending:
        task.cancel()
    await settle(server, idle_rate)

    window = last.at - first.at
    interval = next((v.interval for v in viewers if v.interval), None) or args.refresh
    expected = n * window / interval
    served = last.served - first.served
    row = {"viewers": str(n),
           "served/expected": f"{served}/{expected:.0f} ({100 * served / expected:.0f}%)"}
    if first.cpu is not None and last.cpu is not None:
        cpu = last.cpu - first.cpu
        net = cpu - (idle_rate or 0.0) * window
        row["ms/viewer/s"] = f"{1000 * net / n / window:.1f}"
        row["% core"] = f"{100 * cpu / window:.0f}%"
        row["RSS MiB"] = f"{before.rss:.0f}->{last.rss:.0f}"
    else:
        row["ms/viewer/s"] = row["% core"] = row["RSS MiB"] = "n/a"
    row["bytes/poll"] = f"{(last.bytes - first.bytes) / served:,.0f}" if served else "n/a"
    if first.pipe_requests is not None and last.pipe_requests is not None:
        requests = last.pipe_requests - first.pipe_requests
        row["TB req/interval"] = f"{requests / (window / interval):.2f}"
    else:
        row["TB req/interval"] = "n/a"
    latencies = [1000 * s for v in viewers for at, s in v.latencies if first.at <= at <= last.at]
    row["poll ms p50/p95"] = (f"{statistics.median(latencies):.0f}/{pct(latencies, 0.95):.0f}"
                              if latencies else "n/a")
    loads = [v.load_seconds for v in viewers if v.load_seconds is not None]
    row["load s p50/max"] = f"{statistics.median(loads):.1f}/{max(loads):.1f}" if loads else "n/a"
    row["client % core"] = f"{100 * (last.own_cpu - first.own_cpu) / window:.0f}%"

    notes = []
    if interval != args.refresh:
        notes.append(f"the page polls every {interval:g} s, not {args.refresh:g}")
    unloaded = sum(v.load_seconds is None for v in viewers)
    if unloaded:
        notes.append(f"{unloaded} viewer(s) had no full run within {load_timeout:.0f} s")
    elsewhere = sum(v.load_seconds is not None and v.page_url_path != page_name for v in viewers)
    if elsewhere:
        notes.append(f"{elsewhere} viewer(s) were not shown /{page_name}")
    if server.login is not None:
        problems = [problem for v in viewers
                    if v.load_seconds is not None and (problem := login_problem(v))]
        if problems:
            row["not logged in"] = (f"{len(problems)} viewer(s) were not logged in: "
                                    + "; ".join(sorted(set(problems))[:3]))
            notes.append(row["not logged in"])
    errors = sorted({v.error for v in viewers if v.error})
    if errors:
        notes.append(f"{sum(bool(v.error) for v in viewers)} viewer(s) failed: "
                     + "; ".join(errors[:3]))
    for name, label in (("exceptions", "exception elements"), ("cache_misses", "cache misses"),
                        ("early", "runs ended early for a rerun")):
        total = sum(getattr(v, name) for v in viewers)
        if total:
            notes.append(f"{total} {label}")
    notes.append(f"window {window:.1f} s: {last.sent - first.sent} fragment reruns sent, "
                 f"{served} served")
    row["notes"] = "; ".join(notes)
    return row


COLUMNS = ["viewers", "served/expected", "ms/viewer/s", "% core", "RSS MiB", "bytes/poll",
           "TB req/interval", "poll ms p50/p95", "load s p50/max", "client % core"]


def print_row(row: dict[str, str], widths: list[int]) -> None:
    print("  ".join(row.get(c, "").rjust(w) for c, w in zip(COLUMNS, widths, strict=True)),
          flush=True)


async def bench(server: Server, args: argparse.Namespace) -> None:
    if server.alive():
        warm = await warm_up(server, args)
        print(f"warm-up: first full run of {args.page} after {warm:.1f} s", flush=True)
    idle_rate = await idle_cpu_rate(server)
    idle = "n/a" if idle_rate is None else f"{100 * idle_rate:.1f}% of a core"
    ramp = args.refresh if args.ramp is None else args.ramp
    who = (f"logged in as {LOGIN_EMAIL} ({LOGIN_TENANT})" if server.login is not None
           else "anonymous")
    print(f"server {server.base_url}  page {args.page} "
          f"(/{PAGES[args.page]}?refresh={args.refresh:g})  window {args.seconds:g} s  "
          f"ramp {ramp:g} s  idle server CPU {idle}  viewers {who}", flush=True)
    widths = [max(len(c), 9) for c in COLUMNS]
    widths[1], widths[5] = 18, 10
    print("  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths, strict=True)), flush=True)
    for n in args.viewers:
        if not server.alive():
            print(f"the server is gone: {server.process.returncode}", flush=True)
            break
        row = await one_run(server, args, n, idle_rate)
        print_row(row, widths)
        print(f"    {row['notes']}", flush=True)
        if "not logged in" in row:
            raise SystemExit(f"--login: {row['not logged in']}; the figures above are not "
                             "those of logged-in viewers")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, nargs="+", default=[10],
                        help="viewers per run; several numbers run in turn (default 10)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="measured window per run, 5..3600 (default 60)")
    parser.add_argument("--page", choices=sorted(PAGES), default="top_airlines")
    parser.add_argument("--refresh", type=float, default=5.0,
                        help="sent as ?refresh= (default 5)")
    parser.add_argument("--ramp", type=float, default=None,
                        help="seconds over which the viewers connect (default: --refresh)")
    parser.add_argument("--url", help="a running server (loopback only) instead of a new one")
    parser.add_argument("--pid", type=int, help="with --url: the server's process, for CPU/RSS")
    parser.add_argument("--login", action="store_true",
                        help="[auth] and [tenancy] in the server's secrets; each viewer "
                             "arrives logged in (not with --url)")
    args = parser.parse_args(argv)
    if not all(1 <= n <= 1000 for n in args.viewers):
        parser.error("--viewers: each between 1 and 1000")
    if not 5 <= args.seconds <= 3600:
        parser.error("--seconds: between 5 and 3600")
    if not 1 <= args.refresh <= 3600:
        parser.error("--refresh: between 1 and 3600 (the app's own bounds)")
    if args.ramp is not None and not 0 <= args.ramp <= 600:
        parser.error("--ramp: between 0 and 600")
    if args.url and urlsplit(args.url).hostname not in LOCAL_HOSTS:
        parser.error("--url: a loopback address only (127.0.0.1, localhost, ::1)")
    if args.pid is not None and not args.url:
        parser.error("--pid goes with --url")
    if args.login and args.url:
        parser.error("--login needs the server the bench starts: it writes that server's "
                     "[auth] cookie_secret and signs the viewers' login cookies with it")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.url:
        server = Server(args.url, args.pid)
        wait_healthy(server, 10)
        asyncio.run(bench(server, args))
        return
    with tempfile.TemporaryDirectory(prefix="tb-viewers-") as tmp:
        server = start_server(Path(tmp), args.login)
        try:
            wait_healthy(server, HEALTH_TIMEOUT)
            asyncio.run(bench(server, args))
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
