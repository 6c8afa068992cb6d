"""Errors that the command line reports as one clear line, without a traceback."""

from __future__ import annotations


def one_line(e: BaseException) -> str:
    """An exception as one line: ``Type: first line of its message`` (the type alone when it has none)."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


class UserError(Exception):
    """Bad input from the user (config, data, missing package): reported in one line, exit code 2."""


class MissingPackageError(UserError):
    """An optional package needed by an offline default is not installed."""

    def __init__(self, package: str, purpose: str, install: str | None = None):
        cmd = install or f"pip install -c constraints.txt {package}"
        super().__init__(f"{purpose} needs the package {package!r}, which is not installed: run `{cmd}`")
        self.package = package
