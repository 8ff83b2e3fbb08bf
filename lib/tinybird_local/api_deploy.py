"""Deployments, as the Forward CLI makes them: `tb --cloud deploy [--check]`.

What the CLI (tinybird 5.0.3, `tb/modules/deployment_common.py`) sends and reads:

- `POST /v1/deploy[?check=true|auto_promote=true]`: a multipart body with one part per
  datafile. The field is `data_project://` and the file name is the file's path in the
  project (`pipes/x.pipe`). A `context://` part (the CLI's version) is ignored here.
  The answer is `{"result": "success"|"no_changes"|"failed", "deployment": {...}}`. A
  check that fails is a 400 with the same body and no top-level `error`; the CLI then
  prints each of `deployment.errors[]` as `filename` then `error`, and exits 1.
- `GET /v1/deployments/{id}`: `{"deployment": {...}}`. With `--auto`, the CLI polls it
  until `status` is `data_ready` and `live` is true. An old deployment reads `deleted`.
- `GET /v1/deployments`: `{"deployments": [...]}`, the live one first, then a staged
  one (made by `tb deployment create` without `--auto`).
- `POST /v1/build` (`tb --local build`) is a deployment promoted at once; the answer is
  `{"result": "success", "build": {...}}` or `{"result": "failed", "errors": [...]}`.
- `POST /v1/deployments/{id}/set-live` promotes a staged deployment
  (`tb deployment promote`); `DELETE /v1/deployments/{id}` discards it.

What a deployment does here:
1. The posted files are written to `data_dir/deployments/{id}/` and read with
   `load_project`. The guard checks every pipe's SQL, as at start-up. Data sources
   created through the Data Sources API are kept beside them.
2. A change that Tinybird Local cannot make safely is refused, naming the file and the
   reason: changing an existing data source's schema or engine settings (only its
   description and tokens may change), or removing a data source. Nothing changes
   until the whole project is valid.
3. Going live creates the new tables and views: new and changed materialized pipes are
   filled from the existing rows, and the views of removed ones are dropped. The files
   are copied to `data_dir/deployed/` and served from then on. On a restart,
   `server.served_project_dir` serves that folder instead of `--project-dir`.

Only the admin token may deploy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from .api_datasources import load_created
from .catalog import now_text
from .datafile_sql import pipe_sql
from .datafiles import DatafileError, Datasource, Project, load_project
from .engine import EngineError
from .errors import DOCS, BadRequest, NotFound
from .pipe_reads import PipeReadError, with_pipe_reads
from .schema import apply_project
from .sql_guard import SQLGuard, SQLRefused, check_pipes
from .sql_template import TemplateError
from .state import LocalState, grant_for, json_response, require_admin, state_of
from .workspace import ensure_workspace

DEPLOY_DOCS = f"{DOCS}/forward/test-and-deploy/deployments"
DEPLOYED_DIR = "deployed"  # the live project (server.served_project_dir reads it)
STAGED_DIR = "deployments"  # one folder per deployment's files
RECORDS_FILE = "deployments.json"
DATAFILE_SUFFIXES = {".datasource", ".pipe"}
PROJECT_FIELD = "data_project://"

# One deployment at a time: chDB opens one data dir per process, so one server per process.
_LOCK = threading.Lock()


class DeployRefused(Exception):
    """The project cannot be deployed: one error per file, as the CLI prints them."""

    def __init__(self, errors: list[dict[str, str]]):
        super().__init__("; ".join(e["error"] for e in errors))
        self.errors = errors


class ConflictsWithServed(DeployRefused):
    """The project is valid, but not as a change of what the workspace serves now.

    It changes an existing data source's schema, removes one, or redefines one made
    through the Data Sources API. A workspace that starts over would take it.
    """


@dataclass
class Deployment:
    """One deployment's record, as the CLI reads it."""

    id: str
    status: str  # data_ready, failed, or deleted once discarded or replaced; see `live`
    live: bool
    created_at: str
    updated_at: str
    new_datasource_names: list[str] = field(default_factory=list)
    changed_datasource_names: list[str] = field(default_factory=list)
    new_pipe_names: list[str] = field(default_factory=list)
    changed_pipe_names: list[str] = field(default_factory=list)
    deleted_pipe_names: list[str] = field(default_factory=list)

    def to_json(self, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
        """The record with every field the CLI expects, and `errors` if any."""
        body = asdict(self)
        body.update({
            "errors": errors or [], "feedback": [],
            "deleted_datasource_names": [], "new_data_connector_ids": [],
            "new_data_connector_names": [], "changed_data_connector_names": [],
            "deleted_data_connector_names": [], "disconnected_data_source_names": [],
            "token_changes": [],
        })
        return body


# -- records -------------------------------------------------------------------------------
def _load_records(data_dir: Path) -> list[Deployment]:
    """Every deployment recorded in the data dir, newest first."""
    path = data_dir / RECORDS_FILE
    if not path.exists():
        return []
    return [Deployment(**d) for d in json.loads(path.read_text())["deployments"]]


def _save_records(data_dir: Path, records: list[Deployment]) -> None:
    """Write the records, replacing the file in one step."""
    path = data_dir / RECORDS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"deployments": [asdict(d) for d in records]}, indent=2))
    os.replace(tmp, path)


