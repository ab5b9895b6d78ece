"""The command line's one error: what the user sees, one line, then exit code 1."""

from __future__ import annotations


class CliError(Exception):
    """A problem's title and detail (or why the service was not reached). `status`: the HTTP
    status that caused it (None: the service was not reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
