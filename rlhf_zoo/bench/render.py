"""Render a suite's page from its records only: ``docs/benchmarks/<suite>.md`` and PNGs in ``<suite>/``.

Inputs (see :mod:`rlhf_zoo.bench.records`): every record in the records folder
(``<records>/<suite>/*.json``) and under ``<out>/<suite>/*/record.json`` (the records folder's wins
for a point in both), ``bench.json`` (the last bench invocation under ``out`` that had points to run, for its wall
time; one killed before its end says so, and the page with it) and,
on an exact suite, ``oracle.json`` (the optimal frontier and Best-of-N over n). No run directory is
opened and nothing is recomputed. Records that are not comparable (:func:`check_comparable`: the
seeds of one sweep value from different code versions, or with different settings) are refused with
one line that names the point and the two versions.

The page has: a provenance header (command, the commits behind the records and how many points each
wrote, the code version, date, hardware, seeds, how many of the planned points have records, wall
time), a commit column in the tables when the records come from more than one commit; the
verdicts on the BOND paper's claims (:mod:`rlhf_zoo.bench.claims`) for this and the other suites
whose records exist; reward at matched KL budgets (proxy and gold) for every objective; one table
per objective and knob value (proxy and gold reward, KL with its estimator, gold win rate, length,
cost); and the plots: reward against KL with every training path, the Best-of-N curve and (exact)
the optimal frontier and the gap to it; gold against KL and against proxy (over-optimisation); the
claims. Every number is a mean ± the half-width of a 95 % Student-t interval over seeds.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from rlhf_zoo.bench import claims, plots
from rlhf_zoo.bench.claims import CLAIMS, NOT_RUN, Check, check_all
from rlhf_zoo.bench.records import (
    BENCH,
    Group,
    check_comparable,
    code_version_of,
    commit_of,
    expand_pool,
    group_records,
    is_exact,
    out_records,
    read_json,
    read_oracle,
    repo_records,
    same_run,
    suite_records,
)
from rlhf_zoo.bench.stats import fmt_seeds_ci, interp_path, interp_sorted
from rlhf_zoo.bench.suites import Point, format_value
from rlhf_zoo.errors import UserError
from rlhf_zoo.io import atomic_write_text

if TYPE_CHECKING:
    from rlhf_zoo.bench.suites import Suite

VERDICT_SUITES = ("exact", "quick", "full")

KL_ESTIMATORS = {
    "exact": "exact, by enumeration (Best-of-N: KL(π_BoN‖π_ref), exact)",
    "exact_token": "exact-token estimator Σ_t KL(π(·|x,y<t) ‖ π_ref(·|x,y<t)) on sampled completions",
    "bon_quantile": "Best-of-N: the quantile estimate E[(n−1)·log p̂_≤ + log B̂] against the evaluation's "
    "reference samples; biased upward (above the bound log n − (n−1)/n for a continuous reward)",
    "bon_pool": "Best-of-N: every n from one pool of M reference samples per held-out prompt (order-statistic "
    "estimator, ALGORITHMS.md §7); its KL is the plug-in KL of Best-of-n of the pool, never above the bound "
    "log n − (n−1)/n shown beside it",
}

# (summary key, column header, digits); extras appear only where some record has them.
MAIN_COLUMNS = (
    ("reward/proxy", "proxy reward", 3),
    ("reward/gold", "gold reward", 3),
    ("kl/exact", "KL(π‖π_ref)", 3),
    ("win_rate/gold", "gold win rate", 3),
    ("length/mean", "length", 2),
    ("cost/samples_per_output", "samples/output", 0),
    ("cost/tokens", "gen. tokens", 0),
    ("cost/reward_calls", "reward calls", 0),
    ("wall_s", "wall s", 1),
)
EXTRA_COLUMNS = (
    ("kl/to_bon", "KL(π‖π_BoN)", 3),
    ("kl/from_bon", "KL(π_BoN‖π)", 3),
    ("kl/to_optimal", "KL(π‖π*_β)", 3),
    ("frontier/gap", "gap to frontier", 3),
    ("quantile/log_mean", "E log p_≤", 3),
    ("bon/kl_bound", "KL bound", 3),
)


# -- small helpers ----------------------------------------------------------------------------------
def _value(rec: dict[str, Any], key: str) -> float:
    v = rec.get("wall_s") if key == "wall_s" else rec.get("summary", {}).get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _fmt_value(v: Any) -> str:
    if isinstance(v, tuple):  # a list-valued knob, as the page keys it: written as on the command line
        return format_value(v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _counted(counts: Counter, noun: str = "point") -> str:
    """``a (40 points), b (12 points)``, most first; ``a (all 52 points)`` for one."""
    if len(counts) == 1:
        ((k, n),) = counts.items()
        return f"{k} (all {n} {noun}s)" if n > 1 else f"{k} (1 {noun})"
    return ", ".join(
        f"{k} ({n} {noun}{'s' if n > 1 else ''})" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def provenance(records: list[dict[str, Any]]) -> dict[str, str]:
    """Command, commit(s), code version(s), dates, hardware, seeds and versions of a suite's records
    (one per point: pools not expanded). A record that names no command counts as ``unknown``: the last
    bench's command (``bench.json``) need not be the one that wrote it."""
    metas = [r.get("meta", {}) for r in records]
    commands = Counter(r.get("bench_command", "") or "unknown" for r in records)
    if len(commands) <= 1:  # the one command behind the records
        command = command_line = f"`{next(iter(commands), 'unknown')}`"
    else:  # a suite run in pieces: every command, with the points each finished
        by_count = sorted(commands.items(), key=lambda kv: (-kv[1], kv[0]))
        command = ", ".join(f"`{c}` ({n} point{'s' if n > 1 else ''})" for c, n in by_count)
        command_line = f"{len(commands)} bench commands (in the header)"
    by_commit = Counter(commit_of(r) for r in records)
    commits = [c for c, _ in sorted(by_commit.items(), key=lambda kv: (-kv[1], kv[0]))]
    # every start of every point: the first (meta.json's own fields) and each resume (its "resumes")
    runs = [s for m in metas for s in (m, *m.get("resumes", []))]
    starts = sorted(str(m["started"])[:10] for m in runs if m.get("started"))
    ends = sorted(str(r["finished"])[:10] for r in records if r.get("finished"))
    days = sorted({*starts, *ends})
    date = days[0] if len(days) == 1 else (f"{days[0]} … {days[-1]}" if days else "unknown")
    hardware = sorted({str(m.get("hardware", "unknown")) for m in runs})
    seeds = sorted({int(r["seed"]) for r in records})
    return {
        "command": command,
        "command_line": command_line,
        "commit": ", ".join(commits),
        "commits": "records from commit " + _counted(by_commit),
        "code": _counted(Counter(code_version_of(r) for r in records)),
        "date": date,
        "hardware": "; ".join(hardware),
        "seeds": ", ".join(map(str, seeds)),
        "versions": _versions(metas),
    }


