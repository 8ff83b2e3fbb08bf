"""Share links: signed with their own secret, for one tenant and page, until they expire."""

from __future__ import annotations

import datetime as dt
import io
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from lib.client.settings import SettingsError
from lib.ui.share import (
    AUDIENCE,
    ShareLinkError,
    link_url,
    read_link_token,
    share_settings,
    sign_link_token,
)
from lib.ui.share.__main__ import main

SECRET = "share-secret-for-tests-0123456789abcdef"
OLD_SECRET = "an-older-share-secret-0123456789abcdef"
NOW = 1_800_000_000.0
SETTINGS = share_settings({"secret": SECRET, "key_id": "2026-12",
                           "previous_keys": {"2026-06": OLD_SECRET}})


def sign(settings=SETTINGS, **options):
    values = {"tenant": "Fizz", "page": "Tenant_view", "view": {"top": "5"},
              "ttl_seconds": 600, "now": NOW, **options}
    return sign_link_token(settings, **values)


def test_a_link_grants_its_tenant_page_and_view_until_it_expires():
    token, made = sign()
    grant = read_link_token(token, SETTINGS, now=NOW + 599)
    assert grant == made
    assert (grant.tenant, grant.page, dict(grant.view)) == ("Fizz", "Tenant_view", {"top": "5"})
    assert grant.expires_at == NOW + 600
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "kid": "2026-12", "typ": "JWT"}
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE,
                        options={"verify_exp": False, "verify_iat": False})
    assert set(claims) == {"aud", "tenant", "page", "view", "iat", "exp", "jti"}


def test_an_expired_link_says_when():
    token, _ = sign()
    with pytest.raises(ShareLinkError, match="expired on"):
        read_link_token(token, SETTINGS, now=NOW + 600)


def test_an_edited_link_is_refused():
    token, _ = sign()
    header, payload, signature = token.split(".")
    other, _ = sign(tenant="GAS")
    forged = f"{header}.{other.split('.')[1]}.{signature}"  # GAS's claims, Fizz's signature
    for edited in (forged, token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
                   "not-a-token", ""):
        with pytest.raises(ShareLinkError, match="damaged or was edited"):
            read_link_token(edited, SETTINGS, now=NOW)


def test_a_token_signed_with_another_secret_or_for_another_audience_is_refused():
    wrong = jwt.encode({"aud": AUDIENCE, "tenant": "GAS", "page": "Tenant_view", "view": "",
                        "iat": NOW, "exp": NOW + 60, "jti": "x"},
                       "some-other-secret-0123456789abcdefgh", headers={"kid": "2026-12"})
    other_use = jwt.encode({"aud": "something-else", "tenant": "GAS", "page": "Tenant_view",
                            "view": "", "iat": NOW, "exp": NOW + 60, "jti": "x"},
                           SECRET, headers={"kid": "2026-12"})
    unsigned = jwt.encode({"aud": AUDIENCE, "tenant": "GAS", "page": "Tenant_view",
                           "view": "", "iat": NOW, "exp": NOW + 60, "jti": "x"},
                          None, algorithm="none", headers={"kid": "2026-12"})
    for token in (wrong, other_use, unsigned):
        with pytest.raises(ShareLinkError, match="damaged or was edited"):
            read_link_token(token, SETTINGS, now=NOW)


def test_a_rotated_key_keeps_old_links_while_listed():
    old_settings = share_settings({"secret": OLD_SECRET, "key_id": "2026-06"})
    token, _ = sign(old_settings)
    assert read_link_token(token, SETTINGS, now=NOW).tenant == "Fizz"
    dropped = share_settings({"secret": SECRET, "key_id": "2026-12"})
    with pytest.raises(ShareLinkError, match="key the app no longer accepts"):
        read_link_token(token, dropped, now=NOW)


