"""Print how fast a filtered `top_airlines` answers beside the unfiltered one, same run.

One process runs Tinybird Local (in a thread, on a temporary data dir) and seeds N
bookings over 30 days; then the endpoint is read through HTTP + JWT (a lean keep-alive
client) without parameters and with the main page's windows and a meal, interleaved so
both see the same machine. Prints medians, p99, rows read and the ratio to unfiltered,
and how many parts the bucket table had (a filtered query pays for each one it reads).
Figures only: nothing here passes or fails on speed.

    python bench/bench_filters.py --rows 10000000 --requests 200 [--moving]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_top_airlines import percentile  # noqa: E402

from lib.client.tokens import mint_jwt  # noqa: E402
from lib.tinybird_local.seeding import seed_bookings  # noqa: E402
from lib.tinybird_local.server import LocalServer  # noqa: E402

FORMAT = "%Y-%m-%d %H:%M:%S"


def windows(now: dt.datetime) -> dict[str, dict[str, str]]:
    """The main page's views, as the endpoint's parameters."""
    def since(delta: dt.timedelta) -> str:
        return (now - delta).strftime(FORMAT)

    return {
        "unfiltered": {},
        "last 15 min": {"date_from": since(dt.timedelta(minutes=15))},
        "last hour": {"date_from": since(dt.timedelta(hours=1))},
        "last 24 h": {"date_from": since(dt.timedelta(hours=24))},
        "last 7 days": {"date_from": since(dt.timedelta(days=7))},
        "vegan, all time": {"meal_choice": "vegan"},
        "vegan, last 7 days": {"date_from": since(dt.timedelta(days=7)), "meal_choice": "vegan"},
    }


def parts(server: LocalServer, table: str) -> int:
    """How many active parts `table` has now."""
    return int(server.state.engine.scalar(
        "SELECT count() FROM system.parts WHERE active AND database = currentDatabase() "
        f"AND table = '{table}'") or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--moving", action="store_true",
                        help="a new window end for every request, as the dashboard's polls "
                             "send: each query is new text, so no verdict is reused")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tb-bench-") as tmp:
        server = LocalServer(ROOT / "tinybird", Path(tmp) / "data", port=0)
        started = time.perf_counter()
        seed_bookings(server.state.engine, server.state.project.datasources["events"],
                      args.rows, seed=1)
        print(f"seeded {args.rows:,} events in {time.perf_counter() - started:.1f}s")
        server.start_in_thread()
        workspace = server.workspace
        token = mint_jwt(workspace.admin_token, workspace.workspace_id, "top_airlines",
                         name="bench", ttl_seconds=3600)
        headers = {"Authorization": f"Bearer {token}"}
        lean = http.client.HTTPConnection(*server.url.split("//")[1].rsplit(":", 1))

        def get(params: dict[str, str]) -> dict:
            query = f"?{urlencode(params)}" if params else ""
            lean.request("GET", f"/v0/pipes/top_airlines.json{query}", headers=headers)
            response = lean.getresponse()
            body = response.read()
            assert response.status == 200, body[:300]
            return json.loads(body)

        views = windows(dt.datetime.now(dt.UTC).replace(tzinfo=None))
        for params in views.values():  # warm every path
            for _ in range(5):
                get(params)
        times: dict[str, list[float]] = {name: [] for name in views}
        rows_read: dict[str, int] = {}
        start = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        parts_before = parts(server, "airline_meal_buckets")
        for i in range(args.requests):
            if args.moving:
                views = windows(start - dt.timedelta(seconds=i))
            for name, params in views.items():
                t0 = time.perf_counter()
                body = get(params)
                times[name].append(time.perf_counter() - t0)
                rows_read[name] = body["statistics"]["rows_read"]
        # The seed's merges may still be joining parts while the requests run.
        print(f"airline_meal_buckets' parts: {parts_before} at the start, "
              f"{parts(server, 'airline_meal_buckets')} at the end")
        base = statistics.median(times["unfiltered"])
        for name, series in times.items():
            ms = [s * 1000 for s in series]
            print(f"{name:<20} median {statistics.median(ms):6.2f} ms   "
                  f"p99 {percentile(ms, 0.99):6.2f} ms   rows read {rows_read[name]:>9,}   "
                  f"{statistics.median(series) / base:4.2f}x unfiltered")
        server.stop()


if __name__ == "__main__":
    main()