def _next_id(records: list[Deployment]) -> str:
    """The next deployment id: one more than the highest so far."""
    return str(max((int(d.id) for d in records), default=0) + 1)


# -- validation ----------------------------------------------------------------------------
def _relative(name: str) -> str:
    """A posted file name as a safe relative path, or DeployRefused."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise DeployRefused([{"filename": name, "error": "invalid file path"}])
    return path.as_posix()


def _file_error(staged: Path, exc: DatafileError) -> dict[str, str]:
    """A datafile error as the CLI prints it: the file's path in the project, then why."""
    try:
        filename = Path(exc.path).relative_to(staged).as_posix()
    except ValueError:
        filename = Path(exc.path).name
    where = f"line {exc.line}: " if exc.line else ""
    return {"filename": filename, "error": f"{where}{exc.reason}"}


def _schema(ds: Datasource) -> tuple[Any, ...]:
    """What a deployment may not change in an existing data source."""
    return (ds.columns, ds.engine, ds.sorting_key, ds.partition_key, ds.ttl, ds.engine_settings)


def _datafile_text(path: str) -> str:
    return Path(path).read_text()


def _validate(state: LocalState, staged: Path) -> tuple[Project, Deployment]:
    """The project in `staged`, with the API-created data sources, checked against the one served.

    Returns:
        The project, and a summary of what it changes.

    Raises:
        DeployRefused: naming each file and reason.
    """
    try:
        project = load_project(staged)
    except DatafileError as exc:
        raise DeployRefused([_file_error(staged, exc)]) from None
    current = state.project
    created = {ds.name: ds for ds in load_created(state.engine.data_dir)}
    errors: list[dict[str, str]] = []

    def rel(path: str) -> str:
        return Path(path).relative_to(staged).as_posix()

    for name, ds in project.datasources.items():
        if name in created:
            errors.append({"filename": rel(ds.path), "error": (
                f"data source '{name}' was created through the Data Sources API; "
                "Tinybird Local does not let a deployment redefine it")})
        elif name in current.datasources and _schema(ds) != _schema(current.datasources[name]):
            errors.append({"filename": rel(ds.path), "error": (
                f"changing the schema or engine settings of the existing data source "
                f"'{name}' is not supported by Tinybird Local: only its DESCRIPTION and "
                "TOKEN lines may change")})
    for name in sorted(set(current.datasources) - set(project.datasources) - set(created)):
        errors.append({"filename": Path(current.datasources[name].path).name, "error": (
            f"the data source '{name}' is missing from the project: Tinybird Local does "
            "not delete data sources in a deployment")})
    for name, pipe in project.pipes.items():
        if name in created:
            errors.append({"filename": rel(pipe.path),
                           "error": f"name '{name}' is already taken by a data source"})
    if errors:
        raise ConflictsWithServed(errors)
    project.datasources.update(created)
    try:
        check_pipes(state.engine, project)
    except DatafileError as exc:
        raise DeployRefused([_file_error(staged, exc)]) from None
    errors = _unknown_tables(state, project, staged)
    if errors:
        raise DeployRefused(errors)

    def changed(old: Any, new: Any) -> bool:
        return _datafile_text(old.path) != _datafile_text(new.path)

    stamp = now_text()
    summary = Deployment(
        id="", status="data_ready", live=False, created_at=stamp, updated_at=stamp,
        new_datasource_names=sorted(set(project.datasources) - set(current.datasources)),
        changed_datasource_names=sorted(
            n for n in set(project.datasources) & set(current.datasources) - set(created)
            if changed(current.datasources[n], project.datasources[n])),
        new_pipe_names=sorted(set(project.pipes) - set(current.pipes)),
        changed_pipe_names=sorted(
            n for n in set(project.pipes) & set(current.pipes)
            if changed(current.pipes[n], project.pipes[n])),
        deleted_pipe_names=sorted(set(current.pipes) - set(project.pipes)),
    )
    return project, summary


