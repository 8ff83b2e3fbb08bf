"""Auth building blocks with a fake clock: rate limits, the verified-JWT cache, token lookup."""

from __future__ import annotations

import time

import jwt
import pytest

from lib.client.tokens import mint_jwt
from lib.tinybird_local.auth import VerifiedJWTs, authenticate, token_from_request
from lib.tinybird_local.errors import APIError
from lib.tinybird_local.ratelimit import RateLimiter
from lib.tinybird_local.workspace import Workspace
from tests.support.clock import FakeClock

WORKSPACE = Workspace(workspace_id="6f1e8c56-1111-4222-8333-944455556666",
                      admin_token="p.admin-token-for-unit-tests-0123456789abcdef")


def test_rate_limit_allows_rate_plus_one_burst_then_refuses_until_time_passes():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    decisions = [limiter.check("k", 3) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, True, False]
    assert decisions[0].limit == 4 and decisions[0].remaining == 3
    assert decisions[3].remaining == 0
    refused = decisions[4]
    assert refused.retry_after == 1 and refused.headers()["Retry-After"] == "1"
    clock.now += 1 / 3
    assert limiter.check("k", 3).allowed
    assert not limiter.check("k", 3).allowed
    assert limiter.check("other", 3).allowed  # keys are independent


def test_cached_jwt_is_refused_once_expired():
    clock = FakeClock(time.time())
    cache = VerifiedJWTs(clock=clock)
    token = mint_jwt(WORKSPACE.admin_token, WORKSPACE.workspace_id, "top_airlines",
                     ttl_seconds=60, now=clock.now)
    grant = authenticate(token, WORKSPACE, verified=cache)
    assert cache.get(token) is grant
    clock.now += 61
    assert cache.get(token) is None


def test_cache_never_accepts_a_token_that_failed():
    cache = VerifiedJWTs()
    bad = jwt.encode({"workspace_id": WORKSPACE.workspace_id, "name": "x",
                      "exp": time.time() + 60, "scopes": []},
                     WORKSPACE.admin_token, algorithm="HS256")
    for _ in range(2):
        with pytest.raises(APIError) as info:
            authenticate(bad, WORKSPACE, verified=cache)
        assert info.value.status == 403 and "scopes" in info.value.message
    assert cache.get(bad) is None


def test_cache_is_bounded():
    cache = VerifiedJWTs(size=2)
    tokens = [mint_jwt(WORKSPACE.admin_token, WORKSPACE.workspace_id, "p", name=f"n{i}")
              for i in range(3)]
    for token in tokens:
        authenticate(token, WORKSPACE, verified=cache)
    assert cache.get(tokens[0]) is None
    assert cache.get(tokens[2]) is not None


def test_query_token_wins_over_bearer_header():
    assert token_from_request({"token": "a"}, "Bearer b") == "a"
    assert token_from_request({}, "Bearer b") == "b"
    assert token_from_request({}, "bearer b") is None
    assert token_from_request({}, "Bearer b c") is None


def test_fixed_params_and_limits_read_from_claims():
    token = mint_jwt(WORKSPACE.admin_token, WORKSPACE.workspace_id, ["a", "b"],
                     fixed_params={"airline": "GAS"}, rps=0)
    grant = authenticate(token, WORKSPACE)
    assert grant.can_read("a") and grant.can_read("b") and not grant.can_read("c")
    assert grant.fixed_params("a") == {"airline": "GAS"}
    assert grant.rps is None  # Tinybird ignores rps <= 0
