"""`python -m lib.ui.share`: make a share link, or learn how to revoke one.

`create` signs a link with the `[share]` section of the app's secrets file and prints a
few lines about it, then the link alone on the last line (so `| tail -n 1` gives it).
`revoke` prints what to add to the secrets: revocations are kept there, because Streamlit
Community Cloud keeps no files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from lib.client.settings import SettingsError
from lib.command_line import EXIT_OK, UsageError, report
from lib.ui.share import (
    DEFAULT_PAGE,
    MAX_TTL_SECONDS,
    SHARED_PAGES,
    ShareLinkError,
    link_url,
    parse_view,
    share_settings,
    sign_link_token,
)

DEFAULT_SECRETS = Path(".streamlit") / "secrets.toml"


def _read_secrets(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist: pass --secrets with the app's secrets "
                         "file (it holds [share] secret)") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path} cannot be read: {exc}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lib.ui.share",
        description="Signed, expiring links that show one tenant's page without a login.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="make a link and print it on the last line")
    create.add_argument("--tenant", required=True, help="the tenant the link shows, "
                        "e.g. Fizz")
    create.add_argument("--ttl", type=float, required=True, metavar="SECONDS",
                        help=f"how long the link works (at most {MAX_TTL_SECONDS} s)")
    create.add_argument("--base-url", required=True, metavar="URL",
                        help="the app's address, e.g. https://top-airlines.streamlit.app")
    create.add_argument("--page", default=DEFAULT_PAGE, choices=sorted(SHARED_PAGES),
                        help=f"the page the link opens (default {DEFAULT_PAGE})")
    create.add_argument("--view", default="", metavar="QUERY",
                        help='the view, as the page\'s link says it, e.g. '
                             '"from=2026-11-01&to=2026-11-30&top=5"')
    create.add_argument("--secrets", type=Path, default=DEFAULT_SECRETS, metavar="FILE",
                        help=f"the app's secrets file (default {DEFAULT_SECRETS})")
    revoke = commands.add_parser("revoke", help="say how to revoke a link")
    revoke.add_argument("link_id", metavar="ID", help="the link's id, printed by create")
    return parser


def _create(args: argparse.Namespace, out: TextIO) -> None:
    secrets = _read_secrets(args.secrets)
    auth = secrets.get("auth")
    try:
        settings = share_settings(secrets.get("share"), other_secrets={
            "TINYBIRD_SIGNING_TOKEN": secrets.get("TINYBIRD_SIGNING_TOKEN"),
            "auth.cookie_secret": auth.get("cookie_secret") if isinstance(auth, dict) else None,
        })
    except SettingsError as exc:
        raise UsageError(f"{args.secrets}: [{exc.setting}] {exc.problem}") from None
    if not settings.enabled:
        raise UsageError(f"{args.secrets} has no [share] secret: add one (a random text of 32+ "
                         "characters) there and in the deployed app's secrets")
    try:
        token, grant = sign_link_token(settings, tenant=args.tenant, page=args.page,
                                       view=parse_view(args.page, args.view),
                                       ttl_seconds=args.ttl)
        url = link_url(args.base_url, token, grant)
    except ShareLinkError as exc:
        raise UsageError(str(exc)) from None
    expires = dt.datetime.fromtimestamp(grant.expires_at, dt.UTC)
    print(f"tenant: {grant.tenant}", file=out)
    print(f"page: {grant.page}", file=out)
    print(f"expires: {expires:%Y-%m-%d %H:%M:%S} UTC", file=out)
    print(f"id: {grant.link_id} (python -m lib.ui.share revoke {grant.link_id})", file=out)
    print(url, file=out)


def _revoke(link_id: str, out: TextIO) -> None:
    print(f"""To revoke link {link_id}, add its id to the app's secrets (on Streamlit
Community Cloud: the app's Settings, then Secrets; elsewhere .streamlit/secrets.toml):

[share]
revoked = ["{link_id}"]

Keep the ids already listed. The app reads its secrets again when they change: the link
stops working at its next refresh, for viewers who have it open too. To revoke every link
made before now, set revoked_before = "{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}" instead.""",
          file=out)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command; 0 on success, 2 for a mistake in the command or the secrets."""
    args = _parser().parse_args(argv)
    out = out or sys.stdout
    try:
        if args.command == "create":
            _create(args, out)
        else:
            _revoke(args.link_id, out)
    except UsageError as exc:
        return report(exc)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
