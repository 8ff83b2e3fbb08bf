"""What every page does first: its title, the settings, and where it reads Tinybird from.

`page_preamble` is the one call at the top of each page. Each failure here ends the page
with a readable message naming what to fix, never a traceback. The embedded Tinybird
Local is started once per process (`st.cache_resource`), so all viewers share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from lib.client.settings import SettingsError

from .access import Access, current_access
from .settings import DashboardSettings, load_dashboard_settings
from .shared_fetch import SharedFetches, connection_key


@dataclass(frozen=True)
class Connection:
    """Where the page reads from and the token it signs JWTs with (kept server-side)."""

    host: str
    workspace_id: str
    signing_token: str
    is_local_demo: bool

    def __repr__(self) -> str:  # the signing token must never reach a log through a repr
        return f"Connection(host={self.host!r}, workspace_id={self.workspace_id!r})"

    @property
    def source(self) -> str:
        """Where the data comes from, in words that mean something to a remote viewer."""
        return "the embedded demo workspace" if self.is_local_demo else self.host

    @property
    def fingerprint(self) -> tuple[str, str, str]:
        """Enough to notice a changed host, workspace or signing token, without the token."""
        return connection_key(self.host, self.workspace_id, self.signing_token)


@dataclass(frozen=True)
class PageContext:
    """What `page_preamble` gives a page."""

    settings: DashboardSettings
    connection: Connection
    access: Access  # who is looking and which tenant they may see


def _no_secrets_file(exc: Exception) -> bool:
    """True when st.secrets failed only because there is no secrets file at all.

    Streamlit raises the same FileNotFoundError subclass when there is no file and when
    the file does not parse. Only the first means "no secrets"; the second must be
    reported.
    """
    return (getattr(exc, "error_id", None) == "no-secrets-found"
            or str(exc).startswith("No secrets found"))


def secrets() -> dict[str, Any]:
    """The plain values of `st.secrets`; a secrets.toml that does not parse is an error."""
    try:
        return {k: v for k, v in st.secrets.items() if isinstance(v, (str, int, float))}
    except Exception as exc:  # a malformed secrets.toml: say so, name the file
        if _no_secrets_file(exc):
            return {}
        raise SettingsError(".streamlit/secrets.toml", f"cannot be read ({type(exc).__name__}); "
                            "fix the TOML or remove the file") from None


def load_page_settings() -> DashboardSettings:
    """The settings, or a message naming the bad one and the end of this run."""
    try:
        return load_dashboard_settings(secrets=secrets())
    except SettingsError as exc:
        st.error(f"**Setting `{exc.setting}`** {exc.problem}", icon=":material/settings:")
        st.caption("See `.env.example` for every setting and what it should hold.")
        st.stop()
        raise  # unreachable: st.stop() ends the run


@st.cache_resource(show_spinner="Starting the embedded Tinybird Local…")
def _embedded(data_dir: str) -> Connection:
    """Start the embedded Tinybird Local; cached, so once per process."""
    from lib.ui.embedded import start_embedded

    local = start_embedded(data_dir)
    return Connection(host=local.host, workspace_id=local.workspace_id,
                      signing_token=local.signing_token, is_local_demo=True)


@st.cache_resource
def shared_fetches() -> SharedFetches:
    """The process's one cache of answers, shared by every viewer (see `shared_fetch`)."""
    return SharedFetches()


def connect(settings: DashboardSettings) -> Connection:
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


# The browser tab's icon. An emoji is drawn locally. A `:material/...:` page icon would make
# the browser fetch it from Google's font servers, which fails offline and reveals the visit.
APP_ICON = "✈️"


def page_preamble(title: str, caption: str) -> PageContext:
    """Set up the page: its frame, where it reads from, and who is looking.

    A bad setting ends the run with a message naming it.
    """
    st.set_page_config(page_title=title, page_icon=APP_ICON, layout="wide")
    st.title(title)
    st.caption(caption)
    settings = load_page_settings()
    return PageContext(settings, connect(settings), current_access())
