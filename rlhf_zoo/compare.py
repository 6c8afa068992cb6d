"""``rlhf-zoo compare RUN_DIR... [out=DIR]``: finished runs side by side, seeds pooled.

    rlhf-zoo compare runs/bond-exact-s0 runs/bond-exact-s1 runs/jbond-exact-s0
    rlhf-zoo compare bench_runs/quick out=cmp        # every finished run below a folder (a sweep, a bench)

Each argument is a run directory (one holding ``summary.json``) or a folder searched for them. Runs
whose resolved configs differ only in ``seed`` (and ``run_dir``, ``resume`` and the settings that cannot
change a run's numbers, :data:`rlhf_zoo.bench.records.NO_EFFECT`: progress bar, trackers, checkpoint
cadence) are one configuration;
each configuration is named by its algorithm, its task when the runs of that algorithm span several,
and the settings in which it differs from the others of that algorithm and task. The table gives
every configuration's number of seeds (distinct) and its common metrics as mean ± 95 % Student-t interval over
its seeds (:func:`rlhf_zoo.bench.stats.mean_ci`; two runs of one configuration with the same seed, such
as a run and its copy, are refused rather than counted as two seeds), printed as Markdown; with ``out=DIR`` it is also
written there as ``compare.md`` and ``compare.csv`` (mean and half-width columns), with the
reward-vs-KL and gold-vs-proxy plots of the bench pages (:mod:`rlhf_zoo.bench.plots`), drawn from the
runs' ``metrics.jsonl`` paths.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf_zoo.bench.records import NO_EFFECT
from rlhf_zoo.errors import UserError

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


def find_runs(paths: list[str]) -> list[Path]:
    """The run directories named or found below ``paths`` (a run directory holds ``summary.json``)."""
    runs: list[Path] = []
    for p in map(Path, paths):
        if (p / "summary.json").is_file():
            runs.append(p)
        elif p.is_dir():
            found = sorted(s.parent for s in p.rglob("summary.json"))
            if not found:
                raise UserError(f"compare: no finished run (summary.json) below {p}")
            runs.extend(found)
        else:
            raise UserError(f"compare: {p} is not a run directory or a folder of runs")
    if not runs:
        raise UserError("compare: name at least one run directory: rlhf-zoo compare RUN_DIR...")
    return list(dict.fromkeys(runs))


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def load_run(run_dir: Path) -> dict[str, Any]:
    """A finished run as a bench-style record (summary, metrics path, flat resolved config)."""
    import yaml
    from omegaconf import OmegaConf

    from rlhf_zoo.io import yaml_error

    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        config = _flat(OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml")))
        lines = (run_dir / "metrics.jsonl").read_text().splitlines() if (run_dir / "metrics.jsonl").is_file() else []
        metrics = [json.loads(x) for x in lines if x.strip()]
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise UserError(f"compare: cannot read the run in {run_dir}: {yaml_error(e)}") from None
    return {"run_dir": str(run_dir), "seed": int(config.get("seed", 0)), "config": config, "summary": summary,
            "metrics": metrics}  # fmt: skip


def label_runs(records: list[dict[str, Any]]) -> None:
    """Give each record its configuration's name and membership (for grouping and the plots): the
    algorithm, its task when its runs span several (each task's config has keys the others lack), plus
    the settings in which its runs differ from the other runs of the same algorithm on the same task."""
    by_algo: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in records:
        algo = str(r["config"].get("algo.name", r["summary"].get("algo", "?")))
        task = str(r["config"].get("task.name", r["summary"].get("task", "?")))
        by_algo.setdefault(algo, {}).setdefault(task, []).append(r)
    for algo, by_task in by_algo.items():
        for task, runs in by_task.items():
            keys = sorted({k for r in runs for k in r["config"]} - set(IGNORED))
            differing = [k for k in keys if len({repr(r["config"].get(k)) for r in runs}) > 1]
            for r in runs:
                words = [f"task={task}"] if len(by_task) > 1 else []
                setting = " ".join(words + [f"{k}={r['config'].get(k)}" for k in differing])
                r["label"] = f"{algo} {setting}" if setting else algo
                _member(r, algo, setting or "default")


def _member(r: dict[str, Any], algo: str, setting: str) -> None:
    """A bench membership, so that the bench's grouping and plots take the run: one panel per algorithm,
    one point per setting."""
    r["memberships"] = [
        {"sweep": algo, "objective": algo, "knob": "settings", "knob_label": "settings", "value": setting,
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


def table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]], list[list[Any]]]:
    """(headers, Markdown rows, CSV rows): one row per configuration, seeds pooled; its ``seeds`` column is the
    number of distinct seeds (which seeds: the run list of ``compare.md``)."""
    from rlhf_zoo.bench.stats import fmt_ci, mean_ci

    by_label: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_label.setdefault(r["label"], []).append(r)
    _one_run_per_seed(by_label)
    columns = [c for c in COLUMNS if any(c in r["summary"] for r in records)]
    headers = ["configuration", "seeds", "steps", *columns]
    md, rows = [], []
    for label, runs in by_label.items():
        seeds = len({r["seed"] for r in runs})  # distinct (a seed twice is refused above, but count seeds, not runs)
        steps = sorted({r["summary"].get("steps") for r in runs}, key=str)
        cells, values = [], []
        for c in columns:
            m, h, n = mean_ci([r["summary"].get(c) for r in runs])
            cells.append(fmt_ci(m, h, digits=0 if c in COUNTS else 3) if n else "—")
            values += [m if n else "", h if h is not None else ""]
        md.append([label, str(seeds), "/".join(map(str, steps)), *cells])
        rows.append([label, seeds, "/".join(map(str, steps)), *values])
    return headers, md, rows


def main(args: list[str]) -> int:
    from tabulate import tabulate

    from rlhf_zoo.options import split_options

    opts, paths = split_options([a for a in args if "=" in a], CompareOptions, "compare")
    if paths:
        raise UserError(f"compare: unknown option {paths[0]!r} (options: out=DIR)")
    if opts.out:
        from rlhf_zoo.config import check_writable_dir

        check_writable_dir(opts.out, "out")
    records = [load_run(p) for p in find_runs([a for a in args if "=" not in a])]
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
        writer.writerow([*headers[:3], *(f"{c} {part}" for c in metric_cols for part in ("mean", "ci95"))])
        writer.writerows(rows)
        atomic_write_text(out / "compare.csv", buf.getvalue())
        runs = "\n".join(f"- `{r['run_dir']}`: {r['label']}, seed {r['seed']}" for r in records)
        atomic_write_text(out / "compare.md", f"{text}\n\nMean ± 95 % interval over seeds. Runs:\n\n{runs}\n")
        groups = group_records(records)
        reward_vs_kl(groups, {}, out / "reward_vs_kl.png")
        overoptimisation(groups, {}, out / "gold_vs_proxy.png")
        print(f"wrote {out / 'compare.md'}, {out / 'compare.csv'} and the plots in {out}")
    return 0
