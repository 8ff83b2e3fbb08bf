"""Ids and dates of the workspace's data sources and pipes, kept in the data dir.

Tinybird's listings give every resource an `id`, a `created_at` and an `updated_at`, and
its CLIs read all three (`tb datasource ls` cuts the microseconds off the dates). Ids
must stay the same across restarts, because JWT scopes and clients may name a resource
by id.

- A pipe's id is `Workspace.pipe_id`, made from the saved workspace id and the pipe's
  name, so it does not depend on this file.
- A data source gets a random `t_<32 hex>` the first time it is seen.

`created_at` is when the resource was first seen. `updated_at` changes when the
datafile's text changes between starts, or when the API changes the resource (replace,
truncate).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from .datafiles import Datasource, Pipe, Project
from .workspace import Workspace

CATALOG_FILE = "resources.json"


def now_text() -> str:
    """Tinybird's date format in listings: `2025-12-17 13:18:09.799040` (UTC)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _digest(path: str) -> str:
    """The SHA-256 of a datafile's bytes; empty when it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


@dataclass
class ResourceInfo:
    """One resource's id and dates, and the digest of its datafile when last seen."""

    id: str
    created_at: str
    updated_at: str
    digest: str = ""


class Catalog:
    """The ids and dates of every resource, saved to `resources.json` on each change."""

    def __init__(self, path: Path, entries: dict[str, ResourceInfo]):
        self._path = path
        self._entries = entries
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: Path | str, workspace: Workspace, project: Project) -> Catalog:
        """Read the catalog and note every resource of the project.

        Args:
            data_dir: the folder that holds `resources.json`.
            workspace: the workspace, whose id makes the pipes' ids.
            project: the datafiles served.

        Returns:
            The catalog, saved with any new or changed resource.
        """
        path = Path(data_dir) / CATALOG_FILE
        entries: dict[str, ResourceInfo] = {}
        if path.exists():
            raw = json.loads(path.read_text())
            entries = {key: ResourceInfo(**value) for key, value in raw.items()}
        catalog = cls(path, entries)
        for ds in project.datasources.values():
            catalog.see_datasource(ds, save=False)
        for pipe in project.pipes.values():
            catalog.see_pipe(pipe, workspace, save=False)
        catalog._save()
        return catalog

    def see_datasource(self, ds: Datasource, save: bool = True) -> ResourceInfo:
        """The data source's entry, made or updated from its datafile."""
        return self._see(f"datasource:{ds.name}", lambda: "t_" + uuid.uuid4().hex,
                         _digest(ds.path), save)

    def see_pipe(self, pipe: Pipe, workspace: Workspace, save: bool = True) -> ResourceInfo:
        """The pipe's entry, made or updated from its datafile.

        Args:
            pipe: the pipe.
            workspace: the workspace, whose id makes the pipe's id.
            save: write the file if the entry changed.

        Returns:
            The pipe's entry.
        """
        return self._see(f"pipe:{pipe.name}", lambda: workspace.pipe_id(pipe.name),
                         _digest(pipe.path), save)

    def _see(self, key: str, new_id: Callable[[], str], digest: str, save: bool) -> ResourceInfo:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                stamp = now_text()
                entry = ResourceInfo(id=new_id(), created_at=stamp, updated_at=stamp,
                                     digest=digest)
                self._entries[key] = entry
            elif entry.digest != digest:
                entry.digest, entry.updated_at = digest, now_text()
            else:
                return entry
        if save:
            self._save()
        return entry

    def datasource(self, name: str) -> ResourceInfo:
        """The entry of a data source already seen."""
        return self._entries[f"datasource:{name}"]

    def pipe(self, name: str) -> ResourceInfo:
        """The entry of a pipe already seen."""
        return self._entries[f"pipe:{name}"]

    def datasource_name(self, ident: str) -> str | None:
        """The data source whose id is `ident`, if any."""
        for key, entry in self._entries.items():
            if entry.id == ident and key.startswith("datasource:"):
                return key.split(":", 1)[1]
        return None

    def touch_datasource(self, name: str) -> None:
        """Set the data source's `updated_at` to now, after the API changed it."""
        with self._lock:
            self._entries[f"datasource:{name}"].updated_at = now_text()
        self._save()

    def _save(self) -> None:
        with self._lock:
            text = json.dumps({key: asdict(entry) for key, entry in self._entries.items()},
                              indent=2)
            tmp = self._path.with_suffix(".tmp")
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text)
            os.replace(tmp, self._path)
