"""Scoring completions (rlhf_zoo.policies.hf.scoring) on the tiny Llama: which rows share a prompt pass, float32
log-probs from half-precision weights on either path, and rows without a completion token."""

from __future__ import annotations

from typing import Any

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from rlhf_zoo.policies.base import Rollout  # noqa: E402
from rlhf_zoo.policies.hf import HFPolicyConfig, build_hf_policy  # noqa: E402

PROMPTS = ["The movie was", "Great"]


def make(**kw):
    return build_hf_policy(HFPolicyConfig(**kw), seed=0)


def alone(pol, prompt_ids: torch.Tensor, completion_ids: torch.Tensor) -> torch.Tensor:
    """Log-probs of ``completion_ids`` after ``prompt_ids`` (1-D, real tokens only) from one plain forward."""
    with torch.no_grad():
        logits = pol.model(input_ids=torch.cat([prompt_ids, completion_ids])[None]).logits[0].float()
    k = len(prompt_ids)
    return torch.log_softmax(logits[k - 1 : -1], -1).gather(-1, completion_ids[:, None]).squeeze(-1)


def with_masks(r: Rollout, response_mask: torch.Tensor) -> Rollout:
    return Rollout(
        prompts=r.prompts,
        prompt_ids=r.prompt_ids,
        prompt_mask=r.prompt_mask,
        completion_ids=r.completion_ids,
        response_mask=response_mask,
        sample_logp=None,
        texts=r.texts,
        group_size=r.group_size,
    )


def test_prompts_that_end_alike_but_differ_earlier_are_scored_each_with_its_own():
    """Rows share a prompt pass only when their whole prompts are equal: two prompts of the same length with the
    same tokens but their first word keep their own log-probs, each a plain forward of the row alone."""
    pol = make(max_new_tokens=6)
    prompts = ["The movie was good", "Bad movie was good"]
    ids = [pol.tokenizer(p)["input_ids"] for p in prompts]
    assert len(ids[0]) == len(ids[1]) and ids[0][2:] == ids[1][2:] and ids[0] != ids[1]  # BOS, one word, the rest
    r = pol.sample(prompts, 2, generator=torch.Generator().manual_seed(0))
    r = with_masks(r, r.response_mask)
    # the same completions after both prompts, so only the prompts can tell the rows apart
    r.completion_ids[2:], r.response_mask[2:] = r.completion_ids[:2], r.response_mask[:2]
    with torch.no_grad():
        lp = pol.logprobs(r)
    for i in range(len(r)):
        k = int(r.response_mask[i].sum())
        expected = alone(pol, r.prompt_ids[i], r.completion_ids[i, :k])
        assert (lp[i, :k] - expected).abs().max() < 1e-5, i
    k = int(r.response_mask[0].sum())
    assert (lp[0, :k] - lp[2, :k]).abs().max() > 1e-3  # the first words really change the log-probs


@pytest.mark.parametrize("share_prompts", [True, False])
def test_half_precision_weights_are_scored_in_float32_on_either_path(share_prompts):
    """Log-softmax is always computed in float32 (HFPolicyConfig.dtype), whether the rows share prompt passes or
    each runs in full: bfloat16 log-probs would be coarser than the importance ratios built from them can bear."""
    pol = make(dtype="bfloat16", max_new_tokens=4, share_prompts=share_prompts)
    r = pol.sample(PROMPTS, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        lp, full = pol.logprobs(r), pol.logprobs(r, full=True)
    assert lp.dtype == full.dtype == torch.float32
    assert torch.isfinite(lp).all() and torch.isfinite(full).all()


@pytest.mark.parametrize("share_prompts", [True, False])
def test_rows_without_any_completion_token_score_to_zero_kl_and_keep_their_shape(share_prompts):
    """A micro-batch whose rows have no completion token at all (every response position masked out) is still
    scored: [N, T] and [N, T, V] log-probs of finite values, and an exact-token KL of 0."""
    pol = make(max_new_tokens=4, share_prompts=share_prompts)
    r = pol.sample(PROMPTS, 2, generator=torch.Generator().manual_seed(0))
    empty = with_masks(r, torch.zeros_like(r.response_mask))
    with torch.no_grad():
        lp, full = pol.logprobs(empty), pol.logprobs(empty, full=True)
    assert lp.shape == r.completion_ids.shape and full.shape[:2] == r.completion_ids.shape
    assert torch.isfinite(lp).all() and torch.isfinite(full).all()
    assert torch.equal(pol.token_kl(empty), torch.zeros(len(r)))


def _forwards(pol) -> tuple[list[dict], Any]:
    """The keyword arguments of every forward of π's model from now on, and the hook's handle."""
    seen: list[dict] = []
    handle = pol.model.register_forward_pre_hook(lambda _m, _a, kwargs: seen.append(kwargs), with_kwargs=True)
    return seen, handle


def test_rows_whose_prompts_all_differ_are_scored_in_one_plain_forward():
    """Sharing prompt passes pays only when a prompt repeats: one sample per prompt is one forward of the whole
    rows, keeping logits only where they predict completion tokens, with the same log-probs as each row alone."""
    pol = make(max_new_tokens=4)
    r = pol.sample(PROMPTS, 1, generator=torch.Generator().manual_seed(0))
    seen, _ = _forwards(pol)
    with torch.no_grad():
        lp = pol.logprobs(r)
    t = int(r.response_mask.sum(1).max())
    assert len(seen) == 1 and seen[0]["input_ids"].shape == (2, r.prompt_ids.shape[1] + t)
    assert seen[0]["logits_to_keep"] == t + 1
    for i in range(len(r)):
        k = int(r.response_mask[i].sum())
        expected = alone(pol, r.prompt_ids[i][r.prompt_mask[i].bool()], r.completion_ids[i, :k])
        assert (lp[i, :k] - expected).abs().max() < 1e-5, i


def test_two_token_prompts_are_shared_and_the_prompt_pass_keeps_only_its_last_logits():
    """A prompt of two tokens (BOS and one word) repeated k times is run once too, and the shared prompt pass keeps
    only the logits of its last position (the one that predicts the first completion token), not [G, P, V]."""
    pol = make(max_new_tokens=4)
    prompts = ["Bad", "Good"]
    assert [len(pol.tokenizer(p)["input_ids"]) for p in prompts] == [2, 3]
    r = pol.sample(prompts, 3, generator=torch.Generator().manual_seed(0))
    assert r.prompt_ids.shape[1] == 3  # "Bad" left padded by one
    r2 = pol.sample(prompts[:1], 3, generator=torch.Generator().manual_seed(1))
    assert r2.prompt_ids.shape[1] == 2
    for rollout in (r, r2):
        seen, handle = _forwards(pol)
        with torch.no_grad():
            pol.logprobs(rollout)
        handle.remove()
        assert len(seen) == 2  # one pass of the distinct prompts, one of the completions
        assert torch.equal(seen[0]["input_ids"], rollout.prompt_ids[::3]) and seen[0]["logits_to_keep"] == 1
