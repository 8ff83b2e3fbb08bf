"""`python -m lib.tinybird_local serve|info|seed|jwt`: the command line for scripts and people.

Every failure is one readable line on stderr and a non-zero exit, never a traceback.
The exit codes follow the project's convention (`lib.command_line`): 1 for a failure,
2 for a usage mistake, 130 for Ctrl-C, so a script can tell them apart.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import requests

from lib.command_line import EXIT_INTERRUPTED, CLIError, UsageError, report

from .auth import issue_jwt
from .datafiles import DatafileError, load_project
from .engine import Engine, EngineError
from .limits import (
    DEFAULT_EVENTS_RPS,
    DEFAULT_MAX_EVENTS_BYTES,
    DEFAULT_QUERY_TIMEOUT,
    EVENTS_RPS_ENV,
    MAX_EVENTS_BYTES_ENV,
    QUERY_TIMEOUT_ENV,
    Limits,
)
from .schema import apply_project
from .seeding import SeedError, seed_bookings
from .server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    SERVER_FILE,
    LocalServer,
    configure_logging,
    served_project_dir,
)
from .sql_guard import check_pipes
from .stream import BookingStream
from .workspace import ensure_workspace, load_workspace

DEFAULT_PROJECT_DIR = "tinybird"
DEFAULT_DATA_DIR = ".tinybird-local"
# The data source `serve --stream` fills: the bookings of the guide's project.
STREAM_DATASOURCE = "events"


def _running_host(data_dir: Path) -> str | None:
    """The address of a server that is serving this data dir now, if one is."""
    path = data_dir / SERVER_FILE
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
        return str(info["host"])
    except (ValueError, KeyError, OSError):
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    """`serve`: serve the API in the foreground until SIGINT or SIGTERM."""
    try:
        limits = Limits.resolve(args.query_timeout, args.max_events_bytes,
                                events_rps=args.events_rps)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    configure_logging()
    server = LocalServer(args.project_dir, args.data_dir, host=args.host, port=args.port,
                         limits=limits)
    stream = _stream_for(server, args.stream) if args.stream is not None else None
    # uvicorn catches SIGINT/SIGTERM while it serves, finishes the requests in progress,
    # then raises the signal again for the handlers that were there before. Those do
    # nothing, so a clean shutdown (engine flushed and closed) exits 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    print(f"Tinybird Local listening on {server.url} "
          f"(workspace {server.workspace.workspace_id}, data in {args.data_dir})", flush=True)
    if stream is not None:
        stream.start()
        print(f"Streaming {args.stream:g} bookings a second into "
              f"{stream.datasource.name}", flush=True)
    server.serve_forever(before_close=stream.stop if stream is not None else None)
    print("Tinybird Local stopped", flush=True)
    return 0


def _stream_for(server: LocalServer, rows_per_second: float) -> BookingStream:
    """The stream `serve --stream` asks for, into `events`; the server is closed if the
    project cannot take it."""
    events = server.state.project.datasources.get(STREAM_DATASOURCE)
    try:
        if events is None:
            raise CLIError(f"--stream needs a data source named '{STREAM_DATASOURCE}' in "
                           "the project, with the booking columns")
        return BookingStream(server.state.engine, events, rows_per_second)
    except (CLIError, SeedError):
        server.close()
        raise


def _rows_per_second(text: str) -> float:
    """`--stream`'s value: a number of rows a second, more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of rows a second") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} rows a second: it must be more than 0")
    return value


def cmd_info(args: argparse.Namespace) -> int:
    """`info`: print the host, workspace id and tokens as JSON, making the workspace if new."""
    data_dir = Path(args.data_dir)
    project = load_project(args.project_dir) if Path(args.project_dir).is_dir() else None
    workspace = ensure_workspace(data_dir, project)
    host = _running_host(data_dir) or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    print(json.dumps({
        "host": host,
        "running": _running_host(data_dir) is not None,
        "workspace_id": workspace.workspace_id,
        "admin_token": workspace.admin_token,
        "tokens": {name: t.token for name, t in workspace.tokens.items()},
    }, indent=2))
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    """`seed`: load generated bookings, through a running server or into the data dir."""
    data_dir = Path(args.data_dir)
    started = time.perf_counter()
    if args.host:
        workspace = load_workspace(data_dir)
        if workspace is None:
            raise CLIError(f"no workspace in {data_dir}: start the server there first")
        params = {"rows": args.rows, "name": args.datasource}
        if args.seed is not None:
            params["seed"] = args.seed
        try:
            response = requests.post(f"{args.host.rstrip('/')}/v0/local/seed", params=params,
                                     headers={"Authorization": f"Bearer {workspace.admin_token}"},
                                     timeout=600)
        except requests.RequestException:
            raise CLIError(f"cannot reach Tinybird Local at {args.host}") from None
        if response.status_code != 200:
            raise CLIError(f"seed refused ({response.status_code}): "
                           f"{response.json().get('error', response.text)}")
        inserted = response.json()["successful_rows"]
    else:
        if _running_host(data_dir):
            raise CLIError(f"a server is using {data_dir}: pass --host {_running_host(data_dir)}")
        project = load_project(served_project_dir(args.project_dir, data_dir))
        ds = project.datasources.get(args.datasource)
        if ds is None:
            raise CLIError(f"no datasource '{args.datasource}' in {args.project_dir}")
        ensure_workspace(data_dir, project)
        engine = Engine(data_dir)
        try:
            check_pipes(engine, project)
            apply_project(engine, project)
            inserted = seed_bookings(engine, ds, args.rows, seed=args.seed)
        finally:
            engine.close()
    seconds = time.perf_counter() - started
    rate = inserted / seconds if seconds else 0
    print(f"seeded {inserted} rows into {args.datasource} in {seconds:.2f}s "
          f"({rate:,.0f} rows/s)")
    return 0


