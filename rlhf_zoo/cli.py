"""The command line: ``rlhf-zoo COMMAND key=value ...`` (also ``python -m rlhf_zoo``).

Commands:
    train    train one algorithm on one task:  rlhf-zoo train algo=bond task=exact seed=0
             or sweep (:mod:`rlhf_zoo.sweep`):    rlhf-zoo train algo=bond,jbond seed=0,1 out=runs/sw
    prepare  build the offline defaults (gold reward model, converted SmolLM2, zoo-lm) once
    list     the registered algorithms, presets, tasks and rewards
    fields   every setting with its default and doc:  rlhf-zoo fields algo=bond
    profile  seconds per step split by phase, and peak memory, for each objective
    bench    run a benchmark suite and render docs/benchmarks/<suite>.md:  rlhf-zoo bench suite=exact
             (or a suite file of your own: rlhf-zoo bench suite=examples/suite.yaml out=runs/bench)
    compare  finished runs side by side:           rlhf-zoo compare runs/ out=cmp
    export   a trained LM policy as a Hugging Face model folder:  rlhf-zoo export RUN_DIR out=DIR

Bad input ends with a one-line error on stderr and exit code 2, before any model loads where
possible; Ctrl-C (SIGINT) or SIGTERM finishes the step, saves a checkpoint and exits with code 130
or 143 (:mod:`rlhf_zoo.signals`; one that comes while torch is still imported is told once it is). Under
a launch of several processes, a process whose collective fails because another process is gone (killed
by the OOM killer, say), or that torchrun stops with SIGTERM after another process ended while the run was
starting (loading its model: :attr:`rlhf_zoo.signals.StopSignal.ended` tells that SIGTERM from the
user's), ends with one line naming the lost process and the checkpoint that ``resume=true`` continues
from (or that the run directory holds none), and exit code 1 (:class:`rlhf_zoo.train.LostProcess`;
torchrun's SIGTERM is ignored while it exits). A failed allocation (``algo.n`` or a batch too large for
the memory) is one line too, with exit code 1.
"""

from __future__ import annotations

import errno
import json
import sys

from rlhf_zoo import version
from rlhf_zoo.errors import UserError, printable, say

USAGE = """usage: rlhf-zoo COMMAND [key=value ...]

commands:
  train     rlhf-zoo train algo=NAME task=NAME seed=S run_dir=PATH [algo.beta=0.5 train.steps=200 ...]
            rlhf-zoo train ... run_dir=PATH resume=true   (continue from its last checkpoint, with its own settings)
            rlhf-zoo train config=exp.yaml [key=value ...]   (an experiment file; the command line wins)
            rlhf-zoo train algo=bond,jbond seed=0,1,2 algo.beta=0.1,0.5 [out=DIR]   (a sweep: every combination;
                           [a,b] is one list value, 'a,b' one string; or a sweep: mapping in the config file)
  prepare   build the offline defaults once (gold reward model, converted SmolLM2, zoo-lm)
            rlhf-zoo prepare [force=true]   (rebuild the gold reward model and zoo-lm)
  list      show algorithms, presets, tasks and rewards
  fields    every setting with its default and one-line doc:
            rlhf-zoo fields algo=NAME | task=NAME | model | train | run  [task=NAME config=FILE ...]
  profile   seconds per step (generate / reward / log-probs / update) and peak memory per objective:
            rlhf-zoo profile task=sentiment train.batch_prompts=16 model.max_new_tokens=24 [algos=a,b,sft steps=2]
                           [warmup=1] [out=FILE.json]   (each objective in its own process; sft: the baseline)
  bench     run a suite's unfinished points, then render docs/benchmarks/<suite>.md and its plots:
            rlhf-zoo bench suite=exact|quick|lm|full|demo|gpu-check|FILE.yaml [out=bench_runs] [seeds=0,1] [only=TAG,..]
                           [jobs=N] [render_only=true] [render=false] [docs=docs/benchmarks] [records=DIR]
                           [keep_checkpoints=true] [progress=false] [redo=true] [key=value for every run ...]
  compare   finished runs side by side, mean ± 95 % interval over seeds, as Markdown (and CSV and plots):
            rlhf-zoo compare RUN_DIR_OR_FOLDER ... [out=DIR]
  export    a language-model run's policy (LoRA merged) as a Hugging Face model folder:
            rlhf-zoo export RUN_DIR out=DIR [force=true]
"""

SUMMARY_KEYS = (
    "reward/proxy",
    "reward/gold",
    "kl/exact",
    "kl/to_bon",
    "kl/from_bon",
    "bon/kl_ref",
    "kl/to_optimal",
    "frontier/gap",
    "win_rate/gold",
)


def _print_summary(summary: dict) -> None:
    shown = {k: summary[k] for k in ("algo", "task", "steps", *SUMMARY_KEYS) if k in summary}
    print(json.dumps(shown, indent=2))


