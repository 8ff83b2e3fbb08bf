"""The dashboard's settings: its workspace, the endpoint it charts and how it reads it.

They are read in the client's order: `st.secrets`, then the environment, then
`.env.local` and `.env`. The settings are:
- the workspace (see `lib.client.settings`);
- the endpoint the main page charts and how often it polls;
- how long the JWTs live and how many requests per second they may make;
- where the embedded Tinybird Local keeps its data.

With no host set, the app runs on the embedded Tinybird Local. A bad value raises
`SettingsError` naming the setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.client.settings import (
    SettingsError,
    SettingSources,
    WorkspaceSettings,
    shown,
    workspace_settings,
)

DEFAULT_PIPE = "top_airlines"
DEFAULT_REFRESH_SECONDS = 5.0
DEFAULT_JWT_TTL_SECONDS = 600
DEFAULT_LOCAL_DATA_DIR = ".tinybird-local"
PIPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class DashboardSettings:
    """The workspace and how the dashboard reads it; defaults for everything but the workspace."""

    workspace: WorkspaceSettings
    pipe: str = DEFAULT_PIPE
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS
    jwt_ttl_seconds: int = DEFAULT_JWT_TTL_SECONDS
    local_data_dir: str = DEFAULT_LOCAL_DATA_DIR
    jwt_rps: float | None = None  # the JWTs' `limits.rps`; None: no limit in the JWT

    @property
    def embedded(self) -> bool:
        """True when no workspace is set: the app runs on the embedded Tinybird Local."""
        return self.workspace.host is None

    @property
    def host(self) -> str | None:
        return self.workspace.host

    @property
    def signing_token(self) -> str | None:
        return self.workspace.signing_token

    @property
    def workspace_id(self) -> str | None:
        return self.workspace.workspace_id

    def __repr__(self) -> str:  # the signing token must not reach a log through a repr
        return (f"DashboardSettings(host={self.host!r}, workspace_id={self.workspace_id!r}, "
                f"pipe={self.pipe!r}, refresh_seconds={self.refresh_seconds}, "
                f"jwt_ttl_seconds={self.jwt_ttl_seconds}, jwt_rps={self.jwt_rps}, "
                f"local_data_dir={self.local_data_dir!r})")


def load_dashboard_settings(secrets: Mapping[str, Any] | None = None,
                            environ: Mapping[str, str] | None = None,
                            env_dir: Path | str | None = None) -> DashboardSettings:
    """The dashboard's settings, checked.

    Args:
        secrets: `st.secrets` or another mapping, read first; None for none.
        environ: the environment; None means `os.environ`.
        env_dir: the folder of the `.env` files; None as in `SettingSources`.

    Returns:
        The settings; the workspace is all None when no host is set.

    Raises:
        SettingsError: naming the first bad setting.
    """
    sources = SettingSources(secrets, environ, env_dir)
    pipe = sources.text("TINYBIRD_PIPE", DEFAULT_PIPE)
    if not PIPE_NAME.fullmatch(pipe):
        raise SettingsError("TINYBIRD_PIPE", f"{shown(pipe)} is not a pipe name (letters, "
                            "digits and underscores, e.g. top_airlines)")
    refresh_seconds = sources.number("TINYBIRD_REFRESH_SECONDS", DEFAULT_REFRESH_SECONDS, 1,
                                     3600)
    jwt_ttl_seconds = int(sources.number("TINYBIRD_JWT_TTL_SECONDS", DEFAULT_JWT_TTL_SECONDS,
                                         60, 86400))
    jwt_rps = sources.number("TINYBIRD_JWT_RPS", 0, 0.001, 1_000_000) or None
    return DashboardSettings(
        workspace=workspace_settings(sources), pipe=pipe, refresh_seconds=refresh_seconds,
        jwt_ttl_seconds=jwt_ttl_seconds, jwt_rps=jwt_rps,
        local_data_dir=sources.text("TINYBIRD_LOCAL_DATA_DIR", DEFAULT_LOCAL_DATA_DIR))
