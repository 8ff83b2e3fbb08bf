"""Which tenant a logged-in viewer is: read from their identity, never from the page.

The `[tenancy]` section of the app's secrets says how. A claim of the ID token may name
the tenant (`claim = "airline"`); else the email is looked up in `[tenancy.users]`; else
the email's domain in `[tenancy.domains]`, but only when the provider says the email is
verified. Emails in `admins` may pick any tenant. A viewer who matches nothing has no
tenant and sees no data.

Nothing here imports Streamlit: the pages pass in `st.user` as a plain mapping, so the
rules are tested as plain functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lib.client.settings import SettingsError

DEFAULT_MAX_SESSION_HOURS = 12.0
# Streamlit's login cookie lasts 30 days; a longer session makes no sense.
MAX_SESSION_HOURS_RANGE = (0.0001, 24.0 * 30)


@dataclass(frozen=True)
class TenancySettings:
    """The `[tenancy]` section: how an identity becomes a tenant."""

    claim: str | None = None
    users: Mapping[str, str] = field(default_factory=dict)  # email -> tenant
    domains: Mapping[str, str] = field(default_factory=dict)  # email domain -> tenant
    admins: frozenset[str] = frozenset()  # emails, lower case
    max_session_hours: float = DEFAULT_MAX_SESSION_HOURS


@dataclass(frozen=True)
class Identity:
    """A logged-in viewer, and the tenant their identity gives them."""

    email: str
    tenant: str | None  # None: the viewer may see no tenant's data
    is_admin: bool = False
    reason: str = ""  # how the tenant was found, in words for the page


def _text_map(section: Any, setting: str, lower_keys: bool) -> dict[str, str]:
    """A table of text to text, checked; keys folded to lower case where asked."""
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise SettingsError(setting, "must be a table, e.g. "
                            f'[{setting}] then lines like "name" = "tenant"')
    found: dict[str, str] = {}
    for key, value in section.items():
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(setting, f"the value for {key!r} must be a tenant name (text)")
        found[str(key).strip().lower() if lower_keys else str(key)] = value.strip()
    return found


def tenancy_settings(section: Mapping[str, Any] | None) -> TenancySettings:
    """The `[tenancy]` section of the secrets, checked. Raises `SettingsError`."""
    if not section:
        return TenancySettings()
    claim = section.get("claim")
    if claim is not None and (not isinstance(claim, str) or not claim.strip()):
        raise SettingsError("tenancy.claim", "must be the name of an ID token claim, "
                            'e.g. claim = "airline"')
    admins = section.get("admins", [])
    if isinstance(admins, str) or not isinstance(admins, (list, tuple)) or not all(
            isinstance(email, str) and "@" in email for email in admins):
        raise SettingsError("tenancy.admins", 'must be a list of emails, e.g. admins = '
                            '["ops@example.com"]')
    hours = section.get("max_session_hours", DEFAULT_MAX_SESSION_HOURS)
    low, high = MAX_SESSION_HOURS_RANGE
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not (
            math.isfinite(hours) and low <= hours <= high):
        raise SettingsError("tenancy.max_session_hours", f"must be a number of hours, "
                            f"{low:g} to {high:g}")
    return TenancySettings(
        claim=claim.strip() if claim else None,
        users=_text_map(section.get("users"), "tenancy.users", lower_keys=True),
        domains=_text_map(section.get("domains"), "tenancy.domains", lower_keys=True),
        admins=frozenset(email.strip().lower() for email in admins),
        max_session_hours=float(hours),
    )


def resolve(user: Mapping[str, Any], tenancy: TenancySettings) -> Identity:
    """The tenant of a logged-in viewer, from their ID token's claims (`st.user`).

    Order: the tenant claim, then the user map, then the verified email's domain.
    An admin keeps whatever tenant these give as their starting point.
    """
    email = str(user.get("email") or "").strip()
    folded = email.lower()
    is_admin = bool(folded) and folded in tenancy.admins
    if tenancy.claim:
        value = user.get(tenancy.claim)
        if isinstance(value, str) and value.strip():
            return Identity(email, value.strip(), is_admin,
                            f"the `{tenancy.claim}` claim of your login")
    if folded in tenancy.users:
        return Identity(email, tenancy.users[folded], is_admin, "your email")
    domain = folded.rpartition("@")[2] if "@" in folded else ""
    if domain in tenancy.domains:
        if user.get("email_verified") is True:
            return Identity(email, tenancy.domains[domain], is_admin,
                            f"your verified email's domain, {domain}")
        return Identity(email, None, is_admin,
                        f"your email's domain, {domain}, is listed, but your identity "
                        "provider has not verified the email")
    return Identity(email, None, is_admin, "no tenant is set for your login")


def login_time(user: Mapping[str, Any]) -> float | None:
    """When the viewer logged in (the ID token's `auth_time`, else `iat`), if it says."""
    for claim in ("auth_time", "iat"):
        value = user.get(claim)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
                value):
            return float(value)
    return None


def session_ends_at(user: Mapping[str, Any], tenancy: TenancySettings) -> float | None:
    """When this login must be logged out; None when the ID token says no time."""
    logged_in = login_time(user)
    if logged_in is None:
        return None
    return logged_in + tenancy.max_session_hours * 3600
