"""Stop requests: Ctrl-C (SIGINT) and SIGTERM end a training run at the next step boundary.

Schedulers (and ``timeout``) send SIGTERM before they kill a job; users press Ctrl-C. Both ask the
run to stop: the step in progress finishes (so the weights, optimiser and counters belong to one
completed step), a checkpoint is written, and the command exits with 128 + the signal number
(130 for SIGINT, 143 for SIGTERM) and a one-line message naming ``resume=true``. A second signal
while the step finishes stops at once, without a checkpoint (the last periodic one remains).

A bench's worker processes (:mod:`rlhf_zoo.bench.runner`) call :func:`repeats_force` with False: the
bench forwards its own stop to them, and a scheduler may signal every process of a job as well, so a
worker that hears twice still finishes its step and writes its checkpoint. Forcing is then the
bench's business (a second stop of the bench kills its workers). So does a process under torchrun (or
``accelerate launch``, which runs it): the launcher passes its stop on to every worker, which a scheduler
(Slurm's ``scancel``, a preemption) may signal as well, and kills its workers itself 30 s after its stop.

Outside training, :func:`stop_signals_raise` makes SIGTERM raise :class:`StopSignal` (a
``KeyboardInterrupt``, as Ctrl-C raises one), so a command that waits on other processes can
clean up for either signal.

torchrun also sends SIGTERM to every process of its launch once one of them has ended (killed, out of
memory, or failed with its own error): that stop is not the user's. A SIGTERM under torchrun therefore
notes which of the launch's processes on this machine had already ended when it came
(:func:`ended_processes`, :attr:`StopSignal.ended`): none when the user stopped the launch (the launcher
passes its stop on to processes that are all still running), the lost one otherwise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_repeats_force = True  # a second signal during a step stops at once (False in bench workers)


def repeats_force(flag: bool) -> None:
    """Whether a second stop signal during a step stops at once without a checkpoint (the default)."""
    global _repeats_force
    _repeats_force = flag


def _forced_by_repeats() -> bool:
    """Whether a second stop signal forces a stop: not in a bench worker, nor under torchrun, whose launcher
    (``TORCHELASTIC_RUN_ID`` in its workers' environment) passes on the stop that a scheduler may also send
    to every worker: a worker hears it twice."""
    return _repeats_force and "TORCHELASTIC_RUN_ID" not in os.environ


class StopSignal(KeyboardInterrupt):
    """SIGTERM (or SIGINT) received where :func:`stop_signals_raise` is active; ``signum`` says which.

    ``ended``: for a SIGTERM under torchrun, the ranks of the launch's processes on this machine that had
    already ended when it came (:func:`ended_processes`): not empty, the SIGTERM is the launcher's stop after a
    lost process, not the user's. None: not known (another signal, no launch, not Linux)."""

    def __init__(self, signum: int, ended: list[int] | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.ended = ended

    def __reduce__(self) -> tuple[Any, ...]:  # rebuilt from its arguments (a bench worker returns it)
        return (type(self), (self.signum, self.ended))


def ended_processes(env: Mapping[str, str] | None = None, proc: str = "/proc") -> list[int] | None:
    """Under torchrun (or ``accelerate launch``, which runs it), the ranks of the other processes of this
    launch on this machine that have ended and been collected by the launcher; None where that cannot be told
    (no torchrun, no ``/proc`` or one whose processes cannot be read, a process started through a wrapper such as
    a shell).

    The launcher (this process's parent) collects a process that ended before it stops the others with SIGTERM,
    so that one is gone from ``/proc`` when the SIGTERM comes. When the user stops the launch, the launcher
    passes the stop on to processes that are all running; one that ends at once is a zombie until the
    launcher collects it, and a rank missing beside a zombie is taken to be that one (not counted). Left open:
    a process that the launcher collected before this one saw the signal (it ran a long call that Python
    cannot interrupt): it counts as ended."""
    env = os.environ if env is None else env
    try:
        rank, local, local_world = int(env["RANK"]), int(env["LOCAL_RANK"]), int(env["LOCAL_WORLD_SIZE"])
        run_id = env["TORCHELASTIC_RUN_ID"]
    except (KeyError, ValueError):
        return None
    launcher, me = os.getppid(), os.getpid()
    root = Path(proc)
    try:
        if _environ(root / str(launcher)).get("TORCHELASTIC_RUN_ID") == run_id:
            return None  # the parent is a wrapper that torchrun started (a shell), not the launcher
        running, zombies = set(), 0
        for entry in root.iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                stat = (entry / "stat").read_text()
                state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
                if int(ppid) != launcher:
                    continue
                if state in "ZX":
                    zombies += 1
                    continue
                theirs = _environ(entry)
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue  # gone meanwhile
            if theirs.get("TORCHELASTIC_RUN_ID") == run_id and theirs.get("RANK", "").isdigit():
                running.add(int(theirs["RANK"]))
    except OSError:
        return None
    missing = sorted(set(range(rank - local, rank - local + local_world)) - running - {rank})
    return missing if len(missing) > zombies else []


class _Arrival:
    """What a watching thread (:func:`arrivals_noted`, :func:`told_if_stuck`) saw when the last SIGTERM came:
    ``ended`` (:func:`ended_processes`), and ``seen``, counting them; ``used``: the count a handler last took."""

    seen = 0
    used = 0
    ended: list[int] | None = None


def _noted(ended: list[int] | None) -> list[int] | None:
    _Arrival.ended = ended
    _Arrival.seen += 1  # after ended: a handler that sees the count sees its value
    return ended


def _ended_when_it_came() -> list[int] | None:
    """:func:`ended_processes` for the SIGTERM that a handler takes now: as a watching thread saw it when the signal
    came, where one did and no handler has used it yet, else as it is now. The handler may run long after the
    signal: the main thread was in a call that Python cannot interrupt (a model's load, a collective), and a
    process that ended on the user's stop meanwhile, collected by the launcher, would count as lost."""
    seen = _Arrival.seen
    if seen != _Arrival.used:
        _Arrival.used = seen
        return _Arrival.ended
    return ended_processes()


@contextlib.contextmanager
def arrivals_noted() -> Iterator[None]:
    """Under torchrun, within it, a thread looks at which processes of the launch had ended
    (:func:`ended_processes`) as soon as a SIGTERM comes, for the handler that takes it (:func:`_ended_when_it_came`),
    whenever the main thread gets to run it. Only for a signal that has a Python handler (its wake-up byte, of
    :func:`signal.set_wakeup_fd`, wakes the thread); nothing outside the main thread or without torchrun."""
    if threading.current_thread() is not threading.main_thread() or "TORCHELASTIC_RUN_ID" not in os.environ:
        yield
        return
    import select

    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if select.select([read], [], [], 0.5)[0] and signal.SIGTERM in os.read(read, 64) and not done.is_set():
                _noted(ended_processes())

    read, write = os.pipe()
    previous_fd: int | None = None
    watcher: threading.Thread | None = None
    try:  # everything inside: a stop signal may raise at any line, and what was set up is then undone
        os.set_blocking(write, False)
        previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        watcher = threading.Thread(target=watch, name="rlhf_zoo-stop-note", daemon=True)
        watcher.start()
        yield
    finally:
        try:
            if previous_fd is not None:
                signal.set_wakeup_fd(previous_fd)
        finally:
            done.set()
            with contextlib.suppress(OSError):
                os.write(write, b"\0")  # wakes the watch at once
            joined = watcher is None
            if watcher is not None:
                with contextlib.suppress(RuntimeError):  # not started: a stop raised in start(); it ends on `done`
                    watcher.join()
                    joined = True
            if joined:
                os.close(read)
                os.close(write)


# The cause named when the launcher's SIGTERM, not a collective, told a process that another one had ended.
LAUNCHER_STOP = "SIGTERM from the launcher, which stops every process once one has ended"


def lost_processes(rank: int, world: int, lost: list[int] | None = None) -> str:
    """Who was lost, as the line says it: with 2 processes the other (its rank), else the ranks in ``lost``
    (those known to have ended), else "another process"."""
    if world == 2:
        return f"the other process of this run (rank {1 - rank})"
    if lost and len(lost) == 1:
        return f"another process of this run (rank {lost[0]})"
    if lost:
        return f"other processes of this run (ranks {', '.join(map(str, lost))})"
    return "another process of this run"


Handler = Callable[[int, FrameType | None], Any]


@contextlib.contextmanager
def told_if_stuck(describe: Callable[[int, list[int] | None], tuple[str, int]], grace: float = 3.0) -> Iterator[None]:
    """Within it, a SIGINT or SIGTERM that the main thread's Python handler has not taken ``grace`` seconds after
    it came (the main thread waits in a call that Python cannot interrupt, such as torch's rendezvous of the
    process group, which waits for every process to join) ends the process from a watching thread: it prints the
    line of ``describe(signum, ended)`` (``ended``: as :attr:`StopSignal.ended`, looked at when the signal came)
    on stderr and exits with its code. Only for a signal that has a Python handler (the signal's wake-up byte, of
    :func:`signal.set_wakeup_fd`, tells the thread that it came). Outside the main thread it does nothing.

    A signal is taken once its handler has returned or raised (the handlers in place when the block starts are
    wrapped to note it): one that the main thread took and that did not end the block (a second signal while the
    block unwinds from the first, a handler that only notes the stop) is left to it.

    torchrun stops every process with SIGTERM once one has ended, and kills it 30 s later: a process that waited
    for the lost one to join was killed then, silently."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    watch = _StuckWatch(describe, grace)
    try:  # everything inside: a stop signal may raise at any line, and what was set up is then undone
        watch.start()
        yield
    finally:
        watch.stop()


class _StuckWatch:
    """The machinery of :func:`told_if_stuck`: the wrapped handlers, the wake-up pipe and the watching thread."""

    def __init__(self, describe: Callable[[int, list[int] | None], tuple[str, int]], grace: float):
        self.describe, self.grace = describe, grace
        self.taken: list[int] = []  # the signals whose handler has run to its end (returned or raised)
        self.done = threading.Event()
        self.wrapped: dict[int, tuple[Handler, Handler]] = {}  # signal → (its handler, the wrapper in its place)
        self.previous_fd: int | None = None
        self.watcher: threading.Thread | None = None
        self.read, self.write = os.pipe()

    def start(self) -> None:
        """Wrap the handlers in place, route the signals' wake-up bytes to the pipe and start the watch. A stop
        signal may raise at any line: :meth:`stop` undoes what was done."""
        os.set_blocking(self.write, False)
        for s in SIGNALS:
            handler = signal.getsignal(s)
            if callable(handler):
                self.wrapped[s] = (handler, self._taking(handler))
                signal.signal(s, self.wrapped[s][1])
        self.previous_fd = signal.set_wakeup_fd(self.write, warn_on_full_buffer=False)
        self.watcher = threading.Thread(target=self._watch, name="rlhf_zoo-stop-watch", daemon=True)
        self.watcher.start()

    def _taking(self, handler: Handler) -> Handler:
        def take(signum: int, frame: FrameType | None) -> Any:
            try:
                return handler(signum, frame)
            finally:
                self.taken.append(signum)

        return take

    def _watch(self) -> None:
        import select
        import time

        while not self.done.is_set():
            seen = len(self.taken)  # before the byte is written: a handler that runs after it counts
            if not select.select([self.read], [], [], 0.2)[0]:
                continue
            came = [s for s in os.read(self.read, 64) if s in SIGNALS]
            if not came:
                continue
            ended = _noted(ended_processes()) if came[0] == signal.SIGTERM else None
            deadline = time.monotonic() + self.grace
            while len(self.taken) == seen and not self.done.is_set() and time.monotonic() < deadline:
                self.done.wait(0.05)
            if len(self.taken) > seen or self.done.is_set():
                continue  # the main thread took it (or the block ended)
            self._end(came[0], ended)

    def _end(self, signum: int, ended: list[int] | None) -> None:
        """End the process with ``describe``'s line and code (the plain stop's if it fails)."""
        from rlhf_zoo.errors import say

        try:
            line, code = self.describe(signum, ended)
        except Exception as e:  # the process must still end
            name = signal.Signals(signum).name
            line, code = f"rlhf-zoo: interrupted ({name}; {type(e).__name__}: {e})", 128 + signum
        say(line)
        os._exit(code)

    def stop(self) -> None:
        """Put back the wake-up fd and the handlers, then end the watch and close the pipe."""
        try:  # a second signal may raise here too: the watch still ends
            if self.previous_fd is not None:  # first: no more wake-up bytes for the watch
                signal.set_wakeup_fd(self.previous_fd)
            for s, (handler, take) in self.wrapped.items():
                if signal.getsignal(s) is take:  # not one that the block installed meanwhile
                    signal.signal(s, handler)
        finally:
            self.done.set()
            joined = self.watcher is None
            if self.watcher is not None:
                with contextlib.suppress(RuntimeError):  # not started: a stop raised in start(); it ends on `done`
                    self.watcher.join()
                    joined = True
            if joined:  # else left open: the watch may still look at them
                os.close(self.read)
                os.close(self.write)


def _environ(process: Path) -> dict[str, str]:
    """A process's environment as it was started (``/proc/PID/environ``)."""
    raw = (process / "environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def stop_exit_code(e: BaseException) -> int:
    """A stopped command's exit status: 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM), from
    the ``signum`` that :class:`StopSignal` and ``rlhf_zoo.train.Interrupted`` carry (SIGINT for a plain
    ``KeyboardInterrupt``)."""
    return 128 + int(getattr(e, "signum", signal.SIGINT))


@contextlib.contextmanager
def handling(handler: Callable[[int, FrameType | None], Any]) -> Iterator[None]:
    """Within it, ``handler`` receives SIGINT and SIGTERM; the previous handlers come back on exit.
    Outside the main thread (where Python cannot install handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _raise(signum: int, frame: FrameType | None) -> None:
    # Looked at now: a process that ends on the user's stop is soon gone too (and may be collected).
    raise StopSignal(signum, _ended_when_it_came() if signum == signal.SIGTERM else None)


def stop_signals_raise() -> contextlib.AbstractContextManager[None]:
    """Within it, SIGINT and SIGTERM raise :class:`StopSignal` (in the main thread)."""
    return handling(_raise)


class ForcedStop(KeyboardInterrupt):
    """A second stop signal arrived before the step in progress finished: stop without a checkpoint.
    ``signum`` is that signal's (the exit status is 128 + it, as for the first)."""

    def __init__(self, signum: int):
        super().__init__(f"{signal.Signals(signum).name} again: stopped without a checkpoint")
        self.signum = signum


class StopRequests:
    """Within ``with StopRequests() as stop:``, SIGINT and SIGTERM set :attr:`signum` instead of
    interrupting; the previous handlers come back on exit. Outside the main thread (where Python
    cannot install handlers) it does nothing and signals act as before. :attr:`ended`: as
    :attr:`StopSignal.ended`, for the first signal."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.ended: list[int] | None = None
        self._handling: contextlib.AbstractContextManager[None] | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            self.ended = _ended_when_it_came() if signum == signal.SIGTERM else None
        elif _forced_by_repeats():
            raise ForcedStop(signum)

    def __enter__(self) -> StopRequests:
        self._handling = handling(self._handle)  # a fresh one each time: a generator context enters once
        self._handling.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handling is not None:
            self._handling.__exit__(exc_type, exc, tb)
            self._handling = None
