"""Progress bars: a run's bar over its steps, and a bench's (or sweep's) bar over its points with the running
points' step bars beneath it.

A run on its own draws its step bar as ``train.progress`` says. A bench or a sweep draws one bar over its points
and places the step bar of each point that it runs (:func:`placed`): on a terminal, on its own line beneath the
points bar (a worker of ``jobs=N`` on the line of its slot, 1 to N, tqdm's recipe for bars from several processes:
one write lock, :func:`share_lock`), named by the point and erased when the point ends; with no points bar
(``progress=false``) or not on a terminal (a log file, where the lines that move the cursor would be noise), none.
A point's ``train.progress=false`` still turns its own off.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any


@dataclass(frozen=True)
class Placement:
    """Where a bench puts the step bar of the point it runs: ``shown`` False, none; else on line ``position``
    beneath the points bar of ``file``, named ``desc``, erased at its end."""

    shown: bool
    position: int = 1
    desc: str = ""
    file: IO[str] | None = None


_placement: Placement | None = None  # None: a run on its own


@contextlib.contextmanager
def placed(placement: Placement | None) -> Iterator[None]:
    """Within it, a run's step bar is placed as ``placement`` says (None: as a run on its own)."""
    global _placement
    before, _placement = _placement, placement
    try:
        yield
    finally:
        _placement = before


def beneath(points_bar: Any, position: int, desc: str) -> Placement:
    """The placement of a point's step bar beneath ``points_bar`` (None: the bench draws none, so neither does the
    point), shown only where the points bar writes to a terminal."""
    file = getattr(points_bar, "fp", None)
    return Placement(shown=points_bar is not None and is_terminal(file), position=position, desc=desc, file=file)


def is_terminal(file: Any) -> bool:
    """Whether ``file`` (a stream, or a tqdm bar's wrapper of one) is a terminal."""
    try:
        return bool(file is not None and file.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def step_bar(enabled: bool, total: int, initial: int, desc: str) -> Any:
    """The bar over a run's steps (None: not drawn): as the run's bench places it (:func:`placed`), if any."""
    where = _placement
    if not enabled or (where is not None and not where.shown):
        return None
    from tqdm.auto import tqdm

    beneath_points: dict[str, Any] = {}
    if where is not None:
        desc = where.desc or desc
        beneath_points = {"position": where.position, "leave": False, "file": where.file or sys.stderr}
    return tqdm(unit="step", dynamic_ncols=True, total=total, initial=initial, desc=desc, **beneath_points)


def points_bar(enabled: bool, total: int, initial: int, desc: str) -> Any:
    """A bench's (or sweep's) bar over its points, on line 0 (None: not drawn)."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="point", desc=desc, dynamic_ncols=True, position=0)


@contextlib.contextmanager
def share_lock(lock: Any) -> Iterator[None]:
    """Within it, tqdm's bars in this process write under ``lock`` (a multiprocessing lock that the bench's worker
    processes share, :func:`use_lock` in each): lines of bars from several processes do not interleave."""
    from tqdm.auto import tqdm

    before = tqdm.get_lock()
    tqdm.set_lock(lock)
    try:
        yield
    finally:
        tqdm.set_lock(before)


class LinesAbove(io.TextIOBase):
    """A worker's stderr while bars are drawn from several processes: each whole line it prints (a language-model
    run's prompts line) is written, under the bars' shared lock, from the start of the line the cursor rests on (the
    points bar's) with the bars below it erased (a line wider than the terminal wraps onto theirs), and ends there;
    the bars are drawn again below it at their next update (the bench's points bar every 2 s). It was written on
    after the points bar's text. Worker bars write to the stream itself (:class:`Placement`'s ``file``)."""

    def __init__(self, stream: IO[str]):
        self.stream, self.pending = stream, ""

    def write(self, text: str) -> int:
        from tqdm.auto import tqdm

        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        if lines:
            with tqdm.get_lock():
                self.stream.write("".join(f"\r\x1b[J{line}\n" for line in lines))
                self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return is_terminal(self.stream)


def use_lock(lock: Any) -> None:
    """In a worker process: tqdm's bars write under the bench's shared ``lock``."""
    from tqdm.auto import tqdm

    tqdm.set_lock(lock)


__all__ = [
    "LinesAbove",
    "Placement",
    "beneath",
    "is_terminal",
    "placed",
    "points_bar",
    "share_lock",
    "step_bar",
    "use_lock",
]
