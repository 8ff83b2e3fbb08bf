"""The Data Sources API: listings, one data source's info, create, append, replace, truncate.

What Tinybird's clients send (read from their sources and `tb --debug`):
- classic `tb datasource append NAME FILE` (tinybird-cli 6.x): `POST /v0/datasources?name=
  &mode=append&format=csv|ndjson&debug=blocks_block_log&token=...&cli_version=...`, the
  file in a multipart field named `csv` or `ndjson`; then `GET /v0/datasources/NAME` for
  `statistics.row_count`. It reads `datasource.name`, `error`, `errors` and `blocks`.
- verdin: the same URL with the token in `Authorization: Bearer`, the data as the raw
  body (`Content-Type: text/html` for CSV, `application/x-ndjson`), `dialect_delimiter`.
- tinybird-sdk: a multipart field named `csv` whatever the format, `format` from the
  file's extension.
- the Forward CLI: the raw body of `POST /v1/datasources/NAME/append|replace` (api_jobs.py).
How a file becomes rows is `imports`' job: CSV, NDJSON or Parquet, each row checked as the
Events API checks it. Files are read whole, within `MAX_UPLOAD_BYTES`; importing from a
`url` is refused (Tinybird Local fetches nothing from the network).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from .auth import Grant
from .datafile_sql import create_table_sql
from .datafiles import IDENTIFIER, DatafileError, Datasource, parse_datasource
from .engine import EngineError
from .errors import (
    AUTH_DOCS,
    DOCS,
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    no_access,
)
from .gzip_body import read_gzip
from .imports import BadFile, Imported, import_file, parquet_as_ndjson
from .schema import create_datasource
from .sql_guard import SQLRefused
from .state import LocalState, grant_for, json_response, require_admin, state_of

DATASOURCES_DOCS = f"{DOCS}/api-reference/datasource-api"
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
FORMATS = ("csv", "ndjson", "parquet")
# Where data sources created through the API keep their datafile, in the data dir.
CREATED_DIR = "datasources"


# -- describing --------------------------------------------------------------------------
def datasource_json(state: LocalState, ds: Datasource) -> dict[str, Any]:
    """A data source as Tinybird's `GET /v0/datasources/NAME` describes it."""
    info = state.catalog.datasource(ds.name)
    columns = [{"name": c.name, "normalized_name": c.name, "type": c.type,
                "jsonpath": c.json_path, "default_value": c.default, "codec": None,
                "nullable": c.type.startswith("Nullable("), "auto": False}
               for c in ds.columns]
    sql_schema = ", ".join(
        f"`{c.name}` {c.type}" + (f" DEFAULT {c.default}" if c.default is not None else "")
        + (f" `json:{c.json_path}`" if c.json_path else "") for c in ds.columns)
    engine_full = create_table_sql(ds).split(") ENGINE = ", 1)[1].replace("\n", " ")
    return {
        "id": info.id,
        "name": ds.name,
        "description": ds.description,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "type": "ndjson" if any(c.json_path for c in ds.columns) else "csv",
        "cluster": "tinybird_local",
        "version": 0,
        "project": None,
        "tags": {},
        "headers": {},
        "shared_with": [],
        "indexes": [],
        "replicated": False,
        "errors_discarded_at": None,
        "engine": {"engine": ds.engine, "engine_full": engine_full,
                   "sorting_key": ds.sorting_key, "partition_key": ds.partition_key,
                   "ttl": ds.ttl},
        "schema": {"columns": columns, "sql_schema": sql_schema},
        # Kept as before for readers of the first listing.
        "columns": [{"name": c.name, "type": c.type, "jsonpath": c.json_path,
                     "default_value": c.default} for c in ds.columns],
    }


def _with_statistics(state: LocalState, ds: Datasource) -> dict[str, Any]:
    body = datasource_json(state, ds)
    body["statistics"] = {"row_count": state.engine.row_count(ds.name),
                          "bytes": state.engine.total_bytes(ds.name)}
    return body


def _find(state: LocalState, name_or_id: str) -> Datasource:
    name = state.catalog.datasource_name(name_or_id) or name_or_id
    ds = state.project.datasources.get(name)
    if ds is None:
        raise NotFound(f"Data Source '{name_or_id[:100]}' not found", DATASOURCES_DOCS)
    return ds


async def list_datasources(request: Request) -> Response:
    """`GET /v0/datasources`: every data source, for the admin token."""
    state = state_of(request)
    require_admin(grant_for(request, state))
    out = []
    for ds in list(state.project.datasources.values()):
        out.append(await run_in_threadpool(_with_statistics, state, ds))
    return json_response({"datasources": out})


async def get_datasource(request: Request) -> Response:
    """`GET /v0/datasources/{name}` (name or id): the admin token or one that may append."""
    state = state_of(request)
    grant = grant_for(request, state)
    ds = _find(state, request.path_params["name"])
    if not (grant.is_admin or (grant.append_datasources is not None
                               and ds.name in grant.append_datasources)):
        raise no_access()
    return json_response(await run_in_threadpool(_with_statistics, state, ds))


