"""One viewer's session: every JWT source and client they use, and their last good data.

It is kept in `st.session_state`, one per browser session, so each viewer mints JWTs of
their own: one for the dashboard, one per tenant they look at, one per endpoint they try.

The object is made again when what it was made from changes: host, workspace, signing
token, pipe, JWT lifetime, who is looking and their tenant. A new signing token (from an
edited secrets.toml, say) must reach the token sources; otherwise every JWT would still
be signed with the old token and refused. A viewer whose tenant changed must not keep
the old JWTs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from lib.client.errors import AuthError, TinybirdError
from lib.client.pipes import PipeClient
from lib.client.tokens import TokenSource

from . import endpoint_explorer, keys, tenant_view
from .access import Access
from .page import Connection, shared_fetches
from .settings import DashboardSettings
from .top_airlines import DASHBOARD_JWT_NAME, DashboardSession
from .view_state import ViewState

# Said when the listing's admin token is refused, naming the app's settings.
ADMIN_REFUSED_HINT = ("The workspace admin token was refused: check that TINYBIRD_SIGNING_TOKEN is "
                    "the workspace's admin token and TINYBIRD_HOST its region.")


@dataclass
class ViewerSession:
    """Everything one viewer reads Tinybird with; see the module's docstring."""

    connection: Connection
    settings: DashboardSettings
    access: Access
    dashboard: DashboardSession
    tenant_clients: dict[str, PipeClient] = field(default_factory=dict)
    explorer_clients: dict[str, PipeClient] = field(default_factory=dict)
    endpoints: list[endpoint_explorer.Endpoint] | None = None  # listed once per viewer

    @property
    def made_from(self) -> tuple[object, ...]:
        return made_from(self.connection, self.settings, self.access)

    def tenant_client(self, airline: str) -> PipeClient:
        """The client for `airline`, or for the viewer's own tenant if they may not pick.

        There is one JWT source per tenant, minted again near `exp`.
        """
        airline = self.access.tenant_for(airline)
        if airline not in self.tenant_clients:
            self.tenant_clients[airline] = tenant_view.tenant_client(
                self.connection.host, self.connection.workspace_id,
                self.connection.signing_token, airline,
                ttl_seconds=self.settings.jwt_ttl_seconds,
                name=self.access.token_name(tenant_view.jwt_name(airline)),
                rps=self.settings.jwt_rps, valid_until=self.access.ends_at)
        return self.tenant_clients[airline]

    def tenant_report(self, view: ViewState) -> tenant_view.TenantReport:
        """The tenant's three charts for `view`, shared with other viewers of that view."""
        return tenant_view.fetch_report(self.tenant_client(view.tenant), view,
                                   self.dashboard.fetches, self.connection.fingerprint)

    @property
    def pinned_params(self) -> dict[str, str]:
        """What every explorer call of this viewer has pinned: their tenant, if locked."""
        locked = self.access.locked_tenant
        return {} if locked is None else {tenant_view.TENANT_PARAM: locked}

    def explorer_client(self, pipe: str) -> PipeClient:
        """The client for trying `pipe`, with a JWT that may read that pipe only.

        For a viewer locked to a tenant, the JWT also pins that tenant.
        """
        if pipe not in self.explorer_clients:
            self.explorer_clients[pipe] = endpoint_explorer.explorer_client(
                self.connection.host, self.connection.workspace_id,
                self.connection.signing_token, pipe, ttl_seconds=self.settings.jwt_ttl_seconds,
                name=self.access.token_name(f"explorer_{pipe}"),
                fixed_params=self.pinned_params or None, rps=self.settings.jwt_rps,
                valid_until=self.access.ends_at)
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

    def close(self) -> None:
        """Close every client of this viewer, so their open connections go with them."""
        for client in (self.dashboard.client, *self.tenant_clients.values(),
                       *self.explorer_clients.values()):
            client.close()

    def workspace_endpoints(self, reload: bool = False) -> endpoint_explorer.Listing:
        """The API Endpoints this viewer may call, listed once per viewer with the admin token.

        The admin token is used here, in the server process, and only the listing (names,
        descriptions, parameters) is kept. A viewer locked to a tenant gets only the
        endpoints that take the tenant parameter. A failure is the listing's `error`.
        """
        if reload or self.endpoints is None:
            try:
                endpoints = endpoint_explorer.load_endpoints(self.connection.host,
                                                             self.connection.signing_token)
            except TinybirdError as exc:
                if isinstance(exc, AuthError):  # the admin token itself was refused
                    exc.hint = ADMIN_REFUSED_HINT
                return endpoint_explorer.Listing([], exc)
            if self.access.locked_tenant is not None:
                endpoints = endpoint_explorer.endpoints_for_tenant(
                    endpoints, tenant_view.TENANT_PARAM)
            self.endpoints = endpoints
        return endpoint_explorer.Listing(self.endpoints)


def made_from(connection: Connection, settings: DashboardSettings,
              access: Access) -> tuple[object, ...]:
    """What a viewer's session depends on; when it changes, the session is made again.

    Args:
        connection: the host, workspace and signing token.
        settings: the pipe, the JWT lifetime and the rate limit.
        access: who is looking and their tenant.

    Returns:
        A tuple to compare, without the signing token itself.
    """
    return (*connection.fingerprint, settings.pipe, settings.jwt_ttl_seconds, settings.jwt_rps,
            *access.fingerprint)


def viewer_session(connection: Connection, settings: DashboardSettings,
                   access: Access) -> ViewerSession:
    """This viewer's session, made again only when what it was made from has changed.

    The session it replaces is closed first: its clients would otherwise keep their
    connections open until garbage collection.

    Args:
        connection: the host, workspace and signing token.
        settings: the dashboard's settings.
        access: who is looking.

    Returns:
        The session kept in `st.session_state`.
    """
    session = st.session_state.get(keys.VIEWER)
    if not isinstance(session, ViewerSession) or \
            session.made_from != made_from(connection, settings, access):
        if isinstance(session, ViewerSession):
            session.close()
        session = ViewerSession(connection, settings, access, DashboardSession.create(
            connection.host, connection.workspace_id, connection.signing_token, settings,
            shared_fetches(), jwt_name=access.token_name(DASHBOARD_JWT_NAME),
            valid_until=access.ends_at))
        st.session_state[keys.VIEWER] = session
    return session