def _unknown_tables(state: LocalState, project: Project, staged: Path) -> list[dict[str, str]]:
    """One error per pipe with a node that reads a table the project does not have, or
    pipes that read each other in a cycle.

    Such a table is a bare name that is neither a data source nor a CTE of the node's
    query. The guard lets it through, and the engine would fail at run time; a
    deployment is the moment to name the file instead. Nodes that need request
    parameters to render are left to run time, as at start-up.
    """
    guard = SQLGuard(state.engine, project)
    errors = []
    for pipe in project.pipes.values():
        for index, node in enumerate(pipe.nodes):
            try:
                sql = with_pipe_reads(guard.check, project, pipe, pipe_sql(pipe, {}, index), {})
                tables = guard.check(sql)
            except (TemplateError, SQLRefused):
                continue
            except PipeReadError as exc:
                errors.append({"filename": Path(pipe.path).relative_to(staged).as_posix(),
                               "error": f"line {node.line}: node '{node.name}': {exc}"})
                break
            for table in tables:
                if "." in table or table in project.datasources:
                    continue
                if re.search(rf"(?i)(`{re.escape(table)}`|\b{re.escape(table)})\s+AS\s*\(",
                             sql):
                    continue  # a CTE (an earlier node, or the node's own WITH)
                errors.append({"filename": Path(pipe.path).relative_to(staged).as_posix(),
                               "error": f"line {node.line}: node '{node.name}' reads "
                                        f"'{table}', which is not a data source of the "
                                        "project"})
                break
    return errors


def _no_changes(d: Deployment) -> bool:
    """True when the deployment adds, changes and removes nothing."""
    return not (d.new_datasource_names or d.changed_datasource_names or d.new_pipe_names
                or d.changed_pipe_names or d.deleted_pipe_names)


# -- going live ----------------------------------------------------------------------------
def _promote(state: LocalState, records: list[Deployment], deployment: Deployment) -> None:
    """Apply the staged project to the engine, keep its files, and serve it."""
    data_dir = state.engine.data_dir
    staged = data_dir / STAGED_DIR / deployment.id
    project, _ = _validate(state, staged)  # again: the served project may have changed since
    try:
        # This also drops the views of materialized pipes the project no longer has.
        apply_project(state.engine, project)
    except EngineError as exc:
        raise DeployRefused([{"error": f"[Error] {exc.message}"}]) from None
    deployed = data_dir / DEPLOYED_DIR
    fresh = data_dir / f"{DEPLOYED_DIR}.new"
    old = data_dir / f"{DEPLOYED_DIR}.old"
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(staged, fresh)
    if deployed.exists():
        deployed.rename(old)
    fresh.rename(deployed)
    shutil.rmtree(old, ignore_errors=True)
    served = load_project(deployed)
    for ds in load_created(data_dir):
        served.datasources.setdefault(ds.name, ds)
    workspace = ensure_workspace(data_dir, served)
    state.swap_project(served, workspace)
    stamp = now_text()
    for other in records:
        if other.live or (other.status != "deleted" and other.id != deployment.id):
            other.live, other.status, other.updated_at = False, "deleted", stamp
            shutil.rmtree(data_dir / STAGED_DIR / other.id, ignore_errors=True)
    deployment.live, deployment.updated_at = True, stamp


