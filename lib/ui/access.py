"""Who is looking, and which tenant they may see: the demo, a login, or a share link.

`who_is_looking` runs first on every run of the app, before the menu is drawn.
- Without an `[auth]` section in the secrets, the app is a demo: anyone may pick any
  tenant.
- With one, a viewer must log in with Streamlit's `st.login` (OpenID Connect). Their
  tenant comes from their identity (see `tenancy`), read again on every run. A login
  older than `[tenancy] max_session_hours` is logged out.
- A valid share link takes the place of a login, for one tenant and one page.

A viewer who may not see anything gets a page that says why, and the run stops there:
no JWT is minted and nothing is fetched.

The tenant decided here is the only one that reaches a JWT's `fixed_params`. No URL
parameter or widget can change it for a viewer who may not pick.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import streamlit as st

from lib.client.settings import SettingsError

from . import keys
from .panels import utc_text
from .share import (
    LINK_PARAM,
    ShareGrant,
    ShareLinkError,
    ShareSettings,
    read_link_token,
    share_settings,
)
from .tenancy import Identity, TenancySettings, resolve, session_ends_at, tenancy_settings
from .tenant_view import jwt_name

# The keys that make a table under `[auth]` a provider, as Streamlit reads them.
PROVIDER_KEYS = {"client_id", "client_secret", "server_metadata_url"}
# The setting that turns the demo into a locked app, named on the demo's pages.
LOCK_SETTING = "[auth] and [tenancy] in the app's secrets"


@dataclass(frozen=True)
class Rules:
    """What the secrets say about access: login providers, tenancy, share links."""

    providers: tuple[str | None, ...]  # None: the unnamed provider of `[auth]` itself
    tenancy: TenancySettings
    share: ShareSettings

    @property
    def login_required(self) -> bool:
        """True when `[auth]` names a login provider, so viewers must log in."""
        return bool(self.providers)


@dataclass(frozen=True)
class Access:
    """What this viewer may see, decided for this run."""

    kind: Literal["demo", "login", "link"]
    tenant: str | None = None  # the viewer's own tenant; None: none (an admin picks)
    email: str = ""
    is_admin: bool = False
    ends_at: float | None = None  # Unix time the login or link ends
    link: ShareGrant | None = None

    @property
    def may_pick_tenant(self) -> bool:
        """The demo's viewers and admins pick any tenant; everyone else sees their own."""
        return self.kind == "demo" or self.is_admin

    @property
    def locked_tenant(self) -> str | None:
        """The one tenant this viewer may see, or None when they may pick."""
        return None if self.may_pick_tenant else self.tenant

    def tenant_for(self, asked: str) -> str:
        """`asked` if this viewer may see it, else their own tenant."""
        if self.may_pick_tenant or self.tenant is None:
            return asked
        return self.tenant

    def token_name(self, default: str) -> str:
        """The name of this viewer's JWTs: their tenant's, for a viewer locked to one."""
        if self.locked_tenant is None:
            return default
        name = jwt_name(self.locked_tenant)
        return f"{name}_link_{self.link.link_id[:8]}" if self.link else name

    @property
    def fingerprint(self) -> tuple[object, ...]:
        """What the viewer's JWT sources were made for: a change makes them anew."""
        return (self.kind, self.tenant, self.email, self.is_admin, self.ends_at,
                self.link.link_id if self.link else None)


def _section(name: str) -> dict[str, Any]:
    """A table of the secrets as plain dicts; empty when absent."""
    try:
        value = st.secrets.get(name)
    except Exception:  # no secrets file; page.py reports a file that does not parse
        return {}
    if isinstance(value, Mapping):
        return _plain(value)
    return {}


def _plain(value: Any) -> Any:
    """`value` with Streamlit's secrets tables turned into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def login_providers(auth: Mapping[str, Any]) -> tuple[str | None, ...]:
    """The providers `[auth]` configures: None for its own, then each named table."""
    if not auth:
        return ()
    named = tuple(name for name, value in auth.items()
                  if isinstance(value, Mapping) and PROVIDER_KEYS & set(value))
    own = (None,) if PROVIDER_KEYS & set(auth) else ()
    return own + named


def load_rules() -> Rules:
    """The access rules in the secrets, checked. Raises `SettingsError`."""
    auth = _section("auth")
    try:
        signing_token = st.secrets.get("TINYBIRD_SIGNING_TOKEN")
    except Exception:
        signing_token = None
    share = share_settings(_section("share"), other_secrets={
        "TINYBIRD_SIGNING_TOKEN": signing_token if isinstance(signing_token, str) else None,
        "auth.cookie_secret": auth.get("cookie_secret")})
    return Rules(providers=login_providers(auth), tenancy=tenancy_settings(_section("tenancy")),
                 share=share)


def _stop_with(message: str, icon: str) -> None:
    """Show `message` as an error and end the run."""
    st.error(message, icon=icon)
    st.stop()


def _link_access(token: str, rules: Rules) -> Access:
    """The access a share link's token grants. Raises `ShareLinkError`."""
    grant = read_link_token(token, rules.share)
    return Access(kind="link", tenant=grant.tenant, ends_at=grant.expires_at, link=grant)


