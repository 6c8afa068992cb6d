"""The bars of a bench (:mod:`rlhf_zoo.progress`): which lock they write under, and where a worker's lines go. How
they look on a terminal is in tests/bench/test_runner.py."""

from __future__ import annotations

import io
import threading

import pytest
from tqdm.auto import tqdm

from rlhf_zoo import progress
from rlhf_zoo.bench.runner import run_suite
from rlhf_zoo.bench.suites import expand


class _CountingLock:
    """A lock that counts how often it was taken (the bench's lock, shared by its worker processes)."""

    def __init__(self) -> None:
        self.lock, self.taken = threading.RLock(), 0

    def acquire(self, *args, **kwargs) -> bool:
        self.taken += 1
        return self.lock.acquire(*args, **kwargs)

    def release(self) -> None:
        self.lock.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _draw_a_bar() -> None:
    bar = tqdm(total=2, file=io.StringIO(), mininterval=0)
    bar.update()
    bar.close()


@pytest.fixture
def tqdm_lock(monkeypatch):
    """Puts tqdm's write lock back after the test (use_lock sets it for the rest of a worker's life)."""
    monkeypatch.setattr(tqdm, "_lock", tqdm.get_lock(), raising=False)


def test_bars_write_under_the_benchs_lock_while_it_is_shared_and_not_after(tqdm_lock):
    """Bars of several processes that each wrote under a lock of their own wrote over each other's lines; after the
    bench, bars of the same process (a sweep goes on to compare) no longer wait on the lock of its gone workers."""
    lock = _CountingLock()
    with progress.share_lock(lock):
        _draw_a_bar()
        taken = lock.taken
        assert taken > 0
        progress.LinesAbove(io.StringIO()).write("rlhf-zoo: prompts: 8 for training\n")  # a worker's line: too
        assert lock.taken > taken
    taken = lock.taken
    _draw_a_bar()
    assert lock.taken == taken


def test_a_worker_draws_its_bars_under_the_benchs_lock(tqdm_lock):
    lock = _CountingLock()
    progress.use_lock(lock)
    _draw_a_bar()
    assert lock.taken > 0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_workers_stderr_is_a_terminal_where_the_bench_writes_to_one():
    """What a point asks of its stderr (whether to draw a bar of its own, colours) is answered for the terminal
    beneath it; a closed stream is no terminal (and no ValueError)."""
    assert progress.LinesAbove(_Terminal()).isatty() and not progress.LinesAbove(io.StringIO()).isatty()
    closed = io.StringIO()
    closed.close()
    assert not progress.is_terminal(closed)


def test_a_bench_that_goes_on_counts_its_finished_points_on_its_bar(tiny_exact_suite, tmp_path, capsys):
    """The points bar of a bench continued after seed 0 starts at the points seed 0 finished, not at 0."""
    only = ["best_of_n"]
    run_suite(tiny_exact_suite, tmp_path, progress=False, seeds=[0], only=only)
    done, total = len(expand(tiny_exact_suite, seeds=[0], only=only)), len(expand(tiny_exact_suite, only=only))
    capsys.readouterr()
    run_suite(tiny_exact_suite, tmp_path, progress=True, seeds=[0, 1], only=only)
    frames = [f for f in capsys.readouterr().err.split("\r") if "point" in f]
    assert frames and f" {done}/{total} " in frames[0], frames
