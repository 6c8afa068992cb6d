"""checked_score's contract through CallableReward: NaN, inf, exceptions, lengths."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch

from rlhf_zoo.rewards import CallableReward, RewardError, checked_score

P, C = ["p1", "p2", "p3"], ["fine", "broken", "ok"]


def test_good_path() -> None:
    r = CallableReward(lambda ps, cs: [len(c) for c in cs], name="length")
    s = checked_score(r, P, C)
    assert s.dtype == torch.float32 and s.tolist() == [4.0, 6.0, 2.0]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_names_the_completion(bad: float) -> None:
    r = CallableReward(lambda ps, cs: [0.0, bad, 1.0], name="flaky")
    with pytest.raises(RewardError, match="'flaky'.*'broken'.*1 of 3"):
        checked_score(r, P, C)


def test_exception_becomes_reward_error() -> None:
    def boom(ps: Sequence[str], cs: Sequence[str]) -> list[float]:
        raise KeyError("no such text")

    with pytest.raises(RewardError, match="'boom' raised KeyError") as info:
        checked_score(CallableReward(boom), P, C)
    assert isinstance(info.value.__cause__, KeyError)


def test_wrong_lengths() -> None:
    with pytest.raises(RewardError, match="2 scores for 3"):
        checked_score(CallableReward(lambda ps, cs: [1.0, 2.0], name="short"), P, C)
    with pytest.raises(ValueError, match="2 prompts for 3"):
        checked_score(CallableReward(lambda ps, cs: [1.0] * 3), P[:2], C)
