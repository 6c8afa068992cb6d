"""Benchmark records: what a finished point leaves behind, where, and how the renderer reads them back.

    <out>/<suite>/<point-id>/point.json    a point's arguments, written when it starts (to decide whether it may resume)
    <out>/<suite>/<point-id>/record.json   one finished point, in full (written last, atomically)
    <out>/<suite>/bench.json               the last bench invocation with points to run (command, wall time, points
                                           run), written when it starts (its end, wall time and points run null) and
                                           again when it ends: nulls left mean that it was killed, or is running
    <out>/<suite>/oracle.json              exact suites: the optimal frontier and Best-of-N over n
    <records>/<suite>/<point-id>.json      the same point, compact, in the repository (a few KB)
    <records>/<suite>/oracle.json          exact suites: the oracle's curves, rounded

``<records>`` is ``docs/benchmarks/records`` by default (``records=`` on the bench command line; see
:mod:`rlhf_zoo.bench.command`): the records are committed, so a suite can be run in pieces, on several
machines and at several times, and its page rendered from whatever records are there. A point with a
record (in ``<records>`` or under ``<out>``) whose arguments make the point's run is never run again: the
same arguments in any order, but for the settings that cannot change its results (:data:`rlhf_zoo.config.NO_EFFECT`:
progress bar, trackers, checkpoint cadence; :func:`same_run`).

A record holds everything the tables, plots and claims need, so rendering never opens a run directory:

    {"format": 2, "suite", "id", "label", "seed", "args", "memberships": [{sweep, objective, knob,
     knob_label, value, frontier, order}, ...], "settings", "code_version", "git_commit", "git_dirty",
     "package_version", "bench_command", "meta" (the run's meta.json), "summary" (summary.json),
     "metrics" (every line of metrics.jsonl), "wall_s", "resumed", "finished"}

What makes records comparable (:func:`check_comparable`): ``code_version``, the hash of the code that
decides the numbers (:mod:`rlhf_zoo.bench.version`), and ``settings``, the run's resolved configuration
as dotted keys without what cannot change the numbers or differs by design (:data:`UNSETTLED`: the
seed, the run directory, the device, threads, progress bars, checkpoint cadence). ``git_commit``
(``git_dirty``: tracked files differed from it; both None outside git) and ``package_version`` say
which code wrote the record; the page names the commits behind its points.

The *compact* record in ``<records>`` (:func:`compact`) has the same keys, with every float rounded to
6 significant digits (NaN and infinities as null), and, instead of ``metrics``, ``curves``: the
evaluation steps' curve metrics (:data:`CURVE_KEYS`) as columns, ``{"step": [...], key: [...]}``.
:func:`read_point_record` turns it back into ``metrics`` lines, so a record reads the same from
either place. A record of format 1 (written before records carried a code version) still loads, with
code version ``unknown`` and its arguments as its settings.

A Best-of-N *pool* point (:mod:`rlhf_zoo.evaluate_pool`) has no training: its record holds
``"pool": {"pool_size", "prompts", "kl/estimator", "costs", "curve": {n: metrics}}`` (every n ≤ M; compact:
the curve as columns with an ``"n"`` column; ``costs``: the pool's completions, generated tokens, reward calls
and seconds per phase, named as in a run's summary, absent from records written before 2026-12-06), and
:func:`expand_pool` reads it as one record per n its membership lists (``values``), each with that n's metrics
as its summary, so tables, plots and claims read it like any Best-of-N evaluation.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhf_zoo.config import NO_EFFECT  # a point whose record differs from it only in these is finished
from rlhf_zoo.errors import UserError
from rlhf_zoo.inputs import changed
from rlhf_zoo.io import atomic_write_json, atomic_write_text, read_json

RECORD = "record.json"
STARTED = "point.json"  # written when a point starts: its arguments, to decide whether it may resume
BENCH = "bench.json"
ORACLE = "oracle.json"
FORMAT = 2
FORMATS = (1, 2)  # the formats this version reads
DIGITS = 6  # significant digits of a compact record's floats
# metrics of the evaluation steps that a compact record keeps (the curves the plots and claims draw)
CURVE_KEYS = ("reward/", "win_rate/", "length/", "frontier/", "quantile/", "kl/exact", "kl/to_", "kl/from_", "bon/")
# configuration keys that are not a record's settings: they cannot change its numbers, or differ by design
# (the thread count changes floating-point rounding, so a run's samples, but not what they are drawn from)
UNSETTLED = ("seed", "run_dir", "resume", "device", "threads", *NO_EFFECT)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` atomically: readers see all or nothing."""
    atomic_write_json(path, obj, indent=1)


