"""``rlhf-zoo compare RUN_DIR... [out=DIR]``: finished runs side by side, seeds pooled.

    rlhf-zoo compare runs/bond-exact-s0 runs/bond-exact-s1 runs/jbond-exact-s0
    rlhf-zoo compare bench_runs/quick out=cmp        # every finished run below a folder (a sweep, a bench)

Each argument is a run directory (one holding ``summary.json``) or a folder searched for them. Runs
whose resolved configs differ only in ``seed`` (and ``run_dir``, ``resume`` and the settings that cannot
change a run's numbers, :data:`rlhf_zoo.config.NO_EFFECT`: progress bar, trackers, checkpoint
cadence) are one configuration;
each configuration is named by its algorithm (the preset its command line named, ``rloo``, where it has one), its
task when the runs span several tasks, and the settings in which it differs from the others of that algorithm
and task. The table gives
every configuration's number of seeds (distinct) and its common metrics as mean ± 95 % Student-t interval over
its seeds (:func:`rlhf_zoo.bench.stats.mean_ci`; two runs of one configuration with the same seed, such
as a run and its copy, are refused rather than counted as two seeds), printed as Markdown; with ``out=DIR`` it is also
written there as ``compare.md`` and ``compare.csv`` (mean, half-width and number-of-seeds columns), with the
reward-vs-KL and gold-vs-proxy plots of the bench pages (:mod:`rlhf_zoo.bench.plots`), drawn from the
runs' ``metrics.jsonl`` paths.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf_zoo.config import NO_EFFECT
from rlhf_zoo.errors import UserError
from rlhf_zoo.inputs import changed
from rlhf_zoo.io import read_json

IGNORED = ("seed", "run_dir", "resume", *NO_EFFECT)
COLUMNS = (
    "reward/proxy",
    "reward/gold",
    "kl/exact",
    "win_rate/gold",
    "quantile/log_mean",
    "length/mean",
    "frontier/gap",
    "cost/completions",
)
COUNTS = ("cost/completions",)  # whole numbers: no decimals below 10,000 either


@dataclass(frozen=True)
class CompareOptions:
    """The ``compare`` command's options (every other argument is a run directory or a folder of runs).

    Attributes:
        out: also write compare.md, compare.csv and the plots into this folder (none: print only).
    """

    out: str | None = None


UNFINISHED = "no summary.json: still running, or stopped before its end; resume=true finishes it"


def _started_run(d: Path) -> bool:
    """Whether ``d`` is a run directory that a run has written into (finished or not)."""
    return (d / "metrics.jsonl").is_file() or ((d / "config.yaml").is_file() and (d / "meta.json").is_file())


def _pool_point(d: Path) -> bool:
    """Whether ``d`` is a bench's Best-of-N pool point: its record, and no run
    (:func:`rlhf_zoo.bench.runner.run_pool_point`)."""
    record = read_json(d / "record.json") if not (d / "summary.json").is_file() else None
    return isinstance(record, dict) and isinstance(record.get("pool"), dict)


def _some(paths: list[Path], shown: int = 3) -> str:
    text = ", ".join(map(str, paths[:shown]))
    return text + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def _folders_below(root: Path) -> list[Path]:
    """``root`` and every folder below it, through symbolic links too (runs gathered into a folder by links), each
    real folder once (a link back up is not walked again)."""
    import os

    seen: set[str] = set()
    folders = []
    for top, dirs, _ in os.walk(root, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs.clear()
            continue
        seen.add(real)
        folders.append(Path(top))
    return folders


def find_runs(paths: list[str]) -> list[Path]:
    """The run directories named or found below ``paths`` (a run directory holds ``summary.json``). The
    unfinished runs below a folder (a run directory without ``summary.json``) are left out, and said so on
    stderr; one named on its own is refused."""
    runs: list[Path] = []
    for p in map(Path, paths):
        if (p / "summary.json").is_file():
            runs.append(p)
        elif _started_run(p):
            raise UserError(f"compare: {p} is a run that has not finished ({UNFINISHED})")
        elif p.is_dir():
            folders = _folders_below(p)
            found = sorted(d for d in folders if (d / "summary.json").is_file())
            below = {d for d in folders if (d / "metrics.jsonl").is_file() or (d / "config.yaml").is_file()}
            unfinished = sorted(d for d in below - set(found) if _started_run(d))
            if not found:
                more = f"; {len(unfinished)} unfinished ({UNFINISHED}): {_some(unfinished)}" if unfinished else ""
                raise UserError(f"compare: no finished run (summary.json) below {p}{more}")
            if unfinished:
                print(
                    f"compare: left out {len(unfinished)} unfinished run(s) below {p} ({UNFINISHED}): "
                    f"{_some(unfinished)}",
                    file=sys.stderr,
                )
            pools = [d for d in folders if _pool_point(d)]
            if pools:  # a bench's Best-of-N pool: no run (summary.json) to compare, and it went unsaid
                print(
                    f"compare: left out {len(pools)} Best-of-N pool point(s) below {p}, which are no runs (the "
                    f"bench's page reads them: rlhf-zoo bench ... render_only=true): {_some(pools)}",
                    file=sys.stderr,
                )
            runs.extend(found)
        else:
            raise UserError(f"compare: {p} is not a run directory or a folder of runs")
    if not runs:
        raise UserError("compare: name at least one run directory: rlhf-zoo compare RUN_DIR...")
    unique: dict[Path, Path] = {}  # one run named twice (a folder and a run in it, a link): one run, not two
    for r in runs:
        unique.setdefault(r.resolve(), r)
    return list(unique.values())


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def load_run(run_dir: Path) -> dict[str, Any]:
    """A finished run as a bench-style record (summary, metrics path, flat resolved config). A file that does
    not parse, or that parses into something a run does not write (``summary.json`` not a JSON object,
    ``config.yaml`` without an integer ``seed`` and an ``algo.name``, a ``metrics.jsonl`` line not a JSON object),
    is refused in one line naming it."""
    import yaml
    from omegaconf import OmegaConf

    from rlhf_zoo.io import yaml_error

    def bad(name: str, why: str) -> UserError:
        return UserError(f"compare: cannot read the run in {run_dir}: {name} {why}")

    name = "summary.json"
    try:
        summary = json.loads((run_dir / name).read_text())
        name = "config.yaml"
        tree = OmegaConf.to_container(OmegaConf.load(run_dir / name))
        name = "metrics.jsonl"
        lines = (run_dir / name).read_text().splitlines() if (run_dir / name).is_file() else []
        metrics = []
        for i, line in enumerate(lines, 1):
            name = f"metrics.jsonl line {i}"
            if line.strip():
                metrics.append(json.loads(line))
    except FileNotFoundError:  # said "config.yaml does not parse: FileNotFoundError: [Errno 2] ..."
        raise bad(name, "is missing (a finished run's folder holds summary.json and config.yaml)") from None
    except IsADirectoryError:
        raise bad(name, "is a directory, not a file") from None
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise bad(name, f"does not parse: {yaml_error(e)}") from None
    if not isinstance(summary, dict):
        raise bad("summary.json", f"is a JSON {type(summary).__name__}, not a run's summary (an object)")
    config = _flat(tree) if isinstance(tree, dict) else {}
    seed = config.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or not config.get("algo.name"):
        raise bad("config.yaml", "is not a run's resolved config (it needs an integer seed and an algo.name)")
    for i, m in enumerate(metrics, 1):
        if not isinstance(m, dict):
            raise bad("metrics.jsonl", f"holds a JSON {type(m).__name__} in its line {i}, not an evaluation")
        step = m.get("step")
        if not isinstance(step, int) or isinstance(step, bool):  # the plots' x axis (was float('x'): a traceback)
            raise bad("metrics.jsonl", f"line {i} has step {step!r}, not an integer: not an evaluation")
    for key in COLUMNS:  # the table's numbers: a string or 10**400 was a NaN in the table or an OverflowError
        if key in summary and not _number(summary[key]):
            shown = repr(summary[key])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise bad("summary.json", f"holds {shown} for {key}, not a number (or null)")
    # A run started over in its directory (resume=true without a checkpoint) rewrites config.yaml at once and
    # summary.json only at its end: until then the summary is another run's.
    asked = {"algo": config["algo.name"], "task": config.get("task.name"), "seed": seed}
    stale = [f"{k} {summary[k]!r}, config.yaml {v!r}" for k, v in asked.items() if k in summary and summary[k] != v]
    if summary.get("steps", 0) not in (0, config.get("train.steps", summary.get("steps"))):
        stale.append(f"steps {summary['steps']!r}, config.yaml train.steps {config['train.steps']!r}")
    if stale:
        raise bad(
            "summary.json",
            f"is not the run of its config.yaml ({'; '.join(stale)}): a run started over there has not finished "
            f"({UNFINISHED})",
        )
    record = {"run_dir": str(run_dir), "seed": seed, "config": config, "summary": summary, "metrics": metrics}
    meta = read_json(run_dir / "meta.json")
    meta = meta if isinstance(meta, dict) else {}
    inputs = meta.get("inputs") if isinstance(meta.get("inputs"), dict) else {}
    return {**record, "algo": _chosen_algo(meta, config), "inputs": inputs}


def _chosen_algo(meta: dict[str, Any], config: dict[str, Any]) -> str:
    """The algorithm as the run was asked for: the preset (``algo=rloo``, ``algo=grpo``) that its command line
    (``meta.json``'s ``command``) named, where it names the run's algorithm, else that algorithm (a sweep's ``rloo``
    points were rows named ``reinforce``)."""
    import shlex

    from rlhf_zoo.config import preset_algorithm

    name = str(config["algo.name"])
    try:
        words = shlex.split(meta["command"]) if isinstance(meta.get("command"), str) else []
    except ValueError:  # a command line that does not split (hand-edited)
        return name
    asked = [w.partition("=")[2] for w in words if w.startswith("algo=")]
    return asked[-1] if asked and preset_algorithm(asked[-1]) == name else name


def _number(v: Any) -> bool:
    """Whether ``v`` is a metric's value as a run writes it: null or a real number a float holds (NaN and inf
    included: a diverged seed)."""
    if v is None:
        return True
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        float(v)
    except OverflowError:
        return False
    return True


def label_runs(records: list[dict[str, Any]]) -> None:
    """Give each record its configuration's name and membership (for grouping and the plots): the
    algorithm, its task when the runs span several tasks (their rewards are not on one scale: every name says
    its task, not only those of an algorithm run on several), plus the settings in which its runs differ from
    the other runs of the same algorithm on the same task."""
    by_algo: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in records:
        algo = str(r.get("algo") or r["config"].get("algo.name", r["summary"].get("algo", "?")))
        task = str(r["config"].get("task.name", r["summary"].get("task", "?")))
        by_algo.setdefault(algo, {}).setdefault(task, []).append(r)
    tasks = {task for by_task in by_algo.values() for task in by_task}
    for algo, by_task in by_algo.items():
        for task, runs in by_task.items():
            keys = sorted({k for r in runs for k in r["config"]} - set(IGNORED))
            differing = [k for k in keys if len({repr(r["config"].get(k)) for r in runs}) > 1]
            name = f"{algo} task={task}" if len(tasks) > 1 else algo
            for r in runs:
                setting = " ".join(f"{k}={r['config'].get(k)}" for k in differing)
                r["label"] = f"{name} {setting}" if setting else name
                _member(r, name, setting or "default")


def _member(r: dict[str, Any], name: str, setting: str) -> None:
    """A bench membership, so that the bench's grouping and plots take the run: one curve per algorithm (and
    task: no line joins a run on one task to a run on another), one point per setting."""
    r["memberships"] = [
        {"sweep": name, "objective": name, "knob": "settings", "knob_label": "settings", "value": setting,
         "frontier": "sweep", "order": 0}
    ]  # fmt: skip


def _one_run_per_seed(by_label: dict[str, list[dict[str, Any]]]) -> None:
    """Refuse two runs of one configuration with the same seed (e.g. a run and its copy): they are one
    seed's result twice, so pooling them would count it twice, pull the mean towards it and narrow the
    interval (and the plots, which keep one record per seed, would disagree with the table)."""
    for label, runs in by_label.items():
        seen: dict[int, str] = {}
        for r in runs:
            other = seen.setdefault(r["seed"], r["run_dir"])
            if other != r["run_dir"]:
                raise UserError(
                    f"compare: {other} and {r['run_dir']} are both {label}, seed {r['seed']}: one seed would count "
                    "twice; name only one of them"
                )


def _same_inputs(by_label: dict[str, list[dict[str, Any]]]) -> None:
    """Refuse two runs of one configuration that read different contents of one of the user's files (a ``py:`` reward
    edited between two seeds: :mod:`rlhf_zoo.inputs`): they are two configurations under one name."""
    for label, runs in by_label.items():
        first = runs[0]
        for r in runs[1:]:
            if edited := changed(first.get("inputs", {}), r.get("inputs", {})):
                k = edited[0]
                raise UserError(
                    f"compare: {first['run_dir']} and {r['run_dir']} are both {label} but read different contents "
                    f"of {k}={r['config'].get(k)} ({first['inputs'][k]} vs {r['inputs'][k]}: the file changed "
                    "between them); compare them apart"
                )


def table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]], list[list[Any]]]:
    """(headers, Markdown rows, CSV rows): one row per configuration, seeds pooled; its ``seeds`` column is the
    number of distinct seeds (which seeds: the run list of ``compare.md``). A metric that some seeds lack or
    have as NaN (a diverged seed) is the mean of the others, marked ``(k/n)`` as on the bench pages and said on
    stderr; the CSV gives every metric's k beside its mean and interval. ``NaN`` where no seed has a value,
    ``—`` where the metric is not one of this configuration's."""
    from rlhf_zoo.bench.stats import fmt_seeds_ci, mean_ci

    by_label: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_label.setdefault(r["label"], []).append(r)
    _one_run_per_seed(by_label)
    _same_inputs(by_label)
    columns = [c for c in COLUMNS if any(c in r["summary"] for r in records)]
    headers = ["configuration", "seeds", "steps", *columns]
    md, rows = [], []
    for label, runs in by_label.items():
        seeds = len({r["seed"] for r in runs})  # distinct (a seed twice is refused above, but count seeds, not runs)
        steps = sorted({r["summary"].get("steps") for r in runs}, key=str)
        cells, values = [], []
        for c in columns:
            got = [r["summary"].get(c) for r in runs]
            if all(v is None for v in got):  # not a metric of this configuration
                cells.append("—")
                values += ["", "", 0]
                continue
            m, h, n = mean_ci(got)
            if 0 < n < len(runs):  # a seed diverged (NaN) or lacks it: the mean is the others', and says so
                lacking = [r for r in runs if mean_ci([r["summary"].get(c)])[2] == 0]
                print(
                    f"compare: {label}: {c} is NaN or missing in seed(s) "
                    f"{', '.join(str(r['seed']) for r in lacking)} ({_some([Path(r['run_dir']) for r in lacking])})"
                    f" of {len(runs)}: its mean is over the other {n} ({n}/{len(runs)})",
                    file=sys.stderr,
                )
            cells.append("NaN" if n == 0 else fmt_seeds_ci(got, digits=0 if c in COUNTS else 3))
            values += [m, "" if h is None else h, n]
        md.append([label, str(seeds), "/".join(map(str, steps)), *cells])
        rows.append([label, seeds, "/".join(map(str, steps)), *values])
    return headers, md, rows


