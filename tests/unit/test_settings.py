"""Settings (the client's workspace, the dashboard's own): precedence, the guide's names,
placeholders and bad values, the token kept out.

Every test passes an explicit `environ` and `env_dir`, so neither the real environment
nor a developer's own .env files can change the outcome.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from lib.client.settings import SettingsError, WorkspaceSettings, load_settings
from lib.ui.settings import (
    DEFAULT_JWT_TTL_SECONDS,
    DEFAULT_PIPE,
    DEFAULT_REFRESH_SECONDS,
    DashboardSettings,
    load_dashboard_settings,
)
from tests.support.servers import ROOT

WORKSPACE = "5a8b9c2d-1e3f-4a5b-8c7d-9e0f1a2b3c4d"
TOKEN = "p.the-admin-token-that-must-stay-secret-0123456789"
GOOD = {
    "TINYBIRD_HOST": "https://api.tinybird.co",
    "TINYBIRD_WORKSPACE": WORKSPACE,
    "TINYBIRD_SIGNING_TOKEN": TOKEN,
}
EXAMPLE = ROOT / ".env.example"


def write_env(directory: Path, name: str, values: dict[str, str]) -> None:
    lines = [f'{key}="{value}"' for key, value in values.items()]
    (directory / name).write_text("\n".join(lines) + "\n")


def load(tmp_path: Path, environ: dict[str, str] | None = None,
         **kwargs) -> DashboardSettings:
    return load_dashboard_settings(environ=environ or {}, env_dir=tmp_path, **kwargs)


# -- precedence ------------------------------------------------------------------------------


def test_precedence_secrets_over_environment_over_env_local_over_env(tmp_path):
    write_env(tmp_path, ".env", {**GOOD, "TINYBIRD_PIPE": "from_env",
                                 "TINYBIRD_REFRESH_SECONDS": "11",
                                 "TINYBIRD_JWT_TTL_SECONDS": "111",
                                 "TINYBIRD_LOCAL_DATA_DIR": "from_env"})
    write_env(tmp_path, ".env.local", {"TINYBIRD_PIPE": "from_env_local",
                                       "TINYBIRD_REFRESH_SECONDS": "22",
                                       "TINYBIRD_JWT_TTL_SECONDS": "222"})
    environ = {"TINYBIRD_PIPE": "from_environ", "TINYBIRD_REFRESH_SECONDS": "33"}
    secrets = {"TINYBIRD_PIPE": "from_secrets"}

    settings = load_dashboard_settings(secrets=secrets, environ=environ, env_dir=tmp_path)

    assert settings.pipe == "from_secrets"
    assert settings.refresh_seconds == 33  # environment over .env.local
    assert settings.jwt_ttl_seconds == 222  # .env.local over .env
    assert settings.local_data_dir == "from_env"  # only .env has it
    assert settings.host == "https://api.tinybird.co"
    assert settings.workspace_id == WORKSPACE
    assert settings.signing_token == TOKEN


def test_each_layer_alone_is_enough(tmp_path):
    settings = load_dashboard_settings(secrets=GOOD, environ={}, env_dir=tmp_path)
    assert settings.host == GOOD["TINYBIRD_HOST"]
    assert load(tmp_path, environ=GOOD).workspace_id == WORKSPACE
    write_env(tmp_path, ".env", GOOD)
    assert load(tmp_path).signing_token == TOKEN


def test_secrets_may_hold_numbers(tmp_path):
    settings = load_dashboard_settings(secrets={**GOOD, "TINYBIRD_REFRESH_SECONDS": 7,
                                      "TINYBIRD_JWT_TTL_SECONDS": 120},
                             environ={}, env_dir=tmp_path)
    assert (settings.refresh_seconds, settings.jwt_ttl_seconds) == (7.0, 120)


def test_empty_value_falls_through_to_the_next_layer(tmp_path):
    write_env(tmp_path, ".env.local", GOOD)
    settings = load(tmp_path, environ={"TINYBIRD_HOST": "  ", "TINYBIRD_WORKSPACE": ""})
    assert settings.host == GOOD["TINYBIRD_HOST"]
    assert settings.workspace_id == WORKSPACE


def test_env_dir_comes_from_tinybird_env_dir(tmp_path):
    write_env(tmp_path, ".env.local", GOOD)
    settings = load_dashboard_settings(environ={"TINYBIRD_ENV_DIR": str(tmp_path)})
    assert settings.host == GOOD["TINYBIRD_HOST"]
    # An explicit env_dir wins over the variable.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_dashboard_settings(environ={"TINYBIRD_ENV_DIR": str(tmp_path)},
                                   env_dir=empty).embedded


def test_defaults(tmp_path):
    settings = load(tmp_path, environ=GOOD)
    assert settings.pipe == DEFAULT_PIPE == "top_airlines"
    assert settings.refresh_seconds == DEFAULT_REFRESH_SECONDS == 5
    assert settings.jwt_ttl_seconds == DEFAULT_JWT_TTL_SECONDS == 600
    assert not settings.embedded


# -- the guide's names, the embedded default --------------------------------------------------


def test_the_guides_next_public_host_is_accepted(tmp_path):
    guide = {k: v for k, v in GOOD.items() if k != "TINYBIRD_HOST"}
    write_env(tmp_path, ".env.local", {**guide,
                                       "NEXT_PUBLIC_TINYBIRD_HOST": "https://api.us-east.tinybird.co/"})
    settings = load(tmp_path)
    assert settings.host == "https://api.us-east.tinybird.co"  # trailing slash dropped
    assert not settings.embedded


def test_tinybird_host_wins_over_next_public_host_in_the_same_layer(tmp_path):
    settings = load(tmp_path, environ={**GOOD, "NEXT_PUBLIC_TINYBIRD_HOST": "https://other.example"})
    assert settings.host == "https://api.tinybird.co"


def test_no_host_means_the_embedded_tinybird_local(tmp_path):
    settings = load(tmp_path, environ={"TINYBIRD_LOCAL_DATA_DIR": "/tmp/x"})
    assert settings.embedded
    assert settings.host is None and settings.signing_token is None
    assert settings.workspace_id is None
    assert settings.local_data_dir == "/tmp/x"


def test_workspace_uuid_is_normalised(tmp_path):
    settings = load(tmp_path, environ={**GOOD, "TINYBIRD_WORKSPACE": WORKSPACE.upper()})
    assert settings.workspace_id == WORKSPACE


# -- placeholders and bad values ---------------------------------------------------------------


def test_the_copied_env_example_is_refused_naming_the_host(tmp_path):
    (tmp_path / ".env.local").write_text(EXAMPLE.read_text())
    with pytest.raises(SettingsError) as caught:
        load(tmp_path)
    assert caught.value.setting == "TINYBIRD_HOST"
    assert "placeholder" in caught.value.problem


@pytest.mark.parametrize("setting", ["TINYBIRD_WORKSPACE", "TINYBIRD_SIGNING_TOKEN"])
def test_each_placeholder_is_refused_naming_its_setting(tmp_path, setting):
    placeholders = {"TINYBIRD_WORKSPACE": "YOUR WORKSPACE ID",
                    "TINYBIRD_SIGNING_TOKEN": "YOUR SIGNING TOKEN"}
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, environ={**GOOD, setting: placeholders[setting]})
    assert caught.value.setting == setting
    assert "placeholder" in caught.value.problem
    assert setting in str(caught.value)


def test_the_guides_lower_case_placeholder_is_refused(tmp_path):
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, environ={**GOOD, "NEXT_PUBLIC_TINYBIRD_HOST": "your api host",
                                "TINYBIRD_HOST": ""})
    assert caught.value.setting == "NEXT_PUBLIC_TINYBIRD_HOST"


@pytest.mark.parametrize("host", [
    "api.tinybird.co", "ftp://api.tinybird.co", "https://", "http://:8000",
    "https://api tinybird.co", "https://api.tinybird.co:port", "https://api.tinybird.co:99999",
    "https://api.tinybird.co/?token=x",
])
def test_malformed_host_names_the_setting(tmp_path, host):
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, environ={**GOOD, "TINYBIRD_HOST": host})
    assert caught.value.setting == "TINYBIRD_HOST"


def test_malformed_next_public_host_names_that_setting(tmp_path):
    environ = {k: v for k, v in GOOD.items() if k != "TINYBIRD_HOST"}
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, environ={**environ, "NEXT_PUBLIC_TINYBIRD_HOST": "localhost:7181"})
    assert caught.value.setting == "NEXT_PUBLIC_TINYBIRD_HOST"


@pytest.mark.parametrize("workspace", ["not-a-uuid", "1234", WORKSPACE[:-1]])
def test_malformed_workspace_names_the_setting(tmp_path, workspace):
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, environ={**GOOD, "TINYBIRD_WORKSPACE": workspace})
    assert caught.value.setting == "TINYBIRD_WORKSPACE"
    assert "UUID" in caught.value.problem


@pytest.mark.parametrize("missing", ["TINYBIRD_WORKSPACE", "TINYBIRD_SIGNING_TOKEN"])
def test_a_host_without_the_rest_names_what_is_missing(tmp_path, missing):
    environ = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, environ=environ)
    assert caught.value.setting == missing
    assert "not set" in caught.value.problem


@pytest.mark.parametrize("value", ["fast", "0", "0.5", "3601", "nan", "inf", "-5", "5s"])
def test_bad_refresh_interval_names_the_setting(tmp_path, value):
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, environ={"TINYBIRD_REFRESH_SECONDS": value})
    assert caught.value.setting == "TINYBIRD_REFRESH_SECONDS"


@pytest.mark.parametrize("value", ["ten minutes", "59", "86401"])
def test_bad_jwt_ttl_names_the_setting(tmp_path, value):
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, environ={"TINYBIRD_JWT_TTL_SECONDS": value})
    assert caught.value.setting == "TINYBIRD_JWT_TTL_SECONDS"


def test_jwt_rps_sets_the_limit_or_none(tmp_path):
    assert load(tmp_path).jwt_rps is None
    assert load(tmp_path, environ={"TINYBIRD_JWT_RPS": "2.5"}).jwt_rps == 2.5


@pytest.mark.parametrize("value", ["many", "0", "-1", "nan"])
def test_bad_jwt_rps_names_the_setting(tmp_path, value):
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, environ={"TINYBIRD_JWT_RPS": value})
    assert caught.value.setting == "TINYBIRD_JWT_RPS"


def test_refresh_interval_accepts_fractions(tmp_path):
    assert load(tmp_path, environ={"TINYBIRD_REFRESH_SECONDS": "2.5"}).refresh_seconds == 2.5


@pytest.mark.parametrize("pipe", ["top-airlines", "top airlines", "1pipe", "tóp", "a/b", "x.json"])
def test_bad_pipe_name_names_the_setting(tmp_path, pipe):
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, environ={"TINYBIRD_PIPE": pipe})
    assert caught.value.setting == "TINYBIRD_PIPE"


def test_an_unreadable_env_file_is_a_settings_error_naming_it(tmp_path):
    (tmp_path / ".env.local").write_bytes(b"TINYBIRD_HOST=\xff\xfe\xfa\n")
    with pytest.raises(SettingsError) as caught:
        load(tmp_path)
    assert caught.value.setting.endswith(".env.local")


# -- the signing token stays out of reprs and messages -----------------------------------------


def test_repr_and_str_never_contain_the_signing_token(tmp_path):
    settings = load(tmp_path, environ=GOOD)
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings)
    assert TOKEN not in f"{settings!r} {settings}"
    assert "https://api.tinybird.co" in repr(settings)  # the repr still says something useful


@given(token=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=12,
                     max_size=80).filter(lambda t: not t.upper().startswith("YOUR ")))
def test_repr_never_contains_any_signing_token(token):
    settings = load_dashboard_settings(environ={**GOOD, "TINYBIRD_SIGNING_TOKEN": token},
                                       env_dir="/nonexistent-dir-for-tests")
    assert settings.signing_token == token
    # A token that happens to be part of the repr's own words ("workspace_id") proves nothing.
    baseline = repr(load_dashboard_settings(environ=GOOD, env_dir="/nonexistent-dir-for-tests"))
    assume(token not in baseline)
    assert token not in repr(settings)


def test_a_token_put_in_the_wrong_setting_is_not_echoed(tmp_path):
    """Swapping TINYBIRD_WORKSPACE and TINYBIRD_SIGNING_TOKEN must not print the token."""
    swapped = {**GOOD, "TINYBIRD_WORKSPACE": TOKEN, "TINYBIRD_SIGNING_TOKEN": WORKSPACE}
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, environ=swapped)
    assert caught.value.setting == "TINYBIRD_WORKSPACE"
    assert TOKEN not in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, environ={**GOOD, "TINYBIRD_HOST": TOKEN})
    assert TOKEN not in str(caught.value)


# -- the client's part: the workspace alone, for any program --------------------------------


def test_the_client_reads_the_workspace_and_nothing_of_the_dashboard(tmp_path):
    workspace = load_settings(environ={**GOOD, "TINYBIRD_PIPE": "not a pipe!"}, env_dir=tmp_path)
    assert workspace == WorkspaceSettings(host=GOOD["TINYBIRD_HOST"], signing_token=TOKEN,
                                          workspace_id=WORKSPACE)
    assert TOKEN not in repr(workspace)
    assert load_settings(environ={}, env_dir=tmp_path) == WorkspaceSettings(None, None, None)
