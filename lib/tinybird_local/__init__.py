"""Tinybird Local: a Tinybird-compatible HTTP API on chDB that reads the datafiles in `tinybird/`.

Nothing here imports Streamlit. The dashboard uses this package only in
`lib.ui.embedded.start_embedded`, and only through its two public names:
- `LocalServer`: serve a project on a port;
- `seed_bookings`: load bookings in bulk.

Every request then goes over HTTP, as it would to Tinybird. Both names are loaded on
first use, so importing the package (or one light module of it) does not load chDB or
Starlette.

Of the rest of `lib`, it imports only two small modules that hold plain data and no
other imports: `lib.bookings.distributions` (to seed) and `lib.command_line` (how the
command line reports failures). So the package can be taken out on its own. It issues
its own JWTs (`auth.issue_jwt`) instead of using the client's.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .seeding import seed_bookings
    from .server import LocalServer

__all__ = ["LocalServer", "seed_bookings"]

# Each public name, and the module that defines it.
_FACE = {"LocalServer": ".server", "seed_bookings": ".seeding"}


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use."""
    module = _FACE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
