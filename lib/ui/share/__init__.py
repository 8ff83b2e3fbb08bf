"""Share links: a signed, expiring link that shows one tenant's page without a login.

A link carries a JWT (HS256) signed with the `[share] secret` of the app's secrets. It is
never signed with the Tinybird signing token or the login cookie's secret. The JWT names
the tenant, the page and the view, when it was made (`iat`), when it ends (`exp`), its
own id (`jti`), and the id of the key that signed it (`kid`, in the header). The key id
lets the secret change: older keys are still accepted while `[share.previous_keys]`
lists them.

Revocations are in the secrets too, because Streamlit Community Cloud keeps no files:
`revoked` lists link ids, and `revoked_before` refuses every link made before a time.

Nothing here imports Streamlit; `python -m lib.ui.share` is the command line.
"""

from __future__ import annotations

import datetime as dt
import secrets as random_secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt

from lib.client.settings import SettingsError
from lib.ui import view_state

# The link's audience: a token signed for anything else is never read as a share link.
AUDIENCE = "top-airlines/share"
DEFAULT_KEY_ID = "1"
MIN_SECRET_CHARS = 32
# The URL parameter that carries the token.
LINK_PARAM = "share"
# The pages a link may open, by URL path, with the view parameters each one reads.
SHARED_PAGES: dict[str, tuple[str, ...]] = {
    "Tenant_view": tuple(key for key in view_state.TENANT_PARAMS if key != view_state.TENANT),
    "Top_airlines": view_state.DASHBOARD_PARAMS,
}
DEFAULT_PAGE = "Tenant_view"
MAX_TTL_SECONDS = 366 * 24 * 3600


class ShareLinkError(ValueError):
    """A link that cannot be honoured; the message says why, for the person who opened it."""


@dataclass(frozen=True)
class ShareSettings:
    """The `[share]` section: the signing key, older keys still accepted, and revocations."""

    secret: str | None = field(default=None, repr=False)
    key_id: str = DEFAULT_KEY_ID
    previous_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    revoked: frozenset[str] = frozenset()
    revoked_before: dt.datetime | None = None  # UTC

    @property
    def enabled(self) -> bool:
        return bool(self.secret)

    def key(self, key_id: str) -> str | None:
        """The secret for a link signed with `key_id`, if that key is still accepted."""
        if key_id == self.key_id:
            return self.secret
        return self.previous_keys.get(key_id)


@dataclass(frozen=True)
class ShareGrant:
    """What a valid link lets its holder see."""

    tenant: str
    page: str
    view: Mapping[str, str]
    link_id: str
    issued_at: float
    expires_at: float


