"""checked_score's contract through CallableReward: NaN, inf, exceptions, lengths."""

from __future__ import annotations

import math
import re
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


@pytest.mark.parametrize("big", [1e39, -1e300])
def test_a_finite_score_beyond_float32_is_said_as_returned(big: float) -> None:
    """A score finite as returned but beyond float32 (about ±3.4e38) turned inf in the cast: the error said the
    reward "returned inf", which it had not."""
    r = CallableReward(lambda ps, cs: [0.0, big, 1.0], name="huge")
    with pytest.raises(
        RewardError, match=rf"'huge' returned {re.escape(repr(big))} for completion 'broken'.*float32"
    ) as e:
        checked_score(r, P, C)
    assert "inf" not in str(e.value)


def test_exception_becomes_reward_error() -> None:
    def boom(ps: Sequence[str], cs: Sequence[str]) -> list[float]:
        raise KeyError("no such text")

    with pytest.raises(RewardError, match="'boom' raised KeyError") as info:
        checked_score(CallableReward(boom), P, C)
    assert isinstance(info.value.__cause__, KeyError)
    line = boom.__code__.co_firstlineno + 1
    assert str(info.value).endswith(f" (at {__file__}:{line} in boom)")  # where the user's code raised


def test_a_reward_that_calls_sys_exit_is_one_line_not_a_silent_exit() -> None:
    """A reward calling ``sys.exit(3)`` while scoring ended rlhf-zoo with exit code 3 and no line at all (an exit
    while its file is imported already said so)."""
    import sys

    def quits(ps: Sequence[str], cs: Sequence[str]) -> list[float]:
        sys.exit(3)

    with pytest.raises(RewardError, match=r"'quits' exited \(SystemExit: 3\).* in quits\) while scoring") as info:
        checked_score(CallableReward(quits), P, C)
    assert isinstance(info.value.__cause__, SystemExit)


def test_an_exception_raised_in_a_library_is_placed_in_the_rewards_own_code() -> None:
    """A reward that fails inside numpy (or torch): the place to debug is the reward's line that called it."""
    import numpy as np

    def calls_numpy(ps: Sequence[str], cs: Sequence[str]) -> list[float]:
        return list(np.ones(2).reshape(3))

    with pytest.raises(RewardError, match="'calls_numpy' raised ValueError") as info:
        checked_score(CallableReward(calls_numpy), P, C)
    line = calls_numpy.__code__.co_firstlineno + 1
    assert str(info.value).endswith(f" (at {__file__}:{line} in calls_numpy)")


def test_wrong_lengths() -> None:
    with pytest.raises(RewardError, match="2 scores for 3"):
        checked_score(CallableReward(lambda ps, cs: [1.0, 2.0], name="short"), P, C)
    with pytest.raises(ValueError, match="2 prompts for 3"):
        checked_score(CallableReward(lambda ps, cs: [1.0] * 3), P[:2], C)


@pytest.mark.parametrize(
    "returned, needle",
    [
        ([[1.0, 2.0], [3.0, 4.0]], r"shape \(2, 2\) for 4 texts"),  # flattened, it would re-pair rows and texts
        (torch.ones(4, 2), r"shape \(4, 2\)"),
        ([1 + 2j, 0j, 1j, 2j], "complex"),
        (1.0, r"shape \(\) for 4 texts"),
        # said "returned list, not numbers (RuntimeError: Could not infer dtype of dict)", and of strings
        # "(ValueError: too many dimensions 'str')": not which item, nor what to return
        ([{"score": 1.0}] * 4, r"returned a list whose item 1 is dict \{'score': 1.0\}, not a number: return one"),
        ([0.5, "1.0", 0.0, 0.0], r"returned a list whose item 2 is str '1.0', not a number: return one float per"),
        ((0.5, None, 0.0, 0.0), r"returned a tuple whose item 2 is NoneType None, not a number"),
        (None, r"returned NoneType, not numbers"),
    ],
    ids=["2x2", "4x2", "complex", "scalar", "dicts", "strings", "none_item", "none"],
)
def test_a_reward_result_that_is_not_one_real_number_per_text_is_refused(returned, needle):
    reward = CallableReward(lambda p, c: returned, name="odd")
    with pytest.raises(RewardError, match=needle) as info:
        checked_score(reward, ["p"] * 4, ["a", "b", "c", "d"])
    assert "\n" not in str(info.value)


def test_a_column_of_scores_is_one_score_per_text():
    reward = CallableReward(lambda p, c: torch.arange(3.0)[:, None], name="column")
    assert torch.equal(checked_score(reward, ["p"] * 3, ["a", "b", "c"]), torch.arange(3.0))


def test_more_scores_than_texts_are_refused():
    """One score too many would be re-paired with the texts downstream: refused, like one too few."""
    with pytest.raises(RewardError, match="4 scores for 3"):
        checked_score(CallableReward(lambda ps, cs: [1.0, 2.0, 3.0, 4.0], name="long"), P, C)


@pytest.mark.parametrize(
    "dense", [torch.tensor([1.5, 0.0, -2.0]), torch.tensor([[1.5], [0.0], [-2.0]])], ids=["row", "column"]
)
def test_sparse_scores_are_the_same_scores_as_dense_ones(dense):
    reward = CallableReward(lambda p, c: dense.to_sparse(), name="sparse")
    assert torch.equal(checked_score(reward, ["p"] * 3, ["a", "b", "c"]), dense.flatten())


def test_of_several_non_finite_scores_the_first_is_named_with_the_count() -> None:
    r = CallableReward(lambda ps, cs: [0.0, math.nan, math.inf], name="flaky")
    with pytest.raises(RewardError, match=r"returned nan for completion 'broken' \(2 of 3 scores not finite\)"):
        checked_score(r, P, C)


def test_a_reward_error_raised_by_the_reward_is_passed_on_as_it_is() -> None:
    """A reward that checks its own result (``CallableReward`` does) raises a :class:`RewardError` saying what was
    wrong; ``checked_score`` passes it on rather than reporting it as an exception the reward raised."""
    r = CallableReward(lambda ps, cs: [1.0], name="short")
    with pytest.raises(RewardError, match="returned 1 scores for 3 texts") as info:
        checked_score(r, P, C)
    assert "raised" not in str(info.value) and info.value.__cause__ is None


def test_of_several_scores_beyond_float32_the_first_is_named() -> None:
    r = CallableReward(lambda ps, cs: [0.0, -1e39, 1e40], name="huge")
    with pytest.raises(RewardError, match=r"'huge' returned -1e\+39 for completion 'broken'"):
        checked_score(r, P, C)
