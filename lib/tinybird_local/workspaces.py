"""Several workspaces in one Tinybird Local: the default one and those a user makes.

The Forward CLI's local mode makes a workspace per project folder (`tb build`) and per
test run, as Tinybird Local in Docker does. chDB lets a process open one data folder in
its whole life, so every workspace lives in that one folder. The default workspace (the
dashboard's) keeps its tables in the `default` database and its files at the top of the
data dir. Each other workspace has a database of its own (`ws_<id in hex>`), reached
through a connection of its own whose current database is that one, and its files
(identity, tokens, deployments, ids) in `data_dir/workspaces/<id>/`.

Each workspace is a full `LocalState`, so every route works in it as in the default one.
Its SQL guard refuses any database but its own, and its tokens are its own, so no
workspace reads another's data. A request goes to the workspace its token belongs to
(`state.state_of`): this registry gives the default state a map from every token of the
other workspaces (and from their ids, which their JWTs name) to their state, rebuilt
whenever their tokens change.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from pathlib import Path
from typing import Callable

from .datafiles import DatafileError
from .engine import EngineError
from .state import LocalState
from .workspace import (
    WORKSPACE_FILE,
    LocalUser,
    Workspace,
    ensure_local_user,
    load_workspace,
    new_static_token,
    save_workspace,
)

WORKSPACES_DIR = "workspaces"

log = logging.getLogger("tinybird_local")

# Opens the state of another workspace: (its folder, its database) -> its state.
Opener = Callable[[Path, str], LocalState]


def database_name(workspace_id: str) -> str:
    """The chDB database of a workspace other than the default one."""
    return "ws_" + uuid.UUID(workspace_id).hex


class NameTaken(ValueError):
    """A workspace with this name exists already."""


class Workspaces:
    """The default workspace's state and those of the others, by id."""

    def __init__(self, default: LocalState, data_dir: Path, opener: Opener):
        """Keep the default state; open nothing yet (see `open_saved`).

        Args:
            default: the default workspace's state.
            data_dir: the server's data dir.
            opener: opens another workspace's state from its folder and database.
        """
        self.default = default
        self.user: LocalUser = ensure_local_user(data_dir)
        self._folder = Path(data_dir) / WORKSPACES_DIR
        self._opener = opener
        self._others: dict[str, LocalState] = {}
        # Creating and deleting are rare and slow (tables, files): one at a time.
        self._lock = threading.RLock()

    def open_saved(self) -> None:
        """Open every workspace made before this start.

        One that cannot open (a datafile this version refuses, say) is left closed with a
        warning, so the default workspace, the dashboard's, still starts.
        """
        with self._lock:
            for path in sorted(self._folder.glob(f"*/{WORKSPACE_FILE}")):
                workspace = load_workspace(path.parent)
                if workspace is None:
                    continue
                try:
                    state = self._opener(path.parent, database_name(workspace.workspace_id))
                except (DatafileError, EngineError) as exc:
                    log.warning("workspace %s (%s) not opened: %s", workspace.name,
                                workspace.workspace_id, exc)
                    continue
                self._add(state)
            self._reindex()

    def all(self) -> list[LocalState]:
        """Every workspace's state: the default one first, then the others by name."""
        others = sorted(self._others.values(), key=lambda s: s.workspace.name)
        return [self.default, *others]

    def by_id(self, workspace_id: str) -> LocalState | None:
        """The state of the workspace with this id, the default one included."""
        if workspace_id == self.default.workspace.workspace_id:
            return self.default
        return self._others.get(workspace_id)

    def create(self, name: str) -> LocalState:
        """Make an empty workspace named `name`, with its own id, admin token and database.

        Raises:
            NameTaken: a workspace has this name already.
        """
        with self._lock:
            if any(state.workspace.name == name for state in self.all()):
                raise NameTaken(name)
            workspace = Workspace(workspace_id=str(uuid.uuid4()),
                                  admin_token=new_static_token(), name=name)
            folder = self._folder / workspace.workspace_id
            save_workspace(folder, workspace)
            try:
                state = self._opener(folder, database_name(workspace.workspace_id))
            except Exception:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            self._add(state)
            self._reindex()
            return state

    def delete(self, workspace_id: str) -> Workspace:
        """Remove a workspace other than the default one: its tokens, tables and files.

        Raises:
            KeyError: no such workspace, or the default one.
        """
        with self._lock:
            state = self._others.pop(workspace_id)
            self._reindex()
        # Its tokens reach nobody from here on; then its engine closes and its data goes.
        self._discard(state)
        shutil.rmtree(state.engine.data_dir, ignore_errors=True)
        return state.workspace

    def start_over(self, state: LocalState) -> LocalState:
        """Empty a workspace other than the default one; it keeps its id, name and tokens.

        Raises:
            KeyError: `state` is not one of the other workspaces' (any more).
        """
        with self._lock:
            workspace_id = state.workspace.workspace_id
            if self._others.get(workspace_id) is not state:
                raise KeyError(workspace_id)
            del self._others[workspace_id]
            self._reindex()
            self._discard(state)
            folder = state.engine.data_dir
            for path in folder.iterdir():
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.name != WORKSPACE_FILE:
                    path.unlink()
            fresh = self._opener(folder, database_name(workspace_id))
            self._add(fresh)
            self._reindex()
            return fresh

    def _discard(self, state: LocalState) -> None:
        """Close a workspace's state and drop its databases."""
        database = state.engine.database or ""
        state.close()
        for name in (database, f"{database}_service"):
            self.default.engine.drop_database(name)

    def close(self) -> None:
        """Close the other workspaces' states (before the default one closes)."""
        with self._lock:
            others, self._others = list(self._others.values()), {}
            self._reindex()
        for state in others:
            state.close()

    def _add(self, state: LocalState) -> None:
        state.on_tokens_changed = self._reindex
        self._others[state.workspace.workspace_id] = state

    def _reindex(self) -> None:
        """Give the default state a fresh map from the other workspaces' tokens and ids."""
        with self._lock:
            owners: dict[str, LocalState] = {}
            for workspace_id, state in self._others.items():
                owners[workspace_id] = state  # for its JWTs' `workspace_id` claim
                owners[state.workspace.admin_token] = state
                for token in list(state.workspace.tokens.values()):
                    owners[token.token] = state
            self.default.others = owners
