"""Tinybird's own clients (CLIs and SDKs from PyPI), installed as users install them.

Each client gets a throwaway virtual environment of its own, made once and kept in a
cache directory (`TOP_AIRLINES_CLIENTS_DIR`, default `~/.cache/top-airlines/clients`) so a
second run of the suite installs nothing. The tests that use them are marked `clients`.
The versions are pinned here, next to what they test: what a user gets with `pip install`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

# What a user installs; pinned so the suite tests what it says it tests.
CLIENTS = {
    "tinybird-cli": "tinybird-cli==6.5.5",  # the classic `tb`
    "tinybird": "tinybird==5.0.3",  # the Forward `tb`
    "tinybird-sdk": "tinybird-sdk==0.4.0",
    "verdin": "verdin==0.5.3",
    "tinybird-python-sdk": "tinybird-python-sdk==0.3.7",
}
# What a client needs but does not declare: verdin 0.5.3 imports `requests` without a
# Requires-Dist for it, so `pip install verdin` alone gives a verdin that cannot import.
ALONGSIDE = {
    "verdin": ["requests"],
}
CACHE = Path(os.environ.get("TOP_AIRLINES_CLIENTS_DIR",
                            Path.home() / ".cache" / "top-airlines" / "clients"))
INSTALL_TIMEOUT = 600


def client_venv(name: str) -> Path:
    """The venv holding `CLIENTS[name]`, made on first use; its folder is named by the pin."""
    spec = CLIENTS[name]
    alongside = ALONGSIDE.get(name, [])
    target = CACHE / "+".join([spec.replace("==", "-"), *alongside])
    marker = target / ".installed"
    if marker.exists():
        return target
    if target.exists():
        shutil.rmtree(target)  # a half-made venv from an interrupted run
    target.parent.mkdir(parents=True, exist_ok=True)
    venv.EnvBuilder(with_pip=True).create(target)
    result = subprocess.run([str(python(target)), "-m", "pip", "install", "-q",
                             "--disable-pip-version-check", spec, *alongside],
                            capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    if result.returncode != 0:
        pytest.fail(f"pip install {spec} failed:\n{result.stderr[-3000:]}")
    marker.write_text(spec + "\n")
    return target


def python(env: Path) -> Path:
    return env / ("Scripts" if sys.platform == "win32" else "bin") / "python"


def executable(env: Path, name: str) -> Path:
    return env / ("Scripts" if sys.platform == "win32" else "bin") / name


def run(env: Path, args: list[str], *, cwd: Path | None = None,
        extra_env: dict[str, str] | None = None, timeout: float = 120,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command of the client's venv (`tb ...`, or `python -c ...`) as a user would.

    HOME is the caller's `cwd` when given, so no real ~/.tinyb or credentials file of the
    developer's can leak in, and none is written outside the test's folder.
    """
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("TB_", "TINYBIRD_", "VIRTUAL_ENV", "PYTHON"))}
    if cwd is not None:
        base["HOME"] = str(cwd)
    base.update(extra_env or {})
    program = str(executable(env, args[0])) if not args[0].startswith("/") else args[0]
    return subprocess.run([program, *args[1:]], cwd=cwd, env=base, capture_output=True,
                          text=True, timeout=timeout, input=stdin)
