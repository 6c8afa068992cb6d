"""Errors that the command line reports as one clear line, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (config, data, missing package): reported in one line, exit code 2."""


class MissingPackageError(UserError):
    """An optional package needed by an offline default is not installed."""

    def __init__(self, package: str, purpose: str, install: str | None = None):
        cmd = install or f"pip install -c constraints.txt {package}"
        super().__init__(f"{purpose} needs the package {package!r}, which is not installed: run `{cmd}`")
        self.package = package