def test_revoked_links_by_id_or_by_time():
    token, grant = sign()
    by_id = share_settings({"secret": SECRET, "key_id": "2026-12", "revoked": [grant.link_id]})
    with pytest.raises(ShareLinkError, match="revoked"):
        read_link_token(token, by_id, now=NOW)
    after = dt.datetime.fromtimestamp(NOW + 1, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    by_time = share_settings({"secret": SECRET, "key_id": "2026-12", "revoked_before": after})
    with pytest.raises(ShareLinkError, match="revoked"):
        read_link_token(token, by_time, now=NOW)
    later, _ = sign(now=NOW + 2)
    assert read_link_token(later, by_time, now=NOW + 2).tenant == "Fizz"


def test_an_app_without_a_share_secret_accepts_no_link():
    token, _ = sign()
    with pytest.raises(ShareLinkError, match="does not accept"):
        read_link_token(token, share_settings({}), now=NOW)


@pytest.mark.parametrize("section, setting", [
    ({"secret": "short"}, "share.secret"),
    ({"secret": SECRET, "revoked": "abc"}, "share.revoked"),
    ({"secret": SECRET, "revoked_before": "yesterday"}, "share.revoked_before"),
    ({"secret": SECRET, "previous_keys": {"old": "short"}}, "share.previous_keys.old"),
    ({"secret": SECRET, "key_id": " "}, "share.key_id"),
])
def test_a_bad_share_setting_is_named(section, setting):
    with pytest.raises(SettingsError) as caught:
        share_settings(section)
    assert caught.value.setting == setting


def test_the_share_secret_is_never_the_tinybird_token_or_the_cookie_secret():
    for name in ("TINYBIRD_SIGNING_TOKEN", "auth.cookie_secret"):
        with pytest.raises(SettingsError, match=name):
            share_settings({"secret": SECRET}, other_secrets={name: SECRET})


@pytest.mark.parametrize("options, message", [
    ({"page": "Token_inspector"}, "cannot be shared"),
    ({"view": {"tenant": "GAS"}}, "not tenant"),
    ({"view": {"top": "1000"}}, "top"),
    ({"ttl_seconds": 0}, "lifetime"),
    ({"tenant": " "}, "tenant"),
])
def test_a_link_that_would_mislead_is_not_made(options, message):
    with pytest.raises(ShareLinkError, match=message):
        sign(**options)


def test_the_link_opens_the_apps_root_with_the_view_and_token():
    token, grant = sign()
    url = link_url("https://top-airlines.example/", token, grant)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "top-airlines.example", "/")
    assert parse_qs(parts.query) == {"top": ["5"], "share": [token]}
    with pytest.raises(ShareLinkError, match="base URL"):
        link_url("top-airlines.example", token, grant)


def test_the_command_prints_the_link_alone_on_its_last_line(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[share]\nsecret = "{SECRET}"\nkey_id = "2026-12"\n')
    out = io.StringIO()
    code = main(["create", "--tenant", "Red Balloon", "--ttl", "3600", "--base-url",
                 "http://127.0.0.1:8501", "--view", "from=2026-11-01&to=2026-11-30",
                 "--secrets", str(secrets)], out=out)
    assert code == 0
    link = out.getvalue().splitlines()[-1]
    query = parse_qs(urlsplit(link).query)
    grant = read_link_token(query["share"][0], SETTINGS)
    assert (grant.tenant, grant.page) == ("Red Balloon", "Tenant_view")
    assert dict(grant.view) == {"from": "2026-11-01", "to": "2026-11-30"}
    assert f"id: {grant.link_id}" in out.getvalue()


def test_the_command_refuses_a_secret_shared_with_the_tinybird_token(tmp_path, capsys):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'TINYBIRD_SIGNING_TOKEN = "{SECRET}"\n[share]\nsecret = "{SECRET}"\n')
    code = main(["create", "--tenant", "Fizz", "--ttl", "60", "--base-url", "http://x.example",
                 "--secrets", str(secrets)], out=io.StringIO())
    assert code == 2
    assert "TINYBIRD_SIGNING_TOKEN" in capsys.readouterr().err
    assert SECRET not in capsys.readouterr().err


def test_revoke_says_how(capsys):
    out = io.StringIO()
    assert main(["revoke", "abc123"], out=out) == 0
    assert 'revoked = ["abc123"]' in out.getvalue()
    assert "revoked_before" in out.getvalue()
