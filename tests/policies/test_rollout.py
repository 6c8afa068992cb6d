"""The Rollout layout every algorithm reads (prompts left padded, completions right padded, prompt-major groups):
its checks, and ``concat_rollouts`` of rollouts whose widths differ (the cache target's picks of a language
model, whose prompts and completions differ in length from prompt to prompt)."""

import pytest
import torch

from rlhf_zoo.policies.base import Rollout, concat_rollouts

PAD = 9


def rollout(prompt, completion, logp, weights=None, group_size=1):
    """One row per given completion, all of ``prompt`` (a list of ids, no padding)."""
    n = len(completion)
    width = max(map(len, completion))
    return Rollout(
        prompts=["p"] * n,
        prompt_ids=torch.tensor([prompt] * n),
        prompt_mask=torch.ones(n, len(prompt)),
        completion_ids=torch.tensor([c + [PAD] * (width - len(c)) for c in completion]),
        response_mask=torch.tensor([[1.0] * len(c) + [0.0] * (width - len(c)) for c in completion]),
        sample_logp=torch.tensor([lp + [0.0] * (width - len(lp)) for lp in logp]) if logp is not None else None,
        texts=[str(c) for c in completion],
        group_size=group_size,
        weights=weights,
    )


def test_concat_pads_prompts_on_the_left_and_completions_on_the_right_with_masks_off():
    a = rollout([5, 6, 7], [[1, 2]], [[-0.5, -0.25]], weights=torch.tensor([0.75]))
    b = rollout([8], [[3, 4, 4, 2]], [[-1.0, -2.0, -3.0, -4.0]], weights=torch.tensor([0.25]))
    both = concat_rollouts([a, b], pad_id=PAD)
    assert both.prompt_ids.tolist() == [[5, 6, 7], [PAD, PAD, 8]]
    assert both.prompt_mask.tolist() == [[1, 1, 1], [0, 0, 1]]  # a prompt's last token stays next to its completion
    assert both.completion_ids.tolist() == [[1, 2, PAD, PAD], [3, 4, 4, 2]]
    assert both.response_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert both.sample_logp.tolist() == [[-0.5, -0.25, 0.0, 0.0], [-1.0, -2.0, -3.0, -4.0]]
    assert both.weights.tolist() == [0.75, 0.25] and both.texts == a.texts + b.texts and both.group_size == 1
    assert concat_rollouts([a, rollout([8], [[3]], None)]).sample_logp is None  # known for some rows only: none


def test_concat_refuses_rollouts_of_different_group_sizes():
    with pytest.raises(ValueError, match="share a group size"):
        concat_rollouts([rollout([5], [[1], [2]], None, group_size=2), rollout([5], [[1]], None)])


@pytest.mark.parametrize(
    "change",
    [
        {"group_size": 2},  # 3 rows
        {"texts": ["a", "b"]},
        {"response_mask": torch.ones(3, 1)},
    ],
)
def test_a_rollout_whose_fields_disagree_is_refused(change):
    fields = rollout([5], [[1, 2], [3, 4], [2, 2]], None).__dict__ | change
    with pytest.raises(ValueError):
        Rollout(**fields)


def test_select_takes_rows_in_the_given_order_and_keeps_the_group_size_unless_given():
    r = rollout(
        [5], [[1, 2], [3, 4], [2, 2], [4, 1]], [[-1.0, -2.0], [-3.0, -4.0], [-5.0, -6.0], [-7.0, -8.0]], group_size=2
    )
    picked = r.select([3, 2])
    assert picked.completion_ids.tolist() == [[4, 1], [2, 2]] and picked.texts == [r.texts[3], r.texts[2]]
    assert picked.sample_logp.tolist() == [[-7.0, -8.0], [-5.0, -6.0]]
    assert picked.group_size == 2  # the last group, reversed: still one group of two
    assert r.select([0, 2], group_size=1).group_size == 1


def test_rows_of_a_weighted_rollout_cannot_be_selected_nor_its_groups_taken():
    """An enumeration's weights define one expectation over all its rows: a subset (a minibatch of its groups, a
    best-of pick) has no defined weights, so it is refused rather than given the old ones or uniform ones."""
    r = rollout([5], [[1], [2], [3], [4]], None, weights=torch.tensor([0.1, 0.4, 0.3, 0.2]), group_size=2)
    for take in (lambda: r.select([0, 1]), lambda: r.select([0], group_size=1), lambda: r.groups([1])):
        with pytest.raises(ValueError, match="weighted rollout"):
            take()
