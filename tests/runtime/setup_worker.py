"""Run ``rlhf-zoo`` (:func:`rlhf_zoo.cli.main`) in one process of a launch, with the run's setup made slow or cut
short where it builds the task (its model and rewards), before the training loop.

python -m torch.distributed.run --nproc_per_node 2 tests/runtime/setup_worker.py train key=value ...

Environment: ``SETUP_KILL_RANK``: that rank kills itself (SIGKILL, as the OOM killer does) as it starts building;
``SETUP_SLEEP``: every other rank first sleeps that many seconds there (a model that loads slowly), after printing
``building (rank R)`` on stderr. ``SETUP_KILL_BEFORE_GROUP``: the rank to kill kills itself before it joins the
process group instead, that many seconds after another process went to join it (which then waits for it there).
``SETUP_BUSY_RANK``: that rank instead spends ``SETUP_BUSY`` seconds there in a call that Python cannot interrupt
(stop signals blocked in the main thread around libc's ``sleep``, as a model's load or a long tensor operation: the
signal's handler runs once it returns). Each process writes the exit code that ``main`` returns to
``$SETUP_EXIT_DIR/exit_rank<R>.txt`` (none: the process ended otherwise).
"""

import os
import signal
import sys
import time
from pathlib import Path

import rlhf_zoo.train
from rlhf_zoo.cli import main

build_task = rlhf_zoo.train.build_task
rank = int(os.environ["RANK"])


def slow_or_lost_build_task(*args, **kwargs):
    if str(rank) == os.environ.get("SETUP_KILL_RANK"):
        os.kill(os.getpid(), signal.SIGKILL)
    print(f"building (rank {rank})", file=sys.stderr, flush=True)
    if str(rank) == os.environ.get("SETUP_BUSY_RANK"):
        import ctypes

        stops = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        ctypes.CDLL(None).sleep(int(os.environ["SETUP_BUSY"]))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
    else:
        time.sleep(float(os.environ.get("SETUP_SLEEP", "0")))
    return build_task(*args, **kwargs)


runtime_for = rlhf_zoo.train.runtime_for


def lost_before_the_group(cfg):
    joining = Path(os.environ["SETUP_EXIT_DIR"], "joining")
    if str(rank) == os.environ.get("SETUP_KILL_RANK"):
        deadline = time.monotonic() + 120
        while not joining.exists() and time.monotonic() < deadline:  # another process goes to the group first
            time.sleep(0.05)
        time.sleep(float(os.environ["SETUP_KILL_BEFORE_GROUP"]))
        os.kill(os.getpid(), signal.SIGKILL)
    joining.touch()
    return runtime_for(cfg)


rlhf_zoo.train.build_task = slow_or_lost_build_task
if "SETUP_KILL_BEFORE_GROUP" in os.environ:
    rlhf_zoo.train.runtime_for = lost_before_the_group
code = main(sys.argv[1:])
Path(os.environ["SETUP_EXIT_DIR"], f"exit_rank{rank}.txt").write_text(str(code))
raise SystemExit(code)
