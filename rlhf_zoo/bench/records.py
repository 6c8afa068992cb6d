"""Benchmark records: what a finished point leaves behind, and how the renderer reads them back.

    <out>/<suite>/<point-id>/record.json   one finished point (written last, atomically)
    <out>/<suite>/bench.json               the last bench invocation (command, wall time, points run)
    <out>/<suite>/oracle.json              exact suites: the optimal frontier and Best-of-N over n

A record holds everything the tables and plots need, so rendering never opens a run directory:

    {"format": 1, "suite", "id", "label", "seed", "args", "memberships": [{sweep, objective, knob,
     knob_label, value, frontier, order}, ...], "bench_command", "meta" (the run's meta.json),
     "summary" (summary.json), "metrics" (every line of metrics.jsonl), "wall_s", "finished"}

A Best-of-N *pool* point (:mod:`rlhf_zoo.evaluate_pool`) has no training: its record holds
``"pool": {"pool_size", "prompts", "kl/estimator", "curve": {n: metrics}}`` (every n ≤ M), and
:func:`load_records` reads it as one record per n its membership lists (``values``), each with that
n's metrics as its summary, so tables, plots and claims read it like any Best-of-N evaluation.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhf_zoo.io import atomic_write_json

RECORD = "record.json"
BENCH = "bench.json"
ORACLE = "oracle.json"
FORMAT = 1


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` atomically: readers see all or nothing."""
    atomic_write_json(path, obj, indent=1)


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_record(point_dir: Path) -> dict[str, Any] | None:
    """A point's record, or None if the point has not finished (no record, or a broken one)."""
    rec = read_json(point_dir / RECORD)
    return rec if isinstance(rec, dict) and rec.get("format") == FORMAT else None


def load_records(suite_dir: Path) -> list[dict[str, Any]]:
    """Every finished point's record under ``<out>/<suite>/``, in directory-name order."""
    if not suite_dir.is_dir():
        return []
    out = []
    for d in sorted(p for p in suite_dir.iterdir() if p.is_dir()):
        rec = read_record(d)
        if rec is not None:
            out.extend(expand_pool(rec))
    return out


def expand_pool(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """A pool record as one record per n of its membership's ``values`` (any other record: itself).

    Each has that n's metrics as ``summary`` (``kl/estimator`` = ``bon_pool``) and the membership's
    ``value`` = n; the pool's wall time is counted once (on the first n)."""
    pool = rec.get("pool")
    if not isinstance(pool, dict):
        return [rec]
    curve = pool.get("curve", {})
    out = []
    for m in rec.get("memberships", []):
        for i, n in enumerate(m.get("values") or sorted(int(k) for k in curve)):
            row = curve.get(str(n))
            if row is None:
                continue
            summary = {k: v for k, v in row.items() if v is not None}
            summary["kl/estimator"] = pool.get("kl/estimator", "bon_pool")
            out.append(
                {
                    **rec,
                    "id": f"{rec['id']}-n{n}",
                    "summary": summary,
                    "memberships": [{**m, "value": n}],
                    "wall_s": rec.get("wall_s") if i == 0 else None,
                }
            )
    return out


@dataclass
class Group:
    """The records of one (sweep, value) across seeds."""

    sweep: str
    objective: str
    knob: str
    knob_label: str
    value: Any
    frontier: str
    order: int
    by_seed: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def records(self) -> list[dict[str, Any]]:
        return [self.by_seed[s] for s in sorted(self.by_seed)]

    def finals(self, key: str) -> list[float]:
        """The final evaluation's ``key`` of every seed (NaN where missing)."""
        return [_num(r.get("summary", {}).get(key)) for r in self.records]

    def paths(self, *keys: str) -> list[list[tuple[float, ...]]]:
        """Per seed, the training path [(step, keys...)] from the metrics lines."""
        return [
            [(float(m["step"]), *(_num(m.get(k)) for k in keys)) for m in r.get("metrics", [])] for r in self.records
        ]

    def mean_path(self, *keys: str) -> list[tuple[float, ...]]:
        """The seed-mean path [(step, mean of each key)] over the evaluation steps all seeds share."""
        per_seed = [{p[0]: p[1:] for p in path} for path in self.paths(*keys)]
        if not per_seed:
            return []
        steps = sorted(set.intersection(*(set(d) for d in per_seed)))
        out = []
        for s in steps:
            cols = list(zip(*(d[s] for d in per_seed), strict=True))
            out.append((s, *(_mean(c) for c in cols)))
        return out


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _mean(xs: tuple[float, ...]) -> float:
    good = [x for x in xs if math.isfinite(x)]
    return sum(good) / len(good) if good else math.nan


def group_records(records: list[dict[str, Any]]) -> dict[str, dict[Any, Group]]:
    """sweep tag → knob value → :class:`Group`, sweeps in suite order, values in sweep order of appearance."""
    groups: dict[str, dict[Any, Group]] = defaultdict(dict)
    orders: dict[str, int] = {}
    for rec in records:
        for m in rec.get("memberships", []):
            tag, value = m["sweep"], m["value"]
            g = groups[tag].get(value)
            if g is None:
                g = Group(
                    tag,
                    m.get("objective", tag),
                    m.get("knob", ""),
                    m.get("knob_label", m.get("knob", "")),
                    value,
                    m.get("frontier", "sweep"),
                    int(m.get("order", 0)),
                )
                groups[tag][value] = g
            orders[tag] = g.order
            g.by_seed[int(rec["seed"])] = rec
    ordered = sorted(groups, key=lambda t: (orders[t], t))
    return {t: dict(sorted(groups[t].items(), key=lambda kv: _sort_key(kv[0]))) for t in ordered}


def is_exact(records: list[dict[str, Any]]) -> bool:
    """Whether records come from a task with an exact oracle (their KL estimator is ``exact``)."""
    return any(r.get("summary", {}).get("kl/estimator") == "exact" for r in records)


def _sort_key(v: Any) -> tuple[int, float | str]:
    return (0, float(v)) if isinstance(v, (int, float)) else (1, str(v))


__all__ = [
    "BENCH",
    "FORMAT",
    "ORACLE",
    "RECORD",
    "Group",
    "expand_pool",
    "group_records",
    "is_exact",
    "load_records",
    "read_json",
    "read_record",
    "write_json_atomic",
]
