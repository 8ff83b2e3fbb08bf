"""What the AppTest modules share: isolation from the developer's settings, and readers
for what a page rendered. A support module, not a test module, so test files import it
without pulling in each other's tests."""

from __future__ import annotations

import json
import re

import pyarrow as pa
from streamlit.testing.v1 import AppTest

from lib.ui.charts import TOP_AIRLINES
from tests.support.servers import ROOT

APP = str(ROOT / "streamlit_app.py")
SEED_ROWS = 5000
LATENCY = re.compile(r"^Latency: \d+(\.\d+)? ms \(round trip \d+ ms, at \d\d:\d\d:\d\d UTC\)$")
SETTING_NAMES = ("TINYBIRD_HOST", "NEXT_PUBLIC_TINYBIRD_HOST", "TINYBIRD_WORKSPACE",
                 "TINYBIRD_SIGNING_TOKEN", "TINYBIRD_PIPE", "TINYBIRD_REFRESH_SECONDS",
                 "TINYBIRD_JWT_TTL_SECONDS", "TINYBIRD_JWT_RPS", "TINYBIRD_LOCAL_DATA_DIR",
                 "TINYBIRD_ENV_DIR")
# A harmless key: a non-empty at.secrets stops AppTest from reading a real secrets.toml.
WRONG_KEY = "p.not-the-admin-token-but-long-enough-for-hs256"
ISOLATED_SECRETS = {"TOP_AIRLINES_TEST": "isolated"}


def point_at(monkeypatch, server) -> None:
    monkeypatch.setenv("TINYBIRD_HOST", server.url)
    monkeypatch.setenv("TINYBIRD_WORKSPACE", server.workspace.workspace_id)
    monkeypatch.setenv("TINYBIRD_SIGNING_TOKEN", server.admin_token)


def app(secrets: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.secrets.update(secrets or ISOLATED_SECRETS)
    return at


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def chart_rows(at: AppTest, description: str = TOP_AIRLINES) -> tuple[dict, list[dict]]:
    """The Vega-Lite spec and rows (decoded from Arrow IPC) of the one chart so described."""
    found = [(el.proto, json.loads(el.proto.spec)) for el in at.get("vega_lite_chart")]
    charts = [(proto, spec) for proto, spec in found if spec.get("description") == description]
    assert len(charts) == 1, f"expected one {description!r} chart, found {len(charts)}"
    proto, spec = charts[0]
    datasets = {d.name: d for d in proto.datasets}
    dataset = datasets[spec["data"]["name"]] if spec.get("data", {}).get("name") \
        else proto.datasets[0]
    table = pa.ipc.open_stream(dataset.data.data).read_all()
    return spec, table.to_pylist()


def assert_no_error(at: AppTest) -> None:
    assert not at.exception, texts(at.exception)
    assert not at.error, texts(at.error)
    assert not at.warning, texts(at.warning)


def expected_bookings(server) -> dict[str, int]:
    data = server.sql("SELECT airline, count() AS bookings FROM events GROUP BY airline")["data"]
    return {row["airline"]: int(row["bookings"]) for row in data}