def _login_screen(providers: Sequence[str | None]) -> None:
    """A page with one login button per provider; the run ends here."""
    st.title("Top Airlines")
    st.markdown("Log in to see your airline's bookings.")
    for provider in providers:
        label = "Log in" if provider is None else f"Log in with {provider.title()}"
        st.button(label, on_click=st.login, args=() if provider is None else (provider,),
                  icon=":material/login:", key=f"login_{provider or 'default'}")
    st.stop()


def _login_access(rules: Rules) -> Access:
    """The logged-in viewer's access; otherwise a page that says why, and the run ends."""
    if st.user.get("is_logged_in") is not True:
        _login_screen(rules.providers)
    user = st.user.to_dict()
    ends_at = session_ends_at(user, rules.tenancy)
    if ends_at is None:
        st.error("Your identity provider's ID token does not say when you logged in "
                 "(no `iat` claim), so the session's age cannot be limited.",
                 icon=":material/schedule:")
        st.button("Log out", on_click=st.logout, icon=":material/logout:")
        st.stop()
    if time.time() >= ends_at:  # Streamlit's cookie lasts 30 days; the app's limit is shorter
        st.logout()
        st.stop()
    identity: Identity = resolve(user, rules.tenancy)
    if identity.tenant is None and not identity.is_admin:
        st.title("Top Airlines")
        st.warning(f"You are logged in as **{identity.email or 'an account with no email'}**, "
                   f"but no airline's data is set for you: {identity.reason}. Ask the app's "
                   "owner to add you.", icon=":material/block:")
        st.button("Log out", on_click=st.logout, icon=":material/logout:")
        st.stop()
    return Access(kind="login", tenant=identity.tenant, email=identity.email,
                  is_admin=identity.is_admin, ends_at=ends_at)


def who_is_looking() -> Access:
    """This run's access, or the run ends with a page saying why there is none.

    A share link in the URL, or one opened earlier in this session, comes before a login:
    its holder needs none. The link is checked again on every run, so an expired or
    revoked link stops working at once.
    """
    try:
        rules = load_rules()
    except SettingsError as exc:
        _stop_with(f"**Setting `{exc.setting}`** {exc.problem}", ":material/settings:")
        raise  # unreachable: st.stop() ends the run
    token = st.query_params.get(LINK_PARAM) or st.session_state.get(keys.SHARE_LINK)
    if token:
        try:
            access = _link_access(token, rules)
        except ShareLinkError as exc:
            st.session_state.pop(keys.SHARE_LINK, None)
            _stop_with(str(exc), ":material/link_off:")
            raise  # unreachable
        st.session_state[keys.SHARE_LINK] = token
    elif rules.login_required:
        access = _login_access(rules)
    else:
        access = Access(kind="demo")
    st.session_state[keys.ACCESS] = access
    return access


def current_access() -> Access:
    """The access `who_is_looking` decided for this run (a page reads it)."""
    access = st.session_state.get(keys.ACCESS)
    return access if isinstance(access, Access) else who_is_looking()


def still_allowed(access: Access) -> bool:
    """Whether the viewer may still see what `access` allowed.

    It is False once the login or link has ended, once the link is revoked, once the
    secrets give this login another tenant, or once the secrets require a login of the
    demo's viewers.
    """
    if access.ends_at is not None and time.time() >= access.ends_at:
        return False
    try:
        rules = load_rules()
        if access.kind == "demo":
            return not rules.login_required
        if access.link is not None:
            read_link_token(st.session_state.get(keys.SHARE_LINK) or "", rules.share)
        elif access.kind == "login":
            identity = resolve(st.user.to_dict(), rules.tenancy)
            return (identity.tenant, identity.is_admin) == (access.tenant, access.is_admin)
    except (ShareLinkError, SettingsError):
        return False
    return True


def recheck(access: Access) -> None:
    """Run the whole app again once the access has ended; for a page's live part.

    The new run says why the viewer may not see the page (or logs them out) and fetches
    nothing more.
    """
    if not still_allowed(access):
        st.rerun(scope="app")


def show_viewer(access: Access) -> None:
    """The sidebar's line about who is looking, with the logout button."""
    with st.sidebar:
        if access.kind == "login":
            who = f"**{access.email}**" + (" (admin)" if access.is_admin else "")
            tenant = f" · {access.tenant}" if access.tenant and not access.is_admin else ""
            st.caption(f"Logged in as {who}{tenant}")
            st.button("Log out", on_click=st.logout, icon=":material/logout:",
                      key="logout")
        elif access.kind == "link" and access.ends_at is not None:
            st.caption(f"Shared link for **{access.tenant}**, valid until "
                       f"{utc_text(access.ends_at)}.")