def _utc_time(text: str, setting: str) -> dt.datetime:
    """An ISO time as UTC (a time without a zone is taken as UTC). Raises `SettingsError`."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise SettingsError(setting, f"{text!r} is not an ISO time, e.g. "
                            '"2026-12-01T00:00:00Z"') from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _checked_secret(value: Any, setting: str) -> str:
    """`value` stripped, if it is a long enough text to sign with. Raises `SettingsError`."""
    if not isinstance(value, str) or len(value.strip()) < MIN_SECRET_CHARS:
        raise SettingsError(setting, f"must be a random text of at least {MIN_SECRET_CHARS} "
                            "characters, e.g. the output of "
                            "`python -c \"import secrets; print(secrets.token_urlsafe(32))\"`")
    return value.strip()


def share_settings(section: Mapping[str, Any] | None,
                   other_secrets: Mapping[str, str | None] | None = None) -> ShareSettings:
    """The `[share]` section of the secrets, checked. Raises `SettingsError`.

    `other_secrets` names secrets the share key must not reuse (the Tinybird signing
    token, the login cookie's secret): a link must never be signed with either.
    """
    if not section:
        return ShareSettings()
    secret = section.get("secret")
    secret = None if secret is None else _checked_secret(secret, "share.secret")
    key_id = str(section.get("key_id", DEFAULT_KEY_ID)).strip()
    if not key_id:
        raise SettingsError("share.key_id", "must not be empty")
    previous = section.get("previous_keys") or {}
    if not isinstance(previous, Mapping):
        raise SettingsError("share.previous_keys", "must be a table of key id = secret")
    previous_keys = {str(kid): _checked_secret(value, f"share.previous_keys.{kid}")
                     for kid, value in previous.items()}
    for name, other in (other_secrets or {}).items():
        if other and other.strip() in {secret, *previous_keys.values()}:
            raise SettingsError("share.secret", f"must not be the same as {name}: use a "
                                "secret of its own")
    revoked = section.get("revoked", [])
    if isinstance(revoked, str) or not isinstance(revoked, (list, tuple)) or not all(
            isinstance(link_id, str) for link_id in revoked):
        raise SettingsError("share.revoked", 'must be a list of link ids, e.g. revoked = '
                            '["3f9c..."]')
    before = section.get("revoked_before")
    if isinstance(before, dt.datetime):  # TOML's own date-time type
        revoked_before = (before if before.tzinfo else before.replace(tzinfo=dt.UTC))
    elif isinstance(before, str) and before.strip():
        revoked_before = _utc_time(before, "share.revoked_before")
    elif before in (None, ""):
        revoked_before = None
    else:
        raise SettingsError("share.revoked_before", "must be an ISO time, e.g. "
                            '"2026-12-01T00:00:00Z"')
    return ShareSettings(secret=secret, key_id=key_id, previous_keys=previous_keys,
                         revoked=frozenset(link_id.strip() for link_id in revoked),
                         revoked_before=revoked_before.astimezone(dt.UTC)
                         if revoked_before else None)


def parse_view(page: str, view: str) -> dict[str, str]:
    """The view parameters of a link to `page`, checked. Raises `ShareLinkError`."""
    if page not in SHARED_PAGES:
        raise ShareLinkError(f"page {page!r} cannot be shared; choose one of "
                             f"{', '.join(SHARED_PAGES)}")
    allowed = SHARED_PAGES[page]
    pairs = dict(parse_qsl(view.lstrip("?"), keep_blank_values=True, strict_parsing=False))
    unknown = sorted(set(pairs) - set(allowed))
    if unknown:
        raise ShareLinkError(f"the view of {page} takes {', '.join(allowed)}; "
                             f"not {', '.join(unknown)}")
    _, problems = view_state.parse_view(pairs, allowed, today=view_state.utc_today(),
                                        default_refresh=5.0)
    if problems:
        raise ShareLinkError("; ".join(problem.message for problem in problems))
    return pairs


def sign_link_token(settings: ShareSettings, *, tenant: str, page: str, view: Mapping[str, str],
                    ttl_seconds: float, now: float | None = None) -> tuple[str, ShareGrant]:
    """A signed token for one tenant's page, and what it grants.

    Args:
        settings: the `[share]` settings; their current key signs.
        tenant: the airline the link shows.
        page: the page the link opens, a key of `SHARED_PAGES`.
        view: the page's view parameters, checked as `parse_view` does.
        ttl_seconds: how long the link works, at most `MAX_TTL_SECONDS`.
        now: the time of signing in Unix seconds; None means now.

    Returns:
        The token and the grant it carries.

    Raises:
        ShareLinkError: no secret is set, or a choice is not valid.
    """
    if not settings.secret:
        raise ShareLinkError("[share] secret is not set in the app's secrets")
    if not tenant.strip():
        raise ShareLinkError("the tenant must not be empty")
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise ShareLinkError(f"the lifetime must be 1 to {MAX_TTL_SECONDS} seconds")
    now = time.time() if now is None else now
    grant = ShareGrant(tenant=tenant.strip(), page=page, view=dict(parse_view(page, urlencode(
        dict(view)))), link_id=random_secrets.token_hex(12), issued_at=int(now),
        expires_at=int(now + ttl_seconds))
    claims = {"aud": AUDIENCE, "tenant": grant.tenant, "page": grant.page,
              "view": urlencode(dict(grant.view)), "iat": grant.issued_at,
              "exp": grant.expires_at, "jti": grant.link_id}
    token = jwt.encode(claims, settings.secret, algorithm="HS256",
                       headers={"kid": settings.key_id})
    return token, grant


def link_url(base_url: str, token: str, grant: ShareGrant) -> str:
    """The link people open: the app's root address, the view, and the token.

    The link points at the root whatever the page. Someone who opens a link gets its one
    page as the app's only page, so it is the default page, and Streamlit serves the
    default page at the root.

    Args:
        base_url: the app's address, e.g. `https://top-airlines.streamlit.app`.
        token: the signed token from `sign_link_token`.
        grant: what the token grants; its view goes in the link.

    Returns:
        The link.

    Raises:
        ShareLinkError: `base_url` is not an http(s) address.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ShareLinkError(f"the base URL {base_url!r} must be the app's address, e.g. "
                             "https://top-airlines.streamlit.app")
    query = urlencode({**grant.view, LINK_PARAM: token})
    return f"{base_url.rstrip('/')}/?{query}"


def _expired_message(expired_at: float) -> str:
    """What the person who opened an expired link reads."""
    when = dt.datetime.fromtimestamp(expired_at, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"This shared link expired on {when}. Ask whoever shared it for a new one."


def read_link_token(token: str, settings: ShareSettings, now: float | None = None) -> ShareGrant:
    """What a link's token grants, if it is genuine, unexpired and not revoked.

    Args:
        token: the token from the link.
        settings: the `[share]` settings: the keys accepted and the revocations.
        now: the time in Unix seconds; None means now.

    Returns:
        What the link lets its holder see.

    Raises:
        ShareLinkError: with a message for the person who opened the link.
    """
    if not settings.enabled:
        raise ShareLinkError("This app does not accept shared links.")
    edited = ShareLinkError("This shared link is damaged or was edited: its signature "
                            "does not match. Ask whoever shared it for the link again.")
    try:
        key_id = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise edited from None
    key = settings.key(str(key_id)) if isinstance(key_id, str) else None
    if key is None:
        raise ShareLinkError("This shared link was signed with a key the app no longer "
                             "accepts. Ask whoever shared it for a new one.")
    now = time.time() if now is None else now
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"], audience=AUDIENCE,
                            options={"require": ["exp", "iat", "jti", "aud"],
                                     "verify_exp": False, "verify_iat": False})
    except jwt.PyJWTError:
        raise edited from None
    if not all(isinstance(claims.get(name), str) for name in ("tenant", "page", "view", "jti")) \
            or not all(isinstance(claims.get(name), (int, float)) for name in ("iat", "exp")):
        raise edited
    if now >= claims["exp"]:
        raise ShareLinkError(_expired_message(claims["exp"]))
    revoked = ShareLinkError("This shared link was revoked. Ask whoever shared it for a "
                             "new one.")
    if claims["jti"] in settings.revoked:
        raise revoked
    if settings.revoked_before and claims["iat"] < settings.revoked_before.timestamp():
        raise revoked
    try:
        view = parse_view(claims["page"], claims["view"])
    except ShareLinkError:
        raise edited from None
    return ShareGrant(tenant=claims["tenant"], page=claims["page"], view=view,
                      link_id=claims["jti"], issued_at=float(claims["iat"]),
                      expires_at=float(claims["exp"]))