def _is_option(arg: str) -> bool:
    """``key=value`` is an option, unless it names a folder: one whose path has a ``/`` before the ``=``
    (``runs/beta=0.1``) or one that exists (a sweep's ``beta=0.1`` in the current folder)."""
    key, eq, _ = arg.partition("=")
    return bool(eq) and "/" not in key and not Path(arg).is_dir()


def main(args: list[str]) -> int:
    from tabulate import tabulate

    from rlhf_zoo.options import split_options

    opts, paths = split_options([a for a in args if _is_option(a)], CompareOptions, "compare")
    if paths:
        raise UserError(f"compare: unknown option {paths[0]!r} (options: out=DIR)")
    if opts.out:
        from rlhf_zoo.config import check_writable_dir

        check_writable_dir(opts.out, "out")  # before the table: not a traceback after it
        if _started_run(Path(opts.out).expanduser()):  # its compare.md and plots would go in among the run's files
            raise UserError(f"compare: out={opts.out} is a run directory: name another folder")
    records = [load_run(p) for p in find_runs([a for a in args if not _is_option(a)])]
    label_runs(records)
    headers, md, rows = table(records)
    text = tabulate(md, headers=headers, tablefmt="github")
    print(text)
    if opts.out:
        from rlhf_zoo.bench.plots import overoptimisation, reward_vs_kl
        from rlhf_zoo.bench.records import group_records
        from rlhf_zoo.io import atomic_write_text

        out = Path(opts.out)
        buf = io.StringIO()
        writer = csv.writer(buf)
        metric_cols = headers[3:]
        writer.writerow([*headers[:3], *(f"{c} {part}" for c in metric_cols for part in ("mean", "ci95", "seeds"))])
        writer.writerows(rows)
        atomic_write_text(out / "compare.csv", buf.getvalue())
        runs = "\n".join(f"- `{r['run_dir']}`: {r['label']}, seed {r['seed']}" for r in records)
        atomic_write_text(out / "compare.md", f"{text}\n\nMean ± 95 % interval over seeds. Runs:\n\n{runs}\n")
        groups = group_records(records)
        reward_vs_kl(groups, {}, out / "reward_vs_kl.png")
        if overoptimisation(groups, {}, out / "gold_vs_proxy.png") is None:  # no gold reward: no plot
            (out / "gold_vs_proxy.png").unlink(missing_ok=True)  # nor one of an earlier compare into out
        print(f"wrote {out / 'compare.md'}, {out / 'compare.csv'} and the plots in {out}")
    return 0