def read_record(point_dir: Path) -> dict[str, Any] | None:
    """A point's record in its run directory, or None if the point has not finished (no record, or a broken one).
    A record of a format this version does not read (a newer rlhf_zoo's) is a :class:`UserError` naming it, as in
    the records folder: taken for unfinished, the bench would delete it to run the point again."""
    rec = read_json(point_dir / RECORD)
    if not isinstance(rec, dict) or "format" not in rec:
        return None
    if rec["format"] not in FORMATS:
        raise UserError(
            f"the record {point_dir / RECORD} has format {rec['format']!r}; this rlhf_zoo reads formats {FORMATS}"
        )
    return rec


def load_records(suite_dir: Path) -> list[dict[str, Any]]:
    """Every finished point's record under ``<out>/<suite>/``, in directory-name order, pools expanded."""
    return [x for rec in out_records(suite_dir).values() for x in expand_pool(rec)]


def out_records(suite_dir: Path) -> dict[str, dict[str, Any]]:
    """point id → record, for every finished point under ``<out>/<suite>/``."""
    if not suite_dir.is_dir():
        return {}
    out = {}
    for d in sorted(p for p in suite_dir.iterdir() if p.is_dir()):
        rec = read_record(d)
        if rec is not None:
            out[str(rec.get("id", d.name))] = rec
    return out


def _by_key(args: Any, leave_out: tuple[str, ...]) -> dict[str, str]:
    """``key=value`` arguments as key → value, sorted by key (the later of a repeated key wins), without
    ``leave_out``."""
    out: dict[str, str] = {}
    for a in args:
        k, _, v = str(a).partition("=")
        out[k.strip()] = v
    return {k: out[k] for k in sorted(out) if k not in leave_out}


def run_identity(args: Any) -> dict[str, str]:
    """A point's ``key=value`` arguments as what decides its results: key → value (the later of a repeated key
    wins, so the order of different keys does not matter), without the :data:`NO_EFFECT` keys."""
    return _by_key(args, NO_EFFECT)


def same_run(a: Any, b: Any) -> bool:
    """Whether two points' arguments make the same run: equal but for their order and the :data:`NO_EFFECT`
    settings. A finished point whose record's arguments are the same run as the point's is not run again."""
    return run_identity(a) == run_identity(b)


# -- the compact records of the repository ------------------------------------------------------------
def settings_of(config: Any) -> dict[str, Any]:
    """A resolved configuration (an OmegaConf config or a nested dict) as a record's ``settings``:
    dotted keys → values, without the :data:`UNSETTLED` keys and without empty mappings (``task.proxy_options``
    left at ``{}`` is no setting, so records written before such a key existed compare equal)."""
    from omegaconf import DictConfig, OmegaConf

    from rlhf_zoo.config import flatten

    tree = OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config
    flat = flatten(tree, "the resolved configuration")
    return {k: flat[k] for k in sorted(flat) if k not in UNSETTLED and flat[k] != {}}


