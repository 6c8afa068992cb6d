"""A task: prompts (train and held-out eval), the proxy reward that is optimised, the gold reward
that is only evaluated, and how to build the policy (DESIGN.md layer 3)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlhf_zoo.policies.base import Policy
from rlhf_zoo.rewards.base import RewardModel
from rlhf_zoo.tasks.oracle import ExactOracle


@dataclass
class Task:
    """What every training run and evaluation reads.

    Attributes:
        name: the task's registry name.
        train_prompts: prompts drawn for training steps.
        eval_prompts: held-out prompts for evaluation (never trained on).
        proxy: the reward the algorithms optimise.
        gold: the reward that is only measured (None: not measured).
        build_policy: makes the policy with its reference (and anchor) roles, given a seed.
        oracle: on the exact testbed, enumerates every completion so that quantities are exact.
        prompt_source: where the prompts come from, in words (the run's log line and ``meta.json``).
        rows_skipped: rows of a user's prompt sources that hold no text, skipped (``meta.json``).
    """

    name: str
    train_prompts: list[str]
    eval_prompts: list[str]
    proxy: RewardModel
    gold: RewardModel | None
    build_policy: Callable[[int], Policy]
    oracle: ExactOracle | None = None
    prompt_source: str = ""
    rows_skipped: int = 0


def prompt_report(task: Task, eval_prompts: int) -> tuple[dict[str, Any], list[str]]:
    """How many prompts a run trains and evaluates on, as a record for ``meta.json`` (``train``, ``eval``:
    used per evaluation, ``eval_held_out``: all held-out prompts, ``source``, ``rows_skipped``: rows of a
    user's prompt sources without text, ``eval_in_train``: held-out prompts that are also training prompts)
    and the lines for stderr (the source says which rows were skipped).

    An evaluation uses the first ``eval_prompts`` (``train.eval_prompts``) held-out prompts; when fewer
    exist it uses them all and the line is a warning, never a silent shrink. Held-out prompts that are also
    training prompts (an evaluation file that repeats some) are a second line, a warning. On a task with an
    exact oracle every prompt is trained on and evaluated, exactly, by design: no lines (nothing to report).
    """
    held_out = len(task.eval_prompts)
    used = held_out if task.oracle is not None else min(held_out, eval_prompts)
    record = {"train": len(task.train_prompts), "eval": used, "eval_held_out": held_out, "source": task.prompt_source}
    record["rows_skipped"] = task.rows_skipped
    trained = set(task.train_prompts)
    record["eval_in_train"] = overlap = sum(1 for p in task.eval_prompts if p in trained)
    if task.oracle is not None:
        return record, []
    source = f" ({task.prompt_source})" if task.prompt_source else ""
    line = f"prompts: {record['train']} for training, {used} for evaluation{source}"
    if held_out < eval_prompts:
        plural = "s" if held_out != 1 else ""
        line = (
            f"warning: {line}; only {held_out} held-out prompt{plural}, fewer than train.eval_prompts={eval_prompts}: "
            "each evaluation uses these (give more with task.eval_prompts=FILE, or lower train.eval_prompts)"
        )
    elif used < held_out:
        line += f"; each evaluation uses {used} of the {held_out} held out (train.eval_prompts={eval_prompts})"
    if not overlap:
        return record, [line]
    also = (
        f"warning: {overlap} of the {held_out} held-out evaluation prompts "
        f"{'is also a training prompt' if overlap == 1 else 'are also training prompts'}, so the "
        "evaluation is partly on what was trained (prompts.eval_in_train in meta.json): remove them from the "
        "evaluation source"
    )
    return record, [line, also]
