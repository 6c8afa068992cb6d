"""Synthetic benchmark records, as the runner writes them, so rendering and verdicts can be tested without runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlhf_zoo.bench.records import FORMAT, write_json_atomic

META = {
    "git_commit": "0123456789abcdef0123",
    "hardware": "CPU (testbox, 2 cores, 1 threads)",
    "started": "2026-01-02T03:04:05+0000",
    "versions": {"python": "3.11.7", "torch": "2.13.0"},
}


def synth_record(
    tag: str,
    value: Any,
    seed: int,
    final: dict[str, float],
    *,
    path: list[dict[str, float]] | None = None,
    knob: str = "algo.beta",
    frontier: str = "sweep",
    order: int = 0,
    suite: str = "exact",
    estimator: str = "exact",
    args: list[str] | None = None,
) -> dict[str, Any]:
    """A record as the runner writes it, with a given final evaluation and training path."""
    if path is None:
        path = [{"step": 0, **{k: 0.0 for k in final}}, {"step": 10, **final}]
    return {
        "format": FORMAT,
        "suite": suite,
        "id": f"{tag}-{value}-s{seed}",
        "label": f"{tag} {value} seed {seed}",
        "seed": seed,
        "args": args if args is not None else [f"algo={tag}", f"{knob}={value}", f"seed={seed}"],
        "memberships": [
            {
                "sweep": tag,
                "objective": f"objective {tag}",
                "knob": knob,
                "knob_label": knob.rsplit(".", 1)[-1],
                "value": value,
                "frontier": frontier,
                "order": order,
            }
        ],
        "bench_command": f"rlhf-zoo bench suite={suite}",
        "meta": META,
        "summary": {"kl/estimator": estimator, "cost/tokens": 1000, "cost/reward_calls": 100, **final},
        "metrics": path,
        "wall_s": 1.5,
        "finished": "2026-01-02T03:09:00+0000",
    }


def write_records(suite_dir: Path, records: list[dict[str, Any]]) -> None:
    for r in records:
        write_json_atomic(suite_dir / r["id"] / "record.json", r)
