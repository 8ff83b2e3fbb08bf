"""A gzip request body read whole and bounded: the Events and Data Sources APIs share it.

Its errors link to the Events API's documentation, whichever API read the body.
"""

from __future__ import annotations

import zlib

from .errors import EVENTS_DOCS, BadRequest, PayloadTooLarge


def read_gzip(raw: bytes, limit: int) -> bytes:
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
                    raise PayloadTooLarge("Request Entity Too Large: the uncompressed body is "
                                          f"over {limit} bytes", EVENTS_DOCS)
                if not chunk and not data:
                    break  # no input left and no output pending: the member has no end
        except zlib.error as exc:
            raise BadRequest(f"The request body is not valid gzip: {exc}",
                             EVENTS_DOCS) from None
        if not decompressor.eof:
            raise BadRequest("The request body is not valid gzip: the gzip body is "
                             "truncated", EVENTS_DOCS)
        data = decompressor.unused_data
        if not data.strip(b"\0"):
            return bytes(out)
        if data[:2] != b"\x1f\x8b":
            raise BadRequest("The request body is not valid gzip: unexpected bytes after "
                             "the last gzip member", EVENTS_DOCS)
