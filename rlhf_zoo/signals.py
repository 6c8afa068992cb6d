"""Stop requests: Ctrl-C (SIGINT) and SIGTERM end a training run at the next step boundary.

Schedulers (and ``timeout``) send SIGTERM before they kill a job; users press Ctrl-C. Both ask the
run to stop: the step in progress finishes (so the weights, optimiser and counters belong to one
completed step), a checkpoint is written, and the command exits with 128 + the signal number
(130 for SIGINT, 143 for SIGTERM) and a one-line message naming ``resume=true``. A second signal
while the step finishes stops at once, without a checkpoint (the last periodic one remains).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ForcedStop(KeyboardInterrupt):
    """A second stop signal arrived before the step in progress finished: stop without a checkpoint."""


class StopRequests:
    """Within ``with StopRequests() as stop:``, SIGINT and SIGTERM set :attr:`signum` instead of
    interrupting; the previous handlers come back on exit. Outside the main thread (where Python
    cannot install handlers) it does nothing and signals act as before."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise ForcedStop(f"{signal.Signals(signum).name} again: stopped without a checkpoint")
        self.signum = signum

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
