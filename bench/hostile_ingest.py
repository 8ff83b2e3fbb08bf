"""Hostile input against one Tinybird Local: what invalid rows cost, and kill -9 consistency.

Part 1 sends about 10 MB of valid bookings, then about 10 MB of invalid lines (of a few
kinds: not JSON, JSON with wrong types, JSON that is not an object, each about as long
as a booking), then the valid bookings with one line cut short in the middle, then 10 MB
of each of the cheapest invalid lines to send, to a fresh server in its own process:
`1`; a lone `{`; `{x}` (shaped like an object, not JSON);
`{}` and `{"age":"x"}` (objects that lack every column, or 11 of 12, one line repeated);
and `{"age":"x<n>"}` with a different value on every line, also written with spaces
as json.dumps writes it, `{"age":1.<n>}`, events of a timestamp and a name only,
`{"age":[<n>]}`, `{"age":{"k":<n>}}`, Arabic-Indic digits, `\\ud800` (half a UTF-16
pair), `{"age":NaN,"n":<n>}`, texts of 19 digits and more, times without
seconds, week dates, times in the year 1, arrays of fractions, and whole numbers of over
19 digits (in and past 64 bits), all different and one repeated;
then the valid bookings again.
It prints for each body the server's CPU seconds (utime + stime from /proc/PID/stat),
the wall time of the request and the server's peak RSS growth (VmHWM after, less VmRSS
before; the high-water mark is reset first where the kernel allows it, via
/proc/PID/clear_refs): the median CPU and wall time of `--repeat` sends and the largest
peak; the server's CPU for the first read of the quarantine after each send, which first
writes the reasons of the lines the engine kept unchecked; then the invalid/valid ratios,
against the median of every send of valid rows (this VM's speed drifts during a run).

Part 2 runs 8 concurrent senders with `wait=true`, kills the server with SIGKILL while
they send, restarts it on the same data dir, and prints `count()` of events against the
sum of every materialized total and how many acknowledged rows are present; three rounds.

Prints figures; never fails on speed.

    python bench/hostile_ingest.py [--mb 10] [--repeat 3] [--rounds 3] [--senders 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
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
from lib.tinybird_local.workspace import load_workspace  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
TOTALS = "airline_bookings_totals"


def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "lib.tinybird_local", "serve", "--data-dir", str(data_dir),
         "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"Tinybird Local did not start: {line!r}")
    return process, line.split("listening on ", 1)[1].split()[0]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak(pid: int) -> None:
    try:  # "5" resets VmHWM to the current RSS (Linux 4.0+), if we may write it
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def valid_body(target: int) -> bytes:
    generator = BookingGenerator(seed=1)
    parts, size = [], 0
    while size < target:
        chunk = to_ndjson(generator.bookings(1000))
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)[:target].rsplit(b"\n", 1)[0] + b"\n"


def invalid_body(target: int) -> bytes:
    """Lines of several kinds of wrong, each about as long as a booking."""
    generator = BookingGenerator(seed=2)
    rng = random.Random(2)
    lines, size = [], 0
    while size < target:
        booking = generator.booking()
        kind = rng.randrange(4)
        if kind == 0:
            line = b"this is not json: " + json.dumps(booking).encode()[:150]
        elif kind == 1:
            line = json.dumps({**booking, "age": "old", "timestamp": "yesterday"}).encode()
        elif kind == 2:
            line = json.dumps([booking["name"], booking["age"]]).encode()
        else:
            line = json.dumps(booking).encode()[:-7]  # cut short
        lines.append(line)
        size += len(line) + 1
    return b"\n".join(lines) + b"\n"


def one_line_cut_short(body: bytes) -> bytes:
    """The body with its middle line cut short, as a client stopped mid-write sends it."""
    start = body.index(b"\n", len(body) // 2) + 1
    end = body.index(b"\n", start)
    return body[:start] + body[start:end - 7] + body[end:]


def measure(pid: int, url: str, headers: dict, body: bytes) -> dict:
    reset_peak(pid)
    rss_before = status_kb(pid, "VmRSS")
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    response = requests.post(f"{url}/v0/events", params={"name": "events", "wait": "true"},
                             data=body, headers=headers, timeout=600)
    wall = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_before
    peak = status_kb(pid, "VmHWM") - rss_before
    # The first read of the quarantine after the body: it first writes the reasons of
    # the lines the engine kept unchecked (`batch_writes.settle`).
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    read = requests.get(f"{url}/v0/sql", params={"q": "SELECT count() FROM events_quarantine"},
                        headers=headers, timeout=600)
    assert read.status_code == 200, read.text
    return {"status": response.status_code, "answer": response.json(), "cpu": cpu,
            "wall": wall, "peak_mb": peak / 1024, "read_cpu": cpu_seconds(pid) - cpu_before,
            "read_wall": time.perf_counter() - started}


def distinct_tiny_objects(target: int, form: bytes = b'{"age":"x%d"}') -> bytes:
    lines, size, number = [], 0, 0
    while size < target:
        line = form % number
        lines.append(line)
        size += len(line) + 1
        number += 1
    return b"\n".join(lines) + b"\n"


def ingest_costs(mb: float, repeat: int) -> None:
    target = int(mb * 1_000_000)
    valid = valid_body(target)
    bodies = {"valid": valid, "invalid": invalid_body(target),
              # Good rows, and one bad line among them.
              "one-cut-short": one_line_cut_short(valid),
              # The cheapest lines to send: not objects at all, broken objects, and
              # objects that lack columns.
              "tiny-not-object": b"1\n" * (target // 2),
              "lone-brace": b"{\n" * (target // 2),
              "brace-not-json": b"{x}\n" * (target // 4),
              "empty-objects": b"{}\n" * (target // 3),
              "tiny-objects": b'{"age":"x"}\n' * (target // 12),
              "tiny-distinct": distinct_tiny_objects(target),
              # As json.dumps writes them, with spaces.
              "spaced-distinct": distinct_tiny_objects(target, b'{"age": "x%d", "name": "n"}'),
              # A fraction in every line.
              "float-distinct": distinct_tiny_objects(target, b'{"age":1.%d}'),
              # Events that hold a time and a name only.
              "partial-distinct": distinct_tiny_objects(
                  target, b'{"timestamp":"2024-06-01T12:00:00.000Z","name":"n%d"}'),
              # An array, an object where a number belongs.
              "array-distinct": distinct_tiny_objects(target, b'{"age":[%d]}'),
              "object-distinct": distinct_tiny_objects(target, b'{"age":{"k":%d}}'),
              # Digits that are not ASCII (Python reads them as numbers).
              "arabic-digits": distinct_tiny_objects(target, '{"age":"\u0661%d"}'.encode()),
              # Half a UTF-16 pair: orjson refuses it, json reads it.
              "half-pair": distinct_tiny_objects(target, b'{"name":"\\ud800%d"}'),
              # NaN: orjson refuses it too, json reads it as a number.
              "nan-distinct": distinct_tiny_objects(target, b'{"age":NaN,"n":%d}'),
              # Texts of many digits, and times without seconds.
              "long-digits": distinct_tiny_objects(target, b'{"age":"1234567890123456789%d"}'),
              "short-times": distinct_tiny_objects(target, b'{"timestamp":"2024-06-01T12:%d"}'),
              # Week dates, and a year the engine does not store.
              "week-dates": distinct_tiny_objects(target, b'{"timestamp":"2024-W22-6T12:%d"}'),
              "year-one": distinct_tiny_objects(target, b'{"timestamp":"0001-01-01T12:%d"}'),
              # Arrays of fractions (the engine writes their numbers its own way).
              "fraction-arrays": distinct_tiny_objects(target, b'{"age":[1.%d]}'),
              # Whole numbers of over 19 digits (the engine reads those past 64 bits as
              # orjson does only once they are written as floats), in lines all
              # different, and in one line sent again and again.
              "long-numbers": distinct_tiny_objects(target, b'{"age":1234567890123456789%d}'),
              "long-numbers-same": b'{"age":12345678901234567890}\n' * (target // 28),
              "valid-again": valid}
    with tempfile.TemporaryDirectory(prefix="tb-hostile-") as tmp:
        process, url = start_server(Path(tmp) / "data")
        try:
            workspace = load_workspace(Path(tmp) / "data")
            assert workspace is not None
            headers = {"Authorization": f"Bearer {workspace.admin_token}"}
            # One small request first, so both measured ones find a warm server.
            measure(process.pid, url, headers, bodies["valid"][:10_000].rsplit(b"\n", 1)[0])
            results, valid_runs = {}, {}
            for kind, body in bodies.items():
                runs = [measure(process.pid, url, headers, body) for _ in range(repeat)]
                valid_runs[kind] = {key: [r[key] for r in runs] for key in ("cpu", "wall")}
                result = {"status": runs[-1]["status"], "answer": runs[-1]["answer"],
                          "cpu": statistics.median(r["cpu"] for r in runs),
                          "wall": statistics.median(r["wall"] for r in runs),
                          "peak_mb": max(r["peak_mb"] for r in runs),
                          "read_cpu": statistics.median(r["read_cpu"] for r in runs)}
                results[kind] = result
                print(f"{kind:>15}: {len(body) / 1e6:5.1f} MB, {len(body.splitlines()):7d} lines"
                      f" -> {result['status']} {result['answer']}; server CPU "
                      f"{result['cpu']:6.2f} s, wall {result['wall']:6.2f} s, peak RSS growth "
                      f"{result['peak_mb']:6.1f} MB; first quarantine read CPU "
                      f"{result['read_cpu']:5.2f} s", flush=True)
            # The baseline: every send of valid rows, first and last (this VM's speed
            # drifts during a run).
            valid = {key: statistics.median([*valid_runs["valid"][key],
                                             *valid_runs["valid-again"][key]])
                     for key in ("cpu", "wall")}
            print(f"   baseline (median of {2 * repeat} sends of valid rows): CPU "
                  f"{valid['cpu']:.2f} s, wall {valid['wall']:.2f} s", flush=True)
            for kind, result in results.items():
                if not kind.startswith("valid"):
                    cpu_ratio = result["cpu"] / max(valid["cpu"], 0.01)
                    print(f"   ratio {kind}/valid: CPU {cpu_ratio:.2f}x"
                          f", wall {result['wall'] / max(valid['wall'], 0.001):.2f}x", flush=True)
        finally:
            process.kill()
            process.wait()


def send_until_stopped(url: str, headers: dict, prefix: str, stop: threading.Event,
                       acknowledged: list[str], batch: int) -> None:
    generator = BookingGenerator(seed=hash(prefix) & 0xFFFF)
    session = requests.Session()
    number = 0
    while not stop.is_set():
        number += 1
        tag = f"{prefix}-b{number}"
        body = to_ndjson({**b, "name": tag} for b in generator.bookings(batch))
        try:
            response = session.post(f"{url}/v0/events", params={"name": "events", "wait": "true"},
                                    data=body, headers=headers, timeout=30)
        except requests.RequestException:
            return
        if response.status_code == 200 and response.json()["successful_rows"] == batch:
            acknowledged.append(tag)


def sql(url: str, headers: dict, q: str) -> list[dict]:
    response = requests.get(f"{url}/v0/sql", params={"q": q}, headers=headers, timeout=60)
    response.raise_for_status()
    return response.json()["data"]


def kill_rounds(rounds: int, senders: int, batch: int) -> None:
    rng = random.Random(9)
    with tempfile.TemporaryDirectory(prefix="tb-kill-") as tmp:
        data_dir = Path(tmp) / "data"
        for number in range(1, rounds + 1):
            process, url = start_server(data_dir)
            workspace = load_workspace(data_dir)
            assert workspace is not None
            headers = {"Authorization": f"Bearer {workspace.admin_token}"}
            acknowledged: list[str] = []
            stop = threading.Event()
            threads = [threading.Thread(target=send_until_stopped, args=(
                url, headers, f"r{number}-s{i}", stop, acknowledged, batch))
                for i in range(senders)]
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(1.0, 3.0))  # kill at an arbitrary moment, not a condition
            process.send_signal(signal.SIGKILL)
            process.wait()
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            process, url = start_server(data_dir)
            try:
                events = int(sql(url, headers, "SELECT count() AS n FROM events")[0]["n"])
                totals = int(sql(url, headers, "SELECT sum(bookings) AS n FROM "
                                 f"{TOTALS}")[0]["n"])
                present = {row["name"]: int(row["n"]) for row in sql(
                    url, headers, "SELECT name, count() AS n FROM events GROUP BY name")}
                whole = sum(1 for tag in acknowledged if present.get(tag) == batch)
                print(f"round {number}: {senders} senders, killed with {len(acknowledged)} "
                      f"batches acknowledged; after restart count() of events {events}, "
                      f"sum of {TOTALS} {totals} ({'agree' if events == totals else 'DISAGREE'});"
                      f" acknowledged batches present {whole}/{len(acknowledged)}", flush=True)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0, help="body size in MB (default 10)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="sends of each body; medians are printed (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="kill -9 rounds (default 3)")
    parser.add_argument("--senders", type=int, default=8, help="concurrent senders (default 8)")
    parser.add_argument("--batch", type=int, default=500, help="rows per request (default 500)")
    args = parser.parse_args()
    print(f"== {args.mb:g} MB of valid rows vs {args.mb:g} MB of invalid lines", flush=True)
    ingest_costs(args.mb, args.repeat)
    print(f"== kill -9 during {args.senders} concurrent wait=true senders, {args.rounds} rounds",
          flush=True)
    kill_rounds(args.rounds, args.senders, args.batch)


if __name__ == "__main__":
    main()
