"""The token inspector's words: claims read from the JWT, time left, a curl that works."""

from __future__ import annotations

import shlex

import jwt

from lib.client.tokens import TokenSource, mint_jwt
from lib.ui import token_inspector as inspector
from tests.support.clock import FakeClock

SIGNING = "p.signing-token-for-tests-0123456789abcdef"
WORKSPACE = "5a8b9c2d-1e3f-4a5b-8c7d-9e0f1a2b3c4d"
NOW = 1_700_000_000.0


def tenant_jwt(**options) -> str:
    return mint_jwt(SIGNING, WORKSPACE, ["airline_daily_bookings", "airline_meal_mix"],
                    name="tenant_fizz", fixed_params={"airline": "Fizz"}, now=NOW,
                    ttl_seconds=600, **options)


def test_claims_are_read_from_the_token_itself():
    token = tenant_jwt(rps=5)
    claims = inspector.decode_claims(token)
    assert claims == jwt.decode(token, SIGNING, algorithms=["HS256"],
                                options={"verify_exp": False})
    rows = {row["claim"]: row["value"] for row in inspector.claim_rows(claims)}
    assert rows["name"] == "tenant_fizz"
    assert rows["workspace_id"] == WORKSPACE
    assert rows["exp"] == "1700000600 (2023-11-14 22:23:20 UTC)"
    assert rows["limits"] == '{"rps": 5}'
    assert inspector.header(token) == {"alg": "HS256", "typ": "JWT"}


def test_each_scope_shows_its_pipe_and_its_fixed_params():
    claims = inspector.decode_claims(tenant_jwt())
    assert inspector.scope_rows(claims) == [
        {"type": "PIPES:READ", "resource": "airline_daily_bookings",
         "fixed_params": '{"airline": "Fizz"}'},
        {"type": "PIPES:READ", "resource": "airline_meal_mix",
         "fixed_params": '{"airline": "Fizz"}'},
    ]
    assert inspector.scoped_pipes(claims) == ["airline_daily_bookings", "airline_meal_mix"]
    plain = inspector.decode_claims(mint_jwt(SIGNING, WORKSPACE, "top_airlines"))
    assert inspector.scope_rows(plain)[0]["fixed_params"] == "none"
    assert {r["claim"]: r["value"] for r in inspector.claim_rows(plain)}["limits"] == "none"


def test_time_left_counts_down_to_expired():
    assert inspector.time_left(NOW + 600, NOW) == 600
    assert inspector.countdown_text(inspector.time_left(NOW + 600, NOW + 65)) == "8 min 55 s"
    assert inspector.countdown_text(inspector.time_left(NOW + 600, NOW + 600)) == "expired"
    assert inspector.countdown_text(inspector.time_left(NOW + 600, NOW + 900)) == "expired"


def test_life_fraction_stays_between_zero_and_one():
    assert inspector.life_fraction(NOW, NOW + 600, NOW) == 1.0
    assert inspector.life_fraction(NOW, NOW + 600, NOW + 150) == 0.75
    assert inspector.life_fraction(NOW, NOW + 600, NOW + 900) == 0.0
    assert inspector.life_fraction(NOW, NOW + 600, NOW - 5) == 1.0
    assert inspector.life_fraction(NOW, NOW, NOW) == 0.0


def test_curl_command_sends_the_jwt_as_a_header_and_parses_back():
    token = tenant_jwt()
    command = inspector.curl_command("http://127.0.0.1:7181/", "airline_meal_mix", token,
                                     {"date_from": "2025-01-01", "note": "it's & fine"})
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:4] == ["curl", "-sS", "-H", f"Authorization: Bearer {token}"]
    assert words[4] == ("http://127.0.0.1:7181/v0/pipes/airline_meal_mix.json"
                        "?date_from=2025-01-01&note=it%27s+%26+fine")
    assert "token=" not in words[4]
    assert SIGNING not in command


def test_remint_gives_a_new_token_at_once_and_counts_it():
    clock = FakeClock()
    source = TokenSource(SIGNING, WORKSPACE, "top_airlines", ttl_seconds=600, clock=clock)
    first = source.get()
    clock.now += 10
    minted = source.remint()
    assert source.mint_count == 2
    assert minted.token != first and source.get() == minted.token
    assert minted.minted_at == NOW + 10 and minted.expires_at == NOW + 610
    assert source.ttl_seconds == 600
    assert SIGNING not in repr(minted) and minted.token not in repr(minted)
