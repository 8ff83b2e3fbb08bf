"""`python -m lib.bookings`: stream generated bookings to an Events API, paced and bounded.

It does for this project what Mockingbird does in the guide. Point it at Tinybird Local
or a Tinybird region: bookings arrive at `--rate` per second until `--duration` or
`--count` is reached, then it prints a one-line summary. It lives apart from
`distributions.py`, which Tinybird Local imports, so the server never loads argparse,
settings or a progress bar.

Every failure is a readable line on stderr and a non-zero exit, never a traceback.
Ctrl-C stops the stream and still prints the summary. The token is never printed.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from typing import Callable, TextIO

from lib.bookings.generator import BookingGenerator
from lib.client.errors import TinybirdError
from lib.client.events import EventsClient, SendResult
from lib.client.settings import SettingsError, load_settings
from lib.command_line import EXIT_ERROR, EXIT_INTERRUPTED, UsageError, report

DEFAULT_DURATION = 60.0
DEFAULT_RATE = 50.0
DEFAULT_BATCH = 100
LATE_GRACE_SECONDS = 1.0  # how far behind schedule a --duration run may still send
MAX_BATCH = 10_000  # keeps a request well under the Events API's 10 MB limit

@dataclass
class Tally:
    """What happened so far; `unknown` counts events whose batch may or may not be written."""

    datasource: str
    sent: int = 0
    accepted: int = 0
    quarantined: int = 0
    unknown: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    error: TinybirdError | None = None

    def add(self, size: int, result: SendResult) -> None:
        """Count one delivered batch of `size` events."""
        self.sent += size
        self.accepted += result.successful_rows
        self.quarantined += result.quarantined_rows

    def summary(self) -> str:
        """The one-line report printed at the end."""
        rate = self.accepted / self.seconds if self.seconds > 0 else 0.0
        line = (f"sent {self.sent} bookings to {self.datasource} in {self.seconds:.2f}s: "
                f"{self.accepted} accepted, {self.quarantined} quarantined "
                f"({rate:,.0f} rows/s)")
        if self.unknown:
            line += f", {self.unknown} unconfirmed (may or may not have been written)"
        if self.interrupted:
            line = "interrupted: " + line
        return line


def stream(send: Callable[[list[dict]], SendResult], generator: BookingGenerator, tally: Tally,
           *, rate: float, batch: int, count: int | None = None, duration: float | None = None,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep,
           progress: Callable[[Tally, float], None] | None = None) -> Tally:
    """Send bookings until `count` are sent or `duration` seconds pass.

    The pace follows a schedule rather than a sleep between requests. A request of n
    events leaves when its last event is due (`start + (sent + n) / rate`). A request
    holds at most one second's worth of events, and at most `batch`. So the chart moves
    every second, time lost to a slow request is made up, and `rate * elapsed` events
    have been sent at any moment. A `duration` run sends `rate * duration` events and
    lasts `duration` seconds; if the server cannot keep up, the run ends at the deadline.

    Args:
        send: delivers one batch and returns the server's counts.
        generator: where the bookings come from.
        tally: the counts to add to; returned.
        rate: events per second; 0 sends as fast as the server takes them.
        batch: the most events in one request.
        count: stop after this many events; None for no count.
        duration: stop after this many seconds; None for no deadline.
        clock: monotonic time in seconds.
        sleep: how to wait (tests pass one that does not).
        progress: called as `progress(tally, elapsed)` after each batch.

    Returns:
        `tally`. The stream stops at the first `TinybirdError` (kept in `tally.error`)
        or at Ctrl-C (`tally.interrupted`); the counts so far are kept.
    """
    start = clock()
    deadline = None if duration is None else start + duration
    cap: float  # how many to send in all; infinite for an unbounded run
    if rate > 0:
        chunk = max(1, min(batch, math.ceil(rate)))
        cap = count if count is not None else math.floor(rate * (duration or 0) + 1e-9)
        late = LATE_GRACE_SECONDS
    else:
        chunk, cap, late = batch, (math.inf if count is None else count), 0.0
    in_flight = 0
    try:
        while tally.sent < cap:
            size = int(min(chunk, cap - tally.sent))
            if rate > 0:
                wait = start + (tally.sent + size) / rate - clock()
                if wait > 0:
                    sleep(wait)
            if deadline is not None and clock() > deadline + late:
                break
            events = list(generator.bookings(size))
            in_flight = size
            result = send(events)
            in_flight = 0
            tally.add(size, result)
            if progress:
                progress(tally, clock() - start)
        if deadline is not None:
            wait = deadline - clock()
            if wait > 0:  # a duration run lasts its duration, so rows/s is the real rate
                sleep(wait)
    except TinybirdError as exc:
        tally.error = exc
        if exc.maybe_written:
            tally.unknown += in_flight
    except KeyboardInterrupt:
        tally.interrupted = True
        tally.unknown += in_flight
    tally.seconds = clock() - start
    return tally


class ProgressBar:
    """One self-rewriting line on a terminal: `[####....] 1200/3000 12s 50/s`."""

    WIDTH = 30

    def __init__(self, out: TextIO, total: int | None, duration: float | None):
        """Show nothing until the first update.

        Args:
            out: the terminal to write to.
            total: the events to send, for a `--count` run; else None.
            duration: the run's seconds, for a `--duration` run; else None.
        """
        self.out, self.total, self.duration = out, total, duration
        self._last = 0.0
        self._shown = False

    def update(self, tally: Tally, elapsed: float, force: bool = False) -> None:
        """Redraw the line, at most ten times a second.

        Args:
            tally: the counts so far.
            elapsed: seconds since the stream started.
            force: redraw even if the last redraw was very recent.
        """
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        if self.total:
            fraction = tally.sent / self.total
            where = f"{tally.sent}/{self.total}"
        else:
            fraction = elapsed / self.duration if self.duration else 0.0
            where = f"{tally.sent} sent, {elapsed:.0f}/{self.duration:.0f}s"
        filled = round(self.WIDTH * min(1.0, fraction))
        rate = tally.accepted / elapsed if elapsed > 0 else 0.0
        self.out.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {where} "
                       f"{rate:,.0f}/s\033[K")
        self.out.flush()
        self._shown = True

    def note(self, text: str) -> None:
        """A line of its own, above the bar."""
        self.clear()
        print(text, file=self.out, flush=True)

    def clear(self) -> None:
        """Erase the bar, if it is on screen."""
        if self._shown:
            self.out.write("\r\033[K")
            self.out.flush()
            self._shown = False


def _positive(kind: type) -> Callable[[str], float]:
    """An argparse type: a finite `kind` of zero or more."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text} must be zero or more")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lib.bookings",
        description="Send realistic flight bookings (Mockingbird's 'Flight Bookings' preset) to "
                    "a Tinybird Events API, paced, until --duration or --count is reached.",
        epilog="Host and token default to TINYBIRD_HOST and TINYBIRD_SIGNING_TOKEN, read as the "
               "dashboard reads them (environment, then .env.local, then .env). For Tinybird "
               "Local, `python -m lib.tinybird_local info` prints its host and admin token.")
    parser.add_argument("--host", help="API host, e.g. https://api.tinybird.co or "
                                       "http://127.0.0.1:7181")
    parser.add_argument("--token", help="a token with APPEND on the datasource (an admin "
                                        "token works)")
    parser.add_argument("--datasource", default="events", help="target (default: events)")
    parser.add_argument("--rate", type=_positive(float), default=DEFAULT_RATE,
                        help=f"events per second (default {DEFAULT_RATE:g}; 0: as fast as the "
                             "server takes them)")
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument("--duration", type=_positive(float),
                       help=f"seconds to run (default {DEFAULT_DURATION:g})")
    bound.add_argument("--count", type=_positive(int), help="events to send, then stop")
    parser.add_argument("--batch", type=_positive(int), default=DEFAULT_BATCH,
                        help=f"most events per request (default {DEFAULT_BATCH}, "
                             f"at most {MAX_BATCH})")
    parser.add_argument("--seed", type=int, help="make the bookings reproducible")
    parser.add_argument("--retries", type=_positive(int), default=5,
                        help="times to retry a batch when the host cannot be reached or asks "
                             "to slow down (default 5, backing off from 0.5s)")
    return parser


