"""Print how fast `top_airlines` answers through HTTP + JWT, beside the raw engine.

One process runs Tinybird Local (in a thread, on a temporary data dir), seeds N
bookings, then times the same endpoint SQL, interleaved: straight on the engine, through
the full HTTP path (auth, JWT check, template, engine, response) with a lean keep-alive
client (http.client: the server's own cost), and with requests (what the dashboard
sees; requests adds about 0.8 ms of its own). It also times Events API ingestion with
one and several senders. Figures only: nothing here passes or fails on speed.

    python bench/bench_top_airlines.py              # 1M events
    python bench/bench_top_airlines.py --rows 10000000 --requests 500
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib.bookings.generator import BookingGenerator  # noqa: E402
from lib.client.events import to_ndjson  # noqa: E402
from lib.client.tokens import mint_jwt  # noqa: E402
from lib.tinybird_local import LocalServer, seed_bookings  # noqa: E402
from lib.tinybird_local.datafile_sql import pipe_sql  # noqa: E402
from lib.tinybird_local.workspace import load_workspace  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{label:<34} median {statistics.median(ms):7.2f} ms   "
            f"p99 {percentile(ms, 0.99):7.2f} ms   (n={len(ms)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--pipe", default="top_airlines")
    parser.add_argument("--ingest-rows", type=int, default=400_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=2, help="concurrent Events API clients")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tb-bench-") as tmp:
        server = LocalServer(ROOT / "tinybird", Path(tmp) / "data", port=0)
        engine = server.state.engine
        started = time.perf_counter()
        seed_bookings(engine, server.state.project.datasources["events"], args.rows, seed=1)
        seed_seconds = time.perf_counter() - started
        server.start_in_thread()
        workspace = server.workspace
        print(f"seeded {args.rows:,} events in {seed_seconds:.2f}s "
              f"({args.rows / seed_seconds:,.0f} rows/s, in-engine)")

        pipe = server.state.project.pipes[args.pipe]
        sql = pipe_sql(pipe, {}) + "\nFORMAT JSON"
        token = mint_jwt(workspace.admin_token, workspace.workspace_id, args.pipe,
                         name="bench", ttl_seconds=3600)
        headers = {"Authorization": f"Bearer {token}"}
        path = f"/v0/pipes/{args.pipe}.json"
        lean = http.client.HTTPConnection(*server.url.split("//")[1].rsplit(":", 1))
        session = requests.Session()

        def lean_get() -> dict:
            lean.request("GET", path, headers=headers)
            response = lean.getresponse()
            body = response.read()
            assert response.status == 200, body[:200]
            return json.loads(body)

        def requests_get() -> None:
            session.get(server.url + path, headers=headers, timeout=30).raise_for_status()

        for _ in range(10):  # warm every path
            engine.query(sql)
            lean_get()
            requests_get()

        raw, http_lean, http_requests, server_elapsed = [], [], [], []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            engine.query(sql)
            raw.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            body = lean_get()
            http_lean.append(time.perf_counter() - t0)
            server_elapsed.append(body["statistics"]["elapsed"])
            t0 = time.perf_counter()
            requests_get()
            http_requests.append(time.perf_counter() - t0)

        print(summary(f"{args.pipe}: engine, same process", raw))
        print(summary(f"{args.pipe}: HTTP + JWT (http.client)", http_lean))
        print(summary(f"{args.pipe}: HTTP + JWT (requests)", http_requests))
        print(summary(f"{args.pipe}: statistics.elapsed", server_elapsed))
        for label, series in (("http.client", http_lean), ("requests", http_requests)):
            print(f"ratio HTTP ({label})/engine: median "
                  f"{statistics.median(series) / statistics.median(raw):.2f}x   "
                  f"p99 {percentile(series, 0.99) / percentile(raw, 0.99):.2f}x")

        server.stop()
        ingest(Path(tmp) / "ingest", args)


def ingest(data_dir: Path, args: argparse.Namespace) -> None:
    """Events API throughput against `serve` in its own process, as real senders see it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lib.tinybird_local", "serve", "--data-dir", str(data_dir),
         "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = process.stdout.readline().split("listening on ", 1)[1].split()[0]
        admin = {"Authorization": f"Bearer {load_workspace(data_dir).admin_token}"}
        generator = BookingGenerator(seed=2)
        batches = [to_ndjson(generator.bookings(args.batch))
                   for _ in range(max(1, args.ingest_rows // args.batch))]
        for senders in sorted({1, args.senders}):
            sent = [0] * senders

            def send(i: int, todo: list[bytes], sent: list[int] = sent) -> None:
                client = requests.Session()
                for body in todo:
                    response = client.post(f"{url}/v0/events",
                                           params={"name": "events", "wait": "true"},
                                           data=body, headers=admin, timeout=120)
                    response.raise_for_status()
                    sent[i] += response.json()["successful_rows"]

            threads = [threading.Thread(target=send, args=(i, batches[i::senders]))
                       for i in range(senders)]
            t0 = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - t0
            print(f"Events API, {senders} sender(s): {sum(sent):,} rows in {seconds:.2f}s = "
                  f"{sum(sent) / seconds:,.0f} rows/s (NDJSON batches of {args.batch:,}, "
                  "wait=true, server in its own process)")
    finally:
        process.terminate()
        process.wait(timeout=60)


if __name__ == "__main__":
    main()
