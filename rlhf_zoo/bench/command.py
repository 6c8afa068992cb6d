"""``rlhf-zoo bench``: run a suite's unfinished points, then render its page from the records.

    rlhf-zoo bench suite=exact                       # run (or resume) and render docs/benchmarks/exact.md
    rlhf-zoo bench suite=exact render_only=true      # only render, from the records
    rlhf-zoo bench suite=quick seeds=0,1 only=bond_beta,jbond_gamma
    rlhf-zoo bench suite=quick model.name=tiny task.prompts=p.jsonl task.gold=null out=/tmp/b docs=/tmp/d

Bench options: ``suite`` (required), ``out`` (records and runs, default ``bench_runs``), ``seeds``
(comma list, replaces the suite's), ``only`` (comma list of sweep tags), ``jobs`` (parallel
processes, default the suite's), ``docs`` (where pages go, default ``docs/benchmarks``),
``render_only``, ``render`` (render after running, default true), ``keep_checkpoints``, ``progress``.
Every other ``key=value`` is a training override appended to every point (it becomes part of each
point's arguments, so records made without it are redone).
"""

from __future__ import annotations

import sys
from pathlib import Path

from rlhf_zoo.errors import UserError

OPTIONS = ("suite", "out", "seeds", "only", "jobs", "docs", "render_only", "render", "keep_checkpoints", "progress")


def _bool(key: str, v: str) -> bool:
    low = v.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise UserError(f"bench: {key} must be true or false, got {v!r}")


def _ints(key: str, v: str) -> list[int]:
    try:
        return [int(x) for x in v.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"bench: {key} must be a comma-separated list of integers, got {v!r}") from None


def parse(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """(bench options, training overrides for every point)."""
    own: dict[str, str] = {}
    extra: list[str] = []
    for a in args:
        if "=" not in a or a.startswith("="):
            raise UserError(f"bench: expected key=value, got {a!r}")
        key = a.split("=", 1)[0].strip()
        if key in OPTIONS:
            own[key] = a.split("=", 1)[1]
        else:
            extra.append(a)
    if "suite" not in own:
        raise UserError("bench: name a suite: rlhf-zoo bench suite=NAME (exact, quick, full)")
    return own, extra


def main(args: list[str]) -> int:
    """The ``bench`` command; returns the exit code."""
    from rlhf_zoo.bench.render import render_suite
    from rlhf_zoo.bench.runner import run_suite
    from rlhf_zoo.bench.suites import get_suite

    own, extra = parse(args)
    suite = get_suite(own["suite"])
    out = Path(own.get("out", "bench_runs"))
    docs = Path(own.get("docs", "docs/benchmarks"))
    render_only = _bool("render_only", own.get("render_only", "false"))
    command = " ".join(["rlhf-zoo", "bench", *args])
    if not render_only:
        jobs = _ints("jobs", own["jobs"])[0] if "jobs" in own else None
        if jobs is not None and jobs < 1:
            raise UserError("bench: jobs must be >= 1")
        only = [t.strip() for t in own["only"].split(",") if t.strip()] if "only" in own else None
        from rlhf_zoo.train import Interrupted

        try:
            report = run_suite(
                suite,
                out,
                seeds=_ints("seeds", own["seeds"]) if "seeds" in own else None,
                extra=extra,
                only=only,
                jobs=jobs,
                progress=_bool("progress", own.get("progress", "true")),
                command=command,
                keep_checkpoints=_bool("keep_checkpoints", own.get("keep_checkpoints", "false")),
            )
        except (Interrupted, KeyboardInterrupt):
            how = "the interrupted run resumes from its checkpoint" if suite.resumable else "unfinished runs are redone"
            print(
                f"rlhf-zoo: bench {suite.name} interrupted; run the same command again to continue (finished "
                f"points are kept, {how})",
                file=sys.stderr,
            )
            return 130
        print(
            f"bench {suite.name}: {len(report.ran)} point(s) run ({len(report.resumed)} resumed, "
            f"{len(report.redone)} redone), {len(report.skipped)} already finished, "
            f"{report.wall_s:.1f} s; records in {out / suite.name}",
            file=sys.stderr,
        )
    elif extra:
        raise UserError(f"bench: render_only=true takes no training overrides: {' '.join(extra)}")
    if render_only or _bool("render", own.get("render", "true")):
        page = render_suite(suite.name, out, docs)
        print(f"wrote {page}")
    return 0


__all__ = ["OPTIONS", "main", "parse"]
