"""How long `top_airlines` takes while the Events API is kept busy, beside idle.

One Tinybird Local of this tree (and, with `--commit`, one of an older commit, in turn)
in its own process. A reader asks for `top_airlines` with the admin token 20 times a
second, first with nothing else running, then while a sender posts batches of 10k
bookings with `wait=true` back to back. Prints the reads' median, p90 and p99, and the
batches the sender got through per second meanwhile. Figures only: nothing here passes
or fails.

    python bench/reads_during_ingest.py [--reads 400] [--commit 894b3d7]
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

# Seconds between the starts of two reads: 20 reads a second, as many viewers' polls.
PACE = 0.05


def read_times(server: Server, count: int) -> list[float]:
    """The milliseconds of `count` reads of `top_airlines`, one every `PACE` seconds
    (or right after the one before, if it took longer): trees that answer at different
    speeds get the same reads per second, so the sender competes with the same load."""
    times = []
    next_read = time.perf_counter()
    for _ in range(count):
        time.sleep(max(0.0, next_read - time.perf_counter()))  # the pace, not a wait
        started = time.perf_counter()
        server.session.get(f"{server.url}/v0/pipes/top_airlines.json").raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
        next_read = started + PACE
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
    parser.add_argument("--reads", type=int, default=400)
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
