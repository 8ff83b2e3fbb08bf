"""Which tenant a logged-in viewer gets: the claim, the user map, the verified domain."""

from __future__ import annotations

import pytest

from lib.client.settings import SettingsError
from lib.ui.tenancy import (
    DEFAULT_MAX_SESSION_HOURS,
    TenancySettings,
    login_time,
    resolve,
    session_ends_at,
    tenancy_settings,
)

RULES = tenancy_settings({
    "claim": "airline",
    "admins": ["Boss@Ops.example"],
    "users": {"Bob@gas.example": "GAS", "ana@fizz.example": "Fizz"},
    "domains": {"Fizz.example": "Fizz", "red.example": "Red Balloon"},
})


def test_the_claim_names_the_tenant_first():
    who = resolve({"email": "ana@fizz.example", "airline": "Red Balloon"}, RULES)
    assert (who.tenant, who.is_admin) == ("Red Balloon", False)
    assert "airline" in who.reason


def test_an_empty_or_non_text_claim_falls_through_to_the_user_map():
    for claim in ("", "  ", ["GAS"], 7, None):
        assert resolve({"email": "bob@gas.example", "airline": claim}, RULES).tenant == "GAS"


def test_the_user_map_ignores_case():
    assert resolve({"email": "BOB@GAS.EXAMPLE"}, RULES).tenant == "GAS"


def test_the_domain_map_needs_a_verified_email():
    assert resolve({"email": "cy@red.example", "email_verified": True}, RULES).tenant \
        == "Red Balloon"
    for verified in (False, None, "true", 1):
        who = resolve({"email": "cy@red.example", "email_verified": verified}, RULES)
        assert who.tenant is None, verified
        assert "not verified" in who.reason


def test_a_subdomain_or_look_alike_is_not_the_domain():
    for email in ("x@evil.red.example", "x@red.example.evil", "red.example@evil.example"):
        assert resolve({"email": email, "email_verified": True}, RULES).tenant is None, email


def test_nobody_gets_no_tenant():
    who = resolve({"email": "nobody@else.example", "email_verified": True}, RULES)
    assert (who.tenant, who.is_admin, who.email) == (None, False, "nobody@else.example")
    assert resolve({}, RULES).tenant is None


def test_admins_are_found_by_email_whatever_the_case_and_keep_their_tenant():
    admin = resolve({"email": "boss@ops.example"}, RULES)
    assert (admin.is_admin, admin.tenant) == (True, None)
    assert resolve({"email": "BOSS@ops.example", "airline": "GAS"}, RULES).tenant == "GAS"
    assert not resolve({"email": "boss@ops.example.evil"}, RULES).is_admin


def test_no_tenancy_section_means_no_tenant_for_anyone():
    assert resolve({"email": "a@b.example", "airline": "GAS"}, TenancySettings()).tenant is None


@pytest.mark.parametrize("section, setting", [
    ({"claim": 3}, "tenancy.claim"),
    ({"admins": "boss@ops.example"}, "tenancy.admins"),
    ({"admins": ["not-an-email"]}, "tenancy.admins"),
    ({"users": ["a@b.example"]}, "tenancy.users"),
    ({"users": {"a@b.example": ""}}, "tenancy.users"),
    ({"domains": {"b.example": 5}}, "tenancy.domains"),
    ({"max_session_hours": 0}, "tenancy.max_session_hours"),
    ({"max_session_hours": "12"}, "tenancy.max_session_hours"),
    ({"max_session_hours": float("nan")}, "tenancy.max_session_hours"),
    ({"max_session_hours": 24 * 31}, "tenancy.max_session_hours"),
])
def test_a_bad_setting_is_named(section, setting):
    with pytest.raises(SettingsError) as caught:
        tenancy_settings(section)
    assert caught.value.setting == setting


def test_a_session_ends_max_session_hours_after_the_login():
    assert tenancy_settings({}).max_session_hours == DEFAULT_MAX_SESSION_HOURS == 12
    rules = tenancy_settings({"max_session_hours": 2})
    assert session_ends_at({"iat": 1000}, rules) == 1000 + 7200
    # auth_time is when the person logged in; iat may be a later token's.
    assert session_ends_at({"iat": 5000, "auth_time": 1000}, rules) == 1000 + 7200
    assert session_ends_at({}, rules) is None
    assert login_time({"iat": True}) is None
    assert login_time({"iat": "1000"}) is None
