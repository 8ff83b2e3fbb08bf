"""Streamlit glue shared by the pages: settings, the connection, the per-viewer sessions.

Each failure here ends the page with a readable message naming what to fix, never a
traceback. The embedded Tinybird Local is started once per process (`cache_resource`),
each JWT source once per viewer (`session_state`): the dashboard's, one per tenant the
viewer looks at, one per endpoint they try. The view a page shows is kept in its URL
(`restore_view` / `keep_view`), so a copied link opens the same view.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import streamlit as st

from lib.client.pipes import PipeClient
from lib.client.settings import Settings, SettingsError, load_settings
from lib.client.tokens import TokenSource
from lib.ui import explorer, tenant, view_state
from lib.ui.dashboard import DashboardSession
from lib.ui.view_state import ViewState

T = TypeVar("T")


@dataclass(frozen=True)
class Connection:
    """Where the page reads from and the token it signs JWTs with (kept server-side)."""

    host: str
    workspace_id: str
    signing_token: str
    is_local_demo: bool

    def __repr__(self) -> str:
        return f"Connection(host={self.host!r}, workspace_id={self.workspace_id!r})"


def _no_secrets_file(exc: Exception) -> bool:
    """True when st.secrets failed only because there is no secrets file at all.

    Streamlit raises the same FileNotFoundError subclass for "no file" and for "the file
    does not parse"; only the first means "no secrets", the second must be reported.
    """
    return (getattr(exc, "error_id", None) == "no-secrets-found"
            or str(exc).startswith("No secrets found"))


def _secrets() -> dict:
    try:
        return {k: v for k, v in st.secrets.items() if isinstance(v, (str, int, float))}
    except Exception as exc:  # a malformed secrets.toml: say so, name the file
        if _no_secrets_file(exc):
            return {}
        raise SettingsError(".streamlit/secrets.toml", f"cannot be read ({type(exc).__name__}); "
                            "fix the TOML or remove the file") from None


def load_page_settings() -> Settings:
    """The settings, or a message naming the bad one and the end of this run."""
    try:
        return load_settings(secrets=_secrets())
    except SettingsError as exc:
        st.error(f"**Setting `{exc.setting}`** {exc.problem}", icon=":material/settings:")
        st.caption("See `.env.example` for every setting and what it should hold.")
        st.stop()
        raise  # unreachable: st.stop() ends the run


@st.cache_resource(show_spinner="Starting the embedded Tinybird Local…")
def _embedded(data_dir: str) -> Connection:
    from lib.ui.embedded import start_embedded

    local = start_embedded(data_dir)
    return Connection(host=local.host, workspace_id=local.workspace_id,
                      signing_token=local.signing_token, is_local_demo=True)


def connect(settings: Settings) -> Connection:
    """The configured workspace, or the embedded Tinybird Local when no host is set."""
    if not settings.embedded:
        return Connection(host=settings.host or "", workspace_id=settings.workspace_id or "",
                          signing_token=settings.signing_token or "", is_local_demo=False)
    try:
        return _embedded(settings.local_data_dir)
    except Exception as exc:
        st.error(f"The embedded Tinybird Local could not start: {exc}", icon=":material/block:")
        st.caption("Another process may be using the data directory "
                   f"`{settings.local_data_dir}`; set TINYBIRD_LOCAL_DATA_DIR to another one, "
                   "or set TINYBIRD_HOST to use a real workspace.")
        st.stop()
        raise


def _fingerprint(secret: str) -> str:
    """Enough of a hash to notice a changed signing token, without keeping the token."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def dashboard_session(connection: Connection, settings: Settings) -> DashboardSession:
    """This viewer's session, made anew only when what it was made from has changed.

    A new signing token (say, an edited secrets.toml) must reach the token source, or
    every JWT would keep being signed with the old one and refused.
    """
    key = (connection.host, connection.workspace_id, _fingerprint(connection.signing_token),
           settings.pipe, settings.jwt_ttl_seconds)
    session = st.session_state.get("dashboard")
    if session is None or st.session_state.get("dashboard_key") != key:
        session = DashboardSession.create(connection.host, connection.workspace_id,
                                          connection.signing_token, settings)
        st.session_state["dashboard"] = session
        st.session_state["dashboard_key"] = key
    return session


def _viewer_key(connection: Connection, settings: Settings) -> tuple:
    return (connection.host, connection.workspace_id, _fingerprint(connection.signing_token),
            settings.jwt_ttl_seconds)


