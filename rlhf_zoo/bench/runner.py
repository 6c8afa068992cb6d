"""Run a suite's points, each into ``<out>/<suite>/<point-id>/``, never recomputing a finished one.

A point is *finished* when it has a record whose arguments make the point's run (the same arguments, in
any order, but for the settings that cannot change its results: :data:`~rlhf_zoo.config.NO_EFFECT`,
:func:`~rlhf_zoo.bench.records.same_run`): in the records folder
(``<records>/<suite>/<point-id>.json``, committed to the repository, see
:mod:`rlhf_zoo.bench.records`) or in its run directory (``record.json``). A finished point is never
run again, whatever code version made its record (the renderer refuses to pool records of different
code versions; :attr:`BenchReport.other_code` counts them so the command can say so). Records are
written atomically, and only after the run returned: first in the run directory, then, compact, in
the records folder; a point whose record is only in its run directory is copied to the records
folder (*backfilled*) instead of being run. So an interrupted bench resumes where it stopped by
running the same command again, and a suite can be run in pieces (seeds, sweeps, machines) that
share one records folder. A point directory without a record is an unfinished run: it is deleted and
redone, except in a *resumable* suite (the language-model ones), where a run that left a checkpoint
continues from it with ``resume=true``. A record whose arguments make another run (the suite
definition or the extra overrides changed) is stale: the bench refuses before anything runs or is deleted
(a finished run of hours is not lost to a changed setting), and with ``redo`` the point is redone and its
records replaced. So is
a record under another id in the point's place on the page (its sweep, value and seed: the id holds the
knob's label and the value as written, ``1`` or ``1.0``), which would otherwise stay beside the point's and
make the page refuse to pool them; when it is the same run it is kept, moved to the point's id.

Every record carries the :func:`rlhf_zoo.bench.version.stamp` of the bench that ran it (code
version, git commit and dirty flag, package version) and its settings (the resolved configuration).

Points run in this process (``jobs=1``) or in ``jobs`` worker processes (spawned, so that each
starts with a clean torch). Stopping a parallel bench (Ctrl-C, or SIGTERM to the bench process or to
its process group) stops its workers' runs at their next step boundary with a checkpoint: the bench
forwards one SIGTERM to each worker and waits; a worker that hears the signal twice (from the
terminal or the scheduler and from the bench) still writes its checkpoint
(:func:`rlhf_zoo.signals.repeats_force`), an idle one starts no further point, and a second stop of
the bench kills the workers, whose last periodic checkpoints remain.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from rlhf_zoo.bench.records import (
    BENCH,
    FORMAT,
    ORACLE,
    RECORD,
    STARTED,
    code_version_of,
    commit_of,
    page_value,
    read_json,
    read_point_record,
    read_record,
    record_path,
    record_settings,
    rounded,
    run_identity,
    same_run,
    setting_diff,
    settings_of,
    suite_records,
    write_json_atomic,
    write_oracle,
    write_point_record,
)
from rlhf_zoo.bench.suites import Point, Suite, expand
from rlhf_zoo.progress import points_bar
from rlhf_zoo.runlog import RunLog, checkpoint_to_resume


@dataclass
class BenchReport:
    """What one bench invocation did."""

    suite: str
    out: Path
    points: int
    skipped: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    redone: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    backfilled: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    records: Path | None = None
    code_version: str = ""
    other_code: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0


def point_dir(out: Path, point: Point | dict[str, Any]) -> Path:
    """A point's run directory (of a :class:`Point`, or of a record: its ``suite`` and ``id``)."""
    if isinstance(point, dict):
        return Path(out) / str(point["suite"]) / str(point["id"])
    return Path(out) / point.suite / point.id


def _slots(memberships: Any, seed: Any) -> list[tuple[str, Any, int]]:
    """The (sweep, value, seed) places on the page that a point's memberships fill (values as the page keys
    them: 1 and 1.0 are one); a Best-of-N pool fills one per n read from it."""
    out = []
    for m in memberships:
        values = m.get("values") if m.get("pool") else [m.get("value")]
        out += [(str(m.get("sweep")), page_value(v), int(seed or 0)) for v in values or []]
    return out


def _same_run_as(rec: dict[str, Any], point: Point) -> bool:
    """Whether the record ``rec`` is of ``point``'s run: the same arguments and, as a pool's arguments do not
    hold its size M, the same M (0 for trained points)."""
    pool = next((m.get("pool") for m in rec.get("memberships", []) if m.get("pool")), 0)
    return same_run(rec.get("args", []), point.args) and pool == point.pool


def _slot_holders(
    suite: str, out: Path, records: Path | None, planned: set[str]
) -> dict[tuple[str, Any, int], list[dict[str, Any]]]:
    """(sweep, value, seed) → the finished records there whose ids no planned point has: those that an edit of the
    suite renamed (another ``knob_label``, ``1.0`` for ``1``) or superseded; more than one where records folders
    merged from two branches hold the point under two earlier ids."""
    holders: dict[tuple[str, Any, int], list[dict[str, Any]]] = {}
    for rec in suite_records(suite, out, records):
        if rec.get("id") not in planned and "suite" in rec:
            for k in _slots(rec.get("memberships", []), rec.get("seed")):
                holders.setdefault(k, []).append(rec)
    return holders


