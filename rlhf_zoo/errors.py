"""Errors that the command line reports as one clear line, without a traceback."""

from __future__ import annotations

import sys
import unicodedata

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with its control characters and line separators escaped (``\\n``, ``\\x1b``), so that a user's
    value inside a message can neither break its one line nor drive the terminal."""

    def escape(c: str) -> str:
        if unicodedata.category(c) not in ("Cc", "Zl", "Zp"):
            return c
        return _ESCAPES.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")

    return "".join(map(escape, text))


def say(line: str) -> None:
    """Write ``line`` and its newline to stderr in one write. Under a launch every process may print its line at
    the same moment into the same file; with an unbuffered stderr (``PYTHONUNBUFFERED``, ``python -u``, common in
    containers and batch scripts) ``print``'s two writes, the text and then the newline, interleaved, and two
    processes' lines came out joined on one (``...to continuerlhf-zoo: SIGINT at step 79; ...``) and a blank one."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


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


def byte_size(n: float) -> str:
    """``n`` bytes in the largest binary unit below it, one decimal: ``1.5 GiB``, ``512.0 bytes``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"
