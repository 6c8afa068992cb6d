"""``rlhf-zoo bench``: run a suite's unfinished points, then render its page from the records.

    rlhf-zoo bench suite=exact                       # run (or resume) and render docs/benchmarks/exact.md
    rlhf-zoo bench suite=exact render_only=true      # only render, from the records
    rlhf-zoo bench suite=exact seeds=0,1             # run in pieces: the records accumulate in
    rlhf-zoo bench suite=exact seeds=2,3,4           #   docs/benchmarks/records/exact/ (commit them)
    rlhf-zoo bench suite=demo out=runs/bench          # the five objectives on zoo-lm (make run)
    rlhf-zoo bench suite=quick seeds=0,1 only=bond_beta,jbond_gamma
    rlhf-zoo bench suite=quick model.name=tiny task.prompts=p.jsonl task.gold=null out=/tmp/b docs=/tmp/d
    rlhf-zoo bench suite=examples/suite.yaml out=runs/bench   # your own suite (rlhf_zoo.bench.suite_file)

The bench options are the fields of :class:`BenchOptions` (``suite`` is required). Every other
``key=value`` is a training override appended to every point (it becomes part of each point's
arguments, so records made without it are another run's, unless it cannot change the results: argument
order, ``train.progress``, ``train.log_with``, ``train.checkpoint_every`` and ``train.checkpoint_minutes``,
:data:`rlhf_zoo.config.NO_EFFECT`). A finished point whose record its arguments no longer make, or whose
record read a file of the user's that has changed since (:mod:`rlhf_zoo.inputs`), is refused before anything
runs; ``redo=true`` runs it again and replaces the record.

Where things go: the runs under ``out`` (default ``bench_runs/``, not in git); the page under ``docs``
(default ``docs/benchmarks`` when ``out`` is the default, else ``out`` itself); the records, one small
JSON file per finished point (:mod:`rlhf_zoo.bench.records`), under ``records`` (default
``<docs>/records``, so ``docs/benchmarks/records/<suite>/`` in the repository for a default bench):
a point with a record there is never run again, and the page is rendered from whatever records are
there.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rlhf_zoo.errors import UserError
from rlhf_zoo.options import split_options

if TYPE_CHECKING:
    from rlhf_zoo.bench.suites import Point, Suite

DEFAULT_OUT = "bench_runs"
DEFAULT_DOCS = "docs/benchmarks"


@dataclass
class BenchOptions:
    """The ``bench`` command's own options (every other ``key=value`` is a training override).

    Attributes:
        suite: the suite to run and render: exact, quick, lm, full, demo, gpu-check or a suite file FILE.yaml
            (required).
        out: where the runs and their records go (``<out>/<suite>/<point-id>/``).
        seeds: replaces the suite's seeds (comma list).
        only: run only these sweep tags (comma list).
        jobs: parallel processes (default: the suite's).
        docs: where the page and its plots go (default: ``docs/benchmarks`` for a built-in suite when ``out``
            is the default, else ``out`` itself: the bench never writes where it was not pointed).
        records: where each finished point's record goes and is looked for, ``<records>/<suite>/<point-id>.json``
            (default: ``<docs>/records``).
        render_only: only render the page, from the records (``seeds``, ``only`` and the overrides then
            only say which points are planned: the page counts how many of them have records).
        render: render the page after running.
        keep_checkpoints: keep each finished run's checkpoint.
        progress: show a progress bar over the points (and, on a terminal, the running points' step bars beneath it).
        redo: run again the finished points whose records their arguments no longer make (the suite's settings
            or the overrides changed) or that read a file of yours since edited (a ``py:`` reward, prompts),
            replacing those records; without it the bench refuses them before anything runs, naming the change.
    """

    suite: str = ""
    out: str = DEFAULT_OUT
    seeds: list[int] | None = None
    only: list[str] | None = None
    jobs: int | None = None
    docs: str | None = None
    records: str | None = None
    render_only: bool = False
    render: bool = True
    keep_checkpoints: bool = False
    progress: bool = True
    redo: bool = False


def parse(args: list[str]) -> tuple[BenchOptions, list[str]]:
    """(bench options, training overrides for every point)."""
    opts, extra = split_options(args, BenchOptions, "bench")
    for a in extra:  # seed= would be a training override; the bench's option is seeds=
        key, _, value = a.partition("=")
        if key.strip() == "seed":
            raise UserError(f"bench: seed= is not a bench option (each point has its own); did you mean seeds={value}?")
    if not opts.suite:
        raise UserError(
            "bench: name a suite: rlhf-zoo bench suite=NAME (exact, quick, lm, full, demo, gpu-check) "
            "or suite=FILE.yaml"
        )
    if opts.jobs is not None and opts.jobs < 1:
        raise UserError(f"bench: jobs must be >= 1, got {opts.jobs}")
    if opts.records is not None and not opts.records.strip():
        raise UserError("bench: records= must name a folder")
    return opts, extra


def main(args: list[str]) -> int:
    """The ``bench`` command; returns the exit code."""
    from rlhf_zoo.bench.suite_file import get_suite
    from rlhf_zoo.bench.suites import SUITES
    from rlhf_zoo.config import check_writable_dir

    opts, extra = parse(args)
    suite = get_suite(opts.suite)
    out = Path(opts.out)
    in_docs = opts.out == DEFAULT_OUT and opts.suite in SUITES  # a user's suite file: its page beside its records
    docs = Path(opts.docs if opts.docs is not None else DEFAULT_DOCS if in_docs else opts.out)
    records = Path(opts.records) if opts.records is not None else docs / "records"
    # before any point runs (the page is written after them all); render_only only reads out and records
    # (docs and records default to folders below out: name out first when it is the one that fails)
    for what, path, written in [
        ("out", out, not opts.render_only),
        ("docs", docs, opts.render_only or opts.render),
        ("records", records, not opts.render_only),
    ]:
        if written:
            check_writable_dir(path, what)
    if not opts.render_only:
        written = (docs / f"{suite.name}.md", docs / suite.name)  # the page and plots, rendered after the runs
        code = _run(suite, opts, extra, out, records, " ".join(["rlhf-zoo", "bench", *args]), written)
        if code:
            return code
    if opts.render_only or opts.render:
        _render(suite, opts, extra, args, out, docs, records)
    return 0


def _run(
    suite: Suite, opts: BenchOptions, extra: list[str], out: Path, records: Path, command: str, written: tuple = ()
) -> int:
    """Run the suite's unfinished points and say what was done; the exit code (0, or a stop's)."""
    from rlhf_zoo.bench.runner import run_suite
    from rlhf_zoo.bench.suite_file import is_suite_file, validate_suite_file
    from rlhf_zoo.signals import stop_exit_code
    from rlhf_zoo.train import Interrupted

    from_file = is_suite_file(opts.suite)
    if from_file:
        validate_suite_file(suite, opts.suite, seeds=opts.seeds, extra=extra, only=opts.only)
    try:
        report = run_suite(
            suite,
            out,
            seeds=opts.seeds,
            extra=extra,
            only=opts.only,
            jobs=opts.jobs,
            progress=opts.progress,
            command=command,
            keep_checkpoints=opts.keep_checkpoints,
            records=records,
            validate=not from_file,
            redo=opts.redo,
            written=written,
        )
    except (Interrupted, KeyboardInterrupt) as e:
        how = "interrupted runs resume from their checkpoints" if suite.resumable else "unfinished runs are redone"
        print(
            f"rlhf-zoo: bench {suite.name} interrupted; run the same command again to continue (finished "
            f"points are kept, {how})",
            file=sys.stderr,
        )
        return stop_exit_code(e)
    print(
        f"bench {suite.name}: {len(report.ran)} point(s) run ({len(report.resumed)} resumed, "
        f"{len(report.redone)} redone), {len(report.skipped)} already finished"
        + (f" ({len(report.renamed)} kept under a new id)" if report.renamed else "")
        + f", {report.wall_s:.1f} s; records in {records / suite.name}"
        + (f" ({len(report.backfilled)} copied from {out / suite.name})" if report.backfilled else ""),
        file=sys.stderr,
    )
    for version, n in sorted(report.other_code.items()):
        print(
            f"bench {suite.name}: {n} finished point(s) have records of code version {version}, not this "
            f"code's {report.code_version}; the page pools no sweep value across code versions (delete those "
            f"records, in {records / suite.name}/ and their run folders in {out / suite.name}/, to run them again)",
            file=sys.stderr,
        )
    return 0


def _render(
    suite: Suite, opts: BenchOptions, extra: list[str], args: list[str], out: Path, docs: Path, records: Path
) -> None:
    """Write the suite's page and plots from its records, and print the summary table."""
    from rlhf_zoo.bench.render import render_suite
    from rlhf_zoo.bench.suites import expand

    # without records, the error repeats this command without render_only=: the one that makes them
    run = shlex.join(["rlhf-zoo", "bench", *(a for a in args if a.partition("=")[0].strip() != "render_only")])
    planned = expand(suite, opts.seeds, extra, opts.only)
    page = render_suite(
        suite.name, out, docs, records, planned, spec=suite, run_command=run, edited=_edited(planned, out, records)
    )
    print(final_summary(suite.name, out, records))
    print(f"wrote {page} and its plots in {page.parent / suite.name}")


def _edited(planned: list[Point], out: Path, records: Path) -> dict[str, str]:
    """The planned points whose records read a file that has changed since (:func:`~rlhf_zoo.bench.runner.
    edited_points`); none where a point's configuration cannot be built here (a file it names is missing: the page
    is drawn from its records alone, as anywhere)."""
    from rlhf_zoo.bench.runner import edited_points, held_records

    try:
        return edited_points(planned, lambda p: held_records(out, records, p))
    except UserError:
        return {}


def final_summary(suite: str, out: Path, records: Path | None = None) -> str:
    """Reward against KL for every finished point of ``suite`` (the table the command prints)."""
    from rlhf_zoo.bench.records import group_records
    from rlhf_zoo.bench.render import final_table, load_suite

    return f"bench {suite}: reward against KL(π‖π_ref) at the last evaluation\n" + final_table(
        group_records(load_suite(suite, out, records)[1])
    )


__all__ = ["BenchOptions", "final_summary", "main", "parse"]
