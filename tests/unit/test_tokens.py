"""JWT minting (the guide's payload, HS256) and the per-session TokenSource's cache."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.client.errors import AccessExpired
from lib.client.tokens import REFRESH_MARGIN_SECONDS, TokenSource, jwt_payload, mint_jwt
from tests.support.clock import FakeClock

SIGNING = "p.signing-token-for-tests-0123456789abcdef"
WORKSPACE = "5a8b9c2d-1e3f-4a5b-8c7d-9e0f1a2b3c4d"
NOW = 1_700_000_000.0

def decode(token: str, key: str = SIGNING, **options) -> dict:
    return jwt.decode(token, key, algorithms=["HS256"],
                      options={"verify_exp": False, **options})


def header(token: str) -> dict:
    raw = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))


# -- the payload -------------------------------------------------------------------------------


def test_payload_is_the_guides():
    token = mint_jwt(SIGNING, WORKSPACE, "top_airlines", name="viewer", ttl_seconds=600, now=NOW)
    claims = decode(token)
    assert claims == {
        "workspace_id": WORKSPACE,
        "name": "viewer",
        "exp": NOW + 600,
        "scopes": [{"type": "PIPES:READ", "resource": "top_airlines"}],
    }
    assert isinstance(claims["exp"], int)


def test_header_is_hs256_jwt():
    assert header(mint_jwt(SIGNING, WORKSPACE, "top_airlines")) == {"alg": "HS256",
                                                                     "typ": "JWT"}


def test_verifies_with_the_signing_token_only():
    token = mint_jwt(SIGNING, WORKSPACE, "top_airlines")
    claims = jwt.decode(token, SIGNING, algorithms=["HS256"], options={"require": ["exp"]})
    assert claims["workspace_id"] == WORKSPACE
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, SIGNING + "x", algorithms=["HS256"])


def test_a_fresh_token_is_not_expired_and_lives_ttl():
    token = mint_jwt(SIGNING, WORKSPACE, "top_airlines", ttl_seconds=600)
    claims = jwt.decode(token, SIGNING, algorithms=["HS256"])  # verifies exp against now
    assert claims["exp"] > 0


def test_an_old_token_is_expired():
    token = mint_jwt(SIGNING, WORKSPACE, "top_airlines", ttl_seconds=60, now=NOW - 3600)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(token, SIGNING, algorithms=["HS256"])


def test_fixed_params_go_into_every_scope_and_limits_into_the_payload():
    token = mint_jwt(SIGNING, WORKSPACE, ["top_airlines", "airline_bookings"],
                     fixed_params={"airline": "BrianAir"}, rps=10, now=NOW)
    claims = decode(token)
    assert claims["scopes"] == [
        {"type": "PIPES:READ", "resource": "top_airlines", "fixed_params": {"airline": "BrianAir"}},
        {"type": "PIPES:READ", "resource": "airline_bookings",
         "fixed_params": {"airline": "BrianAir"}},
    ]
    assert claims["limits"] == {"rps": 10}


def test_no_fixed_params_or_limits_unless_asked():
    claims = jwt_payload(WORKSPACE, "top_airlines", now=NOW)
    assert "limits" not in claims
    assert "fixed_params" not in claims["scopes"][0]


@given(now=st.floats(min_value=0, max_value=4e9, allow_nan=False),
       ttl=st.floats(min_value=0.001, max_value=86400, allow_nan=False))
def test_exp_is_a_whole_second_never_before_now_plus_ttl(now, ttl):
    exp = jwt_payload(WORKSPACE, "top_airlines", ttl_seconds=ttl, now=now)["exp"]
    assert isinstance(exp, int)
    assert now + ttl <= exp < now + ttl + 1


@pytest.mark.parametrize("ttl", [0, -1])
def test_a_ttl_that_is_not_positive_is_refused(ttl):
    with pytest.raises(ValueError):
        jwt_payload(WORKSPACE, "top_airlines", ttl_seconds=ttl)
    with pytest.raises(ValueError):
        TokenSource(SIGNING, WORKSPACE, "top_airlines", ttl_seconds=ttl)


# -- TokenSource -------------------------------------------------------------------------------


def test_token_source_caches_one_token():
    clock = FakeClock()
    source = TokenSource(SIGNING, WORKSPACE, "top_airlines", ttl_seconds=600, clock=clock)
    first = source.get()
    for _ in range(100):
        clock.advance(5)  # 100 polls, five seconds apart: 500 s, inside the TTL minus margin
        assert source.get() == first
    assert source.mint_count == 1
    assert source.current is not None and source.current.token == first


def test_a_token_29_seconds_from_exp_is_replaced_before_use():
    # Pinned in plain numbers, not the module's constant: a margin of 0 must fail here.
    clock = FakeClock()
    source = TokenSource(SIGNING, WORKSPACE, "top_airlines", ttl_seconds=600, clock=clock)
    first = source.get()
    exp = decode(first)["exp"]
    clock.now = exp - 31
    assert source.get() == first
    clock.now = exp - 29
    replacement = source.get()
    assert replacement != first and decode(replacement)["exp"] - clock.now >= 599


def test_token_source_re_mints_shortly_before_exp():
    clock = FakeClock()
    source = TokenSource(SIGNING, WORKSPACE, "top_airlines", ttl_seconds=600, clock=clock)
    first = source.get()
    exp = decode(first)["exp"]
    clock.now = exp - REFRESH_MARGIN_SECONDS - 0.5
    assert source.get() == first and source.mint_count == 1
    clock.now = exp - REFRESH_MARGIN_SECONDS
    second = source.get()
    assert second != first
    assert source.mint_count == 2
    assert decode(second)["exp"] > exp


def test_invalidate_forces_a_new_token():
    clock = FakeClock()
    source = TokenSource(SIGNING, WORKSPACE, "top_airlines", clock=clock)
    source.get()
    source.invalidate()
    assert source.current is None
    source.get()
    assert source.mint_count == 2


def test_token_source_payload_and_options():
    clock = FakeClock()
    source = TokenSource(SIGNING, WORKSPACE, "top_airlines", ttl_seconds=120, name="tenant-a",
                         fixed_params={"airline": "Fizz"}, rps=3, clock=clock)
    claims = decode(source.get())
    assert claims["name"] == "tenant-a"
    assert claims["exp"] == NOW + 120
    assert claims["scopes"] == [{"type": "PIPES:READ", "resource": "top_airlines",
                                 "fixed_params": {"airline": "Fizz"}}]
    assert claims["limits"] == {"rps": 3}
    assert source.current.claims == claims
    assert source.current.expires_at == claims["exp"]


def test_repr_hides_the_signing_token():
    source = TokenSource(SIGNING, WORKSPACE, "top_airlines")
    source.get()
    assert SIGNING not in repr(source)
    assert source.current.token not in repr(source)


@settings(max_examples=60)
@given(ttl=st.integers(min_value=1, max_value=3600),
       steps=st.lists(st.floats(min_value=0, max_value=900, allow_nan=False), min_size=1,
                      max_size=40))
def test_never_returns_a_token_that_expires_within_the_margin(ttl, steps):
    clock = FakeClock(NOW + 0.37)  # not a whole second, as time.time() never is
    source = TokenSource(SIGNING, WORKSPACE, "top_airlines", ttl_seconds=ttl, clock=clock)
    margin = min(REFRESH_MARGIN_SECONDS, ttl / 10)
    assert source.margin_seconds == margin
    for step in steps:
        clock.advance(step)
        exp = decode(source.get())["exp"]
        assert exp - clock.now > margin
    # And it re-mints no more often than needed: at most once per get().
    assert source.mint_count <= len(steps)


# -- valid_until: no JWT outlives the access it stands for --------------------------------------


def test_no_jwt_outlives_valid_until():
    clock = FakeClock(NOW)
    source = TokenSource(SIGNING, WORKSPACE, "top_airlines", ttl_seconds=600,
                         valid_until=NOW + 100.5, clock=clock)
    minted = source.minted()
    assert decode(minted.token)["exp"] == NOW + 100  # the last whole second before the end
    assert minted.expires_at == NOW + 100


def test_the_last_jwt_is_kept_until_it_expires_then_access_expired():
    clock = FakeClock(NOW)
    source = TokenSource(SIGNING, WORKSPACE, "top_airlines", ttl_seconds=600,
                         valid_until=NOW + 100, clock=clock)
    first = source.get()
    clock.advance(95)  # within the re-mint margin, but a new JWT could not live longer
    assert source.get() == first
    assert source.mint_count == 1
    clock.advance(5)
    with pytest.raises(AccessExpired):
        source.get()
    source.invalidate()
    with pytest.raises(AccessExpired):
        source.get()


def test_valid_until_far_away_changes_nothing():
    clock = FakeClock(NOW)
    source = TokenSource(SIGNING, WORKSPACE, "top_airlines", ttl_seconds=600,
                         valid_until=NOW + 86400, clock=clock)
    assert decode(source.get())["exp"] == NOW + 600