def resolve_target(args: argparse.Namespace) -> tuple[str, str]:
    """--host/--token, else TINYBIRD_HOST and TINYBIRD_SIGNING_TOKEN; UsageError if missing."""
    host, token = args.host, args.token
    if not (host and token):
        try:
            settings = load_settings()
        except SettingsError as exc:
            raise UsageError(f"{exc} (or pass --host and --token)") from None
        if host and settings.host and host.rstrip("/") != settings.host:
            # The configured token belongs to the configured host: never send it elsewhere.
            raise UsageError(f"--token needed for --host {host} (TINYBIRD_SIGNING_TOKEN is for "
                           f"{settings.host})")
        host = host or settings.host
        token = token or settings.signing_token
    if not host or not token:
        missing = " and ".join(n for n, v in (("--host", host), ("--token", token)) if not v)
        raise UsageError(f"{missing} needed: pass them, or set TINYBIRD_HOST and "
                       "TINYBIRD_SIGNING_TOKEN (environment or .env.local). For Tinybird Local, "
                       "`python -m lib.tinybird_local info` prints its host and admin token")
    if not host.startswith(("http://", "https://")):
        raise UsageError(f"--host {host!r} is not an http(s) URL, e.g. https://api.tinybird.co")
    return host.rstrip("/"), token


