"""The packages of `lib/` import one way (docs/architecture.md draws the arrows).

Read from the source with `ast`, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast

import pytest

from tests.support.servers import ROOT

LIB = ROOT / "lib"
# For each package, the other top-level parts of `lib` (and Streamlit) it may import.
ALLOWED = {
    "client": set(),
    "bookings": {"client", "command_line"},
    "tinybird_local": {"bookings.distributions", "command_line"},
    "ui": {"client", "bookings", "tinybird_local", "command_line", "streamlit"},
}


def imports_of(package: str) -> set[str]:
    """`lib.*` modules (as `pkg` or `pkg.module`) and `streamlit` imported by a package."""
    found: set[str] = set()
    for path in (LIB / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name == "streamlit" or name.startswith("streamlit."):
                    found.add("streamlit")
                elif name.startswith("lib."):
                    found.add(name.removeprefix("lib."))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_its_arrows_allow(package):
    outside = {name for name in imports_of(package)
               if name.split(".")[0] != package}
    allowed = ALLOWED[package]
    unexpected = {name for name in outside
                  if name not in allowed and name.split(".")[0] not in allowed}
    assert unexpected == set(), f"lib/{package} imports {sorted(unexpected)}"


def test_only_the_ui_package_imports_streamlit():
    for package in ALLOWED:
        assert ("streamlit" in imports_of(package)) == (package == "ui"), package
