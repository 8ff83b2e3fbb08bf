"""Streamlit glue shared by the pages: settings, the connection, the per-viewer session.

Each failure here ends the page with a readable message naming what to fix, never a
traceback. The embedded Tinybird Local is started once per process (`cache_resource`),
the JWT source once per viewer (`session_state`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import streamlit as st

from lib.dashboard import DashboardSession
from lib.settings import Settings, SettingsError, load_settings


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
    from lib.tinybird_local.embedded import start_embedded

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
