"""Many open dashboards against one Tinybird Local: throughput, latency, errors.

Starts a Tinybird Local subprocess on a temporary data dir, seeds it, then runs
`--clients` simulated dashboards for `--duration` seconds. Each has its own JWT and
reads `top_airlines` in a loop (`--interval 0`: back to back, to find the ceiling;
`--interval 5`: what real dashboards do). Prints figures; never fails on speed.

    python bench/load.py --clients 32 --duration 20
"""

from __future__ import annotations

import argparse
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

from lib.client.tokens import mint_jwt  # noqa: E402
from lib.tinybird_local.workspace import load_workspace  # noqa: E402


def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "lib.tinybird_local", "serve", "--data-dir", str(data_dir),
         "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"Tinybird Local did not start: {line!r}")
    return process, line.split("listening on ", 1)[1].split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pipe", default="top_airlines")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tb-load-") as tmp:
        process, url = start_server(Path(tmp) / "data")
        try:
            workspace = load_workspace(Path(tmp) / "data")
            admin = {"Authorization": f"Bearer {workspace.admin_token}"}
            requests.post(f"{url}/v0/local/seed", params={"rows": args.rows}, headers=admin,
                          timeout=600).raise_for_status()
            latencies: list[list[float]] = [[] for _ in range(args.clients)]
            errors: list[dict[int | str, int]] = [{} for _ in range(args.clients)]
            start_at = time.monotonic() + 1.0
            end_at = start_at + args.duration

            def dashboard(i: int) -> None:
                token = mint_jwt(workspace.admin_token, workspace.workspace_id, args.pipe,
                                 name=f"dashboard_{i}", ttl_seconds=3600)
                session = requests.Session()
                headers = {"Authorization": f"Bearer {token}"}
                while time.monotonic() < start_at:
                    time.sleep(0.001)
                while time.monotonic() < end_at:
                    t0 = time.perf_counter()
                    try:
                        response = session.get(f"{url}/v0/pipes/{args.pipe}.json",
                                               headers=headers, timeout=10)
                        key: int | str = response.status_code
                    except requests.RequestException as exc:
                        key = type(exc).__name__
                    elapsed = time.perf_counter() - t0
                    if key == 200:
                        latencies[i].append(elapsed)
                    else:
                        errors[i][key] = errors[i].get(key, 0) + 1
                    if args.interval:
                        time.sleep(max(0.0, args.interval - elapsed))

            threads = [threading.Thread(target=dashboard, args=(i,)) for i in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            ok = sorted(x * 1000 for per_client in latencies for x in per_client)
            failed: dict[int | str, int] = {}
            for per_client in errors:
                for key, count in per_client.items():
                    failed[key] = failed.get(key, 0) + count
            print(f"{args.clients} dashboards, {args.duration:g}s, interval {args.interval:g}s, "
                  f"{args.rows:,} events")
            if ok:
                p99 = ok[min(len(ok) - 1, int(0.99 * (len(ok) - 1)))]
                print(f"ok: {len(ok):,} requests = {len(ok) / args.duration:,.0f} req/s   "
                      f"p50 {statistics.median(ok):.1f} ms   p99 {p99:.1f} ms   "
                      f"max {ok[-1]:.1f} ms")
            print(f"errors: {sum(failed.values())} {failed or ''}")
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
