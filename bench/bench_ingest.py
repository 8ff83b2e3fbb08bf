"""Events API rows/s beside the engine's own insert of the same rows, in one run.

Three ways in, fed the same NDJSON bookings in batches of `--batch` rows:

- `api`: this tree's Tinybird Local in its own process, `POST /v0/events?wait=true`;
- `engine`: the engine alone (in this process), `INSERT INTO events FORMAT JSONEachRow`
  into this tree's tables with all their materialized views;
- `api@<commit>`: the Tinybird Local of an older commit (default fc5bba9, before the
  filters' bucket views), with its own datafiles, as it was.

This machine's speed drifts by a third within a minute, so the ways take turns batch by
batch, each batch in a new order, and never one whole round after another. Each round
sends every batch once each way; a round's ratio compares the ways over the same seconds.

Prints rows/s (median of the rounds, and the slowest and fastest round), the server's
CPU per 100k rows, and the ratios: the median of the rounds' ratios, with their range.
Figures only: nothing here passes or fails on speed.

    python bench/bench_ingest.py [--rows 200000] [--batch 10000] [--rounds 7]
                                 [--commit fc5bba9 | --commit none]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib.bookings.generator import BookingGenerator  # noqa: E402
from lib.client.events import to_ndjson  # noqa: E402
from lib.tinybird_local.datafiles import load_project  # noqa: E402
from lib.tinybird_local.engine import Engine  # noqa: E402
from lib.tinybird_local.schema import apply_project  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def batches(rows: int, size: int) -> list[bytes]:
    generator = BookingGenerator(seed=7)
    return [to_ndjson(generator.bookings(min(size, rows - start)))
            for start in range(0, rows, size)]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


class Server:
    """A Tinybird Local in its own process, from the tree at `tree`."""

    def __init__(self, tree: Path, data_dir: Path):
        info = subprocess.run(
            [sys.executable, "-m", "lib.tinybird_local", "info", "--data-dir", str(data_dir)],
            cwd=tree, capture_output=True, text=True, check=True)
        self.token = json.loads(info.stdout)["admin_token"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lib.tinybird_local", "serve", "--data-dir",
             str(data_dir), "--port", "0"],
            cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            raise SystemExit(f"Tinybird Local in {tree} did not start: {line!r}")
        self.url = line.split("listening on ", 1)[1].split()[0]
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def send(self, bodies: list[bytes]) -> tuple[float, float]:
        """Send every batch, waiting for each; (wall seconds, server CPU seconds)."""
        cpu = cpu_seconds(self.process.pid)
        started = time.perf_counter()
        for body in bodies:
            response = self.session.post(f"{self.url}/v0/events",
                                         params={"name": "events", "wait": "true"},
                                         data=body, timeout=600)
            answer = response.json()
            if response.status_code != 200 or answer.get("quarantined_rows"):
                raise SystemExit(f"{self.url}: {response.status_code} {answer}")
        return time.perf_counter() - started, cpu_seconds(self.process.pid) - cpu

    def stop(self) -> None:
        self.session.close()
        self.process.terminate()
        self.process.wait(timeout=30)


class EngineAlone:
    """The engine in this process, with this tree's tables and views."""

    def __init__(self, data_dir: Path):
        self.engine = Engine(data_dir)
        apply_project(self.engine, load_project(ROOT / "tinybird"))

    def send(self, bodies: list[bytes]) -> tuple[float, float]:
        cpu = time.process_time()
        started = time.perf_counter()
        for body in bodies:
            self.engine.insert_raw("INSERT INTO events", "JSONEachRow", body)
        return time.perf_counter() - started, time.process_time() - cpu

    def stop(self) -> None:
        self.engine.close()


def old_tree(commit: str, into: Path) -> Path:
    """The files of `commit`, unpacked into `into` (the repository is not touched)."""
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--commit", default="fc5bba9", help="an older commit, or 'none'")
    args = parser.parse_args()
    bodies = batches(args.rows, args.batch)
    print(f"{args.rows} bookings in batches of {args.batch} "
          f"({sum(map(len, bodies)) / len(bodies) / args.batch:.0f} bytes a row), "
          f"{args.rounds} rounds, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="tb-bench-ingest-") as tmp:
        ways: dict[str, Server | EngineAlone] = {
            "api": Server(ROOT, Path(tmp) / "api"),
            "engine": EngineAlone(Path(tmp) / "engine"),
        }
        if args.commit != "none":
            tree = old_tree(args.commit, Path(tmp) / "old")
            ways[f"api@{args.commit}"] = Server(tree, Path(tmp) / "old-data")
        try:
            for way in ways.values():  # warm each up with one small batch
                way.send(batches(100, 100))
            # Each way's [wall seconds, CPU seconds] in each round, added up batch by batch.
            runs = {name: [[0.0, 0.0] for _ in range(args.rounds)] for name in ways}
            names = list(ways)
            for round_ in range(args.rounds):
                for index, body in enumerate(bodies):
                    turn = round_ * len(bodies) + index
                    for name in names[turn % len(names):] + names[:turn % len(names)]:
                        wall, cpu = ways[name].send([body])
                        runs[name][round_][0] += wall
                        runs[name][round_][1] += cpu
        finally:
            for way in ways.values():
                way.stop()
    report(runs, args.rows)


def report(runs: dict[str, list[list[float]]], rows: int) -> None:
    """Each way's rows/s and CPU, then the ratios, round by round."""
    rates = {name: [rows / wall for wall, _ in done] for name, done in runs.items()}
    print(f"{'way in':<18} {'rows/s (median)':>16} {'slowest-fastest round':>22} "
          f"{'CPU s/100k':>11}")
    for name, done in runs.items():
        cpu = statistics.median(c for _, c in done) * 100_000 / rows
        spread = f"{min(rates[name]) / 1000:.0f}k-{max(rates[name]) / 1000:.0f}k"
        print(f"{name:<18} {statistics.median(rates[name]):>16,.0f} {spread:>22} {cpu:>11.2f}")
    targets = [("engine", 0.5)] + [(name, 1.0) for name in runs if name.startswith("api@")]
    for other, target in targets:
        ratios = [api / theirs for api, theirs in zip(rates["api"], rates[other], strict=True)]
        print(f"api / {other}: {statistics.median(ratios):.2f} (rounds "
              f"{min(ratios):.2f}-{max(ratios):.2f}; target: at least {target:.2f})")


if __name__ == "__main__":
    main()