def _versions(metas: list[dict[str, Any]]) -> str:
    """Every package's version, ``torch 2.13.0``; where the points differ, each version with its points
    (``torch 2.13.0+cpu (30 points), 2.13.0+cu126 (5 points)``, packages then parted by ``;``), a package
    that some points did not load counted as ``not loaded``; and the points that recorded no versions."""
    known = [m["versions"] for m in metas if isinstance(m.get("versions"), dict) and m["versions"]]
    if not known:
        return "unknown"
    packages = sorted({k for v in known for k in v})
    parts = [(p, Counter(str(v.get(p, "not loaded")) for v in known)) for p in packages]
    mixed = any(len(c) > 1 for _, c in parts)
    text = ("; " if mixed else ", ").join(f"{p} {_counted(c) if len(c) > 1 else next(iter(c))}" for p, c in parts)
    missing = len(metas) - len(known)
    return text + (f"; not recorded for {missing} point{'s' if missing > 1 else ''}" if missing else "")


def _last_bench(bench: Any) -> str:
    """The header's words on the last bench invocation with points to run (``bench.json``), ``; `` after them;
    none without one. One whose end is not recorded (its ``wall_s`` null: killed, or running now) is said to be,
    rather than its numbers left out or an earlier bench's shown; one that stopped before running every point says
    how many were already finished."""
    if not isinstance(bench, dict) or not bench:
        return ""
    if not isinstance(bench.get("wall_s"), (int, float)):
        started = f" (started {bench['started']})" if bench.get("started") else ""
        return f"last bench{started} stopped before its end (killed?) or is running: its wall time is not recorded; "
    ran, points = bench.get("ran"), bench.get("points")
    if ran == points:
        others = ""
    elif bench.get("complete") is False:  # failed or stopped: some points were not run
        others = f" ({bench.get('skipped')} already finished; it stopped before the others)"
    else:
        others = " (the others were already finished)"
    jobs = bench.get("jobs")
    return f"last bench: {bench['wall_s']:.0f} s wall for {ran} of {points} points in {jobs} process(es){others}; "