def _per_viewer(name: str, connection: Connection, settings: Settings, item: str,
                make: Callable[[], T]) -> T:
    """`make()`'s value for `item`, kept for this viewer until the connection changes."""
    key = _viewer_key(connection, settings)
    store = st.session_state.get(name)
    if store is None or st.session_state.get(f"{name}_key") != key:
        store = {}
        st.session_state[name] = store
        st.session_state[f"{name}_key"] = key
    if item not in store:
        store[item] = make()
    return store[item]


def tenant_client(connection: Connection, settings: Settings, airline: str) -> PipeClient:
    """This viewer's client for `airline`: one JWT source per tenant, re-minted near exp."""
    return _per_viewer("tenant_clients", connection, settings, airline,
                       lambda: tenant.tenant_client(
                           connection.host, connection.workspace_id, connection.signing_token,
                           airline, ttl_seconds=settings.jwt_ttl_seconds))


def explorer_client(connection: Connection, settings: Settings, pipe: str) -> PipeClient:
    """This viewer's client for trying `pipe`, with a JWT that may read that pipe only."""
    return _per_viewer("explorer_clients", connection, settings, pipe,
                       lambda: explorer.explorer_client(
                           connection.host, connection.workspace_id, connection.signing_token,
                           pipe, ttl_seconds=settings.jwt_ttl_seconds))


def session_token_sources(connection: Connection, settings: Settings) -> dict[str, TokenSource]:
    """Every JWT source of this viewer, labelled for a menu: the dashboard's first."""
    sources: dict[str, Any] = {  # TokenSources, typed as the clients' TokenProvider
        f"Dashboard ({settings.pipe})": dashboard_session(connection, settings).tokens}
    for name, label in (("tenant_clients", "Tenant view: {}"),
                        ("explorer_clients", "Endpoint explorer: {}")):
        if st.session_state.get(f"{name}_key") == _viewer_key(connection, settings):
            for item, client in st.session_state.get(name, {}).items():
                sources[label.format(item)] = client.tokens
    return sources


def workspace_endpoints(connection: Connection, reload: bool = False) -> list[explorer.Endpoint]:
    """The workspace's API Endpoints, listed once per viewer with the admin token.

    The admin token is used here, in the server process, and only the listing (names,
    descriptions, parameters) is kept. Raises TinybirdError.
    """
    key = (connection.host, connection.workspace_id, _fingerprint(connection.signing_token))
    cached = st.session_state.get("workspace_endpoints")
    if reload or cached is None or cached[0] != key:
        cached = (key, explorer.load_endpoints(connection.host, connection.signing_token))
        st.session_state["workspace_endpoints"] = cached
    return cached[1]


# -- the view in the URL -----------------------------------------------------------------------


def restore_view(page: str, keys: Iterable[str], settings: Settings) -> ViewState:
    """The view this page shows, from its link when the link says something new.

    Called before the page's widgets are drawn. When the URL's parameters are not the ones
    this page last wrote (a link was opened), they are checked, each bad value becomes a
    warning naming the parameter, and the widgets are set to show the view. Otherwise the
    widgets keep what the viewer chose; a page opened again without parameters shows the
    viewer's last view on it.
    """
    keys = tuple(keys)
    query = {key: st.query_params[key] for key in keys if key in st.query_params}
    view, problems = view_state.parse_view(query, keys, today=view_state.utc_today(),
                                           default_refresh=settings.refresh_seconds)
    widgets = view_state.widget_values(view, keys)
    link_changed = st.session_state.get(f"view_link:{page}") != query
    if link_changed or any(key not in st.session_state for key in widgets):
        for problem in problems:
            st.warning(problem.message, icon=":material/link_off:")
        remembered = st.session_state.get(f"view:{page}")
        if not query and isinstance(remembered, ViewState):
            view = remembered
        for key, value in view_state.widget_values(view, keys).items():
            st.session_state[key] = value
    return view


def keep_view(page: str, keys: Iterable[str], view: ViewState) -> None:
    """Write `view` into the URL, so the address bar is always a link to what is shown."""
    keys = tuple(keys)
    query = view_state.to_query(view, keys)
    for key, value in query.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value
    st.session_state[f"view_link:{page}"] = query
    st.session_state[f"view:{page}"] = view


def widget_view(current: ViewState, keys: Iterable[str]) -> ViewState:
    """The view this page's widgets (those for `keys`) hold now; see `view_from_widgets`."""
    widgets = view_state.widget_values(current, keys)
    return view_state.view_from_widgets({key: st.session_state.get(key) for key in widgets},
                                        current)