def rounded(v: Any) -> Any:
    """``v`` with every float, in nested dicts and lists too, rounded as a compact record stores it (NaN and
    infinities as None)."""
    if isinstance(v, float):
        return float(f"{v:.{DIGITS}g}") if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: rounded(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [rounded(x) for x in v]
    return v


def _columns(rows: list[dict[str, Any]], index: str, keep: Any) -> dict[str, list[Any]]:
    keys = sorted({k for r in rows for k, v in r.items() if k != index and keep(k, v)})
    cols: dict[str, list[Any]] = {index: [r.get(index) for r in rows]}
    for k in keys:
        cols[k] = [r.get(k) for r in rows]
    return cols


def _rows(cols: dict[str, list[Any]]) -> list[dict[str, Any]]:
    n = max((len(v) for v in cols.values()), default=0)
    return [{k: v[i] for k, v in cols.items() if i < len(v) and v[i] is not None} for i in range(n)]


def _curve_key(key: str, value: Any) -> bool:
    num = isinstance(value, (int, float)) and not isinstance(value, bool)
    return num and key.startswith(CURVE_KEYS)


def compact(rec: dict[str, Any]) -> dict[str, Any]:
    """The record as the repository keeps it (module docstring): rounded, the curves as columns."""
    out = {k: v for k, v in rec.items() if k not in ("metrics", "pool")}
    out["curves"] = _columns(rec.get("metrics", []), "step", _curve_key)
    pool = rec.get("pool")
    if isinstance(pool, dict):
        curve = pool.get("curve", {})
        rows = [{"n": int(n), **curve[n]} for n in sorted(curve, key=int)]
        rest = {k: v for k, v in pool.items() if k != "curve"}
        out["pool"] = {**rest, "curve": _columns(rows, "n", lambda k, v: True)}
    return rounded(out)


def uncompact(rec: dict[str, Any]) -> dict[str, Any]:
    """A compact record read back as a full one (``metrics`` lines, the pool's curve by n)."""
    if "curves" not in rec:
        return rec
    out = {k: v for k, v in rec.items() if k != "curves"}
    out["metrics"] = _rows(rec["curves"])
    pool = rec.get("pool")
    if isinstance(pool, dict) and isinstance(pool.get("curve"), dict) and "n" in pool["curve"]:
        rows = _rows(pool["curve"])
        curve = {str(r.pop("n")): r for r in rows}
        out["pool"] = {**pool, "curve": curve}
    return out


def dumps_record(rec: dict[str, Any]) -> str:
    """JSON with one line per key down to the second level and compact values below (diffs stay readable)."""

    def dump(v: Any, depth: int) -> str:
        if isinstance(v, dict) and v and depth < 2:
            pad = " " * (depth + 1)
            items = [f"{pad}{json.dumps(k)}: {dump(v[k], depth + 1)}" for k in sorted(v)]
            return "{\n" + ",\n".join(items) + "\n" + " " * depth + "}"
        return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    return dump(rec, 0) + "\n"


def record_path(records: Path, suite: str, point_id: str) -> Path:
    return Path(records) / suite / f"{point_id}.json"


def write_point_record(records: Path, rec: dict[str, Any]) -> Path:
    """Write ``rec`` compact to ``<records>/<suite>/<id>.json``, atomically."""
    return atomic_write_text(record_path(records, rec["suite"], rec["id"]), dumps_record(compact(rec)))


def read_point_record(path: Path) -> dict[str, Any] | None:
    """The record in ``path`` (compact or not), read back as a full one; None when there is no file.

    A file that is not a record this version reads (broken JSON, e.g. merge-conflict markers, or
    another format) is a :class:`UserError` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UserError(f"cannot read the record {path}: {e}") from None
    try:
        rec = json.loads(text)
    except ValueError as e:
        if any(line.startswith(("<<<<<<< ", ">>>>>>> ")) for line in text.splitlines()):  # one point run twice
            raise UserError(
                f"the record {path} holds git's merge conflict markers (two machines recorded the same point): keep "
                f"one side (git checkout --ours {path}, or --theirs) or delete it"
            ) from None
        raise UserError(f"the record {path} is not valid JSON ({e}); restore it from git or delete it") from None
    if not isinstance(rec, dict):  # said "has format None"
        raise UserError(
            f"the record {path} holds {_json_kind(rec)}, not a record (an object); restore it from git or delete it"
        )
    if rec.get("format") not in FORMATS:
        raise UserError(f"the record {path} has format {rec.get('format')!r}; this rlhf_zoo reads formats {FORMATS}")
    damage = _damage(rec)
    if damage:  # a hand edit or a merge gone wrong: was an AttributeError or ValueError traceback in the tables
        raise UserError(f"the record {path} is damaged: {damage}; restore it from git or delete it")
    return uncompact(rec)


# the top-level fields of a record and their JSON kinds (those it has: a pool record's pool, ...)
_FIELDS: dict[str, type] = {
    **{k: str for k in ("id", "suite", "label")},
    "seed": int,
    **{k: list for k in ("args", "memberships")},
    **{k: dict for k in ("summary", "settings", "meta", "curves", "pool")},
}


def _json_kind(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    kinds = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number"}
    return next((name for t, name in kinds.items() if isinstance(v, t)), type(v).__name__)


def _damage(rec: dict[str, Any]) -> str | None:
    """What makes ``rec`` no record (a field of another JSON kind, a membership that is no object), or None."""
    for key, kind in _FIELDS.items():
        v = rec.get(key, kind())
        if not isinstance(v, kind) or isinstance(v, bool):
            return f"its {key} is {_json_kind(v)}, not {_json_kind(kind())}"
    bad = [m for m in rec.get("memberships", []) if not isinstance(m, dict)]
    return f"its memberships hold {_json_kind(bad[0])}, not an object per sweep" if bad else None


def repo_records(suite_records: Path) -> dict[str, dict[str, Any]]:
    """point id → record, for every ``<id>.json`` in ``<records>/<suite>/`` (not the oracle's file)."""
    if not suite_records.is_dir():
        return {}
    out = {}
    for path in sorted(suite_records.glob("*.json")):
        if path.name == ORACLE:
            continue
        rec = read_point_record(path)
        if rec is not None:
            out[str(rec.get("id", path.stem))] = rec
    return out


def suite_records(suite: str, out: Path, records: Path | None) -> list[dict[str, Any]]:
    """A suite's records, pools not expanded: those in ``<records>/<suite>/`` and those under
    ``<out>/<suite>/`` whose point has none there (a point's record in the records folder wins)."""
    found = out_records(Path(out) / suite)
    if records is not None:
        found.update(repo_records(Path(records) / suite))
    return [found[k] for k in sorted(found)]


def write_oracle(records: Path, suite: str, oracle: dict[str, Any]) -> None:
    """The oracle's curves, rounded, beside the suite's records (not rewritten when they are the same)."""
    path = Path(records) / suite / ORACLE
    text = dumps_record(rounded(oracle))
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)


def read_oracle(suite: str, out: Path, records: Path | None) -> dict[str, Any]:
    """The suite's oracle curves (the records folder's, else the run folder's), or {}."""
    for base in ([Path(records)] if records is not None else []) + [Path(out)]:
        oracle = read_json(base / suite / ORACLE)
        if isinstance(oracle, dict) and oracle:
            return oracle
    return {}


# -- comparability ----------------------------------------------------------------------------------------
def code_version_of(rec: dict[str, Any]) -> str:
    """The record's code version (``unknown`` for records of format 1)."""
    from rlhf_zoo.bench.version import UNKNOWN

    return str(rec.get("code_version") or UNKNOWN)


def record_settings(rec: dict[str, Any]) -> dict[str, Any]:
    """The record's settings; for a format-1 record, its arguments (``key → value``, the seed left out)."""
    if isinstance(rec.get("settings"), dict):
        return rec["settings"]
    return _by_key(rec.get("args", []), UNSETTLED)


def commit_of(rec: dict[str, Any]) -> str:
    """The record's git commit, short, with ``-dirty`` when tracked files differed; ``unknown`` outside git."""
    commit = rec.get("git_commit")
    dirty = rec.get("git_dirty")
    if commit is None and "git_dirty" not in rec:  # format 1: the run's meta.json
        meta = str(rec.get("meta", {}).get("git_commit") or "unknown")
        dirty = meta.endswith("-dirty")
        commit = None if meta.removesuffix("-dirty") in ("", "unknown") else meta.removesuffix("-dirty")
    if not commit:
        return "unknown"
    return str(commit)[:10] + ("-dirty" if dirty else "")


def setting_diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The settings that differ between ``a`` and ``b``, the first three as ``key=a vs b``."""
    keys = sorted(k for k in set(a) | set(b) if a.get(k, "<unset>") != b.get(k, "<unset>"))
    shown = ", ".join(f"{k}={a.get(k, '<unset>')} vs {b.get(k, '<unset>')}" for k in keys[:3])
    return shown + (f" (and {len(keys) - 3} more)" if len(keys) > 3 else "")


def page_value(value: Any) -> Any:
    """A knob's value as the page keys it: as written (1 and 1.0 are one value), a list (``[q_proj, v_proj]``, read
    back from JSON) as a tuple, which a table's rows and a group can be keyed by."""
    if isinstance(value, (list, tuple)):
        return tuple(page_value(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, page_value(v)) for k, v in sorted(value.items()))
    return value


