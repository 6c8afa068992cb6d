"""Tasks by name: each entry is its config dataclass and a builder. Unknown names list the known ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlhf_zoo.tasks.base import Task
from rlhf_zoo.tasks.exact import ExactTaskConfig, build_exact_task, check_exact_task
from rlhf_zoo.tasks.sentiment import SentimentTaskConfig, build_sentiment_task, check_sentiment_task


@dataclass(frozen=True)
class TaskEntry:
    config: type
    build: Callable[..., Task]
    has_oracle: bool
    uses_model: bool
    check: Callable[[Any], None] | None = None  # raises ValueError for a config that cannot be built


TASKS: dict[str, TaskEntry] = {
    "exact": TaskEntry(ExactTaskConfig, build_exact_task, has_oracle=True, uses_model=False, check=check_exact_task),
    "sentiment": TaskEntry(
        SentimentTaskConfig, build_sentiment_task, has_oracle=False, uses_model=True, check=check_sentiment_task
    ),
}


def get_task_entry(name: str) -> TaskEntry:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}") from None


def build_task(cfg: Any, model_cfg: Any | None = None, device: str = "cpu") -> Task:
    entry = get_task_entry(cfg.name)
    return entry.build(cfg, model_cfg, device) if entry.uses_model else entry.build(cfg)