def cmd_train(args: list[str]) -> int:
    from rlhf_zoo.config import load_config
    from rlhf_zoo.sweep import plan_sweep, run

    sweep = plan_sweep(args)
    if sweep is not None:  # a key with several values: every combination, through the bench's runner
        return run(sweep)
    cfg = load_config(args)
    from rlhf_zoo.train import run

    summary = run(cfg, argv=["rlhf-zoo", "train", *args])
    from rlhf_zoo.runtime import launched_rank

    if launched_rank() == 0:  # under a launch every process returns the same summary: print it once
        _print_summary(summary)
        print(f"run directory: {cfg.run_dir}")
    return 0


def cmd_list(args: list[str]) -> int:
    from rlhf_zoo.algorithms.registry import known_algorithms
    from rlhf_zoo.config import presets
    from rlhf_zoo.tasks.registry import TASKS

    if args:
        raise UserError(
            f"list: takes no argument, got {args[0]!r}; `rlhf-zoo list` shows the algorithms, presets, tasks and "
            "rewards, `rlhf-zoo fields algo=NAME | task=NAME | model | train | run` the settings"
        )
    print("algorithms:", ", ".join(known_algorithms()))
    print("presets:   ", ", ".join(presets("algo")))
    print("tasks:     ", ", ".join(sorted(TASKS)))
    from rlhf_zoo.rewards.registry import known_rewards

    print("rewards:   ", ", ".join(known_rewards()))
    print("settings:   rlhf-zoo fields algo=NAME | task=NAME | model | train | run")
    return 0


def cmd_fields(args: list[str]) -> int:
    from rlhf_zoo.fields import describe

    print(describe(args))
    return 0


def cmd_prepare(args: list[str]) -> int:
    from rlhf_zoo.options import split_options
    from rlhf_zoo.prepare import PrepareOptions, prepare

    opts, unknown = split_options(args, PrepareOptions, "prepare")
    if unknown:
        raise UserError(f"prepare: unknown option {unknown[0].partition('=')[0]!r}; known: force=true|false")
    prepare(force=opts.force)
    return 0


def cmd_profile(args: list[str]) -> int:
    from rlhf_zoo.profile import main as profile_main

    return profile_main(args)


def cmd_bench(args: list[str]) -> int:
    from rlhf_zoo.bench.command import main as bench_main

    return bench_main(args)


def cmd_export(args: list[str]) -> int:
    from rlhf_zoo.export import main as export_main

    return export_main(args)


def cmd_compare(args: list[str]) -> int:
    from rlhf_zoo.compare import main as compare_main

    return compare_main(args)


COMMANDS = {
    "train": cmd_train,
    "list": cmd_list,
    "fields": cmd_fields,
    "prepare": cmd_prepare,
    "profile": cmd_profile,
    "bench": cmd_bench,
    "compare": cmd_compare,
    "export": cmd_export,
}


HELP_FLAGS = ("-h", "--help", "help")
# A full disk, a quota, a read-only file system: the user's to fix, so one line, not a traceback.
UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def command_usage(cmd: str) -> str:
    """The usage lines of one command (its block of :data:`USAGE`)."""
    lines, block = USAGE.splitlines(), []
    for line in lines:
        if line.startswith(f"  {cmd} "):
            block.append(line)
        elif block and line.startswith("   "):
            block.append(line)
        elif block:
            break
    return "usage:\n" + "\n".join(block) + "\n\nevery command: rlhf-zoo --help; rlhf-zoo --version"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in HELP_FLAGS:
        print(USAGE)
        return 0 if argv else 2
    if argv[0] in ("--version", "-V"):
        print(f"rlhf_zoo {version()}")
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        say(f"rlhf-zoo: error: unknown command {cmd!r}; known: {', '.join(COMMANDS)}")
        return 2
    if any(a in HELP_FLAGS[:2] for a in rest):
        print(command_usage(cmd))
        return 0
    from rlhf_zoo.signals import arrivals_noted

    # Under torchrun, which processes of the launch had ended is looked at when a SIGTERM comes, not when the main
    # thread takes it (after a call that Python cannot interrupt, by when a process that the user's stop ended may
    # be gone too, and taken for a lost one).
    with arrivals_noted():
        return _command(cmd, rest)