def _rename(old: dict[str, Any], point: Point, out: Path, records: Path | None) -> None:
    """Keep the finished record ``old`` (the same run as ``point``) as the point's: its run directory and its
    record in the records folder move to the point's id."""
    renamed = {"id": point.id, "label": point.label, "memberships": [dict(m) for m in point.memberships]}
    src, dst = point_dir(out, old), point_dir(out, point)
    run = read_record(src)
    if run is not None:
        src.rename(dst)
        write_json_atomic(dst / RECORD, {**run, **renamed})
    if records is not None:
        write_point_record(records, {**old, **renamed})
        record_path(records, point.suite, str(old["id"])).unlink(missing_ok=True)


def plan(point: Point, d: Path, resumable: bool, stored: dict[str, Any] | None = None) -> str:
    """What to do with a point: ``done`` (a record matches), ``new``, ``resume`` or ``redo``.

    ``stored`` is the point's record in the records folder, if any: it is looked at first. A record matches
    when its arguments make the same run as the point's (:func:`~rlhf_zoo.bench.records.same_run`: in any
    order, whatever the settings without effect on the results); so must a checkpoint's to be resumed from."""
    if stored is not None and same_run(stored.get("args", []), point.args):
        return "done"
    if not d.exists():
        return "new"
    rec = read_record(d)
    if rec is not None:
        return "done" if same_run(rec.get("args", []), point.args) else "redo"
    started = read_json(d / STARTED)
    same = isinstance(started, dict) and same_run(started.get("args", []), point.args)
    if resumable and same and checkpoint_to_resume(d):
        return "resume"
    return "redo"


def _check_not_running(d: Path) -> None:
    """Refuse (a one-line :class:`UserError`) a point directory that a run holds now (its ``.lock``,
    :meth:`rlhf_zoo.runlog.RunLog.lock`): the same bench or sweep started twice on one folder. Without a
    record it looks unfinished, but deleting it to redo the point, or resuming it beside the running one,
    would mix two runs' files (the running one's record would end up with part of its metrics)."""
    from rlhf_zoo.errors import UserError

    try:
        RunLog(d).lock().release()
    except UserError:
        raise UserError(
            f"{d} is in use by another run (this bench or sweep, started twice?): wait for it to finish, or "
            "choose another out="
        ) from None


def _drop_finished_checkpoint(point: Point, d: Path) -> None:
    """Delete the checkpoint of a point that finished in ``d`` (its run directory holds its record), as
    :func:`_train_point` does after the record: a kill between the two (or during the deletion) left it, whole
    or in part, and a finished point is never run again to delete it."""
    if (
        (d / "checkpoint").exists()
        and (rec := read_record(d)) is not None
        and same_run(rec.get("args", []), point.args)
    ):
        shutil.rmtree(d / "checkpoint", ignore_errors=True)


def _memberships_changed(rec: dict[str, Any], point: Point) -> bool:
    """Whether a finished point's record names other sweeps (or other objectives, labels, orders) than the
    point does now: a piece run with ``only=``, or a suite that gained a sweep sharing the point."""

    def norm(ms: Any) -> Any:
        return rounded(json.loads(json.dumps(list(ms))))

    return norm(rec.get("memberships", [])) != norm(point.memberships)


def _head(point: Point, cfg: Any, bench_command: str, stamp: dict[str, Any] | None) -> dict[str, Any]:
    """The keys every record starts with: the point, its settings and the bench's stamp."""
    from rlhf_zoo.bench.version import stamp as current_stamp
    from rlhf_zoo.inputs import input_digests

    settings = settings_of(cfg)
    return {
        "format": FORMAT,
        "suite": point.suite,
        "id": point.id,
        "label": point.label,
        "seed": point.seed,
        "args": list(point.args),
        "settings": settings,
        "inputs": input_digests(settings),  # the user's files it read (check_comparable: no pooling across edits)
        "memberships": [dict(m) for m in point.memberships],
        **(stamp if stamp is not None else current_stamp()),
        "bench_command": bench_command,
    }