def _deploy(state: LocalState, files: list[tuple[str, str]], check: bool, auto: bool,
            raise_conflicts: bool = False) -> tuple[str, Deployment, list[dict[str, str]]]:
    """Stage, check and maybe promote the posted files; the result, the record, the errors.

    Args:
        state: the workspace deployed to.
        files: the posted datafiles, as (path in the project, text).
        check: only check, change nothing.
        auto: promote at once.
        raise_conflicts: raise `ConflictsWithServed` rather than answer "failed".

    Returns:
        "success", "no_changes" or "failed"; the deployment's record; the errors.
    """
    data_dir = state.engine.data_dir
    with _LOCK:
        records = _load_records(data_dir)
        ident = _next_id(records)
        staged = data_dir / STAGED_DIR / ident
        shutil.rmtree(staged, ignore_errors=True)
        stamp = now_text()
        try:
            written = set()
            for name, text in files:
                relative = _relative(name)
                if PurePosixPath(relative).suffix not in DATAFILE_SUFFIXES:
                    raise DeployRefused([{"filename": relative, "error": (
                        "only .datasource and .pipe files are supported by Tinybird Local")}])
                if relative in written:
                    raise DeployRefused([{"filename": relative, "error": "file sent twice"}])
                written.add(relative)
                target = staged / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            if not written:
                raise DeployRefused([{"error": "the deployment has no .datasource or .pipe file"}])
            _, deployment = _validate(state, staged)
        except DeployRefused as exc:
            shutil.rmtree(staged, ignore_errors=True)
            if raise_conflicts and isinstance(exc, ConflictsWithServed):
                raise
            return "failed", Deployment(id=ident, status="failed", live=False, created_at=stamp,
                                        updated_at=stamp), exc.errors
        deployment.id = ident
        if check or _no_changes(deployment):
            shutil.rmtree(staged, ignore_errors=True)
            return ("success" if not _no_changes(deployment) else "no_changes"), deployment, []
        records.insert(0, deployment)
        if auto:
            try:
                _promote(state, records, deployment)
            except DeployRefused as exc:
                records.remove(deployment)
                shutil.rmtree(staged, ignore_errors=True)
                deployment.status = "failed"
                return "failed", deployment, exc.errors
        _save_records(data_dir, records)
        return "success", deployment, []


async def _files(request: Request) -> list[tuple[str, str]]:
    """The posted datafiles as (path, text); a 400 for a file that is not UTF-8."""
    form = await request.form(max_files=10_000, max_fields=10_000)
    files: list[tuple[str, str]] = []
    try:
        for key, value in form.multi_items():
            if key != PROJECT_FIELD or not isinstance(value, UploadFile):
                continue  # context://, vendored files: not used here
            raw = await value.read()
            try:
                files.append((value.filename or "", raw.decode("utf-8")))
            except UnicodeDecodeError:
                raise BadRequest(f"{value.filename}: not UTF-8 text", DEPLOY_DOCS) from None
    finally:
        await form.close()
    return files


# -- handlers ------------------------------------------------------------------------------
async def deploy(request: Request) -> Response:
    """`POST /v1/deploy`: check, stage or deploy a project."""
    state = state_of(request)
    require_admin(grant_for(request, state))
    check = request.query_params.get("check", "").lower() == "true"
    auto = request.query_params.get("auto_promote", "").lower() == "true"
    files = await _files(request)
    result, deployment, errors = await run_in_threadpool(_deploy, state, files, check, auto)
    body = {"result": result, "deployment": deployment.to_json(errors)}
    return json_response(body, status=400 if result == "failed" else 200)