def _command(cmd: str, rest: list[str]) -> int:
    from rlhf_zoo.signals import StopRequests, StopSignal, stop_signals_raise

    # A stop while torch loads (a launched process's first seconds) is noted and told once it has loaded; its
    # default action ended the process silently, and an exception raised inside an import can break it (numpy's
    # "cannot load module more than once per process") or hang the process's exit. A second Ctrl-C stops at once.
    try:
        with StopRequests() as starting:
            from rlhf_zoo.runtime import communication_failure, end_process_group, out_of_memory
            from rlhf_zoo.train import Interrupted, LostProcess
    except KeyboardInterrupt as e:
        return _stopped(e)
    if starting.signum is not None:
        return _stopped(StopSignal(starting.signum, starting.ended))
    try:
        # SIGTERM outside training (a model loading, between a sweep's points, a bench rendering) stops the
        # command as Ctrl-C does, so that its own message (how to continue) is printed and what it was
        # building is cleaned up; the default action would kill it silently. Training has its own handler.
        with stop_signals_raise():
            code = COMMANDS[cmd](rest)
        end_process_group()  # under a launch: every process finished the command
        return code
    except Interrupted as e:
        if not e.forced:  # every process stopped at the same step and saved the checkpoint together
            end_process_group()  # (a second signal stops its own process at once: the others are elsewhere)
        say(f"rlhf-zoo: {printable(str(e))}")
        return e.exit_code
    except UserError as e:  # one line whatever the user's values hold (a newline, an escape character)
        say(f"rlhf-zoo: error: {printable(str(e))}")
        return 2
    except BrokenPipeError:  # the reader of the output is gone (rlhf-zoo fields | head): no traceback
        return _output_closed()
    except OSError as e:
        if e.errno not in UNWRITABLE:
            raise
        what = printable(str(e.filename or "a file"))
        say(f"rlhf-zoo: error: cannot write {what} ({e.strerror})")
        return 2
    except KeyboardInterrupt as e:
        lost = _lost_before(e)
        if isinstance(lost, LostProcess):  # torchrun's SIGTERM came while the lost process's error went up
            return _lost_process_ends(f"rlhf-zoo: error: {printable(str(lost))}", lost.exit_code)
        if lost is not None:
            return _lost_process_ends(_lost_line(getattr(e, "ended", None), lost), 1)
        return _stopped(e)
    except LostProcess as e:  # not a traceback of gloo's: which process, and the checkpoint to resume from
        return _lost_process_ends(f"rlhf-zoo: error: {printable(str(e))}", e.exit_code)
    except Exception as e:  # the same outside training (the command's last barrier); any other error: its traceback
        if (asked := out_of_memory(e)) is not None:  # too large a batch or algo.n: what to lower, not a traceback
            say(
                f"rlhf-zoo: error: out of memory ({asked}): lower the batch's size (train.batch_prompts, samples per "
                "prompt such as algo.n or algo.samples, model.max_new_tokens, model.logprob_batch_size)"
            )
            return 1
        if (cause := communication_failure(e)) is None:
            raise
        return _lost_process_ends(_lost_line(None, cause), 1)


def _output_closed() -> int:
    """The exit of a command whose standard output's reader closed it: what is still buffered goes nowhere (Python's
    flush at exit would raise again), and the status is a shell's for a pipe's writer that SIGPIPE ended (141)."""
    import os
    import signal

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (a captured stdout)
        pass
    return 128 + signal.SIGPIPE


def _stopped(e: KeyboardInterrupt) -> int:
    """A stop signal's line and exit code (130 for Ctrl-C, 143 for SIGTERM); torchrun's SIGTERM after another
    process of the launch ended (:attr:`rlhf_zoo.signals.StopSignal.ended`) is not the user's: it is told so,
    with exit code 1. Imports nothing heavy: it may end a process that was still importing torch."""
    from rlhf_zoo.signals import LAUNCHER_STOP, stop_exit_code

    if getattr(e, "ended", None):
        return _lost_process_ends(_lost_line(e.ended, LAUNCHER_STOP), 1)
    say(f"rlhf-zoo: interrupted ({'SIGTERM' if stop_exit_code(e) == 143 else 'SIGINT'})")
    return stop_exit_code(e)


def _lost_line(ended: list[int] | None, cause: str) -> str:
    """The line of a process that stops because another of its launch is gone, outside a run's training (before
    the run was set up, or the command's last barrier): no run directory to name."""
    import os

    from rlhf_zoo.signals import lost_processes

    # the launch's RANK and WORLD_SIZE, as rlhf_zoo.runtime reads them (not imported: torch may still be loading)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    who = lost_processes(rank, world, ended) if world > 1 else "another process of this run"
    this = f"this one (rank {rank})" if world > 1 else "this one"
    return (
        f"rlhf-zoo: error: {who} stopped (killed, out of memory?, or failed with its own error above), so {this} "
        f"stops too ({printable(cause)}); a training run continues from its last checkpoint with resume=true"
    )


def _lost_before(e: BaseException):
    """What ``e`` (a stop signal) interrupted on its way up: a LostProcess, or a communication failure's cause
    (str); None if neither. torchrun's SIGTERM after a lost process may come while that error goes up."""
    from rlhf_zoo.runtime import communication_failure
    from rlhf_zoo.train import LostProcess

    seen = set()
    while (e := e.__context__) is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, LostProcess):
            return e
        if (cause := communication_failure(e)) is not None:
            return cause
    return None


def _lost_process_ends(line: str, code: int) -> int:
    """Print the line of a process that stops because another process of its launch is gone, and return its exit
    code. Under a launch, stop signals are ignored from here on: torchrun sends SIGTERM to every process once one
    has ended, and that SIGTERM ended this one while it printed or exited (exit code -15 instead of ``code``)."""
    import os
    import signal

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a launch (rlhf_zoo.runtime.launched_world_size)
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
    say(line)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
