"""How long `top_airlines` takes while the Events API is kept busy, beside idle.

One Tinybird Local of this tree (and, with `--commit`, one of an older commit, in turn)
in its own process. A reader asks for `top_airlines` with the admin token every 10 ms,
first with nothing else running, then while a sender posts batches of 10k bookings with
`wait=true` back to back. Prints the reads' median, p90 and p99, and the batches the
sender got through per second meanwhile. Figures only: nothing here passes or fails.

    python bench/reads_during_ingest.py [--reads 600] [--commit 894b3d7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest import Server, batches, old_tree  # noqa: E402
from bench_top_airlines import percentile  # noqa: E402


def read_times(server: Server, count: int) -> list[float]:
    """The milliseconds of `count` reads of `top_airlines`, 10 ms apart."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        server.session.get(f"{server.url}/v0/pipes/top_airlines.json").raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
        time.sleep(0.01)  # a pace, not a wait for anything
    return times


def measure(name: str, tree: Path, data_dir: Path, reads: int) -> None:
    server = Server(tree, data_dir)
    body = batches(10_000, 10_000)[0]
    sender = requests.Session()
    sender.headers["Authorization"] = f"Bearer {server.token}"
    stop, sent = threading.Event(), [0]

    def send() -> None:
        while not stop.is_set():
            sender.post(f"{server.url}/v0/events", params={"name": "events", "wait": "true"},
                        data=body, timeout=600).raise_for_status()
            sent[0] += 1

    try:
        server.send([body])  # the tables hold rows before the first read
        idle = read_times(server, reads)
        thread = threading.Thread(target=send)
        thread.start()
        started = time.perf_counter()
        busy = read_times(server, reads)
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join()
    finally:
        server.stop()
    for label, times in (("idle", idle), ("during ingest", busy)):
        print(f"{name:<14} {label:<14} median {percentile(times, 0.5):6.1f} ms   "
              f"p90 {percentile(times, 0.9):6.1f} ms   p99 {percentile(times, 0.99):6.1f} ms")
    print(f"{name:<14} batches of 10k rows written meanwhile: {sent[0] / elapsed:.1f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=int, default=600)
    parser.add_argument("--commit", default="none", help="an older commit to run after this "
                        "tree, or 'none'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tb-bench-reads-") as tmp:
        measure("this tree", ROOT, Path(tmp) / "data", args.reads)
        if args.commit != "none":
            tree = old_tree(args.commit, Path(tmp) / "old")
            measure(args.commit, tree, Path(tmp) / "old-data", args.reads)


if __name__ == "__main__":
    main()
