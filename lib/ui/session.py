"""One viewer's session: every JWT source and client they use, and their last good data.

Kept in `st.session_state` (one per browser session), so each viewer mints JWTs of their
own: one for the dashboard, one per tenant they look at, one per endpoint they try. The
object is made anew when what it was made from changes (host, workspace, signing token,
pipe, JWT lifetime): a new signing token, say from an edited secrets.toml, must reach the
token sources, or every JWT would keep being signed with the old one and refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from lib.client.pipes import PipeClient
from lib.client.settings import Settings
from lib.client.tokens import TokenSource

from . import explorer, keys, tenant
from .dashboard import DashboardSession
from .page import Connection, shared_fetches
from .view_state import ViewState


@dataclass
class ViewerSession:
    connection: Connection
    settings: Settings
    dashboard: DashboardSession
    tenant_clients: dict[str, PipeClient] = field(default_factory=dict)
    explorer_clients: dict[str, PipeClient] = field(default_factory=dict)
    endpoints: list[explorer.Endpoint] | None = None

    @property
    def made_from(self) -> tuple[object, ...]:
        return made_from(self.connection, self.settings)

    def tenant_client(self, airline: str) -> PipeClient:
        """The client for `airline`: one JWT source per tenant, re-minted near exp."""
        if airline not in self.tenant_clients:
            self.tenant_clients[airline] = tenant.tenant_client(
                self.connection.host, self.connection.workspace_id,
                self.connection.signing_token, airline,
                ttl_seconds=self.settings.jwt_ttl_seconds)
        return self.tenant_clients[airline]

    def tenant_report(self, view: ViewState) -> tenant.TenantReport:
        """The tenant's three charts for `view`, shared with other viewers of that view."""
        return tenant.fetch_report(self.tenant_client(view.tenant), view,
                                   self.dashboard.fetches, self.connection.fingerprint)

    def explorer_client(self, pipe: str) -> PipeClient:
        """The client for trying `pipe`, with a JWT that may read that pipe only."""
        if pipe not in self.explorer_clients:
            self.explorer_clients[pipe] = explorer.explorer_client(
                self.connection.host, self.connection.workspace_id,
                self.connection.signing_token, pipe, ttl_seconds=self.settings.jwt_ttl_seconds)
        return self.explorer_clients[pipe]

    def token_sources(self) -> dict[str, TokenSource]:
        """Every JWT source of this viewer, labelled for a menu: the dashboard's first."""
        sources = {f"Dashboard ({self.settings.pipe})": self.dashboard.tokens}
        labelled = [*((f"Tenant view: {airline}", client)
                      for airline, client in self.tenant_clients.items()),
                    *((f"Endpoint explorer: {pipe}", client)
                      for pipe, client in self.explorer_clients.items())]
        for label, client in labelled:
            if isinstance(client.tokens, TokenSource):
                sources[label] = client.tokens
        return sources

    def workspace_endpoints(self, reload: bool = False) -> list[explorer.Endpoint]:
        """The workspace's API Endpoints, listed once per viewer with the admin token.

        The admin token is used here, in the server process, and only the listing (names,
        descriptions, parameters) is kept. Raises TinybirdError.
        """
        if reload or self.endpoints is None:
            self.endpoints = explorer.load_endpoints(self.connection.host,
                                                     self.connection.signing_token)
        return self.endpoints


def made_from(connection: Connection, settings: Settings) -> tuple[object, ...]:
    return (*connection.fingerprint, settings.pipe, settings.jwt_ttl_seconds)


def viewer_session(connection: Connection, settings: Settings) -> ViewerSession:
    """This viewer's session, made anew only when what it was made from has changed."""
    session = st.session_state.get(keys.VIEWER)
    if not isinstance(session, ViewerSession) or \
            session.made_from != made_from(connection, settings):
        session = ViewerSession(connection, settings, DashboardSession.create(
            connection.host, connection.workspace_id, connection.signing_token, settings,
            shared_fetches()))
        st.session_state[keys.VIEWER] = session
    return session