def cmd_jwt(args: argparse.Namespace) -> int:
    """`jwt`: print a JWT that may read one pipe."""
    workspace = load_workspace(Path(args.data_dir))
    if workspace is None:
        raise CLIError(f"no workspace in {args.data_dir}: run `serve` or `info` first")
    fixed = {}
    for item in args.fixed_param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--fixed-param takes key=value, not {item!r}")
        fixed[key] = value
    if not args.ttl > 0:
        raise UsageError(f"--ttl must be more than 0 seconds, not {args.ttl:g}")
    print(issue_jwt(workspace, args.pipe, name=args.name, ttl_seconds=args.ttl,
                    fixed_params=fixed or None, rps=args.rps))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Every option says what it does and its default, so `--help` is the reference."""
    parser = argparse.ArgumentParser(
        prog="python -m lib.tinybird_local",
        description="Tinybird Local: a Tinybird-compatible API on chDB")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, project_use: str) -> None:
        p.add_argument("--project-dir", default=DEFAULT_PROJECT_DIR, metavar="DIR",
                       help=f"{project_use} (default: {DEFAULT_PROJECT_DIR})")
        p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, metavar="DIR",
                       help="the workspace and its data; one server at a time may open it "
                            f"(default: {DEFAULT_DATA_DIR})")

    serve = sub.add_parser("serve", help="serve the API until SIGINT/SIGTERM")
    common(serve, "the datafiles (.datasource, .pipe) to serve")
    serve.add_argument("--host", default=DEFAULT_HOST,
                       help=f"address to listen on (default: {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"port to listen on, 0 for any free one (default: {DEFAULT_PORT})")
    serve.add_argument(
        "--query-timeout", type=float, metavar="SECONDS",
        help=f"stop a pipe or /v0/sql query after this long, with a 408 (default: "
             f"${QUERY_TIMEOUT_ENV}, else {DEFAULT_QUERY_TIMEOUT:g})")
    serve.add_argument(
        "--max-events-bytes", type=int, metavar="BYTES",
        help=f"refuse a larger Events API body, compressed or not, with a 413 (default: "
             f"${MAX_EVENTS_BYTES_ENV}, else {DEFAULT_MAX_EVENTS_BYTES} = 10 MiB)")
    serve.add_argument(
        "--events-rps", type=float, metavar="N",
        help=f"Events API requests per second per Data Source, then a 429 (default: "
             f"${EVENTS_RPS_ENV}, else {DEFAULT_EVENTS_RPS:g})")
    serve.add_argument(
        "--stream", type=_rows_per_second, metavar="ROWS_PER_SECOND",
        help=f"keep adding this many generated bookings a second to '{STREAM_DATASOURCE}', "
             "as the dashboard's embedded server does (default: none)")
    serve.set_defaults(func=cmd_serve)

    info = sub.add_parser("info", help="print host, workspace id and tokens as JSON")
    common(info, "the datafiles whose TOKENs a new workspace gets, if the folder exists")
    info.set_defaults(func=cmd_info)

    seed = sub.add_parser("seed", help="bulk-load generated bookings")
    common(seed, "the datafiles that define the datasource; unused with --host")
    seed.add_argument("--rows", type=int, required=True,
                      help="how many bookings to generate (required, no default)")
    seed.add_argument("--host", metavar="URL",
                      help="seed through this running server (default: none, open the data "
                           "dir directly; refused while a server uses it)")
    seed.add_argument("--datasource", default="events",
                      help="the datasource to fill (default: events)")
    seed.add_argument("--seed", type=int,
                      help="make the generated rows reproducible (default: none, random)")
    seed.set_defaults(func=cmd_seed)

    token = sub.add_parser("jwt", help="print a JWT that may read one pipe")
    common(token, "unused: a JWT needs only the workspace in --data-dir")
    token.add_argument("--pipe", default="top_airlines",
                       help="the pipe the JWT may read, by name or id (default: top_airlines)")
    token.add_argument("--ttl", type=float, default=600, metavar="SECONDS",
                       help="lifetime; exp is rounded up to a whole second (default: 600)")
    token.add_argument("--name", default="cli_jwt",
                       help="the JWT's name claim, which keys its rate limit "
                            "(default: cli_jwt)")
    token.add_argument("--rps", type=float,
                       help="requests per second allowed, as limits.rps (default: none, no "
                            "limit)")
    token.add_argument("--fixed-param", action="append", metavar="KEY=VALUE",
                       help="a pipe parameter the JWT forces, whatever the request says; "
                            "repeat for more (default: none)")
    token.set_defaults(func=cmd_jwt)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, DatafileError, EngineError, SeedError, OSError) as exc:
        # CLIError carries its own code (UsageError: 2); the others are failures (1).
        return report(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
