"""The workspace's identity: its id, admin token and datafile tokens, kept in the data dir.

It is created on the first start and never changed after, so JWTs minted by a client
and the tokens printed by `info` stay valid when a server restarts on the same data
directory. Only its owner may read the file, because the admin token signs every JWT.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .datafiles import Project

WORKSPACE_FILE = "workspace.json"
USER_FILE = "local_user.json"


# Where a static token came from, as the Tokens API's `origin.type` says it: a pipe's or
# a datasource's TOKEN line, or created through the API (custom).
ORIGIN_PIPE, ORIGIN_DATASOURCE, ORIGIN_CUSTOM = "P", "DS", "C"


@dataclass
class StaticToken:
    """A static (`p.`) token: a datafile TOKEN line's, or one made with the Tokens API.

    `scopes` are Tinybird's scope strings (`PIPES:READ:top_airlines`,
    `DATASOURCES:APPEND:events`, `DATASOURCES:READ:events[:filter]`, `ADMIN`, `TOKENS`...).
    A datafile token also keeps its line's `permission` and `resource`.
    """

    name: str
    token: str
    permission: str = ""  # a datafile token's READ or APPEND
    resource: str = ""  # a datafile token's pipe or datasource name
    scopes: list[str] = field(default_factory=list)
    description: str = ""
    origin: str = ORIGIN_CUSTOM
    token_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_json(self) -> dict:
        """The token as the workspace file keeps it."""
        return {"token": self.token, "permission": self.permission, "resource": self.resource,
                "scopes": list(self.scopes), "description": self.description,
                "origin": self.origin, "id": self.token_id}


@dataclass
class Workspace:
    """The workspace's id, admin token and static tokens, by name."""

    workspace_id: str
    admin_token: str
    name: str = "tinybird_local"
    tokens: dict[str, StaticToken] = field(default_factory=dict)

    def pipe_id(self, pipe_name: str) -> str:
        """A stable Tinybird-style id (`t_<32 hex>`) so scopes may name a pipe by id."""
        digest = hashlib.sha256(f"{self.workspace_id}:{pipe_name}".encode()).hexdigest()
        return "t_" + digest[:32]

    @property
    def admin_token_id(self) -> str:
        """The admin token's stable id in the Tokens API."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tinybird-local:{self.workspace_id}:admin"))

    def to_json(self) -> dict:
        """The workspace as its file keeps it."""
        return {
            "workspace_id": self.workspace_id,
            "name": self.name,
            "admin_token": self.admin_token,
            "tokens": {t.name: t.to_json() for t in self.tokens.values()},
        }


def new_static_token() -> str:
    """A new random static token."""
    # Static tokens begin with "p." so that, as on Tinybird, anything else is read as a JWT.
    return "p." + secrets.token_urlsafe(36)


def load_workspace(data_dir: Path | str) -> Workspace | None:
    """The workspace kept in `data_dir`, or None if there is none yet."""
    path = Path(data_dir) / WORKSPACE_FILE
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    tokens = {
        name: StaticToken(name=name, token=t["token"], permission=t.get("permission", ""),
                          resource=t.get("resource", ""), scopes=list(t.get("scopes", [])),
                          description=t.get("description", ""),
                          origin=t.get("origin", ORIGIN_CUSTOM),
                          token_id=t.get("id") or str(uuid.uuid4()))
        for name, t in raw.get("tokens", {}).items()
    }
    return Workspace(workspace_id=raw["workspace_id"], admin_token=raw["admin_token"],
                     name=raw.get("name", "tinybird_local"), tokens=tokens)


def save_workspace(data_dir: Path | str, workspace: Workspace) -> None:
    """Write the workspace file, readable by its owner only, replacing it in one step."""
    _write_private(Path(data_dir) / WORKSPACE_FILE, workspace.to_json())


def _write_private(path: Path, body: dict) -> None:
    """Write JSON readable by its owner only, replacing the file in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh, indent=2)
    os.replace(tmp, path)


@dataclass(frozen=True)
class LocalUser:
    """The one user of a Tinybird Local, as the Forward CLI's local mode expects it.

    Tinybird Local in Docker has a user who owns every workspace: its `user_token` and
    `admin_token` list, create and delete workspaces, and neither reads a workspace's
    data. They are kept beside the default workspace, as secret as its admin token.
    """

    user_id: str
    organization_id: str
    user_token: str
    admin_token: str

    def owns(self, token: str | None) -> bool:
        """True for the user's own tokens."""
        return token is not None and token in (self.user_token, self.admin_token)


def ensure_local_user(data_dir: Path | str) -> LocalUser:
    """The user kept in `data_dir`, made on the first start and never changed after."""
    path = Path(data_dir) / USER_FILE
    if path.exists():
        return LocalUser(**json.loads(path.read_text()))
    user = LocalUser(user_id=str(uuid.uuid4()), organization_id=str(uuid.uuid4()),
                     user_token=new_static_token(), admin_token=new_static_token())
    _write_private(path, asdict(user))
    return user


def ensure_workspace(data_dir: Path | str, project: Project | None = None) -> Workspace:
    """Load the workspace, creating it and any datafile token not seen before."""
    workspace = load_workspace(data_dir)
    changed = workspace is None
    if workspace is None:
        workspace = Workspace(workspace_id=str(uuid.uuid4()), admin_token=new_static_token())
    if project is not None:
        wanted = [(t, ds.name, "DATASOURCES", ORIGIN_DATASOURCE)
                  for ds in project.datasources.values() for t in ds.tokens]
        wanted += [(t, p.name, "PIPES", ORIGIN_PIPE)
                   for p in project.pipes.values() for t in p.tokens]
        for line, resource, kind, origin in wanted:
            scopes = [f"{kind}:{line.permission}:{resource}"]
            current = workspace.tokens.get(line.name)
            if (current and current.permission == line.permission
                    and current.resource == resource and current.scopes == scopes):
                continue
            token = current.token if current else new_static_token()
            token_id = current.token_id if current else str(uuid.uuid4())
            workspace.tokens[line.name] = StaticToken(
                line.name, token, line.permission, resource, scopes=scopes, origin=origin,
                token_id=token_id)
            changed = True
    if changed:
        save_workspace(data_dir, workspace)
    return workspace
