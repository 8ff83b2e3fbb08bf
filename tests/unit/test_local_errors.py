"""Tinybird Local's errors are named by their status, and render as Tinybird's."""

from __future__ import annotations

import re

import pytest

from lib.tinybird_local import errors
from lib.tinybird_local.errors import (
    AUTH_DOCS,
    DOCS,
    EVENTS_DOCS,
    LIMITS_DOCS,
    PIPE_DOCS,
    APIError,
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Timeout,
    TooManyRequests,
    forbidden,
    no_access,
)
from tests.support.servers import ROOT

LOCAL = ROOT / "lib" / "tinybird_local"


def test_no_error_is_raised_with_a_bare_status_number():
    """A raise site names its error (`NotFound(...)`), never `APIError(404, ...)`."""
    bare = re.compile(r"APIError\(\s*\d")
    found = [f"{path.relative_to(ROOT)}:{text[:match.start()].count(chr(10)) + 1}"
             for path in sorted(LOCAL.rglob("*.py"))
             for text in [path.read_text()]
             for match in bare.finditer(text)]
    assert found == []


@pytest.mark.parametrize(("error", "status", "documentation"), [
    (BadRequest, 400, DOCS),
    (Forbidden, 403, AUTH_DOCS),
    (NotFound, 404, DOCS),
    (Timeout, 408, PIPE_DOCS),
    (PayloadTooLarge, 413, LIMITS_DOCS),
    (TooManyRequests, 429, LIMITS_DOCS),
])
def test_each_error_carries_its_status_and_default_link(error, status, documentation):
    exc = error("what went wrong")
    assert isinstance(exc, APIError)
    assert (exc.status, exc.message, exc.headers) == (status, "what went wrong", {})
    assert exc.body() == {"error": "what went wrong", "documentation": documentation}


def test_a_raise_site_may_pass_its_own_link_and_headers():
    exc = PayloadTooLarge("too big", EVENTS_DOCS, headers={"X-A": "1"})
    assert exc.body() == {"error": "too big", "documentation": EVENTS_DOCS}
    assert exc.headers == {"X-A": "1"}
    assert PayloadTooLarge("other").documentation == LIMITS_DOCS  # the class is unchanged


def test_the_403_helpers_are_forbidden():
    assert isinstance(forbidden(), Forbidden)
    assert forbidden().message == errors.INVALID_AUTH
    assert forbidden("Signature has expired").message == (
        "invalid authentication token. Signature has expired")
    assert no_access().status == 403 and no_access().documentation == AUTH_DOCS


def test_every_named_error_is_drawn_in_the_module_docstring():
    named = [obj for obj in vars(errors).values()
             if isinstance(obj, type) and issubclass(obj, APIError) and obj is not APIError]
    assert errors.__doc__ is not None
    for error in named:
        assert re.search(rf"{error.__name__}\s+{error.status}\b", errors.__doc__), error