def _as_recorded(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as a record read back holds them: through JSON (a tuple is a list) and rounded as a compact
    record is, so that a point's settings compare equal to those of a record of the same run, full or compact."""
    return rounded(json.loads(json.dumps(settings)))


def held_records(out: Path, records: Path | None, p: Point) -> list[dict[str, Any]]:
    """The point's finished records: in the records folder (if any), then in its run directory."""
    stored = read_point_record(record_path(records, p.suite, p.id)) if records is not None else None
    return [r for r in (stored, read_record(point_dir(out, p))) if r is not None]


def edited_points(points: list[Point], held: Callable[[Point], list[dict[str, Any]]]) -> dict[str, str]:
    """Point id → ``setting=value`` (``task.proxy=py:r.py:score``) whose file the point's finished record (of
    ``held(point)``) read with other contents than the file has now (:mod:`rlhf_zoo.inputs`): the record is of a
    run that its arguments no longer make."""
    from rlhf_zoo.inputs import changed, input_digests

    edited: dict[str, str] = {}
    now: dict[tuple[str, ...], tuple[dict[str, Any], dict[str, str]]] = {}  # settings and digests, by arguments
    for p in points:
        kept = [r for r in held(p) if r.get("inputs") and same_run(r.get("args", []), p.args)]
        if not kept:  # records without digests (made before they were) are not compared
            continue
        key = _args_but_seed(p)
        if key not in now:
            settings = _point_settings(p)
            now[key] = settings, input_digests(settings)
        settings, digests = now[key]
        if keys := [k for r in kept for k in changed(r["inputs"], digests)]:
            edited[p.id] = f"{keys[0]}={settings.get(keys[0])}"
    return edited


def _point_settings(point: Point) -> dict[str, Any]:
    """The settings a run of ``point`` would record (as :func:`_head` does), as read back (:func:`_as_recorded`)."""
    from rlhf_zoo.config import BUILD_ONLY_RUN_DIR, load_config

    return _as_recorded(settings_of(load_config([*point.args, BUILD_ONLY_RUN_DIR])))


def _finish(d: Path, record: dict[str, Any], records: str | None) -> None:
    """Write the record in the run directory, then (compact) in the records folder."""
    write_json_atomic(d / RECORD, record)
    if records is not None:
        write_point_record(Path(records), record)


def run_point(
    point: Point,
    run_dir: str,
    resume: bool,
    bench_command: str,
    keep_checkpoints: bool,
    records: str | None = None,
    stamp: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one point into ``run_dir`` and write its record (also into ``records``, compact, when given);
    returns the record.

    Runs in a worker process or in the caller's. The record is written last, atomically: a point
    whose record exists finished, and one without did not. ``stamp``: the bench's
    :func:`rlhf_zoo.bench.version.stamp` (computed here when None).
    """
    if point.pool:
        return run_pool_point(point, run_dir, bench_command, records, stamp)
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    lock = RunLog(d).lock()  # from before the model loads: a second bench must not take the folder for stale
    try:
        return _train_point(point, d, resume, bench_command, keep_checkpoints, records, stamp, lock)
    finally:
        lock.release()


def _train_point(
    point: Point,
    d: Path,
    resume: bool,
    bench_command: str,
    keep_checkpoints: bool,
    records: str | None,
    stamp: dict[str, Any] | None,
    lock: Any,
) -> dict[str, Any]:
    from rlhf_zoo.config import load_config
    from rlhf_zoo.train import run

    before = read_json(d / STARTED) if resume else None  # a resumed run's wall time includes its earlier parts
    earlier = float(before.get("wall_s", 0.0)) if isinstance(before, dict) else 0.0
    started = {"id": point.id, "args": list(point.args), "wall_s": earlier}
    write_json_atomic(d / STARTED, started)
    args = [*point.args, f"run_dir={d}"]
    cfg = load_config([*args, f"resume={'true' if resume else 'false'}"])
    head = _head(point, cfg, bench_command, stamp)
    t0 = time.perf_counter()
    try:
        summary = run(cfg, argv=["rlhf-zoo", "train", *args], held_lock=lock)
    except BaseException:  # stopped (or failed): what it ran counts if it resumes
        with contextlib.suppress(OSError):
            write_json_atomic(d / STARTED, {**started, "wall_s": round(earlier + time.perf_counter() - t0, 3)})
        raise
    wall = earlier + time.perf_counter() - t0
    metrics = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
    record = {
        **head,
        "meta": read_json(d / "meta.json") or {},
        "summary": summary,
        "metrics": metrics,
        "wall_s": round(wall, 3),
        "resumed": resume,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _finish(d, record, records)
    if not keep_checkpoints:
        shutil.rmtree(d / "checkpoint", ignore_errors=True)
    return record


def run_pool_point(
    point: Point, run_dir: str, bench_command: str, records: str | None = None, stamp: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Draw and score one seed's Best-of-N pool (:mod:`rlhf_zoo.evaluate_pool`) on the held-out prompts
    the trained points are evaluated on, and write its record (the whole curve n = 1…M)."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    lock = RunLog(d).lock()
    try:
        return _draw_pool_point(point, d, bench_command, records, stamp)
    finally:
        lock.release()


def _draw_pool_point(
    point: Point, d: Path, bench_command: str, records: str | None, stamp: dict[str, Any] | None
) -> dict[str, Any]:
    from rlhf_zoo.config import load_config
    from rlhf_zoo.evaluate_pool import draw_pool, pool_curve, pool_summary
    from rlhf_zoo.rollout import Costs
    from rlhf_zoo.runlog import git_commit, hardware, package_versions
    from rlhf_zoo.train import build

    write_json_atomic(d / STARTED, {"id": point.id, "args": list(point.args)})
    cfg = load_config([*point.args, f"run_dir={d}"])
    head = _head(point, cfg, bench_command, stamp)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t0 = time.perf_counter()
    _, task, policy = build(cfg)
    costs = Costs()
    num_prompts = int(cfg.train.eval_prompts)
    pool = draw_pool(task, policy, num_prompts, point.pool, int(cfg.seed), costs=costs)
    summary = pool_summary(pool_curve(pool), point.pool, len(pool["proxy"]))
    wall = time.perf_counter() - t0
    record = {
        **head,
        "meta": {
            "git_commit": git_commit(),
            "hardware": hardware(),
            "versions": package_versions(),  # after build: the libraries the policy and rewards loaded
            "started": started,
        },
        "summary": {"kl/estimator": "bon_pool"},
        "pool": {**summary, "costs": _pool_costs(costs)},
        "metrics": [],
        "wall_s": round(wall, 3),
        "resumed": False,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _finish(d, record, records)
    return record


def _pool_costs(costs: Any) -> dict[str, Any]:
    """What drawing and scoring the pool spent (every n is read from it), under a run summary's names:
    ``cost/completions``, ``cost/tokens``, ``cost/reward_calls`` (proxy and gold) and ``time/<phase>_s``."""
    return {**costs.as_dict(), **{f"time/{k}_s": round(v, 3) for k, v in sorted(costs.seconds.items())}}


# A worker's stop state. The bench signals every worker; an idle one only remembers the stop, a busy one
# stops its run (inside training at the next step, with a checkpoint; before or after it at once), and a
# worker that has stopped starts no further point (the executor may have queued one for it already).
_worker_busy = False
_worker_stopped: int | None = None
_worker_line = 0  # the line of this worker's step bars beneath the points bar (0: none drawn)


def _worker_init(bars: bool = False, lock: Any = None, slots: Any = None) -> None:
    """A worker stays in its bench's process group (a terminal's Ctrl-C, or a scheduler's signal to the
    group, reaches it as well as the bench's forwarded SIGTERM): SIGINT is ignored outside training,
    SIGTERM handled by :func:`_worker_stop`, and a repeated signal during a training step does not skip
    the checkpoint. ``bars``: its points' step bars are drawn, under the bench's write ``lock``, on the line of
    the worker's slot beneath the points bar (1 to ``jobs``, counted by the shared ``slots``)."""
    from rlhf_zoo.signals import repeats_force

    global _worker_line
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_stop)
    repeats_force(False)
    threading.Thread(target=_end_with_the_bench, args=(os.getppid(),), name="rlhf_zoo-bench-watch", daemon=True).start()
    if bars and lock is not None and slots is not None:
        from rlhf_zoo.progress import use_lock

        use_lock(lock)
        with slots.get_lock():
            slots.value += 1
            _worker_line = slots.value


def _end_with_the_bench(bench: int, every: float = 1.0) -> None:
    """In a worker, for as long as it lives: once the bench process ``bench`` is gone (``kill -9``, its terminal
    closed, out of memory), a busy worker stops its run as the bench's SIGTERM would (at its next step, with a
    checkpoint: the point resumes when the bench is run again) and an idle one ends. Its workers waited for work
    for ever, each holding its memory, and a busy one trained on with its point's folder locked."""
    told = False
    while True:
        time.sleep(every)
        if os.getppid() == bench:
            continue
        if not _worker_busy:
            os._exit(1)  # waiting in the executor's queue: nothing of a run to keep
        if not told:
            os.kill(os.getpid(), signal.SIGTERM)
            told = True


def _worker_stop(signum: int, frame: Any) -> None:
    """SIGTERM in a worker outside training (training has its own handler, rlhf_zoo.signals.StopRequests).
    Never kills an idle worker: one killed inside the executor's queue would leave its lock held and
    the other workers blocked for ever."""
    from rlhf_zoo.signals import StopSignal

    global _worker_stopped
    if _worker_stopped is None:
        _worker_stopped = signum
    if _worker_busy:
        raise StopSignal(signum)


def _run_point_in_worker(*args: Any) -> dict[str, Any]:
    """:func:`run_point` in a worker process, unless the worker was told to stop."""
    from rlhf_zoo.signals import StopSignal
    from rlhf_zoo.train import Interrupted

    global _worker_busy, _worker_stopped
    if _worker_stopped is not None:
        raise StopSignal(_worker_stopped)
    _worker_busy = True
    try:
        from rlhf_zoo.progress import LinesAbove, Placement, placed

        # none where the bench draws no bars: a worker's bar on its own would write over the others' lines
        where = Placement(False)
        above: Any = contextlib.nullcontext()
        if _worker_line:
            where = Placement(shown=True, position=_worker_line, desc=args[0].id, file=sys.stderr)
            above = contextlib.redirect_stderr(LinesAbove(sys.stderr))
        with placed(where), above:
            return run_point(*args)
    except (StopSignal, Interrupted) as e:  # stopped before, after or inside training
        _worker_stopped = e.signum
        raise
    finally:
        _worker_busy = False


def _signal_workers(pool: ProcessPoolExecutor, signum: int) -> None:
    """Send ``signum`` to every live worker of ``pool`` (the executor keeps no public list of them)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive() and proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signum)


def _args_but_seed(point: Point) -> tuple[str, ...]:
    """The point's arguments but its seed: what its configuration is, seeds aside."""
    return tuple(a for a in point.args if not a.startswith("seed="))


def validate_points(points: list[Point]) -> None:
    """Build every distinct configuration once (no model loads), so a bad override fails before any work."""
    from rlhf_zoo.config import BUILD_ONLY_RUN_DIR, load_config

    seen: set[tuple[str, ...]] = set()
    for p in points:
        key = _args_but_seed(p)
        if key not in seen:
            seen.add(key)
            load_config([*p.args, BUILD_ONLY_RUN_DIR])


def exact_reference(args: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """On a task with an oracle, its exact reference curves (:meth:`rlhf_zoo.tasks.oracle.ExactOracle.curves`:
    the optimal frontier and Best-of-N over n); empty without an oracle."""
    from rlhf_zoo.config import BUILD_ONLY_RUN_DIR, as_dataclass, load_config
    from rlhf_zoo.tasks.registry import build_task, get_task_entry

    cfg = load_config([*args, BUILD_ONLY_RUN_DIR])
    if not get_task_entry(cfg.task.name).has_oracle:
        return {}
    task = build_task(as_dataclass(cfg, "task"), None)
    return task.oracle.curves(task.oracle.probs(task.build_policy(cfg.seed), "ref"))


class _Planner:
    """The planning half of :func:`run_suite`: what each point needs (nothing, a run, a resume, a redo), with
    the records under earlier ids taken over or cleared, and everything said in the report."""

    def __init__(
        self,
        suite: Suite,
        out: Path,
        records: Path | None,
        report: BenchReport,
        points: list[Point],
        keep_checkpoints: bool = True,
        redo: bool = False,
    ):
        self.suite, self.out, self.records, self.report, self.points = suite, out, records, report, points
        self.keep_checkpoints, self.redo = keep_checkpoints, redo
        self.holders = _slot_holders(suite.name, out, records, {p.id for p in points})
        self.sweeps = {s.tag for s in suite.sweeps}  # all of them, whatever only= runs now
        self._backfill: list[dict[str, Any]] = []  # finished in their run directories only: copied once planned

    def todo(self) -> list[tuple[Point, bool]]:
        """(point, resume) for every point to run, in the suite's order; ``report`` filled on the way."""
        edited = self._edited()
        if not self.redo:
            self._check_none_replaced()
            self._check_none_edited(edited)
        todo: list[tuple[Point, bool]] = []
        redo: list[Path] = []  # deleted once every point is planned and the plan is poolable
        other_code: dict[str, int] = {}
        for p in self.points:
            d = point_dir(self.out, p)
            stored = self._stored(p)
            action = plan(p, d, self.suite.resumable, stored)
            stored, action = self._take_over(p, d, stored, action)
            if action == "done" and p.id in edited:  # redo=true: its record read a file that changed since
                action = plan(p, d, self.suite.resumable)  # its run directory alone: a redo interrupted resumes
                action = "redo" if action == "done" else action
            if action == "done":
                self.report.skipped.append(p.id)
                version = code_version_of(self._keep(p, d, stored) or {})
                if version != self.report.code_version:
                    other_code[version] = other_code.get(version, 0) + 1
                if not self.keep_checkpoints:
                    _drop_finished_checkpoint(p, d)
                continue
            if action in ("redo", "resume"):
                _check_not_running(d)
            if action == "redo":
                redo.append(d)
                self.report.redone.append(p.id)
            elif action == "resume":
                self.report.resumed.append(p.id)
            elif stored is not None:  # new here, and its record in the records folder is stale
                self.report.redone.append(p.id)
            todo.append((p, action == "resume"))
        self.report.other_code = other_code
        self._check_poolable([p for p, _ in todo])
        for rec in self._backfill:  # after the checks: a refused bench copies no record back (one deleted by hand)
            write_point_record(self.records, rec)
        for d in redo:
            shutil.rmtree(d)
        return todo

    def _check_none_replaced(self) -> None:
        """Refuse, before anything is deleted or run, to replace a finished point's record (in the records folder or
        its run directory) that its arguments no longer make (a setting of the suite, of the sweep or on the command
        line changed): a finished run of hours would be lost to a changed ``train.steps`` or a reused ``out=``. With
        ``redo=true`` those points run again and their records are replaced."""
        from rlhf_zoo.errors import UserError

        stale: list[tuple[Point, dict[str, Any]]] = []
        for p in self.points:
            d = point_dir(self.out, p)
            held = self._held(p)
            if not held or any(same_run(r.get("args", []), p.args) for r in held):
                continue
            started = read_json(d / STARTED)  # a redo=true that a stop interrupted: the choice was made
            if not (isinstance(started, dict) and same_run(started.get("args", []), p.args)):
                stale.append((p, held[0]))
        if not stale:
            return
        p, old = stale[0]
        diff = setting_diff(run_identity(p.args), run_identity(old.get("args", [])))
        ids = ", ".join(q.id for q, _ in stale[:3]) + (", ..." if len(stale) > 3 else "")
        elsewhere = "out= and records=" if self.records is not None else "out="
        raise UserError(
            f"{self.out / self.suite.name}: {len(stale)} finished point(s) ({ids}) were run with other arguments "
            f"({p.id}: {diff}): redo=true runs them again and replaces their records; another {elsewhere} keeps them"
        )

    def _held(self, p: Point) -> list[dict[str, Any]]:
        """The point's finished records: in the records folder, then in its run directory."""
        return held_records(self.out, self.records, p)

    def _edited(self) -> dict[str, str]:
        """:func:`edited_points` of the planned points."""
        return edited_points(self.points, self._held)

    def _check_none_edited(self, edited: dict[str, str]) -> None:
        """Refuse, before anything runs, to keep finished points whose records read a file of the user's (a ``py:``
        reward, prompts, a model's folder) with other contents than it has now: the page would show the results
        of the file before its edit under its name. ``redo=true`` runs them again; restoring the file keeps them."""
        from rlhf_zoo.errors import UserError

        if not edited:
            return
        ids = ", ".join(list(edited)[:3]) + (", ..." if len(edited) > 3 else "")
        raise UserError(
            f"{self.out / self.suite.name}: {len(edited)} finished point(s) ({ids}) read other contents of "
            f"{next(iter(edited.values()))} than it has now (the file changed since they ran): redo=true runs them "
            "again and replaces their records; restoring the file keeps them"
        )

    def _check_poolable(self, todo: list[Point]) -> None:
        """Refuse, before any point runs, to run one whose places on the page (:func:`_slots`, seeds aside) keep
        other seeds' records of another code version or other settings: the page could not pool the new record
        with them (:func:`~rlhf_zoo.bench.records.check_comparable`), and a suite's piece of hours would be
        refused only when rendered. A point's settings are those its run would record (:func:`_point_settings`). The
        records are read as the plan left them; those that the points to run replace (their own ids) do not
        count."""
        running = {p.id for p in todo}
        kept: dict[tuple[str, Any], list[dict[str, Any]]] = {}
        for rec in suite_records(self.suite.name, self.out, self.records):
            if rec.get("id") not in running:
                for sweep, value, _ in _slots(rec.get("memberships", []), rec.get("seed")):
                    kept.setdefault((sweep, value), []).append(rec)
        settings: dict[tuple[str, ...], dict[str, Any]] = {}
        for p in todo:
            for sweep, value, _ in _slots(p.memberships, p.seed):
                others = kept.get((sweep, value))
                if others:
                    self._check_joins(p, f"{sweep} at {value}", others, settings)

    def _check_joins(
        self, p: Point, where: str, others: list[dict[str, Any]], settings: dict[tuple[str, ...], dict[str, Any]]
    ) -> None:
        """Refuse ``p`` if ``others``, the records at one of its places (``where``), are of another code version
        or other settings than its run's. ``settings``: the points' settings so far, by arguments."""
        from rlhf_zoo.errors import UserError

        mine = self.report.code_version
        if apart := [r for r in others if code_version_of(r) != mine]:
            versions = ", ".join(sorted({code_version_of(r) for r in apart}))
            commits = ", ".join(sorted({commit_of(r) for r in apart}))
            several = "," in commits
            what = f"of code version {versions} (commit{'s' if several else ''} {commits}), not this code's {mine}"
            way = f"code versions: run this piece at {'one of those commits' if several else 'that commit'}"
        else:
            key = _args_but_seed(p)
            if key not in settings:
                settings[key] = _point_settings(p)
            if apart := [r for r in others if _as_recorded(record_settings(r)) != settings[key]]:
                diff = setting_diff(settings[key], _as_recorded(record_settings(apart[0])))
                what = f"of other settings ({diff}; this run's first)"
                way = "settings: run this piece with theirs"
            else:  # the same settings, but a file of the user's that they name (a py: reward) edited since
                from rlhf_zoo.inputs import changed, input_digests

                files = input_digests(settings[key])
                if not (apart := [r for r in others if changed(r.get("inputs") or {}, files)]):
                    return
                k = changed(apart[0].get("inputs") or {}, files)[0]
                what = f"that read other contents of {k}={settings[key].get(k)} (the file changed since)"
                way = "edits of such a file: restore it"
        seeds = ", ".join(str(s) for s in sorted({int(r.get("seed", 0)) for r in apart}))
        raise UserError(
            f"bench {self.suite.name}: {p.id} would join the records of {where} (seed(s) {seeds}) {what}, and the "
            f"page pools no sweep value across {way}, or delete those records{self._places(apart)} to run every seed "
            "of the value again"
        )

    def _places(self, recs: list[dict[str, Any]]) -> str:
        """Where ``recs`` are kept, `` (in <records>/<suite>/ and their run folders in <out>/<suite>/)``: a record
        deleted from the records folder alone still finishes its point from its run folder."""
        where = []
        if self.records is not None and any(
            record_path(self.records, self.suite.name, str(r.get("id"))).is_file() for r in recs
        ):
            where.append(f"{self.records / self.suite.name}/")
        if any((point_dir(self.out, r) / RECORD).is_file() for r in recs if r.get("suite") and r.get("id")):
            where.append(f"their run folders in {self.out / self.suite.name}/")
        return f" (in {' and '.join(where)})" if where else ""

    def _stored(self, p: Point) -> dict[str, Any] | None:
        """The point's record in the records folder (None: none, or no records folder)."""
        return read_point_record(record_path(self.records, self.suite.name, p.id)) if self.records is not None else None

    def _orphan(self, rec: dict[str, Any]) -> bool:
        """Whether no sweep of the suite reads ``rec`` (its tag was renamed or dropped)."""
        return not self.sweeps & {str(m.get("sweep")) for m in rec.get("memberships", [])}

    def _take_over(
        self, p: Point, d: Path, stored: dict[str, Any] | None, action: str
    ) -> tuple[dict[str, Any] | None, str]:
        """The records of the point's place under other ids: one kept as the point's when it is the same run (another
        knob_label, a renamed tag), the others deleted (a second copy under another earlier id, merged from another
        branch, would stay beside it, and the page refuse two records of one seed). (stored, action) as they are
        then."""
        holders = self.holders
        # one record may hold several of the point's places (two sweeps that share it): taken once
        olds = list({id(h): h for k in _slots(p.memberships, p.seed) for h in holders.get(k, [])}.values())
        if not olds and action == "new":  # the same run under an id no point has, of a sweep the suite lost (a
            # renamed tag) or of the point's own sweep (a sweep's knob pinned to one value: the ids leave it out); not
            # another sweep's that makes the same run (its table would lose the point)
            tags = {str(m.get("sweep")) for m in p.memberships}

            def own(h: dict[str, Any]) -> bool:
                return bool(tags & {str(m.get("sweep")) for m in h.get("memberships", [])})

            olds = [h for hs in holders.values() for h in hs if _same_run_as(h, p) and (self._orphan(h) or own(h))][:1]
        if not olds:
            return stored, action
        for old in olds:
            for k in _slots(old.get("memberships", []), old.get("seed")):
                holders[k] = [h for h in holders.get(k, []) if h is not old]
            if point_dir(self.out, old).is_dir():
                _check_not_running(point_dir(self.out, old))
        kept = next((old for old in olds if _same_run_as(old, p)), None) if action == "new" else None
        for old in olds:  # superseded: its place on the page is this point's (two records of one seed cannot be pooled)
            if old is not kept:
                shutil.rmtree(point_dir(self.out, old), ignore_errors=True)
                if self.records is not None:
                    record_path(self.records, self.suite.name, str(old["id"])).unlink(missing_ok=True)
        if kept is not None:
            _rename(kept, p, self.out, self.records)  # another knob_label or tag spelling: the same run, not run again
            self.report.renamed.append(p.id)
            stored = self._stored(p)
            return stored, plan(p, d, self.suite.resumable, stored)
        if action == "new":
            self.report.redone.append(p.id)
        return stored, action

    def _keep(self, p: Point, d: Path, stored: dict[str, Any] | None) -> dict[str, Any] | None:
        """A finished point: its record re-labelled when the sweeps that read it changed (not its run), and
        copied to the records folder when only its run directory has it. Returns the record."""
        done = stored if stored is not None and same_run(stored.get("args", []), p.args) else read_record(d)
        if done is not None and _memberships_changed(done, p):
            members = [dict(m) for m in p.memberships]
            if (run := read_record(d)) is not None and same_run(run.get("args", []), p.args):
                write_json_atomic(d / RECORD, {**run, "memberships": members})
            from_records = done is stored
            done = {**done, "memberships": members}
            if from_records and self.records is not None:
                write_point_record(self.records, done)
                stored = done
        if done is not None and done is not stored and self.records is not None:
            self._backfill.append(done)  # finished in its run directory only: copied over once the plan is checked
            self.report.backfilled.append(p.id)
        return done


def run_suite(
    suite: Suite,
    out: str | Path,
    *,
    seeds: list[int] | None = None,
    extra: list[str] | None = None,
    only: list[str] | None = None,
    jobs: int | None = None,
    progress: bool = True,
    command: str = "",
    keep_checkpoints: bool = False,
    validate: bool = True,
    records: str | Path | None = None,
    redo: bool = False,
    what: str = "bench",
    written: tuple[Path, ...] = (),
) -> BenchReport:
    """Run every unfinished point of ``suite`` into ``<out>/<suite>/``; returns what was done.

    Args:
        seeds, extra, only: see :func:`rlhf_zoo.bench.suites.expand`.
        jobs: parallel worker processes (default: the suite's).
        progress: a tqdm bar over points.
        command: the bench command line, stored in every record and in ``bench.json``.
        keep_checkpoints: keep each finished run's ``checkpoint/`` (deleted by default: records
            and metrics are what the tables need, and full fine-tuning checkpoints are large).
        validate: build every configuration first, so a bad override fails before any run.
        records: the records folder (``<records>/<suite>/<point-id>.json``): a point with a record
            there is finished, and every finished point's record is written there too. None: the
            run directories' records only.
        redo: run again a finished point whose record its arguments no longer make, replacing the record;
            without it such a point is refused before anything runs (:meth:`_Planner._check_none_replaced`).
        what: the command, as the points bar names it (``bench mini``, ``sweep runs/x``).
        written: what else the command writes (the page and its plots): with the records folder and ``out``, not
            counted as a change of the checkout in the records' ``git_dirty``.
    """
    from rlhf_zoo.bench.version import stamp as current_stamp

    _check_not_launched()
    out = Path(out)
    records = Path(records) if records is not None else None
    points = expand(suite, seeds, extra, only)
    if validate:
        validate_points(points)
    suite_dir = out / suite.name
    suite_dir.mkdir(parents=True, exist_ok=True)
    stamp = current_stamp((out, *((records,) if records is not None else ()), *written))
    report = BenchReport(suite.name, out, len(points), records=records, code_version=str(stamp["code_version"]))
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t0 = time.perf_counter()
    if suite.exact:
        oracle = exact_reference(points[0].args)
        write_json_atomic(suite_dir / ORACLE, oracle)
        if records is not None:
            write_oracle(records, suite.name, oracle)
    todo = _Planner(suite, out, records, report, points, keep_checkpoints, redo).todo()
    jobs = max(1, min(jobs or suite.jobs, len(todo) or 1))
    if todo:  # before any point runs: a bench killed later (kill -9, power loss) leaves a bench.json that says so
        _write_bench(suite_dir, suite, report, command, jobs, started, points, ended=False)
    bar = points_bar(progress, len(points), len(report.skipped), f"{what} {suite.name}")
    rec_dir = str(records) if records is not None else None
    try:
        if jobs == 1:
            _run_serial(todo, out, command, keep_checkpoints, report, bar, rec_dir, stamp)
        else:
            _run_parallel(todo, out, jobs, command, keep_checkpoints, report, bar, rec_dir, stamp)
    finally:
        if bar is not None:
            bar.close()
        report.wall_s = time.perf_counter() - t0
        if todo:
            _write_bench(suite_dir, suite, report, command, jobs, started, points)
    return report


def _check_not_launched() -> None:
    """Refuse to run under a launcher's several processes: every one would plan, run and write every point."""
    from rlhf_zoo.runtime import launched_world_size

    if (world := launched_world_size()) > 1:
        from rlhf_zoo.errors import UserError

        raise UserError(
            f"a sweep or a bench runs in one process (its points one after another, or in jobs= workers), not "
            f"under a launch of {world} processes: launch each run by itself (accelerate launch -m rlhf_zoo train "
            "...) or run the sweep without the launcher"
        )


def _run_serial(
    todo: list[tuple[Point, bool]],
    out: Path,
    command: str,
    keep_checkpoints: bool,
    report: BenchReport,
    bar: Any,
    records: str | None,
    stamp: dict[str, Any],
) -> None:
    """Run the points of ``todo`` one after another in this process (``jobs=1``). Beneath the points bar, the
    running point's step bar (:mod:`rlhf_zoo.progress`); what a point prints on stderr (a language-model run's
    prompts line) goes above the bars, on its own line, not onto a bar's line (tqdm's
    :class:`~tqdm.contrib.DummyTqdmFile`, its recipe for printing beside a bar)."""
    from tqdm.contrib import DummyTqdmFile

    from rlhf_zoo.progress import beneath, placed

    for p, resume in todo:
        if bar is not None:
            bar.set_postfix_str(p.id, refresh=True)
        where = beneath(bar, 1, p.id)
        beside = contextlib.nullcontext() if bar is None else contextlib.redirect_stderr(DummyTqdmFile(sys.stderr))
        with placed(where), beside:
            run_point(p, str(point_dir(out, p)), resume, command, keep_checkpoints, records, stamp)
        report.ran.append(p.id)
        if bar is not None:
            bar.update(1)


def _run_parallel(
    todo: list[tuple[Point, bool]],
    out: Path,
    jobs: int,
    command: str,
    keep: bool,
    report: BenchReport,
    bar: Any,
    records: str | None,
    stamp: dict[str, Any],
) -> None:
    from rlhf_zoo.progress import is_terminal, share_lock
    from rlhf_zoo.signals import stop_signals_raise

    context = get_context("spawn")
    lock, slots = context.RLock(), context.Value("i", 0)  # the bars' write lock; the workers' lines beneath
    init = (bar is not None and is_terminal(bar.fp), lock, slots)
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init, initargs=init)
    pending: dict[Future, Point] = {}
    try:
        with stop_signals_raise(), share_lock(lock):
            for p, resume in todo:
                f = pool.submit(_run_point_in_worker, p, str(point_dir(out, p)), resume, command, keep, records, stamp)
                pending[f] = p
            while pending:
                # every few seconds the points bar is drawn again (its elapsed time; the line under the cursor, which
                # a worker's printed line took over, or a worker's bar left behind when that line moved them down)
                done, _ = wait(list(pending), timeout=None if bar is None else 2.0, return_when=FIRST_COMPLETED)
                if not done:
                    bar.refresh()
                for f in done:
                    p = pending.pop(f)
                    f.result()  # re-raises a failed run's exception
                    report.ran.append(p.id)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix_str(p.id, refresh=False)
    except BaseException as e:
        for f in pending:
            f.cancel()
        if isinstance(e, KeyboardInterrupt):  # Ctrl-C or SIGTERM: runs in flight stop at a step, checkpointed
            _signal_workers(pool, signal.SIGTERM)
        try:  # after a failed run, the others in flight finish and keep their records
            with stop_signals_raise():
                pool.shutdown(wait=True, cancel_futures=True)
        except KeyboardInterrupt:  # a (second) stop: no more waiting
            _signal_workers(pool, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
            pool.shutdown(wait=False, cancel_futures=True)  # a killed worker may hold a queue's lock
        raise
    pool.shutdown(wait=True)


def _write_bench(
    suite_dir: Path,
    suite: Suite,
    report: BenchReport,
    command: str,
    jobs: int,
    started: str,
    points: list[Point],
    ended: bool = True,
) -> None:
    """``bench.json``: this bench invocation, which has points to run. Written when it starts (``ended=False``: its
    end, wall time, points run and completeness null, not yet known) and again when it ends, stopped or not: one
    that still says null after the bench is gone was killed before its end."""
    from rlhf_zoo.runlog import git_commit, hardware

    write_json_atomic(
        suite_dir / BENCH,
        {
            "suite": suite.name,
            "command": command,
            "started": started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z") if ended else None,
            "wall_s": round(report.wall_s, 2) if ended else None,
            "jobs": jobs,
            "points": report.points,
            "ran": len(report.ran) if ended else None,
            "skipped": len(report.skipped),
            "resumed": len(report.resumed),
            "seeds": sorted({p.seed for p in points}),
            "git_commit": git_commit(),
            "hardware": hardware(),
            "complete": len(report.ran) + len(report.skipped) == report.points if ended else None,
        },
    )


__all__ = [
    "BenchReport",
    "edited_points",
    "exact_reference",
    "held_records",
    "plan",
    "point_dir",
    "run_point",
    "run_pool_point",
    "run_suite",
    "validate_points",
]
