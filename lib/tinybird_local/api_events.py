"""The Events API: NDJSON (or gzip) in, good rows written, bad rows quarantined.

Bodies are bounded before and after decompression (413), so neither a large upload nor
a gzip bomb can exhaust memory. The local-only `/v0/local/seed` lives here too: it is
the bulk way in.
"""

from __future__ import annotations

import time
import uuid
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .auth import raise_for_rate
from .engine import InsertResult
from .errors import AUTH_DOCS, EVENTS_DOCS, APIError
from .ingest import checked_body
from .seeding import SeedError, seed_bookings
from .state import LocalState, grant_for, json_response, require_admin, state_of


def _read_gzip(raw: bytes, limit: int) -> bytes:
    """The whole gzip stream, every member (RFC 1952: `cat a.gz b.gz` is one valid stream).

    The stream is read to its end before anything is written, so a truncated or corrupt
    body is a 400 and nothing of it is ingested; each member's CRC-32 and length are
    checked by zlib when the member ends. Output is bounded at `limit` + 1 bytes in
    total (413), so a gzip bomb never inflates past the limit. Zero bytes after the last
    member are padding (as gzip(1) reads them); anything else there is not gzip.
    """
    out = bytearray()
    data = raw
    while True:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            while not decompressor.eof:
                chunk = decompressor.decompress(data, limit + 1 - len(out))
                data = decompressor.unconsumed_tail
                out += chunk
                if len(out) > limit:
                    raise APIError(413, "Request Entity Too Large: the uncompressed body is "
                                        f"over {limit} bytes", EVENTS_DOCS)
                if not chunk and not data:
                    break  # no input left and no output pending: the member has no end
        except zlib.error as exc:
            raise APIError(400, f"The request body is not valid gzip: {exc}",
                           EVENTS_DOCS) from None
        if not decompressor.eof:
            raise APIError(400, "The request body is not valid gzip: the gzip body is "
                                "truncated", EVENTS_DOCS)
        data = decompressor.unused_data
        if not data.strip(b"\0"):
            return bytes(out)
        if data[:2] != b"\x1f\x8b":
            raise APIError(400, "The request body is not valid gzip: unexpected bytes after "
                                "the last gzip member", EVENTS_DOCS)


async def _bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"Request Entity Too Large: the body is over {limit} bytes",
                       EVENTS_DOCS)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"Request Entity Too Large: the body is over {limit} bytes",
                           EVENTS_DOCS)
        chunks.append(chunk)
    return b"".join(chunks)


async def events(request: Request) -> Response:
    state = state_of(request)
    grant = grant_for(request, state)
    name = request.query_params.get("name")
    if not name:
        raise APIError(400, "The 'name' parameter with the target Data Source is required",
                       EVENTS_DOCS)
    ds = state.project.datasources.get(name)
    if ds is None:
        raise APIError(400, f"Data Source '{name[:100]}' not found", EVENTS_DOCS)
    if not grant.can_append(ds.name):
        raise APIError(403, "The token you have provided doesn't have access to this "
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
            raw = await run_in_threadpool(_read_gzip, raw, limit)
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

    The body goes in pieces of about 1 MiB (`checked_body`), and the next piece is
    checked while the engine writes the previous batch: chDB releases the GIL while it
    writes, so the two overlap. At most one batch (a piece, encoded) waits for the writer,
    so about two batches are alive at once, whatever the body holds. Lines that cannot be
    events never become Python objects: the engine quarantines them from the piece's
    bytes (`checked_batches`).
    """
    checker = state.checkers[name]
    datasource = state.project.datasources[name]
    import_id = str(uuid.uuid4())
    sift = partial(state.engine.sift_lines, datasource, import_id)
    successful = quarantined = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="events-writer") as writer:
        pending: Future[InsertResult] | None = None
        for batch in checked_body(checker, raw, sift=sift):
            if pending is not None:
                result = pending.result()
                successful, quarantined = (successful + result.successful_rows,
                                           quarantined + result.quarantined_rows)
            pending = writer.submit(state.engine.insert_batch, datasource, batch, import_id)
        if pending is not None:
            result = pending.result()
            successful, quarantined = (successful + result.successful_rows,
                                       quarantined + result.quarantined_rows)
    return successful, quarantined


async def seed(request: Request) -> Response:
    """Tinybird Local only: bulk-load generated bookings (`python -m lib.tinybird_local seed`)."""
    state = state_of(request)
    require_admin(grant_for(request, state))
    name = request.query_params.get("name", "events")
    ds = state.project.datasources.get(name)
    if ds is None:
        raise APIError(400, f"Data Source '{name[:100]}' not found", EVENTS_DOCS)
    rows_text = request.query_params.get("rows", "")
    if not rows_text.isdigit():
        raise APIError(400, "The 'rows' parameter must be a whole number", EVENTS_DOCS)
    seed_text = request.query_params.get("seed")
    if seed_text is not None and not seed_text.isdigit():
        raise APIError(400, "The 'seed' parameter must be a whole number", EVENTS_DOCS)
    try:
        inserted = await run_in_threadpool(
            seed_bookings, state.engine, ds, int(rows_text),
            seed=int(seed_text) if seed_text is not None else None)
    except SeedError as exc:
        raise APIError(400, str(exc), EVENTS_DOCS) from None
    return json_response({"successful_rows": inserted, "quarantined_rows": 0})