async def truncate_datasource(request: Request) -> Response:
    """`POST /v0/datasources/{name}/truncate`: every row gone (the admin token)."""
    state = state_of(request)
    require_admin(grant_for(request, state))
    ds = _find(state, request.path_params["name"])
    started = time.perf_counter()
    await run_in_threadpool(state.engine.truncate, ds.name)
    state.catalog.touch_datasource(ds.name)
    state.ops_log.record("truncate", ds.name, elapsed=time.perf_counter() - started)
    return json_response({}, status=200)


# -- importing -------------------------------------------------------------------------
async def post_datasources(request: Request) -> Response:
    """`POST /v0/datasources`: mode=create (from `schema`), append or replace (a file)."""
    state = state_of(request)
    grant = grant_for(request, state)
    params, data, filename = await read_request(request)
    return json_response(await import_request(state, grant, params, data, filename))


async def read_request(request: Request) -> tuple[dict[str, str], bytes | None, str]:
    """The parameters (query, then form fields), the file and its name, from any of the
    ways clients send them: a multipart field, or the raw body."""
    params: dict[str, str] = dict(request.query_params)
    data: bytes | None = None
    filename = ""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        async with request.form(max_part_size=MAX_UPLOAD_BYTES) as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if data is None:
                        data = await _read_upload(value)
                        filename = value.filename or key
                        params.setdefault("format", _format_of(key, filename))
                else:
                    params.setdefault(key, value)
    else:
        body = await request.body()
        if len(body) > MAX_UPLOAD_BYTES:
            raise _too_large()
        if body:
            data = body
            if "ndjson" in content_type or "jsonl" in content_type:
                params.setdefault("format", "ndjson")
            elif "parquet" in content_type:
                params.setdefault("format", "parquet")
    return params, data, filename


async def import_request(state: LocalState, grant: Grant, params: dict[str, str],
                         data: bytes | None, filename: str) -> dict[str, Any]:
    """Create, append or replace as `params` say, after every check; the answer's body.

    Everything that can be refused is checked before anything is written: the
    parameters, the token, the file (a Parquet file is read whole first) and the
    replace condition. So a refused request changes nothing.

    Args:
        state: the server's state.
        grant: who asks.
        params: the request's parameters (`name`, `mode`, `format`, ...).
        data: the file, or None when the request sent none.
        filename: the file's name, when it came in a multipart field.

    Returns:
        The body Tinybird answers: the data source, or the import's counts and blocks.
    """
    mode, name, fmt, delimiter, condition = _import_params(params)
    ds = None
    if mode == "create":
        require_admin(grant)
    else:
        ds = _find(state, name)
        if not grant.can_append(ds.name):
            raise Forbidden("The token you have provided doesn't have access to this "
                            f"resource: it lacks APPEND on Data Source '{ds.name}'",
                            AUTH_DOCS)
        if data is None:
            raise BadRequest("No data to import: send a CSV, NDJSON or Parquet file in a "
                             "multipart field (csv, ndjson or parquet) or as the request "
                             "body", DATASOURCES_DOCS)
    if data is not None:
        data = await run_in_threadpool(_readable, state, data, filename, fmt)
        fmt = "csv" if fmt == "csv" else "ndjson"  # a Parquet file's rows are NDJSON now
    if ds is not None and condition:
        await run_in_threadpool(_check_condition, state, ds, condition)
    if ds is None:
        ds = await run_in_threadpool(_create, state, name, params)
        state.ops_log.record("create", ds.name)
        if data is None:
            return {"datasource": datasource_json(state, ds)}
    assert data is not None
    started = time.perf_counter()
    try:
        result = await run_in_threadpool(import_file, state, ds, data, fmt, delimiter, mode,
                                         condition)
    except EngineError as exc:
        state.ops_log.record(mode, ds.name, error=exc.message,
                             elapsed=time.perf_counter() - started)
        raise BadRequest(f"[Error] {exc.message}", DATASOURCES_DOCS) from None
    state.ops_log.record(mode, ds.name, rows=result.successful_rows,
                         quarantined=result.quarantined_rows, import_id=result.import_id,
                         elapsed=time.perf_counter() - started)
    return _import_body(state, ds, result, len(data))


def _import_params(params: dict[str, str]) -> tuple[str, str, str, str, str]:
    """The mode, name, format, CSV delimiter and replace condition, each checked."""
    mode = params.get("mode", "create").lower()
    name = params.get("name", "")
    if params.get("url"):
        raise BadRequest("Importing from a URL is not supported by Tinybird Local, which "
                         "fetches nothing from the network: send the file itself, in a "
                         "multipart field (csv, ndjson or parquet) or as the request body",
                         DATASOURCES_DOCS)
    if mode not in ("create", "append", "replace"):
        raise BadRequest(f"Invalid mode '{mode[:40]}': it must be create, append or "
                         "replace", DATASOURCES_DOCS)
    if not name:
        raise BadRequest("The 'name' parameter with the Data Source name is required",
                         DATASOURCES_DOCS)
    fmt = params.get("format", "csv").lower()
    if fmt not in FORMATS:
        raise BadRequest(f"Format '{fmt[:40]}' is not supported: it must be csv, ndjson "
                         "or parquet", DATASOURCES_DOCS)
    delimiter = params.get("dialect_delimiter") or ","
    if len(delimiter) != 1:
        raise BadRequest("dialect_delimiter must be one character", DATASOURCES_DOCS)
    condition = params.get("replace_condition", "").strip()
    if condition and mode != "replace":
        raise BadRequest("replace_condition applies to mode=replace only",
                         DATASOURCES_DOCS)
    return mode, name, fmt, delimiter, condition