def check_comparable(records: list[dict[str, Any]], suite: str) -> None:
    """Refuse (a one-line :class:`UserError`) to pool records that are not comparable: the seeds of one
    sweep value (and the records of one point) must share a code version and settings, and hold each seed once
    (a group keeps one record per seed: a second would be dropped while the page counted it).

    The records are keyed as :func:`group_records` pools them, by sweep and value (so 2 and 2.0, one
    group there, are checked together here), and named by the first one's knob and value."""
    by_point: dict[tuple[str, Any], list[dict[str, Any]]] = defaultdict(list)
    names: dict[tuple[str, Any], str] = {}
    for rec in records:
        for m in rec.get("memberships", []):
            key = (m["sweep"], page_value(m.get("value")))
            by_point[key].append(rec)
            names.setdefault(key, f"{m.get('knob_label') or m.get('knob', '')}={m.get('value')}")
    for (tag, value), recs in by_point.items():
        point = names[(tag, value)]
        first = recs[0]
        seen: dict[int, Any] = {}
        for rec in recs:
            other = seen.setdefault(int(rec.get("seed", 0)), rec.get("id"))
            if other != rec.get("id"):
                raise UserError(
                    f"{suite}: cannot pool the records of {tag} {point}: {other} and {rec.get('id')} are both seed "
                    f"{rec.get('seed')}; delete one of them and render again"
                )
        for rec in recs[1:]:
            va, vb = code_version_of(first), code_version_of(rec)
            where = f"{suite}: cannot pool the records of {tag} {point}"
            ids = f"{first.get('id')} (seed {first.get('seed')}) and {rec.get('id')} (seed {rec.get('seed')})"
            if va != vb:
                raise UserError(
                    f"{where}: {ids} come from code versions {va} and {vb} (commits {commit_of(first)} and "
                    f"{commit_of(rec)}); delete the records of one version and run the bench again"
                )
            sa, sb = record_settings(first), record_settings(rec)
            if sa != sb:
                raise UserError(
                    f"{where}: {ids} have different settings ({setting_diff(sa, sb)}); delete the records of "
                    "one setting and run the bench again"
                )
            ia, ib = first.get("inputs") or {}, rec.get("inputs") or {}
            if edited := changed(ia, ib):
                k = edited[0]
                raise UserError(
                    f"{where}: {ids} read different contents of {k}={sa.get(k)} ({ia[k]} vs {ib[k]}: the file "
                    "changed between them); delete the records of one and run the bench again"
                )


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
            tag, value = m["sweep"], page_value(m["value"])
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
    "CURVE_KEYS",
    "FORMAT",
    "FORMATS",
    "NO_EFFECT",
    "ORACLE",
    "RECORD",
    "STARTED",
    "UNSETTLED",
    "Group",
    "check_comparable",
    "code_version_of",
    "commit_of",
    "compact",
    "dumps_record",
    "expand_pool",
    "group_records",
    "is_exact",
    "load_records",
    "out_records",
    "page_value",
    "read_json",
    "read_oracle",
    "read_point_record",
    "read_record",
    "record_path",
    "record_settings",
    "repo_records",
    "rounded",
    "run_identity",
    "same_run",
    "setting_diff",
    "settings_of",
    "suite_records",
    "uncompact",
    "write_json_atomic",
    "write_oracle",
    "write_point_record",
]