def _prov_line(p: dict[str, str]) -> str:
    return f"*{p['command_line']} · commit `{p['commit']}` · {p['date']} · {p['hardware']} · seeds {p['seeds']}*"


def _estimators(records: list[dict[str, Any]]) -> list[str]:
    return sorted({str(r.get("summary", {}).get("kl/estimator", "")) for r in records} - {""})


# -- tables -------------------------------------------------------------------------------------------
def objective_table(groups: dict[Any, Group], commits: bool = False) -> str:
    """One row per knob value: every main column and the extras some record has, mean ± 95 % CI;
    with ``commits``, the commits that wrote each row's records."""
    any_group = next(iter(groups.values()))
    recs = [r for g in groups.values() for r in g.records]
    cols = [c for c in MAIN_COLUMNS if any(math.isfinite(_value(r, c[0])) for r in recs)]
    cols += [c for c in EXTRA_COLUMNS if any(c[0] in r.get("summary", {}) for r in recs)]
    est = _estimators(recs)
    headers = [any_group.knob_label, "seeds"] + [
        f"{h} [{'/'.join(est)}]" if key == "kl/exact" and est else h for key, h, _ in cols
    ]
    rows = []
    for value, g in groups.items():
        cells = [fmt_seeds_ci([_value(r, k) for r in g.records], d) for k, _, d in cols]
        rows.append([_fmt_value(value), len(g.records), *cells])
        if commits:
            rows[-1].append(", ".join(sorted({commit_of(r) for r in g.records})))
    if commits:
        headers.append("commit")
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def final_table(groups: dict[str, dict[Any, Group]]) -> str:
    """Reward against KL, one row per objective and knob value: the final evaluation's KL(π‖π_ref),
    proxy and gold reward, mean ± 95 % CI over seeds (what ``rlhf-zoo bench`` prints at the end)."""
    rows = []
    for vals in groups.values():
        for value, g in vals.items():
            cells = [
                fmt_seeds_ci([_value(r, k) for r in g.records], 3) for k in ("kl/exact", "reward/proxy", "reward/gold")
            ]
            rows.append([g.objective, f"{g.knob_label}={_fmt_value(value)}", len(g.records), *cells])
    headers = ["objective", "knob", "seeds", "KL(π‖π_ref)", "proxy reward", "gold reward"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def frontier_table(
    groups: dict[str, dict[Any, Group]], budgets: list[float], oracle: dict[str, Any], ykey: str = "reward/proxy"
) -> str | None:
    """Reward (``ykey``) of each objective at matched KL budgets: mean ± CI over the seeds whose curve
    reaches the budget (a curve is the final points over a sweep's knob, or a run's training path)."""
    rows = []
    if oracle.get("frontier"):
        xs = [f["kl"] for f in oracle["frontier"]]
        ys = [f["reward_proxy" if ykey == "reward/proxy" else "reward_gold"] for f in oracle["frontier"]]
        name = "optimal π*_β (oracle)" if ykey == "reward/proxy" else "π*_β of the proxy (oracle)"
        rows.append([name, "exact"] + [_f(interp_sorted(xs, ys, b)) for b in budgets])
    for vals in groups.values():
        first = next(iter(vals.values()))
        if first.frontier == "sweep" and len(vals) >= 2:
            seeds = sorted({s for g in vals.values() for s in g.by_seed})
            per_seed = []
            for s in seeds:
                pts = [
                    (_value(g.by_seed[s], "kl/exact"), _value(g.by_seed[s], ykey))
                    for g in vals.values()
                    if s in g.by_seed
                ]
                per_seed.append([interp_sorted([p[0] for p in pts], [p[1] for p in pts], b) for b in budgets])
            rows.append([first.objective, f"sweep over {first.knob_label}"] + _seed_cells(per_seed, len(budgets)))
        elif first.frontier == "paths":
            for value, g in vals.items():
                per_seed = []
                for path in g.paths("kl/exact", ykey):
                    per_seed.append([interp_path([p[1] for p in path], [p[2] for p in path], b) for b in budgets])
                rows.append(
                    [f"{first.objective}, {first.knob_label}={_fmt_value(value)}", "training path"]
                    + _seed_cells(per_seed, len(budgets))
                )
    if not rows:
        return None
    headers = ["objective", "curve"] + [f"KL = {b:g}" for b in budgets]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _f(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _seed_cells(per_seed: list[list[float | None]], k: int) -> list[str]:
    """The k budget columns over seeds (None: a seed's curve does not reach the budget), marked ``(k/n)``."""
    return [fmt_seeds_ci([row[j] for row in per_seed]) for j in range(k)]


def load_suite(suite: str, out: Path, records: Path | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one record per point, the same with pools expanded) of ``suite``, from the records folder and
    ``out``; a :class:`UserError` when they are not comparable."""
    raw = suite_records(suite, out, records)
    check_comparable(raw, suite)
    return raw, [x for r in raw for x in expand_pool(r)]


def verdict_table(out: Path, current: str, current_checks: dict[str, Check], records: Path | None = None) -> str:
    """One row per claim and suite (exact, quick, and full when it has records): verdict, metric, numbers.
    The current suite's checks are given; the others are checked from their records (in ``records`` and
    under ``out``), and a suite without records says "not run" (on the page of a suite of the user's, which has
    only its own records, it is left out)."""
    places = [out] + ([records] if records is not None else [])
    suites = [s for s in VERDICT_SUITES if s != "full" or any((p / s).is_dir() for p in places)]
    if current not in suites:
        suites.append(current)
    checks = {}
    for s in suites:
        if s == current:
            checks[s] = current_checks
            continue
        _, recs = load_suite(s, out, records)
        checks[s] = check_all(group_records(recs) if recs else None, is_exact(recs))
        if not recs:
            where = " or ".join(str(p / s) for p in places)
            note = f"no records under {where}: `rlhf-zoo bench suite={s}`"
            checks[s] = {k: replace(chk, numbers=note) for k, chk in checks[s].items()}
    if current not in VERDICT_SUITES:  # a suite of the user's: built-in suites not run beside it are no news to them
        suites = [s for s in suites if s == current or not all(c.status == NOT_RUN for c in checks[s].values())]
    rows = []
    for c in CLAIMS:
        for j, s in enumerate(suites):
            chk = checks[s][c.key]
            claim = f"**({c.key})** {c.statement}" if j == 0 else ""
            metric = c.metric if j == 0 else ""
            status = f"**{chk.status}**" if chk.status != NOT_RUN else chk.status
            rows.append([claim, metric, s, status, chk.numbers])
    return tabulate(
        rows, headers=["claim", "metric", "suite", "verdict", "numbers"], tablefmt="github", disable_numparse=True
    )


def _budgets(suite: str, records: list[dict[str, Any]], spec: Suite | None = None) -> list[float]:
    from rlhf_zoo.bench.suites import SUITES

    spec = spec or SUITES.get(suite)
    if spec is not None:
        return list(spec.kl_budgets)
    kls = sorted(_value(r, "kl/exact") for r in records if math.isfinite(_value(r, "kl/exact")))
    if not kls:
        return []
    return sorted({round(kls[int(q * (len(kls) - 1))], 2) for q in (0.25, 0.5, 0.75)})


# -- the page -----------------------------------------------------------------------------------------
def planned_count(
    raw: list[dict[str, Any]], planned: list[Point], spec: Suite | None = None, edited: dict[str, str] | None = None
) -> str:
    """How many of the planned points have a record of the point's run (:func:`~rlhf_zoo.bench.records.same_run`),
    and how many others there are; those of sweeps that the suite ``spec`` (else the planned points) lacks are
    named: a piece run with ``only=`` plans some of the suite's sweeps, and the others' records are its own.
    ``edited``: point id → the ``setting=value`` whose file its record read before the file changed
    (:func:`~rlhf_zoo.bench.runner.edited_points`): still shown, and said, as a bench refuses to keep them."""
    by_id = {r.get("id"): r for r in raw}
    have = {p.id for p in planned if p.id in by_id and same_run(by_id[p.id].get("args", []), p.args)}
    text = f"{len(have)} of the {len(planned)} planned points have records"
    if stale := [i for i in (edited or {}) if i in have]:
        text += (
            f" ({len(stale)} of them read other contents of {edited[stale[0]]} than it has now: a bench refuses "
            "to keep them, redo=true runs them again)"
        )
    others = len(raw) - len(have)
    if others:
        text += f", and {others} other record(s) (other seeds, sweeps or settings) are shown"
        sweeps = {m.get("sweep") for p in planned for m in p.memberships}
        sweeps |= {sw.tag for sw in spec.sweeps} if spec is not None else set()
        lost = Counter(
            str(m.get("sweep")) for r in raw for m in r.get("memberships", []) if m.get("sweep") not in sweeps
        )
        if lost:
            named = ", ".join(f"{k} ({n})" for k, n in sorted(lost.items()))
            text += f"; records of sweeps the suite does not have (a tag dropped?): {named}"
    return text


def render_suite(
    suite: str,
    out: str | Path,
    docs: str | Path = "docs/benchmarks",
    records: str | Path | None = None,
    planned: list[Point] | None = None,
    spec: Suite | None = None,
    run_command: str | None = None,
    edited: dict[str, str] | None = None,
) -> Path:
    """Write ``<docs>/<suite>.md`` and its PNGs from the suite's records (in ``records``, the records
    folder, and under ``<out>/<suite>/``); returns the page. ``planned``: the points the suite plans
    (default: the built-in suite's, if ``suite`` is one), counted against the records on the page, and
    ``edited`` those of them whose records read a file of the user's that has changed since (:func:`planned_count`).
    ``spec``: the suite's definition (its description and KL budgets) when it is not a built-in one.
    ``run_command``: the command that would make the records, which the error without any names (default:
    ``rlhf-zoo bench suite=<suite>``)."""
    from rlhf_zoo.bench.suites import SUITES, expand

    out, docs = Path(out), Path(docs)
    rec_dir = Path(records) if records is not None else None
    raw, recs = load_suite(suite, out, rec_dir)
    if not recs:
        where = out / suite if rec_dir is None else f"{rec_dir / suite} or {out / suite}"
        run = run_command or f"rlhf-zoo bench suite={suite}"
        raise UserError(f"no finished points under {where}: run `{run}` first")
    if planned is None and suite in SUITES:
        planned = expand(SUITES[suite])
    groups = group_records(recs)
    oracle = read_oracle(suite, out, rec_dir)
    checks = check_all(groups, is_exact(recs))
    bench = read_json(out / suite / BENCH)
    prov = provenance(raw)
    figures = plots.make_all(groups, oracle, docs / suite)
    figures["claims"] = claims.figure(checks, docs / suite / "claims.png")
    rel = {name: f"{suite}/{path.name}" for name, path in figures.items()}
    # records that only a run folder holds (deleted from the records folder, or not copied there yet): shown, and said
    only_out = 0 if rec_dir is None else len(set(out_records(out / suite)) - set(repo_records(rec_dir / suite)))
    page = _Page(suite, raw, recs, groups, bench, prov, rel, only_out, out / suite)
    paragraphs = [
        *_head(page, rec_dir, planned, spec, edited),
        *_claims_part(page, out, checks, rec_dir),
        *_matched_kl_part(page, oracle, _budgets(suite, recs, spec)),
        *_objectives_part(page),
    ]
    return atomic_write_text(docs / f"{suite}.md", "\n\n".join(paragraphs) + "\n")


@dataclass(frozen=True)
class _Page:
    """What every part of a suite's page reads: its records as written (``raw``, a pool one record) and
    as read (``recs``, a pool one record per n), grouped by sweep, the last bench's ``bench.json``, the
    records' provenance and the figures' paths relative to the page."""

    suite: str
    raw: list[dict[str, Any]]
    recs: list[dict[str, Any]]
    groups: dict[str, dict[Any, Group]]
    bench: dict[str, Any] | None
    prov: dict[str, str]
    figures: dict[str, str]
    only_out: int = 0  # records under ``out_dir`` that the records folder lacks
    out_dir: Path | None = None


def _head(
    page: _Page, rec_dir: Path | None, planned: list[Point] | None, spec: Suite | None, edited: dict[str, str] | None
) -> list[str]:
    """The title, where the page comes from, the suite's description and the provenance table."""
    from rlhf_zoo.bench.suites import SUITES

    suite, raw, recs, prov = page.suite, page.raw, page.recs, page.prov
    arg = "FILE.yaml" if spec is not None and spec is not SUITES.get(suite) else suite  # a user's suite file
    made = (
        f"Generated by `rlhf-zoo bench suite={arg}` from the records"
        + (f" in `{rec_dir / suite}/`" if rec_dir is not None else "")
        + (
            f" and {page.only_out} record{'s' if page.only_out > 1 else ''} only in `{page.out_dir}/`, which the "
            "records folder lacks (a bench copies them there; to drop one, delete its run folder too)"
            if page.only_out
            else ""
        )
        + " (finished points are never recomputed, so a suite can be run in pieces, on several machines); "
        f"`rlhf-zoo bench suite={arg} render_only=true` redraws this page from the records alone. "
        "Do not edit by hand."
    )
    # runs are the records as written (a Best-of-N pool is one run, read as one record per n)
    seeds_of: dict[tuple[str, ...], set[int]] = {}
    for r in raw:
        seeds_of.setdefault(tuple(a for a in r.get("args", []) if not a.startswith("seed=")), set()).add(r.get("seed"))
    counts = sorted({len(s) for s in seeds_of.values()}) or [0]
    each = f" × {counts[0]} seed(s)" if len(counts) == 1 else f", {counts[0]} to {counts[-1]} seeds each"
    run_sum = sum(_value(r, "wall_s") for r in recs if math.isfinite(_value(r, "wall_s")))
    wall = _last_bench(page.bench) + f"sum of run times {run_sum:.0f} s"
    header = [
        ["command", prov["command"]],
        ["git commit", prov["commits"]],
        ["code version", f"{prov['code']}: a hash of the sampling, objective and evaluation code"],
        ["date", prov["date"]],
        ["hardware", prov["hardware"]],
        ["seeds", prov["seeds"]],
        ["runs", f"{len(raw)} ({len(seeds_of)} configurations{each})"],
        *([["points", planned_count(raw, planned, spec, edited)]] if planned else []),
        ["wall time", wall],
        ["versions", prov["versions"]],
        [
            "KL(π‖π_ref)",
            "; ".join(KL_ESTIMATORS.get(e, e) for e in _estimators(recs)) + "; nats per sequence, never clamped",
        ],
    ]
    description = _description(suite, spec)
    return [
        f"# Benchmark `{suite}`: reward against KL for every objective",
        made,
        *([description] if description else []),
        tabulate(header, headers=["", ""], tablefmt="github", disable_numparse=True),
        "Every number is the mean over seeds ± the half-width of the two-sided 95 % Student-t confidence interval "
        "(no interval with one seed). Rewards and KL are those of the last evaluation; costs are the training's "
        "(generated completions' tokens and reward-model calls; Best-of-N is not trained and costs n samples and n "
        "reward calls per output).",
    ]


def _claims_part(page: _Page, out: Path, checks: dict[str, Check], rec_dir: Path | None) -> list[str]:
    """The verdicts on the BOND paper's claims, for this suite and the others whose records exist."""
    return [
        "## The BOND paper's claims",
        _prov_line(page.prov),
        verdict_table(out, page.suite, checks, rec_dir),
        "Exact suites check exact quantities; the language-model suites check estimates from their records. "
        "A difference between two groups of runs counts only when its 95 % Welch interval over seeds excludes 0; "
        "(d) pairs each seed's J-BOND and REINFORCE runs and needs the 95 % Student-t interval of the per-seed "
        "differences above 0 (and the seed-mean paths within its tolerance); (e1) and (e2) compare seed means "
        "with the theory. With one seed there is no interval and the direction of the means decides.",
    ]


def _matched_kl_part(page: _Page, oracle: dict[str, Any] | None, budgets: list[float]) -> list[str]:
    """Proxy and gold reward at a few KL budgets, the reward-against-KL plots and, where there is a gold
    reward, the over-optimisation plot."""
    parts = [
        "## Reward at matched KL",
        "Each objective's curve (the final points over its knob, or a run's training path) interpolated at a few "
        "KL(π‖π_ref) budgets; — where a curve does not reach the budget, (k/n) where only k of n seeds do.",
    ]
    for ykey, title in (("reward/proxy", "Proxy reward"), ("reward/gold", "Gold reward")):
        if not any(ykey in r.get("summary", {}) for r in page.recs):
            continue
        table = frontier_table(page.groups, budgets, oracle, ykey)
        if table:
            parts += [f"**{title}** at KL(π‖π_ref) =", _prov_line(page.prov), table]
    for name, title in (("reward_vs_kl", "Proxy reward against KL"), ("frontier_gap", "Gap to the optimal frontier")):
        if name in page.figures:
            parts.append(f"![{title}]({page.figures[name]})")
    parts.append(
        "In *reward_vs_kl*, lines are seed-mean training paths (one per knob value), markers the final points with "
        "95 % intervals, the dashed grey curve Best-of-N over n"
        + (" and the black curve the optimal frontier (π*_β over β)." if is_exact(page.recs) else ".")
    )
    if "overoptimisation" in page.figures:
        parts += [
            "## Over-optimisation: gold against KL and against proxy",
            f"![Gold reward against KL and against proxy reward]({page.figures['overoptimisation']})",
        ]
    return parts


def _objectives_part(page: _Page) -> list[str]:
    """One table per objective over its knob (a commit column when the records come from several), and
    the claims' figure."""
    several_commits = len({commit_of(r) for r in page.raw}) > 1
    parts = ["## Every objective"]
    for tag, vals in page.groups.items():
        first = next(iter(vals.values()))
        parts += [
            f"### {first.objective} (`{tag}`, over {first.knob_label})",
            _prov_line(page.prov),
            objective_table(vals, several_commits),
        ]
    if "claims" in page.figures:
        parts += ["## The claims, plotted", f"![The claims]({page.figures['claims']})"]
    return parts


def _description(suite: str, spec: Suite | None = None) -> str:
    from rlhf_zoo.bench.suites import SUITES

    s = spec or SUITES.get(suite)
    return f"{s.description} Budget: {s.budget}." if s else ""


__all__ = [
    "final_table",
    "frontier_table",
    "load_suite",
    "objective_table",
    "planned_count",
    "provenance",
    "render_suite",
    "verdict_table",
]