async def build(request: Request) -> Response:
    """`POST /v1/build`: `tb --local build`, a deployment that goes live at once.

    The CLI sends what `tb deploy` sends, and reads `build` (the names of what changed)
    or `errors`, as `deployment` and `deployment.errors` are read for a deployment.
    A workspace other than the default one starts over, empty, when the project cannot
    be a change of what it serves (a data source's schema changed, say), as Tinybird
    rebuilds: the CLI then appends the project's fixtures again. The default workspace,
    the dashboard's, never loses its rows that way: it refuses such a build.
    """
    state = state_of(request)
    require_admin(grant_for(request, state))
    files = await _files(request)
    registry = request.app.state.workspaces
    start_over = state is not registry.default
    try:
        result, deployment, errors = await run_in_threadpool(
            _deploy, state, files, False, True, start_over)
    except ConflictsWithServed:
        state = await run_in_threadpool(registry.start_over, state)
        result, deployment, errors = await run_in_threadpool(_deploy, state, files, False, True)
    if result == "failed":
        return json_response({"result": "failed", "errors": errors}, status=400)
    return json_response({"result": "success", "build": deployment.to_json()})


def _find(records: list[Deployment], ident: str) -> Deployment:
    """The deployment with id `ident`, or a 404."""
    found = next((d for d in records if d.id == ident), None)
    if found is None:
        raise NotFound(f"Deployment {ident} not found", DEPLOY_DOCS)
    return found


async def list_deployments(request: Request) -> Response:
    """`GET /v1/deployments`: the live and staged deployments."""
    state = state_of(request)
    require_admin(grant_for(request, state))
    records = _load_records(state.engine.data_dir)
    active = [d for d in records if d.status != "deleted"]
    # The live one first, as the CLI's promote reads [live, candidate].
    active.sort(key=lambda d: (not d.live, -int(d.id)))
    return json_response({"deployments": [d.to_json() for d in active]})


async def get_deployment(request: Request) -> Response:
    """`GET /v1/deployments/{id}`: one deployment."""
    state = state_of(request)
    require_admin(grant_for(request, state))
    found = _find(_load_records(state.engine.data_dir), request.path_params["ident"])
    return json_response({"deployment": found.to_json()})


def _set_live(state: LocalState, ident: str) -> Deployment:
    """Promote a staged deployment; a 400 if it cannot go live."""
    data_dir = state.engine.data_dir
    with _LOCK:
        records = _load_records(data_dir)
        found = _find(records, ident)
        if found.status != "data_ready":
            raise BadRequest(f"Deployment {ident} is {found.status}, not data_ready",
                             DEPLOY_DOCS)
        if not found.live:
            try:
                _promote(state, records, found)
            except DeployRefused as exc:
                raise BadRequest("; ".join(
                    f"{e['filename']}: {e['error']}" if e.get("filename") else e["error"]
                    for e in exc.errors), DEPLOY_DOCS) from None
            _save_records(data_dir, records)
        return found


async def set_live(request: Request) -> Response:
    """`POST /v1/deployments/{id}/set-live`: promote a staged deployment."""
    state = state_of(request)
    require_admin(grant_for(request, state))
    found = await run_in_threadpool(_set_live, state, request.path_params["ident"])
    return json_response({"result": "success", "deployment": found.to_json()})


def _discard(state: LocalState, ident: str) -> Deployment:
    """Mark a staged deployment deleted and remove its files; a 400 for the live one."""
    data_dir = state.engine.data_dir
    with _LOCK:
        records = _load_records(data_dir)
        found = _find(records, ident)
        if found.live:
            raise BadRequest(f"Deployment {ident} is live: promote another one first",
                             DEPLOY_DOCS)
        found.status, found.updated_at = "deleted", now_text()
        shutil.rmtree(data_dir / STAGED_DIR / ident, ignore_errors=True)
        _save_records(data_dir, records)
        return found


async def delete_deployment(request: Request) -> Response:
    """`DELETE /v1/deployments/{id}`: discard a staged deployment."""
    state = state_of(request)
    require_admin(grant_for(request, state))
    found = await run_in_threadpool(_discard, state, request.path_params["ident"])
    return json_response({"result": "success", "deployment": found.to_json()})
