"""The file helpers and flags of :mod:`rlhf_zoo.io` and the stop signals of :mod:`rlhf_zoo.signals`, each alone."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from rlhf_zoo import io, signals
from rlhf_zoo.errors import UserError


@pytest.mark.parametrize("word", ["1", "true", "TRUE", "Yes", " yes ", "y", "T", "on", "ON\n"])
def test_truthy_words(word):
    assert io.truthy(word) is True


@pytest.mark.parametrize("word", [None, "", "0", "false", "no", "off", "n", "2", "nope", "yess", "enabled"])
def test_words_that_are_not_truthy(word):
    assert io.truthy(word) is False


@pytest.mark.parametrize(
    ("word", "value"),
    [("true", True), (" On ", True), ("YES", True), ("1", True), ("y", True),
     ("false", False), ("OFF", False), ("no", False), ("0", False), (" f ", False)],
)  # fmt: skip
def test_parse_bool_reads_both_ways(word, value):
    assert io.parse_bool(word) is value


@pytest.mark.parametrize("word", ["", "  ", "maybe", "2", "none"])
def test_parse_bool_refuses_what_is_neither(word):
    with pytest.raises(ValueError, match="expected true or false"):
        io.parse_bool(word)


def test_read_json_is_none_for_a_missing_or_torn_file(tmp_path):
    assert io.read_json(tmp_path / "missing.json") is None
    (tmp_path / "torn.json").write_text('{"step": 4, "metr')
    assert io.read_json(tmp_path / "torn.json") is None
    (tmp_path / "ok.json").write_text('{"step": 4}')
    assert io.read_json(tmp_path / "ok.json") == {"step": 4}


def test_json_writers_keep_text_as_written_and_stringify_the_rest(tmp_path):
    path = io.atomic_write_jsonl(tmp_path / "samples.jsonl", [{"b": 1, "a": "café ☕"}, {"a": "x"}])
    assert path.read_bytes() == '{"a": "café ☕", "b": 1}\n{"a": "x"}\n'.encode()
    path = io.atomic_write_json(tmp_path / "meta.json", {"dir": Path("runs/x")}, indent=None)
    assert json.loads(path.read_text()) == {"dir": "runs/x"}


def test_a_failed_write_names_the_file_keeps_the_old_one_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    target.write_text("old\n")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError) as caught:
        io.atomic_write_text(target, "new\n")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_a_replaced_folder_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "checkpoint"
    for text in ("first", "second"):
        with io.atomic_dir(target) as tmp:
            (tmp / "state.txt").write_text(text)
    assert (target / "state.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert stat.S_IMODE(target.stat().st_mode) == io.umask_mode(0o777)


def test_a_file_system_that_cannot_sync_a_folder_still_gets_the_folder(tmp_path, monkeypatch):
    """Some file systems refuse fsync on a directory (EINVAL): the folder is still put in place."""
    fsync = os.fsync

    def no_folder_sync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", no_folder_sync)
    with io.atomic_dir(tmp_path / "model") as tmp:
        (tmp / "w.bin").write_bytes(b"w")
    assert (tmp_path / "model" / "w.bin").read_bytes() == b"w"


def test_umask_mode_takes_the_masked_bits_away():
    mask = os.umask(0o027)
    try:
        assert io.umask_mode(0o666) == 0o640 and io.umask_mode(0o777) == 0o750
    finally:
        os.umask(mask)


def test_a_key_twice_inside_a_list_is_named_by_its_path():
    text = "steps: 3\nsweeps:\n  - tag: a\n    knob: x\n  - tag: b\n    tag: c\n"
    assert io.yaml_problem(text) == "key 'sweeps[1].tag' appears twice (line 6; first at line 5)"
    assert io.yaml_problem("a: {b: 1, c: 2}\n") is None


def test_a_yaml_syntax_error_counts_lines_and_columns_from_1():
    import yaml

    with pytest.raises(yaml.YAMLError) as caught:
        yaml.safe_load("a: 1\n  b: 2\n")
    assert io.yaml_error(caught.value).startswith("YAML syntax error at line 2, column 4: ")


@dataclass
class _Built:
    layers: int = 2
    sizes: tuple[int, ...] = (4, 8)


def test_built_settings_compare_as_meta_json_holds_them():
    io.check_built_settings(Path("m"), {"layers": 2, "sizes": [4, 8]}, _Built(), "toy", "rebuild it")
    with pytest.raises(UserError, match=r"layers=3 \(asked 2\)") as caught:
        io.check_built_settings(Path("m"), {"layers": 3, "sizes": [4, 8]}, _Built(), "toy", "rebuild it")
    assert "sizes" not in str(caught.value) and str(caught.value).endswith("rebuild it")


def test_stop_handling_outside_the_main_thread_does_nothing():
    """Python installs signal handlers in the main thread only: elsewhere the context managers are no-ops
    (a run in a notebook's worker thread), not a ValueError."""
    before = signal.getsignal(signal.SIGTERM)
    errors = []

    def body():
        try:
            with signals.StopRequests() as stop, signals.stop_signals_raise():
                assert not stop.requested
        except BaseException as e:  # noqa: BLE001 - reported to the main thread
            errors.append(e)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert errors == [] and signal.getsignal(signal.SIGTERM) is before


def test_the_handlers_of_before_come_back_not_the_defaults():
    """A program that installed its own SIGINT and SIGTERM handlers (a notebook, a scheduler's wrapper) gets
    them back once a run or a stop-aware wait ends."""
    calls = []

    def mine(signum, frame):
        calls.append(signum)

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for s in before:
            signal.signal(s, mine)
        with signals.StopRequests():
            pass
        with signals.stop_signals_raise():
            pass
        assert all(signal.getsignal(s) is mine for s in before)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        assert calls == [signal.SIGTERM]
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_the_temporary_file_is_written_beside_the_target(tmp_path, monkeypatch):
    """In the same folder, so that the rename stays on one file system (across two it fails, EXDEV)."""
    renamed = []
    replace = os.replace

    def recorded(src, dst):
        renamed.append((Path(src).parent, Path(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", recorded)
    io.atomic_write_text(tmp_path / "sub" / "config.yaml", "seed: 0\n")
    assert renamed == [(tmp_path / "sub", tmp_path / "sub" / "config.yaml")]


def test_a_process_under_torchrun_that_hears_twice_keeps_its_stop_request(monkeypatch):
    """torchrun (and accelerate launch) passes its stop on to every worker, and a scheduler (Slurm's scancel, a
    preemption) may signal each worker as well: a worker that hears the stop twice must still finish its step
    and write its checkpoint, not stop without one (the launcher kills its workers itself, 30 s later)."""
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    with signals.StopRequests() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handlers run here
    assert stop.signum == signal.SIGTERM


STUCK = """
import os, signal, sys, time
from rlhf_zoo.signals import told_if_stuck

signal.signal(signal.SIGTERM, lambda *args: time.sleep(60))  # a handler that does not get to run, as it were
with told_if_stuck(lambda signum, ended: (f"stuck: {signal.Signals(signum).name} {ended}", 7), grace=0.5):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)
"""


def _python(code: str, *args: str, timeout: float):
    """``python -c code args`` with this checkout's package importable; its CompletedProcess (text)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_a_stop_that_the_main_thread_does_not_take_ends_the_process_from_the_watch(tmp_path):
    """The main thread waits in a call that Python cannot interrupt (torch's rendezvous): the watching thread
    prints the line and exits with the code that ``describe`` gives, soon after the grace."""
    started = time.monotonic()
    out = _python(STUCK, timeout=60)
    assert (out.returncode, out.stderr) == (7, "stuck: SIGTERM None\n")
    assert time.monotonic() - started < 30


def test_a_stop_that_the_main_thread_takes_is_left_to_it():
    def describe(signum, ended):
        raise AssertionError("the watch acted although the handler took the signal")

    with pytest.raises(signals.StopSignal), signals.stop_signals_raise(), signals.told_if_stuck(describe, grace=0.2):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    time.sleep(0.4)  # past the grace: still here
    assert signal.set_wakeup_fd(-1) == -1  # the wake-up descriptor of before (none) is back


def test_the_watch_closes_its_pipe_and_ends_its_thread_when_the_block_ends():
    """A run enters the block once per launch, a bench's worker once per point: each block's wake-up pipe is
    closed and its thread gone when it ends, taken signal or none."""
    fds = set(os.listdir("/proc/self/fd"))
    for stop in (False, True):
        with contextlib.suppress(signals.StopSignal), signals.stop_signals_raise():
            with signals.told_if_stuck(lambda signum, ended: ("stuck", 7), grace=0.2):
                if stop:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)
    assert set(os.listdir("/proc/self/fd")) == fds and not _watch_threads()


def _watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rlhf_zoo-stop-watch"]


def test_a_stop_while_the_watch_starts_leaves_no_watch_behind(monkeypatch):
    """A stop signal raises (StopSignal) at any line, also while the watching thread starts: the wake-up
    descriptor of before comes back and the thread ends. It stayed the watch's pipe, and the thread went on
    watching, so that a later signal that the main thread did not take within the grace ended the process with
    the block's line (that of a process waiting in the rendezvous) long after it had left that block."""
    start = threading.Thread.start

    def start_then_stopped(thread):
        start(thread)
        raise signals.StopSignal(signal.SIGTERM)

    def describe(signum, ended):
        raise AssertionError("the watch acted outside its block")

    monkeypatch.setattr(threading.Thread, "start", start_then_stopped)
    with pytest.raises(signals.StopSignal), signals.told_if_stuck(describe, grace=0.1):
        pass
    monkeypatch.undo()
    assert signal.set_wakeup_fd(-1) == -1
    deadline = time.monotonic() + 5
    while _watch_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _watch_threads()


# The main thread takes the signal (its handler runs to its end), but the block goes on past the grace: a handler
# that only notes the stop, or a StopSignal whose way out of the block is slow (another signal while it unwinds,
# a library's clean-up). The watch is for a main thread that cannot take the signal at all.
TAKEN = """
import os, signal, sys, time
from rlhf_zoo.signals import StopRequests, StopSignal, stop_signals_raise, told_if_stuck

describe = lambda signum, ended: ("stuck", 7)
if sys.argv[1] == "noted":
    with StopRequests() as stop, told_if_stuck(describe, grace=0.3):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1.2)
    print("went on", stop.signum)
else:
    try:
        with stop_signals_raise(), told_if_stuck(describe, grace=0.3):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            finally:
                time.sleep(1.2)
    except StopSignal as e:
        print("went on", e.signum)
"""


@pytest.mark.parametrize("how", ["noted", "slow way out"])
def test_a_stop_that_the_main_thread_took_is_left_to_it_past_the_grace(how):
    """The watch acted whenever the block had not ended within the grace after the signal, although the main
    thread's handler had taken it (its own docstring: a signal that the handler has not taken): the process ended
    with the line of one stuck in the rendezvous (``describe``'s) instead of going on."""
    out = _python(TAKEN, how, timeout=60)
    assert (out.returncode, out.stdout, out.stderr) == (0, "went on 15\n", "")


DESCRIBE_FAILS = """
import os, signal, time
from rlhf_zoo.signals import told_if_stuck

def describe(signum, ended):
    raise PermissionError(13, "Permission denied", "runs/x/checkpoint")

signal.signal(signal.SIGTERM, lambda *args: time.sleep(60))  # a handler that does not get to run, as it were
with told_if_stuck(describe, grace=0.3):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)
"""


def test_a_watch_whose_line_fails_still_ends_the_stuck_process():
    """``describe`` raised (its run directory unreadable, say): the watching thread died with a traceback and the
    process stayed stuck (until torchrun's SIGKILL, 30 s later). It ends with the plain stop's line and code."""
    started = time.monotonic()
    out = _python(DESCRIBE_FAILS, timeout=15)
    assert out.returncode == 143, out.stderr
    assert out.stderr.startswith("rlhf-zoo: interrupted (SIGTERM;") and "Permission denied" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and time.monotonic() - started < 10, out.stderr


def test_an_arrival_that_the_watch_noted_serves_one_stop_only(monkeypatch):
    """The watch notes which processes had ended when a SIGTERM came, for the handler that takes it; a later
    SIGTERM that no watch saw come is looked at as things are when its handler runs, not given the old note."""
    now = [[2]]
    monkeypatch.setattr(signals, "ended_processes", lambda: now[0])
    for noted in ([1], [3]):
        signals._noted(noted)
        assert signals._ended_when_it_came() == noted
        assert signals._ended_when_it_came() == [2]


def test_only_a_sigterm_is_looked_at_for_processes_that_ended(monkeypatch):
    """Under torchrun a SIGTERM may be the launcher's stop after a lost process; a Ctrl-C is always the user's:
    its ``ended`` is None (not known), even where a process of the launch has ended."""
    monkeypatch.setattr(signals, "ended_processes", lambda: [1])
    signals._ended_when_it_came()  # a note that an earlier test's watch left untaken is not this stop's
    for signum, ended in ((signal.SIGINT, None), (signal.SIGTERM, [1])):
        with pytest.raises(signals.StopSignal) as caught, signals.stop_signals_raise():
            os.kill(os.getpid(), signum)
            time.sleep(0.01)
        assert (caught.value.signum, caught.value.ended) == (signum, ended)
        with signals.StopRequests() as stop:
            os.kill(os.getpid(), signum)
            time.sleep(0.01)
        assert (stop.signum, stop.ended) == (signum, ended)


def test_a_forced_stop_carries_the_second_signal():
    """SIGTERM, then Ctrl-C before the step ends: the command stops at once with Ctrl-C's code (130)."""
    with pytest.raises(signals.ForcedStop) as caught, signals.StopRequests() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
    assert stop.signum == signal.SIGTERM
    assert caught.value.signum == signal.SIGINT and signals.stop_exit_code(caught.value) == 130


def test_an_ignored_signal_stays_ignored_within_the_watch():
    """A command started in the background of a script (``cmd &``) ignores SIGINT: the watch leaves it ignored,
    rather than putting in a handler that calls the integer SIG_IGN."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with signals.told_if_stuck(lambda signum, ended: ("stuck", 7), grace=0.1):
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_handler_put_in_within_the_watch_stays_after_it():
    """Code within the block that installs its own handler keeps it: the block puts back only its own wrapper."""

    def outer(signum, frame):
        pass

    def mine(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, outer)
    try:
        with signals.told_if_stuck(lambda signum, ended: ("stuck", 7), grace=0.1):
            assert signal.getsignal(signal.SIGTERM) is not outer  # wrapped, to note when it is taken
        assert signal.getsignal(signal.SIGTERM) is outer
        with signals.told_if_stuck(lambda signum, ended: ("stuck", 7), grace=0.1):
            signal.signal(signal.SIGTERM, mine)
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


def test_the_noting_watch_puts_back_the_wake_up_descriptor_of_before(monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    with signals.stop_signals_raise(), signals.arrivals_noted():
        watching = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(watching)
    assert watching != -1 and signal.set_wakeup_fd(-1) == -1


# A first SIGTERM that the handler takes (it only notes the stop), then a second that it cannot take (the main thread
# now waits in a call that Python cannot interrupt: a handler that sleeps stands for it).
TAKEN_THEN_STUCK = """
import os, signal, time
from rlhf_zoo.signals import told_if_stuck

calls = []
signal.signal(signal.SIGTERM, lambda *args: calls.append(1) if not calls else time.sleep(60))
with told_if_stuck(lambda signum, ended: (f"stuck: {signal.Signals(signum).name}", 7), grace=0.3):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)
"""


def test_a_second_stop_that_is_not_taken_ends_the_process_after_a_first_that_was():
    """The watch counts the signals taken before each one comes: a first stop that was taken does not make a
    later one that the main thread cannot take count as taken."""
    out = _python(TAKEN_THEN_STUCK, timeout=30)
    assert (out.returncode, out.stderr) == (7, "stuck: SIGTERM\n")


# As STUCK, with a process of the launch that has ended (ended_processes made to say so) and the signal of argv[1].
STUCK_AFTER_A_LOSS = """
import os, signal, sys, time
from rlhf_zoo import signals

signals.ended_processes = lambda: [1]
signum = signal.Signals[sys.argv[1]]
signal.signal(signum, lambda *args: time.sleep(60))
with signals.told_if_stuck(lambda s, ended: (f"stuck: {signal.Signals(s).name} {ended}", 7), grace=0.3):
    os.kill(os.getpid(), signum)
    time.sleep(60)
"""


@pytest.mark.parametrize(("name", "ended"), [("SIGTERM", "[1]"), ("SIGINT", "None")])
def test_the_watch_tells_which_processes_had_ended_for_a_sigterm_only(name, ended):
    """A SIGTERM that a stuck process cannot take may be the launcher's stop after a lost process: the line is told
    which had ended. A Ctrl-C is the user's: not looked at (None), whatever has ended."""
    out = _python(STUCK_AFTER_A_LOSS, name, timeout=30)
    assert (out.returncode, out.stderr) == (7, f"stuck: {name} {ended}\n")
