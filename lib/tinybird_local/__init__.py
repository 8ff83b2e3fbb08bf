"""Tinybird Local: a Tinybird-compatible HTTP API on chDB that reads the datafiles in `tinybird/`.

Nothing here imports Streamlit; the dashboard reaches this package only through
`lib.ui.embedded.start_embedded`, which imports nothing but this package's face:
`LocalServer` (serve a project on a port) and `seed_bookings` (bulk-load bookings), and
every request goes over HTTP as it would to Tinybird. Both load on first use, so
importing the package (or one light module of it) does not load chDB or Starlette.
Of the rest of `lib` it imports only two plain-data leaves, `lib.bookings.distributions`
(to seed) and `lib.command_line` (how the CLI fails), so it can be lifted out on its own;
it issues its own JWTs (`auth.issue_jwt`) rather than borrowing the client's.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .seeding import seed_bookings
    from .server import LocalServer

__all__ = ["LocalServer", "seed_bookings"]

# Each name of the face, and the module that defines it.
_FACE = {"LocalServer": ".server", "seed_bookings": ".seeding"}


def __getattr__(name: str) -> Any:
    """Load a name of the face from its module on first use."""
    module = _FACE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
