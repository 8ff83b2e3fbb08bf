"""How this project's command lines fail: one line on stderr, a known exit code, no traceback.

Shared by `python -m lib.bookings` and `python -m lib.tinybird_local`, so a script that
calls either can tell a usage mistake (2) from a failure (1) and from Ctrl-C (130). It
imports nothing of the project, so Tinybird Local can use it and still move to a
project of its own.
"""

from __future__ import annotations

import sys
from typing import TextIO

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CLIError(Exception):
    """A problem to tell the user in one line; `exit_code` is EXIT_ERROR unless said."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR):
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(CLIError):
    """The command line or a setting is wrong: nothing was done (exit 2)."""

    def __init__(self, message: str):
        super().__init__(message, EXIT_USAGE)


def report(error: BaseException, stderr: TextIO | None = None,
           exit_code: int = EXIT_ERROR) -> int:
    """Print `error: <message>` and return the exit code the command should end with.

    Args:
        error: what went wrong; a `CLIError` carries its own exit code.
        stderr: where to print, standard error if None.
        exit_code: the code for any other error.

    Returns:
        The exit code.
    """
    print(f"error: {error}", file=stderr or sys.stderr, flush=True)
    return error.exit_code if isinstance(error, CLIError) else exit_code
