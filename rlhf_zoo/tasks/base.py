"""A task: prompts (train and held-out eval), the proxy reward that is optimised, the gold reward
that is only evaluated, and how to build the policy (DESIGN.md layer 3)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
    """

    name: str
    train_prompts: list[str]
    eval_prompts: list[str]
    proxy: RewardModel
    gold: RewardModel | None
    build_policy: Callable[[int], Policy]
    oracle: ExactOracle | None = None
