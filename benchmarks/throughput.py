"""Throughput of every objective, side by side with Hugging Face TRL's ``RLOOTrainer`` in the same run.

    python benchmarks/throughput.py                       # SmolLM2 + LoRA, 16 prompts x 2, 24 tokens
    python benchmarks/throughput.py md=docs/benchmarks/throughput.md out=throughput.json
    python benchmarks/throughput.py algos=reinforce trl=true device=cuda model.finetune=full model.dtype=bfloat16

Per objective (each in its own process, see ``rlhf_zoo/profile.py``): completions per second,
seconds per step split into generate / reward / log-probs / update, the share of time in
generation, the update's model FLOP utilisation and peak memory; then TRL's RLOO (the version
pinned in constraints.txt) on the same model, prompts, reward, batch, generation length, LoRA
settings, optimiser and hardware (``benchmarks/trl_reference.py``), and the ratio of our
``reinforce`` (k = 2, leave-one-out: the same algorithm) to TRL in completions per second.

Arguments are ``key=value``: ``algos=`` (comma list; ``sft`` adds the plain fine-tuning memory
baseline), ``steps=`` timed steps and ``warmup=`` untimed ones per objective, ``trl=true|false``,
``out=`` a JSON file, ``md=`` a Markdown page, ``rows=`` a folder that keeps each finished row (an
objective's or TRL's) so that a run stopped part-way continues where it stopped; everything else is a
config override for both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tabulate import tabulate

from rlhf_zoo.config import check_writable_dir, check_writable_file
from rlhf_zoo.errors import UserError
from rlhf_zoo.options import split_options
from rlhf_zoo.profile import HEADERS, profile_rows, run_in_subprocess, table_rows, validate
from rlhf_zoo.runlog import hardware

try:  # run as a script, benchmarks/ is on sys.path; imported (the tests), the repository root is
    from trl_reference import reference_config
except ImportError:
    from benchmarks.trl_reference import reference_config

TRL_REFERENCE = str(Path(__file__).with_name("trl_reference.py"))  # run as a script: its own process
DEFAULTS = [
    "task=sentiment",
    "task.gold=null",
    "train.batch_prompts=16",
    "model.max_new_tokens=24",
    "train.warmup_steps=0",
    "train.lr_schedule=constant",
]


@dataclass
class ThroughputOptions:
    """This script's own options (every other ``key=value`` is a config override for every run).

    Attributes:
        algos: the objectives (``sft``: the plain fine-tuning memory baseline).
        steps: timed steps per objective (and for TRL).
        warmup: untimed steps before them.
        trl: also time TRL's ``RLOOTrainer``.
        out: a JSON file for the figures.
        md: a Markdown page to append the section to.
        rows: a folder keeping each finished row as ``<algo>.json`` (``trl.json`` for TRL) with the settings
            it was measured with; a row already there with the same settings is reused, not measured again.
    """

    algos: list[str] = field(default_factory=lambda: ["best_of_n", "reinforce", "ppo_lite", "bond", "jbond", "sft"])
    steps: int = 3
    warmup: int = 1
    trl: bool = True
    out: str | None = None
    md: str | None = None
    rows: str | None = None


def measured(rows_dir: str | None, name: str, key: dict, measure) -> dict:
    """``measure()``'s row, or the one kept in ``rows_dir/<name>.json`` when it was measured with ``key``."""
    path = Path(rows_dir) / f"{name}.json" if rows_dir else None
    if path is not None and path.is_file():
        kept = json.loads(path.read_text())
        if kept.get("key") == key:
            print(f"{name}: kept from {path}", file=sys.stderr)
            return {**kept["row"], "kept": True}
    row = measure()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "row": row}, indent=1))
        tmp.replace(path)
    return row


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
        return sha + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def main(argv: list[str]) -> int:
    opts, overrides = split_options(argv, ThroughputOptions, "throughput")
    given = {a.split("=", 1)[0] for a in overrides}
    rest = [d for d in DEFAULTS if d.split("=", 1)[0] not in given] + overrides
    steps, warmup = opts.steps, opts.warmup
    # written after every objective and TRL have been measured: checked before the first
    for key, path, kind in (("out", opts.out, "JSON"), ("md", opts.md, "Markdown")):
        if path is not None:
            check_writable_file(path, "throughput", key, kind)
    if opts.rows is not None:
        check_writable_dir(opts.rows, "rows")
    validate(opts.algos, rest)
    # TRL runs last: a config its RLOO cannot match fails now, not after every objective. k: both sides' samples.
    k = int(reference_config(rest).algo.samples) if opts.trl else None
    t0 = time.time()
    key = {"settings": rest, "steps": steps, "warmup": warmup}
    rows = [
        measured(opts.rows, a, {**key, "algo": a}, lambda a=a: profile_rows([a], rest, steps, warmup)[0])
        for a in opts.algos
    ]
    trl_row = None
    if opts.trl:
        trl_args = [*rest, f"steps={steps}", f"warmup={warmup}"]
        trl_row = measured(opts.rows, "trl", {**key, "algo": "trl"}, lambda: run_in_subprocess(TRL_REFERENCE, trl_args))
        print(f"TRL RLOO: {trl_row['step_s']:.2f} s/step", file=sys.stderr)
    wall = time.time() - t0
    kept = sum(1 for r in [*rows, trl_row] if r and r.get("kept"))

    ours = next((r for r in rows if r["algo"] == "reinforce"), None)
    ratio = ours["completions_per_s"] / trl_row["completions_per_s"] if ours and trl_row else None
    lines = [
        f"- hardware: {hardware()}; device: {rows[0]['device']}; dtype: {rows[0]['dtype']}; "
        f"torch threads: {rows[0]['threads']}",
        f"- command: `python benchmarks/throughput.py {' '.join(argv)}`",
        f"- settings: {' '.join(rest)}; {warmup} warm-up + {steps} timed steps per objective",
        f"- commit: {_commit()}; date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"wall time {wall / 60:.1f} min" + (f" ({kept} row(s) kept from an earlier run, not counted)" if kept else ""),
        f"- MFU peak: {rows[0]['peak_flops'] / 1e9:,.0f} GFLOP/s ({rows[0]['peak_flops_source']})",
    ]
    table = table_rows(rows + ([trl_row] if trl_row else []))
    verdict = []
    if ratio is not None:
        verdict = [
            f"**reinforce (k={k}, leave-one-out) / TRL RLOO (k={k}): {ratio:.2f}x completions per second** "
            f"({ours['completions_per_s']:.2f} vs {trl_row['completions_per_s']:.2f}; goal: >= 1.5x)."
        ]
    sft = next((r for r in rows if r["algo"] == "sft"), None)
    jbond = next((r for r in rows if r["algo"] == "jbond"), None)
    if sft and jbond:
        verdict.append(
            f"J-BOND peak memory / plain fine-tuning ({sft['algo']}) peak memory: "
            f"{jbond['peak_memory_gb'] / sft['peak_memory_gb']:.2f}x "
            f"({jbond['peak_memory_gb']:.2f} GiB vs {sft['peak_memory_gb']:.2f} GiB; goal with LoRA: <= 1.3x)."
        )
    text = "\n".join(lines) + "\n\n" + tabulate(table, headers=HEADERS, tablefmt="github") + "\n\n" + "\n".join(verdict)
    print(text)
    if opts.out is not None:
        with open(opts.out, "w") as f:
            json.dump({"argv": argv, "settings": rest, "rows": rows, "trl": trl_row, "ratio": ratio}, f, indent=2)
    if opts.md is not None:
        with open(opts.md, "a") as f:
            f.write(f"\n## {rows[0]['device']} ({hardware()})\n\n{text}\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except UserError as e:  # the options' own errors already say "throughput: "
        print(str(e) if str(e).startswith("throughput: ") else f"throughput: {e}", file=sys.stderr)
        sys.exit(2)