def main(argv: list[str] | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments; None means `sys.argv[1:]`.
        stdout: where the summary goes; None means `sys.stdout`.
        stderr: where errors and the progress bar go; None means `sys.stderr`.

    Returns:
        The exit status: 0, `EXIT_ERROR`, or `EXIT_INTERRUPTED`.
    """
    try:
        return _main(argv, stdout or sys.stdout, stderr or sys.stderr)
    except KeyboardInterrupt:  # before the stream started, or while printing the summary
        return EXIT_INTERRUPTED


def _main(argv: list[str] | None, stdout: TextIO, stderr: TextIO) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not 1 <= args.batch <= MAX_BATCH:
            raise UsageError(f"--batch must be 1..{MAX_BATCH}")
        if args.duration is not None and args.duration <= 0:
            raise UsageError("--duration must be more than 0 seconds")
        host, token = resolve_target(args)
    except UsageError as exc:
        return report(exc, stderr)
    duration = args.duration if args.count is None else None
    if duration is None and args.count is None:
        duration = DEFAULT_DURATION

    bar = ProgressBar(stderr, args.count, duration) if stderr.isatty() else None

    def on_retry(error: TinybirdError, delay: float, attempt: int) -> None:
        message = f"{error}; retrying in {delay:.1f}s (attempt {attempt} of {args.retries + 1})"
        if bar:
            bar.note(message)
        else:
            print(message, file=stderr, flush=True)

    tally = Tally(args.datasource)
    with EventsClient(host, token, max_attempts=args.retries + 1, on_retry=on_retry) as client:
        stream(lambda events: client.send(args.datasource, events, wait=True),
               BookingGenerator(args.seed), tally, rate=args.rate, batch=args.batch,
               count=args.count, duration=duration, progress=bar.update if bar else None)
    if bar:
        bar.clear()
    if tally.error is not None:
        report(tally.error, stderr)
    print(tally.summary(), file=stdout, flush=True)
    if tally.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_ERROR if tally.error is not None or tally.unknown else 0


if __name__ == "__main__":
    sys.exit(main())
