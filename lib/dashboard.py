"""One viewer's connection to the endpoint: its JWT, its client and its last good answer.

Lives in `st.session_state`, one per browser session, so each viewer has a JWT of their
own, minted once and re-minted only near expiry or after a 403.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lib.jwt_tokens import TokenSource
from lib.settings import Settings
from lib.tinybird_api import PipeClient, PipeResult, TinybirdError


@dataclass
class PollOutcome:
    result: PipeResult | None  # the newest good result (maybe from an earlier poll)
    error: TinybirdError | None  # what went wrong in this poll, if anything

    @property
    def stale_seconds(self) -> float | None:
        if self.error is None or self.result is None:
            return None
        return time.time() - self.result.fetched_at


@dataclass
class DashboardSession:
    host: str
    pipe: str
    tokens: TokenSource
    client: PipeClient
    last_good: PipeResult | None = None
    polls: int = field(default=0)

    @classmethod
    def create(cls, host: str, workspace_id: str, signing_token: str,
               settings: Settings) -> DashboardSession:
        tokens = TokenSource(signing_token, workspace_id, settings.pipe,
                             ttl_seconds=settings.jwt_ttl_seconds)
        return cls(host=host, pipe=settings.pipe, tokens=tokens,
                   client=PipeClient(host, tokens))

    def poll(self) -> PollOutcome:
        self.polls += 1
        try:
            self.last_good = self.client.fetch(self.pipe)
        except TinybirdError as exc:
            return PollOutcome(self.last_good, exc)
        return PollOutcome(self.last_good, None)
