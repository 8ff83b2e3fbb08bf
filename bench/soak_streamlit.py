"""Leave several dashboards open and watch the Streamlit server's memory.

Starts `streamlit run streamlit_app.py` on the embedded default (temporary data dir),
opens `--sessions` pages in Debian's Chromium, and samples the server's resident memory
every `--every` seconds for `--duration` seconds while the pages poll. Prints the
samples and the growth between the first and second half: a leak shows as steady
growth, a healthy server levels off. Figures only, never pass/fail.

    python bench/soak_streamlit.py --sessions 5 --duration 120
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--every", type=float, default=10.0)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if not chromium:
        raise SystemExit("Debian's chromium is needed: apt-get install -y chromium")

    with tempfile.TemporaryDirectory(prefix="tb-soak-") as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TINYBIRD_")}
        env.update(TINYBIRD_LOCAL_DATA_DIR=str(Path(tmp) / "data"), TINYBIRD_ENV_DIR=tmp)
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
             "--server.headless", "true", "--server.port", str(port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if requests.get(f"{url}/_stcore/health", timeout=1).ok:
                        break
                except requests.RequestException:
                    time.sleep(0.2)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                pages = []
                for _ in range(args.sessions):
                    page = browser.new_page()
                    page.goto(url)
                    page.wait_for_selector('[data-testid="stVegaLiteChart"]', timeout=90_000)
                    pages.append(page)
                samples: list[tuple[float, float]] = []
                started = time.monotonic()
                while time.monotonic() - started < args.duration:
                    samples.append((time.monotonic() - started, rss_mib(server.pid)))
                    print(f"t={samples[-1][0]:6.0f}s  rss={samples[-1][1]:7.1f} MiB", flush=True)
                    pages[0].wait_for_timeout(args.every * 1000)
                browser.close()
            half = len(samples) // 2 or 1
            first = statistics.mean(r for _, r in samples[:half])
            second = statistics.mean(r for _, r in samples[half:]) if samples[half:] else first
            print(f"{args.sessions} sessions, {args.duration:g}s: mean RSS first half "
                  f"{first:.1f} MiB, second half {second:.1f} MiB, "
                  f"growth {second - first:+.1f} MiB")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
