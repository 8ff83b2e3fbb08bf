"""The Events API: NDJSON (or gzip) in, good rows written, bad rows quarantined.

Bodies are bounded before and after decompression (413), so neither a large upload nor
a gzip bomb can exhaust memory. The local-only `/v0/local/seed` lives here too: it is
the bulk way in.
"""

from __future__ import annotations

import time
import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .auth import raise_for_rate
from .batch_writes import BatchWriter
from .batches import checked_body
from .errors import AUTH_DOCS, EVENTS_DOCS, APIError, BadRequest, Forbidden, PayloadTooLarge
from .gzip_body import read_gzip
from .seeding import SeedError, seed_bookings
from .state import LocalState, grant_for, json_response, require_admin, state_of


async def _bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request Entity Too Large: the body is over {limit} bytes",
                              EVENTS_DOCS)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request Entity Too Large: the body is over {limit} bytes",
                                  EVENTS_DOCS)
        chunks.append(chunk)
    return b"".join(chunks)


async def events(request: Request) -> Response:
    state = state_of(request)
    grant = grant_for(request, state)
    name = request.query_params.get("name")
    if not name:
        raise BadRequest("The 'name' parameter with the target Data Source is required",
                         EVENTS_DOCS)
    ds = state.project.datasources.get(name)
    if ds is None:
        raise BadRequest(f"Data Source '{name[:100]}' not found", EVENTS_DOCS)
    if not grant.can_append(ds.name):
        raise Forbidden("The token you have provided doesn't have access to this "
                        f"resource: it lacks APPEND on Data Source '{ds.name}'", AUTH_DOCS)
    decision = state.limiter.check(f"events_{state.workspace.workspace_id}_{ds.name}",
                                   state.limits.events_rps)
    raise_for_rate(decision)
    limit = state.limits.max_events_bytes
    started = time.perf_counter()
    try:
        raw = await _bounded_body(request, limit)
        if (request.headers.get("content-encoding", "").lower() == "gzip"
                or raw[:2] == b"\x1f\x8b"):
            raw = await run_in_threadpool(read_gzip, raw, limit)
        successful, quarantined = await run_in_threadpool(_ingest, state, ds.name, raw)
    except APIError as exc:
        state.ops_log.record("append-hfi", ds.name, error=exc.message,
                             elapsed=time.perf_counter() - started,
                             request_id=getattr(request.state, "request_id", ""))
        raise
    # The Events API's appends, logged as Tinybird logs them ("append-hfi").
    state.ops_log.record("append-hfi", ds.name, rows=successful, quarantined=quarantined,
                         elapsed=time.perf_counter() - started,
                         request_id=getattr(request.state, "request_id", ""))
    wait = request.query_params.get("wait", "false").lower() == "true"
    body = {"successful_rows": successful, "quarantined_rows": quarantined}
    return json_response(body, status=200 if wait else 202, headers=decision.headers())


def _ingest(state: LocalState, name: str, raw: bytes) -> tuple[int, int]:
    """Check and write a body; (successful rows, quarantined rows).

    Good rows go to the engine in as few inserts as the body allows, and the engine
    reads them while the rest of the body is checked (`BatchWriter`).
    """
    checker = state.checkers[name]
    datasource = state.project.datasources[name]
    writer = BatchWriter(state.engine, datasource, str(uuid.uuid4()))
    result = writer.write(checked_body(checker, raw, sift=writer.sift))
    return result.successful_rows, result.quarantined_rows


async def seed(request: Request) -> Response:
    """Tinybird Local only: bulk-load generated bookings (`python -m lib.tinybird_local seed`)."""
    state = state_of(request)
    require_admin(grant_for(request, state))
    name = request.query_params.get("name", "events")
    ds = state.project.datasources.get(name)
    if ds is None:
        raise BadRequest(f"Data Source '{name[:100]}' not found", EVENTS_DOCS)
    rows_text = request.query_params.get("rows", "")
    if not rows_text.isdigit():
        raise BadRequest("The 'rows' parameter must be a whole number", EVENTS_DOCS)
    seed_text = request.query_params.get("seed")
    if seed_text is not None and not seed_text.isdigit():
        raise BadRequest("The 'seed' parameter must be a whole number", EVENTS_DOCS)
    try:
        inserted = await run_in_threadpool(
            seed_bookings, state.engine, ds, int(rows_text),
            seed=int(seed_text) if seed_text is not None else None)
    except SeedError as exc:
        raise BadRequest(str(exc), EVENTS_DOCS) from None
    return json_response({"successful_rows": inserted, "quarantined_rows": 0})