def _readable(state: LocalState, data: bytes, filename: str, fmt: str) -> bytes:
    """The file as the row checks read it: gunzipped, and a Parquet file's rows as NDJSON."""
    if data[:2] == b"\x1f\x8b" or filename.endswith(".gz"):
        data = read_gzip(data, MAX_UPLOAD_BYTES)
    if fmt != "parquet":
        return data
    try:
        return parquet_as_ndjson(state.engine, data, str(uuid.uuid4()))
    except BadFile as exc:
        raise BadRequest(str(exc), DATASOURCES_DOCS) from None


def _check_condition(state: LocalState, ds: Datasource, condition: str) -> None:
    """A 400 naming `replace_condition` unless the guard lets it run over `ds` alone."""
    try:
        state.guard.check_condition(ds.name, condition)
    except SQLRefused as exc:
        raise BadRequest(f"Invalid replace_condition: {exc.message}", DATASOURCES_DOCS,
                         headers={"X-DB-Exception-Code": str(exc.code)} if exc.code
                         else None) from None


def _import_body(state: LocalState, ds: Datasource, result: Imported,
                 size: int) -> dict[str, Any]:
    """An import as Tinybird answers it: its ids, counts and one block."""
    return {
        "id": result.import_id,
        "import_id": result.import_id,
        "job_id": result.import_id,
        "status": "done",
        "datasource": datasource_json(state, ds),
        "quarantine_rows": result.quarantined_rows,
        "invalid_lines": result.invalid_lines,
        "error": False,
        "blocks": [{"block_id": result.import_id, "process_return": [{
            "lines": result.successful_rows, "parser": "tinybird_local",
            "quarantine": result.quarantined_rows, "invalid_lines": result.invalid_lines,
            "empty_lines": 0, "bytes": size}]}],
    }


async def _read_upload(upload: UploadFile) -> bytes:
    chunks, size = [], 0
    while chunk := await upload.read(1 << 20):
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"Request Entity Too Large: the file is over {MAX_UPLOAD_BYTES} bytes",
                           DATASOURCES_DOCS)


def _format_of(field: str, filename: str) -> str:
    """The format a multipart upload says it is: its field name, else its file name."""
    if field in FORMATS:
        return field if field != "csv" or not filename else _extension_format(filename, "csv")
    return _extension_format(filename, "csv")


def _extension_format(filename: str, default: str) -> str:
    name = filename.lower().removesuffix(".gz")
    if name.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    return default


def _create(state: LocalState, name: str, params: dict[str, str]) -> Datasource:
    """A new data source from `schema` (and `engine*` settings), kept as a datafile."""
    if not IDENTIFIER.match(name):
        raise BadRequest(f"Invalid Data Source name '{name[:100]}'", DATASOURCES_DOCS)
    if name in state.project.datasources or name in state.project.pipes:
        raise BadRequest(f"A Data Source or Pipe named '{name}' already exists",
                         DATASOURCES_DOCS)
    schema = params.get("schema", "").strip()
    if not schema:
        raise BadRequest("The 'schema' parameter is required to create a Data Source: "
                         "Tinybird Local does not guess one from a file",
                         DATASOURCES_DOCS)
    lines = ["SCHEMA >"] + ["    " + line.strip() for line in schema.splitlines() if line.strip()]
    settings = {"engine": "ENGINE", "engine_sorting_key": "ENGINE_SORTING_KEY",
                "engine_partition_key": "ENGINE_PARTITION_KEY", "engine_ttl": "ENGINE_TTL",
                "engine_settings": "ENGINE_SETTINGS"}
    for param, key in settings.items():
        value = params.get(param, "").strip()
        if value:
            if "\n" in value:
                raise BadRequest(f"'{param}' must be one line", DATASOURCES_DOCS)
            lines.append(f'{key} "{value}"')
    text = "\n".join(lines) + "\n"
    path = state.engine.data_dir / CREATED_DIR / f"{name}.datasource"
    try:
        ds = parse_datasource(path, text)
    except DatafileError as exc:
        raise BadRequest(f"Invalid schema: {exc.reason}", DATASOURCES_DOCS) from None
    try:
        create_datasource(state.engine, ds)
    except EngineError as exc:
        raise BadRequest(f"[Error] {exc.message}", DATASOURCES_DOCS) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    state.add_datasource(ds)
    return ds


def load_created(data_dir: Path) -> list[Datasource]:
    """The data sources created through the API, from their datafiles in the data dir."""
    folder = Path(data_dir) / CREATED_DIR
    return [parse_datasource(p) for p in sorted(folder.glob("*.datasource"))]
