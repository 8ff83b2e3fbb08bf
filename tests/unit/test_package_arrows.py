"""The packages of `lib/` import one way (docs/architecture.md draws the arrows), and
inside Tinybird Local only `engine` touches chDB, its connection and its lock.

Read from the source with `ast`, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import lib.tinybird_local as tinybird_local
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


def imported_names(path: Path) -> list[tuple[str, str | None]]:
    """Every import of a file as (absolute module, name imported from it or None).

    Relative imports are resolved against the file's package, so `from .state import x`
    in `lib/tinybird_local/sql_access.py` reads as `lib.tinybird_local.state`.
    """
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            module = ".".join([*base, *([node.module] if node.module else [])])
            found += [(module, alias.name) for alias in node.names]
    return found


def lib_modules_named(module: str, name: str | None) -> set[str]:
    """The modules an import may load: `from lib import ui` names `lib.ui` too."""
    return {module} | ({f"{module}.{name}"} if name and name != "*" else set())


def test_the_ui_imports_tinybird_local_only_through_its_face():
    face = set(tinybird_local.__all__)
    for path in (LIB / "ui").rglob("*.py"):
        for module, name in imported_names(path):
            if module.startswith("lib.tinybird_local."):
                pytest.fail(f"{path.relative_to(ROOT)} imports {module}: "
                            "import from lib.tinybird_local itself")
            if module == "lib.tinybird_local":
                assert name in face, (f"{path.relative_to(ROOT)} imports {name} from "
                                      f"lib.tinybird_local, which is not in its __all__")
            if module == "lib" and name == "tinybird_local":
                pytest.fail(f"{path.relative_to(ROOT)} imports the package as a module: "
                            "import names from lib.tinybird_local")


def test_the_face_of_tinybird_local_is_light():
    """Importing the package loads neither chDB nor Starlette; its names load on use."""
    probe = ("import sys, lib.tinybird_local as t; "
             "print(sorted(m for m in ('chdb', 'starlette', 'uvicorn') if m in sys.modules)); "
             "print([callable(getattr(t, n)) for n in t.__all__])")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", str([True] * len(tinybird_local.__all__))]


def test_sql_access_does_not_depend_on_the_running_state():
    path = LIB / "tinybird_local" / "sql_access.py"
    loaded = {m for module, name in imported_names(path)
              for m in lib_modules_named(module, name)}
    assert "lib.tinybird_local.state" not in loaded


def test_no_module_imports_another_modules_private_names():
    paths = [*LIB.rglob("*.py"), *(ROOT / "app_pages").rglob("*.py"), ROOT / "streamlit_app.py"]
    private = [f"{path.relative_to(ROOT)}: {name} from {module}"
               for path in paths for module, name in imported_names(path)
               if module.split(".")[0] == "lib"
               and (name or "").startswith("_")
               and not (name or "").startswith("__")]
    assert private == []


def test_pages_import_from_lib_only_the_ui():
    outside = [f"{path.relative_to(ROOT)}: {module}" + (f".{name}" if module == "lib" else "")
               for path in sorted((ROOT / "app_pages").rglob("*.py"))
               for module, name in imported_names(path)
               if module.split(".")[0] == "lib"
               and not (module == "lib.ui" or module.startswith("lib.ui.")
                        or (module == "lib" and name == "ui"))]
    assert outside == []


TINYBIRD_LOCAL = LIB / "tinybird_local"


def test_only_the_engine_module_talks_to_chdb():
    talkers = sorted(path.name for path in TINYBIRD_LOCAL.glob("*.py")
                     if any(module.split(".")[0] == "chdb"
                            for module, _ in imported_names(path)))
    assert talkers == ["engine.py"]


def test_no_module_reaches_into_the_engine():
    """The lock and the connection stay inside `Engine`: others use its public methods
    (`Engine.exclusive` for several statements under one hold)."""
    reached = [f"{path.name}:{node.lineno} .{node.attr}"
               for path in TINYBIRD_LOCAL.glob("*.py") if path.name != "engine.py"
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Attribute) and node.attr.startswith("_")
               and not node.attr.startswith("__")
               and ((isinstance(node.value, ast.Name) and node.value.id == "engine")
                    or (isinstance(node.value, ast.Attribute) and node.value.attr == "engine"))]
    assert reached == []


@pytest.mark.parametrize("module", ["row_checks", "batches", "datafile_sql"])
def test_checks_batching_and_datafile_sql_run_without_the_engine(module):
    loaded = {m for name, imported in imported_names(TINYBIRD_LOCAL / f"{module}.py")
              for m in lib_modules_named(name, imported)}
    assert not loaded & {"chdb", "lib.tinybird_local.engine"}, sorted(loaded)
